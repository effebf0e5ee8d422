"""Crash safety: SIGKILL at random moments ten times in a row loses nothing and repeats no
finished call; Ctrl-C stops cleanly, saves what finished and says how to resume."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.kit.cli import (
    SHARED_DATA,
    cache_file,
    command,
    environment,
    ledger,
    outputs,
    run,
    run_dir,
    torn_files,
)
from tests.kit.fakeserver import FakeServer, ModelProfile, in_flight, request_id, serve_in_thread

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
# 40 instances x 13 calls, 3 instances at a time, 50 ms a call: kills land mid-run.
ARGS = ["benchmark.limit=40", "concurrency=3"]
CALLS = 40 * 13
SLOW = ModelProfile(ttft_s=0.05, min_tokens=5, max_tokens=30)


def wait_for(condition: object, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (callable(condition) and condition()) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.002)


def test_ten_kills_lose_nothing_and_repeat_no_finished_call(tmp_path: Path) -> None:
    server = FakeServer(default=SLOW)
    rng = random.Random(6)
    killed_in_flight = 0
    with serve_in_thread(server) as url:
        whole = run(command(tmp_path / "whole", url, *ARGS))
        assert whole.returncode == 0, whole.stderr
        reference = server.log[:]
        server.log.clear()
        args = command(tmp_path / "killed", url, *ARGS)
        for kill in range(10):
            proc = subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL, text=True)
            if kill % 3 == 2:  # at a random time: in start-up, loading, or mid-run
                time.sleep(rng.uniform(0.2, 2.0))
            else:  # after a random number of requests
                target = len(server.log) + rng.randint(5, 40)
                wait_for(lambda target=target: len(server.log) >= target, proc)  # type: ignore[misc]
                time.sleep(rng.uniform(0, 0.05))
            assert proc.poll() is None, "the run ended before it could be killed"
            at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(0.1)  # let the server finish the requests the kill cut off
            killed_in_flight += in_flight(server.log, at)
            killed = tmp_path / "killed"
            assert torn_files(run_dir(killed), cache_file(killed)) == [], f"after kill {kill}"
        final = run(args)
    assert final.returncode == 0, final.stderr
    assert not list(run_dir(tmp_path / "killed").rglob(".*.tmp"))  # no half-written file left
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "whole")
    assert len(outputs(tmp_path / "whole")) == 40
    # The same calls were made; a call was repeated only if it was in flight at a kill.
    assert {request_id(r) for r in server.log} == {request_id(r) for r in reference}
    repeated = len(server.log) - CALLS
    assert len(reference) == CALLS and 0 <= repeated <= killed_in_flight
    # The ledgers pay a call twice only where the server answered it twice (an answer received
    # just before a kill, not yet committed to the cache, is one the next run must ask again).
    paid = Counter(r["key"] for r in ledger(tmp_path / "killed") if not r["cached"])
    assert sum(n - 1 for n in paid.values()) <= repeated


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path) -> None:
    server = FakeServer(default=SLOW)
    with serve_in_thread(server) as url:
        args = command(tmp_path, url, *ARGS)
        proc = subprocess.Popen(
            args, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: len(server.log) >= 100, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        stopped_at = len(server.log)
        saved = outputs(tmp_path)
        traces = (run_dir(tmp_path) / "traces.jsonl").read_text(encoding="utf-8").splitlines()
        resumed = run(args)
    assert proc.returncode == 130
    (line,) = stderr.splitlines()
    assert 0 < len(saved) == len(traces) < 40  # what finished is flushed, in both files
    assert line.startswith(f"moa-bench: interrupted; {len(saved)}/40 instances are saved")
    assert line.endswith(f"run the same command to resume: moa-bench {' '.join(args[1:])}")
    assert stopped_at < CALLS and resumed.returncode == 0, resumed.stderr
    assert len(outputs(tmp_path)) == 40 and outputs(tmp_path)[: len(saved)] == saved
    paid = Counter(r["key"] for r in ledger(tmp_path) if not r["cached"])
    assert max(paid.values()) == 1
