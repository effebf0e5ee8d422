"""Soak: a full-size run under a high fault rate, SIGKILLed at random moments and restarted, must
end exactly as a clean run ends, without repeating a finished call or leaving a torn file.

AlpacaEval's 805 instructions go through MoA 6 -> 6 -> 1 (10,465 calls) by the real `moa-bench`
command and the real OpenAI-compatible provider, to a loopback fake server that faults a share
of requests with every transient kind it knows (429 with and without Retry-After, 500, 503,
dropped connections, hangs, malformed bodies, empty choices). The run is killed `--kills` times,
each time after a random number of requests or at a random moment of start-up, then run to the
end; a clean run against a fault-free server gives the outputs to compare with.

Usage: `.venv/bin/python scripts/soak.py [--fault-rate 0.3] [--kills 8] [--seed 6]`.
It prints its findings and exits non-zero if any check failed.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from tests.kit.cli import cache_file, command, environment, ledger, outputs, run_dir, torn_files
from tests.kit.fakeserver import (
    FakeServer,
    FaultPlan,
    ModelProfile,
    in_flight,
    request_id,
    serve_in_thread,
)

PROFILE = ModelProfile(min_tokens=5, max_tokens=40)


def soak_command(root: Path, url: str, attempts: int) -> list[str]:
    """The test kit's AlpacaEval run; hangs (1 s) outlast the 0.5 s timeout."""
    return command(root, url, timeout_s=0.5, max_attempts=attempts)


def clean_run(root: Path) -> tuple[list[Any], int, float]:
    server = FakeServer(default=PROFILE)
    started = time.monotonic()
    with serve_in_thread(server) as url:
        subprocess.run(
            soak_command(root, url, 1), env=environment(), check=True, capture_output=True
        )
    return outputs(root), len(server.log), time.monotonic() - started


def soak(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    server = FakeServer(default=PROFILE, faults=FaultPlan.transient(args.fault_rate, args.seed))
    rng = random.Random(args.seed)
    cut_off, torn, kills = 0, [], 0
    started = time.monotonic()
    with serve_in_thread(server) as url:
        cmd = soak_command(root, url, args.attempts)
        for kill in range(args.kills):
            proc = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL)
            if kill % 3 == 2:
                time.sleep(rng.uniform(0.2, 3.0))  # start-up, data loading or the first calls
            else:
                target = len(server.log) + rng.randint(200, 2500)
                while len(server.log) < target and proc.poll() is None:
                    time.sleep(0.005)
            if proc.poll() is not None:
                break
            at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            time.sleep(0.2)
            cut_off += in_flight(server.log, at)
            torn += torn_files(run_dir(root), cache_file(root))
        final = subprocess.run(cmd, env=environment(), capture_output=True, text=True)
    calls = ledger(root)
    paid = [r for r in calls if not r["cached"]]
    return {
        "exit": final.returncode,
        "stderr": final.stderr.strip(),
        "seconds": time.monotonic() - started,
        "kills": kills,
        "requests": len(server.log),
        "answered": sum(r.status == 200 and r.fault is None for r in server.log),
        "distinct": {request_id(r) for r in server.log},
        "faults": Counter(r.fault for r in server.log if r.fault is not None),
        "in_flight": cut_off,
        "torn": torn,
        "stale": [str(p) for p in run_dir(root).rglob(".*.tmp")],
        "retries": sum(r["attempts"] - 1 for r in paid if r["attempts"]),
        "errors": sum(r["error"] is not None for r in calls),
        "paid_again": sum(n - 1 for n in Counter(r["key"] for r in paid).values()),
        "outputs": outputs(root),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of requests faulted")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs before the final run")
    parser.add_argument("--attempts", type=int, default=15, help="max_attempts per call")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moa-soak-") as tmp:
        expected, calls, clean_s = clean_run(Path(tmp) / "clean")
        got = soak(Path(tmp) / "soak", args)
    faulted = got["faults"].total()
    repeated = got["answered"] - calls
    checks = {
        "the final run exited 0": got["exit"] == 0,
        f"all {args.kills} kills landed mid-run": got["kills"] == args.kills,
        "outputs identical to the clean run": got["outputs"] == expected,
        "the same distinct calls as the clean run": len(got["distinct"]) == calls,
        "no call answered twice unless in flight at a kill": 0 <= repeated <= got["in_flight"],
        "the ledger pays twice only what was answered twice": got["paid_again"] <= repeated,
        "no call error left (every fault retried)": got["errors"] == 0,
        "no torn file after any kill": not got["torn"],
        "no half-written temporary file left": not got["stale"],
    }
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(got["faults"].items()))
    print(
        f"soak: {len(expected)} AlpacaEval instances x MoA 6->6->1 ({calls:,} calls) through the "
        f"openai provider; {args.fault_rate:.0%} transient fault rate; {got['kills']} SIGKILLs "
        "at random moments, then a final run"
    )
    print(
        f"  requests: {got['requests']:,}; faulted {faulted:,} ({faulted / got['requests']:.1%}: "
        f"{kinds}); retries in the ledger: {got['retries']:,}"
    )
    print(
        f"  answered twice: {repeated} (in flight at the kills: {got['in_flight']}); paid twice "
        f"in the ledger: {got['paid_again']}; "
        f"time: clean run {clean_s:.0f} s, soak {got['seconds']:.0f} s"
    )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if got["exit"] != 0:
        print(got["stderr"])
    passed = all(checks.values())
    print(f"result: {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
