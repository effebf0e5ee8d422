"""How fast the run browser builds and opens, on full-size scripted runs (figures for the README).

    .venv/bin/python scripts/view_speed.py [--results DIR] [--samples 20]

Without `--results`, makes the runs first, offline on the scripted fake: MoA and MoA-Lite on
AlpacaEval (805 instances; MoA's 10,465 calls) and MT-Bench, and MoA on the whole of FLASK
(1,740). Prints the build time from scratch, a rebuild with nothing changed and with one run
changed, the site's size, and, in headless Chromium from `file://`: when the index is
interactive after the page starts loading, and how long an instance takes to open, by a deep
link (a fresh page) and by following a link within the page (median and slowest of `--samples`
instances across the runs). Times in the page are its own `performance.now()`, at the end of
rendering.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from eval.benchmarks.data import Data
from eval.rundir import RunDir
from eval.view.site import build_site
from tests.kit import browser
from tests.kit.cli import SHARED_DATA, scripted_runs

RUNS = (
    ("benchmark=alpaca_eval", "moa=moa"),
    ("benchmark=alpaca_eval", "moa=moa_lite"),
    ("benchmark=mt_bench", "moa=moa"),
    ("benchmark=mt_bench", "moa=moa_lite"),
    ("benchmark=flask", "moa=moa"),
)


def timed(what: str, action: Callable[[], int]) -> None:
    """Runs `action` and prints how long it took, with the count of runs it returns."""
    started = time.perf_counter()
    runs = action()
    print(f"{what}: {time.perf_counter() - started:.2f} s ({runs} runs)")


def size_mb(path: Path) -> float:
    """Megabytes of every file under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, help="a results directory (default: make runs)")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moa-view-speed-"))
    results = args.results
    if results is None:
        started = time.perf_counter()
        results = scripted_runs(work, RUNS)
        print(f"making the scripted runs: {time.perf_counter() - started:.0f} s")
    out, data = work / "site", Data(str(SHARED_DATA))
    runs = sorted(p.parent for p in results.glob("*/*/run.json"))
    read = {f"{run.parent.name}/{run.name}": RunDir(run).results() for run in runs}  # once
    calls = sum(r.calls for found in read.values() for r in found.values())
    print(f"{len(runs)} runs, {calls:,} calls")
    timed("build from scratch", lambda: len(build_site(results, out, data).built))
    timed("rebuild, nothing changed", lambda: len(build_site(results, out, data).kept))
    touched = RunDir(runs[0]).metrics_file
    touched.write_text(touched.read_text())
    timed(f"rebuild, {runs[0].name} changed", lambda: len(build_site(results, out, data).built))
    page_kb = (out / "index.html").stat().st_size / 1e3
    print(f"site: {size_mb(out):.1f} MB; the index page {page_kb:.0f} kB")

    index = (out / "index.html").as_uri()
    rng = random.Random(0)
    keys = list(read)
    ids = {k: sorted(found) for k, found in read.items()}
    picks = [(k, rng.choice(ids[k])) for k in (rng.choice(keys) for _ in range(args.samples))]
    with browser.chromium() as page:
        interactive, deep, within = [], [], []
        for _ in range(5):
            page.get("about:blank")  # a fresh page each time, not a hash change
            browser.open_view(page, index)
            interactive.append(page.execute_script("return window.MOA_TIMES[0].at"))
        for key, id_ in picks:
            page.get("about:blank")
            browser.open_view(page, f"{index}#{key}/{id_}")
            deep.append(page.execute_script("return window.MOA_TIMES.at(-1).at"))
        for key, _ in picks:  # another instance of the same run, its rows already loaded
            browser.go(page, f"{key}/{rng.choice(ids[key])}")
            within.append(page.execute_script("return window.MOA_TIMES.at(-1).ms"))
        if errors := browser.errors(page):
            raise SystemExit(f"console errors: {errors}")

    def show(what: str, values: list[float]) -> None:
        median, slowest = statistics.median(values), max(values)
        print(f"{what}: median {median:.0f} ms, slowest {slowest:.0f} ms (of {len(values)})")

    show("index interactive, from the page's start", interactive)
    show("instance by deep link, from the page's start", deep)
    show("instance by a link within the page", within)


if __name__ == "__main__":
    main()
