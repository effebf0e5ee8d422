"""The `plan` and `demo` runs: whole commands timed as a user runs them, no server involved.

`plan` prices the paper's whole suite (`task=plan plan.experiments=all`) on an empty cache;
`demo` is `moa-bench` with the config's defaults (the embedded model, minutes of CPU), with its
results and cache in the bench's own folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench_kit import MOA_BENCH, ROOT, run_measured


def task_run(
    name: str, args: argparse.Namespace, work: Path, pythonpath: Path | None
) -> dict[str, Any]:
    """One of the two commands; its wall time, its own CPU and its peak RSS."""
    argv = [MOA_BENCH, f"results_dir={work / 'runs'}", f"cache.path={work / 'calls.sqlite'}"]
    if name == "plan":
        argv += ["task=plan", "plan.experiments=all", f"data_dir={args.data_dir}"]
    measured = run_measured(argv, ROOT, pythonpath)
    return {
        "run": name,
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mb": measured.peak_rss_mb,
    }
