"""The command line as a user meets it: the embedded demo, one prompt, the suite's plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SHARED_DATA

CLI = [sys.executable, "-c", "from eval.cli import main; main()"]


def moa_bench(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [*CLI, f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'c.sqlite'}",
         *overrides],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def test_embedded_demo_prints_its_table(tmp_path: Path) -> None:
    """The default job, shortened: real local generation, the local judge's verdict."""
    done = moa_bench(tmp_path, "benchmark.limit=2", "benchmark.generation.max_tokens=24")
    assert done.returncode == 0, done.stderr
    assert "demo: 4 calls per turn" in done.stdout and "judged better" in done.stdout
    assert re.search(r"(mixture|model alone|tie) \(\d\.\d\d\)", done.stdout)
    assert "2/2 instances done" in done.stdout
    # it says what it runs, what the verdict means, and where to look next
    intro = "demo: layer 1: 3 draws of smollm2; then smollm2 aggregates. Judged by smollm2"
    assert intro in " ".join(done.stdout.split())
    assert "above 1.5 the mixture is preferred" in " ".join(done.stdout.split())
    assert "traces.jsonl" in done.stdout and re.search(r"\n +1 \([\d,]+ chars\): ", done.stdout)
    # its time column is the model's time on its calls, said so, and it ends with one next step
    assert "model s" in done.stdout and "seconds" not in done.stdout.split("model s")[0]
    assert "model s: the seconds its calls took" in " ".join(done.stdout.split())
    printed = " ".join(done.stdout.split())
    assert printed.endswith("(README: Using it)") and printed.count("next: ") == 1
    assert printed.rsplit("next: ", 1)[1].startswith("`moa-bench task=view`")


def test_one_prompt_shows_every_layer(tmp_path: Path) -> None:
    done = moa_bench(tmp_path, "provider_override=scripted", "moa=moa", "prompt=Hello there")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("layer 1:") == 6 and done.stdout.count("layer 2:") == 6
    assert "output: scripted/Qwen/Qwen1.5-110B-Chat" in done.stdout
    assert "13 calls" in done.stdout


def test_the_cli_collects_cycles_less_often_than_cpythons_default(tmp_path: Path) -> None:
    """`eval.cli.GC_THRESHOLDS`: at CPython's 700 the collector took an eighth of a run's CPU."""
    report = "import atexit, gc; atexit.register(lambda: print('thresholds', gc.get_threshold()))"
    main = f"{report}; import sys; from eval.cli import main; sys.argv[0] = 'moa-bench'; main()"
    args = ["provider_override=scripted", "moa=single", "prompt=Hello there"]
    done = subprocess.run(
        [sys.executable, "-c", main, f"results_dir={tmp_path}", f"cache.path={tmp_path}/c", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "1 calls (0 cached)" in done.stdout  # it answered
    assert "thresholds (50000, 20, 20)" in done.stdout


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_plan_of_the_whole_suite_counts_sharing(tmp_path: Path) -> None:
    done = moa_bench(tmp_path, "task=plan", "plan.experiments=all", f"data_dir={SHARED_DATA}")
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.split())
    found = re.search(
        r"without sharing: ([\d,]+) \((\$[\d,.]+)\); with sharing: ([\d,]+) \((\$[\d,.]+)\); "
        r"ratio ([\d.]+)\. Judging: ([\d,]+) calls \((\$[\d,.]+)\)",
        printed,
    )
    assert found is not None, printed[-600:]
    without, with_ = (int(found.group(i).replace(",", "")) for i in (1, 3))
    assert with_ <= 0.6 * without
    # the README quotes these figures: they must be what the command prints
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    quoted = (
        f"plans every experiment file: {found[1]} calls without sharing and {found[3]} with it "
        f"(ratio {found[5]}), {found[2]} and {found[4]} at the catalogue's prices with an "
        f"estimated 400 output tokens per call; judging adds {found[6]} calls ({found[7]};"
    )
    assert quoted in readme
