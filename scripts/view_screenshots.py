"""The README's screenshots of the run browser, taken from the real site in headless Chromium.

    .venv/bin/python scripts/view_screenshots.py [--results DIR] [--out docs]

Without `--results`, makes offline scripted runs first (MT-Bench, MoA and MoA-Lite), so the
texts are the scripted fake's. Writes `view_instance.png` (one instance: its turns, each
layer's proposals, the final answer, the judge), `view_side_by_side.png` (two runs on one
question, each with its verdict) and `view_compare.png` (their list of questions, filtered to
where the verdicts differ, largest difference first), whose first question the side-by-side
shot shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from eval.benchmarks.data import Data
from eval.view.site import build_site
from tests.kit import browser
from tests.kit.cli import ROOT, SHARED_DATA, scripted_runs

RUNS = (("benchmark=mt_bench", "moa=moa"), ("benchmark=mt_bench", "moa=moa_lite"))
INSTANCE = "mt_bench/moa@scripted/111"
COMPARE = "compare/mt_bench/moa@scripted/moa_lite@scripted"
SHOTS = ("view_instance.png", "view_side_by_side.png", "view_compare.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, help="a results directory (default: make runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="moa-view-shots-"))
    results = args.results or scripted_runs(work, RUNS)
    site = build_site(results, work / "site", Data(str(SHARED_DATA)))
    args.out.mkdir(parents=True, exist_ok=True)
    with browser.chromium(width=1280, height=900) as page:
        index = site.index.as_uri()
        browser.open_view(page, f"{index}#{INSTANCE}")
        page.execute_script("window.scrollTo(0, 0)")
        page.save_screenshot(str(args.out / "view_instance.png"))
        browser.open_view(page, f"{index}#{COMPARE}")
        page.find_element("css selector", "input.disagree").click()
        browser.wait_ready(page)
        page.execute_script(
            "const s = document.querySelector('select.sort'); s.value = 'diff-abs';"
            "s.dispatchEvent(new Event('change'));"
        )
        browser.wait_ready(page)
        page.save_screenshot(str(args.out / "view_compare.png"))
        first = page.find_element("css selector", "table.list tbody tr").get_attribute("data-id")
        browser.go(page, f"{COMPARE}/{first}")  # the question where they differ most
        page.save_screenshot(str(args.out / "view_side_by_side.png"))
        if errors := browser.errors(page):
            raise SystemExit(f"console errors: {errors}")
    for name in SHOTS:  # a 64-colour palette: a third of the size, the text as sharp
        path = args.out / name
        Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)
        print(path)


if __name__ == "__main__":
    main()
