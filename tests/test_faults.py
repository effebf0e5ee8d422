"""A full-size run through the real provider survives a 20% transient fault rate unchanged, and
permanent errors are recorded and reported, never answered with."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tests.kit.cli import SHARED_DATA, command, ledger, outputs, run, run_dir
from tests.kit.fakeserver import (
    TRANSIENT,
    FakeServer,
    FaultPlan,
    ModelProfile,
    request_id,
    serve_in_thread,
)

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
CALLS = 805 * 13
PROFILE = ModelProfile(min_tokens=5, max_tokens=40)
# Hangs outlast the timeout; 12 attempts make 12 faults in a row (1 in 2.4e8) all but impossible.
LIMITS = {"timeout_s": 0.5, "max_attempts": 12}


def full_run(root: Path, faults: FaultPlan) -> tuple[FakeServer, str]:
    """AlpacaEval's 805 instructions through MoA 6 -> 6 -> 1: 10,465 calls."""
    server = FakeServer(default=PROFILE, faults=faults)
    with serve_in_thread(server) as url:
        done = run(command(root, url, **LIMITS), timeout=600)
    assert done.returncode == 0, done.stderr
    return server, done.stdout


def test_a_full_run_survives_a_20_percent_fault_rate(tmp_path: Path) -> None:
    """What holds however slow the machine: on a loaded one any attempt may also time out (and
    be retried), so request counts are bounds, not figures."""
    clean, _ = full_run(tmp_path / "clean", FaultPlan())
    flaky, stdout = full_run(tmp_path / "flaky", FaultPlan.transient(0.2, seed=6))
    expected = outputs(tmp_path / "clean")
    assert len(expected) == 805 and outputs(tmp_path / "flaky") == expected

    faulted = Counter(r.fault for r in flaky.log if r.fault is not None)
    assert set(faulted) == set(TRANSIENT)
    # each request draws its fault, an attempt that timed out on a slow machine too
    assert 0.18 < faulted.total() / len(flaky.log) < 0.22
    # Both runs asked the same 10,465 distinct calls, each answered at least once.
    calls = {request_id(r) for r in clean.log}
    assert len(calls) == CALLS and {request_id(r) for r in flaky.log} == calls
    answered = {request_id(r) for r in flaky.log if r.status == 200 and r.fault is None}
    assert answered == calls

    ledgers = {name: ledger(tmp_path / name) for name in ("clean", "flaky")}
    for name, server in (("clean", clean), ("flaky", flaky)):
        records = ledgers[name]
        # every call succeeded at last, none from the cache
        assert len(records) == CALLS and all(r["error"] is None for r in records)
        assert all(r["attempts"] >= 1 and not r["cached"] for r in records)
        # every request the server saw was an attempt (one cut off before it arrived is not)
        assert CALLS <= len(server.log) <= sum(r["attempts"] for r in records)
    # every faulted request failed its attempt and was retried; the summary counts the retries
    retries = sum(r["attempts"] - 1 for r in ledgers["flaky"])
    assert retries >= faulted.total()
    summary = re.search(r"(\d+) retries, (\d+) errors", stdout)
    assert summary is not None and summary.groups() == (str(retries), "0")
    traces = (run_dir(tmp_path / "flaky") / "traces.jsonl").read_text(encoding="utf-8")
    assert all(not json.loads(line)["trace"]["turns"][0]["events"] for line in traces.splitlines())
    # no fault's message reached an answer, nor a prompt (an aggregator's references)
    answers = json.dumps(outputs(tmp_path / "flaky"))
    prompts = json.dumps([r.messages for r in flaky.log])
    for fault_text in ("injected", "rate limited"):
        assert fault_text not in answers and fault_text not in prompts


def test_permanent_errors_are_recorded_and_reported_never_answered(tmp_path: Path) -> None:
    server = FakeServer(
        default=PROFILE, profiles={"databricks/dbrx-instruct": ModelProfile(fail_status=400)}
    )
    with serve_in_thread(server) as url:  # no hangs here: the kit's 5 s timeout, not 0.5 s
        done = run(command(tmp_path, url, "benchmark.limit=4", max_attempts=12))
    assert done.returncode == 0, done.stderr  # the failed proposals were dropped, as configured
    failed = [r for r in ledger(tmp_path) if r["error"] is not None]
    assert len(failed) == 8  # 4 instances x 2 proposer layers, each asked once: no retry
    assert {(r["model"], r["error"], r["attempts"]) for r in failed} == {
        ("together/databricks/dbrx-instruct", "permanent 400: injected 400", 1)
    }
    lines = done.stdout.splitlines()
    assert "8 call(s) failed and were left out of every answer" in done.stdout
    assert "  8 x together/databricks/dbrx-instruct: permanent 400: injected 400" in lines
    answers = json.dumps(outputs(tmp_path))
    requests = json.dumps([r.messages for r in server.log])
    assert "injected" not in answers and "injected" not in requests
