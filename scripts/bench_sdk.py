"""The floor under the harness: the `openai` SDK alone (`scripts/sdk_alone.py`), no harness,
on a loopback server of its own, beside the `prompt` and benchmark runs. Its start-up (process
launch to the first request: Python, `import openai`, one client) is what no program on the SDK
starts faster than; its CPU per further call, on the lightest path the SDK offers (ours) and on
`chat.completions.create`, is the SDK's share of the harness's CPU per call."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench_kit import ROOT, Profile, run_measured, server_log, start_server

CHILD = Path(__file__).with_name("sdk_alone.py")
MODEL = "sdk-alone"  # any id: the server answers every model with its default profile
CALLS = 2000
CONCURRENCY = 64
QUICK = Profile(0.02, 0.0, CONCURRENCY)  # short calls: the figures are CPU, not waiting


def sdk_floor(args: argparse.Namespace) -> dict[str, Any]:
    """Start-up to the first request (one call), and CPU per further call on each path: the
    CPU of `CALLS` calls less that of one, over `CALLS - 1`."""
    server, url = start_server({}, {}, args, default=QUICK)

    def measured(n: int, path: str) -> tuple[float, float]:
        skip = len(server_log(url))
        argv = [sys.executable, str(CHILD), url, MODEL, str(n), str(CONCURRENCY), path]
        run = run_measured(argv, ROOT)
        first = min(r["started"] for r in server_log(url)[skip:])
        return first - run.launched, run.cpu_s

    try:
        row: dict[str, Any] = {"name": "the openai SDK alone (scripts/sdk_alone.py)"}
        for path in ("post", "create"):
            start_up, one = measured(1, path)
            _, many = measured(CALLS, path)
            row[f"{path}_to_first_request_s"] = start_up
            row[f"{path}_marginal_cpu_ms_per_call"] = 1000 * (many - one) / (CALLS - 1)
    finally:
        server.terminate()
        server.wait()
    return row
