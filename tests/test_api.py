"""The Python API (`eval.api`): the README's example run through the command's door on the
scripted fake, then the run read back as a typed run and a per-instance frame."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from eval.api import Run, arun, open_run, run
from moa.errors import ConfigError
from tests.kit.cli import ROOT, SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def readme_example() -> str:
    """The code block of the README's "From Python" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


@needs_data
def test_the_readme_example_runs_and_its_run_reads_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The example's `../shared/data`, seen from a scratch working directory.
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    names: dict[str, object] = {}
    exec(readme_example(), names)  # the README's own example, as a reader runs it
    done = names["done"]
    assert isinstance(done, Run)
    assert (done.variant, done.benchmark, done.subset) == ("moa_lite", "alpaca_eval", "first3")
    assert (done.provider, done.n, done.failed, done.repeat) == ("scripted", 3, 0, 1)
    assert done.path == Path("results/runs/alpaca_eval/moa_lite@scripted~first3")
    metrics = done.metrics
    assert metrics is not None and metrics.complete and metrics.judge_calls == 3
    assert done.judge == metrics.judge == "scripted/gpt-4-1106-preview"
    written = json.loads((done.path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics.headline == written["headline"] == written["extras"]["win_rate"]
    assert metrics.headline == metrics.values["win_rate"]
    assert dict(metrics.failures) == {"call": 0, "parse": 0}
    # The frame's rows are the native files' instances: outputs and the judge's preferences.
    frame = open_run(done.path).frame()
    assert list(frame.columns) == ["id", "output", "turns", "score", "verdict"]
    outputs = json.loads((done.path / "model_outputs.json").read_text(encoding="utf-8"))
    assert list(frame["output"]) == [row["output"] for row in outputs]
    annotations = json.loads((done.path / "annotations.json").read_text(encoding="utf-8"))
    by_output = {a["output_2"]: a["preference"] for a in annotations}
    for output, score in zip(frame["output"], frame["score"], strict=True):
        assert score == pytest.approx((by_output[output] - 1) * 100)
    assert set(frame["verdict"]) <= {"win", "loss", "tie"}
    assert "moa_lite first3 scripted/gpt-4-1106-preview" in capsys.readouterr().out


def test_bad_settings_are_one_line_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"concurrency=0"):
        run(f"results_dir={tmp_path}", "concurrency=0")
    with pytest.raises(ConfigError, match="task= is one of run, generate, judge"):
        run(f"results_dir={tmp_path}", "task=report")
    assert not any(tmp_path.iterdir())


def test_inside_a_running_loop_run_says_to_await_arun(tmp_path: Path) -> None:
    async def inside() -> None:
        with pytest.raises(RuntimeError, match=r"await arun"):
            run(f"results_dir={tmp_path}")

    asyncio.run(inside())
    assert callable(arun)


def test_an_unjudged_run_opens_with_its_outputs(tmp_path: Path) -> None:
    done = run(
        "provider_override=scripted",
        "task=generate",
        "benchmark.limit=2",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'calls.sqlite'}",
    )
    assert done.benchmark == "demo" and done.metrics is None and done.judge is None
    frame = done.frame()
    assert list(frame.columns) == ["id", "output", "turns"] and len(frame) == done.n == 2
    assert frame["output"].notna().all()
