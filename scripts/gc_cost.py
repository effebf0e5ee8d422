"""What Python's cyclic garbage collector costs a benchmark run, at CPython's thresholds and at
the CLI's (`eval.cli.GC_THRESHOLDS`): the real `moa-bench` on AlpacaEval against the bench's
loopback server (`scripts/bench_kit.py`, latencies scaled down: the collector's work does not
depend on them), its collections and their seconds counted with `gc.callbacks` per generation,
and the process's CPU and peak RSS.

Usage: `.venv/bin/python scripts/gc_cost.py [--limit N]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_kit import (
    ROOT,
    SHARED_DATA,
    cli_argv,
    models_by_id,
    run_measured,
    start_server,
    write_conf,
)
from bench_throughput import parse_args, profiles_from, scaled

from eval.cli import GC_THRESHOLDS

DEFAULT = (700, 10, 10)  # CPython's
# Runs `moa-bench` with the given thresholds and callbacks that count each generation's
# collections and their seconds; prints them as one JSON line at exit.
COUNTED = """
import atexit, gc, json, sys, time
import eval.cli
counts = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
began = [0.0]
def counted(phase, info):
    if phase == "start":
        began[0] = time.perf_counter()
    else:
        counts[info["generation"]][0] += 1
        counts[info["generation"]][1] += time.perf_counter() - began[0]
gc.callbacks.append(counted)
eval.cli.GC_THRESHOLDS = tuple(json.loads(sys.argv.pop(1)))
atexit.register(lambda: print("GC", json.dumps(counts)))
sys.argv[0] = "moa-bench"
eval.cli.main()
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--limit", type=int, default=805, help="AlpacaEval instances")
    args = p.parse_args()
    bench = parse_args(["--data-dir", str(SHARED_DATA)])
    profiles = scaled(profiles_from(bench), 0.2)
    with tempfile.TemporaryDirectory(prefix="moa-gc-") as tmp:
        work = Path(tmp)
        write_conf(work / "conf", profiles)
        server, url = start_server(profiles, models_by_id(profiles), bench)
        try:
            for thresholds in (DEFAULT, GC_THRESHOLDS):
                run = work / "x".join(map(str, thresholds))
                # the CLI's arguments, run as `python -c` to count inside it
                argv = cli_argv(url, work / "conf", run, profiles, bench)[1:]
                target = ["benchmark=alpaca_eval", f"benchmark.limit={args.limit}"]
                measured = run_measured(
                    [sys.executable, "-c", COUNTED, json.dumps(thresholds), *argv, *target], ROOT
                )
                line = next(x for x in measured.stdout.splitlines() if x.startswith("GC "))
                counts = {int(g): c for g, c in json.loads(line[3:]).items()}
                spent = sum(s for _, s in counts.values())
                each = ", ".join(f"gen {g}: {n} in {s:.2f}s" for g, (n, s) in counts.items())
                print(
                    f"thresholds {thresholds}: {each}; {spent:.2f}s of {measured.cpu_s:.2f}s CPU "
                    f"({spent / measured.cpu_s:.0%}); peak RSS {measured.peak_rss_mb:.0f} MB",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
