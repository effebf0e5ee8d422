"""Every file is written whole, and no reader trusts a torn one: the judges' native files and the
report's tables and plots are renamed into place, a damaged native file is named in one line,
and one damaged run directory is skipped, with its reason, while the others are reported."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from eval.benchmarks import select
from eval.benchmarks.data import Data
from eval.cli import dispatch
from eval.evaluation import evaluation_for
from eval.judges import alpaca_eval as ae
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.report import plots
from eval.report.build import write_report
from eval.report.markdown import write_table
from eval.rundir import RunDir, RunFileError, RunMetrics
from eval.runs import load_runs
from moa.types import Completion, TokenLogprob
from tests.kit.cli import scripted_config as config

from .conftest import SHARED_DATA
from .fakes import FakeJudge

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
PNG = b"\x89PNG\r\n\x1a\n"


# --- the judges' native files -----------------------------------------------------------------


def _annotation(i: int) -> ae.Annotation:
    return ae.Annotation(ae.Pair(f"q{i}", "b", "gpt4", "é", "moa", "x"), ae.ANNOTATOR, 1.5)


def test_a_zero_byte_annotations_file_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "annotations.json"
    path.write_bytes(b"")
    with pytest.raises(RunFileError, match=r"annotations\.json: empty") as error:
        ae.read_annotations(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    ae.write_annotations(path, [_annotation(0), _annotation(1)])
    path.write_text(path.read_text()[:-40], encoding="utf-8")  # cut short
    with pytest.raises(RunFileError, match="not valid JSON"):
        ae.read_annotations(path)
    path.write_text('[{"instruction": "q"}]', encoding="utf-8")  # foreign
    with pytest.raises(RunFileError, match="record 1: lacks 'output_1'"):
        ae.read_annotations(path)


def test_a_torn_judgment_or_review_file_is_named_with_its_line(tmp_path: Path) -> None:
    judgments = tmp_path / "gpt-4_single.jsonl"
    judgment = mj.Judgment(81, "moa", ("gpt-4", "single-v1"), "p", "[[5]]", 5, 1, 0.0)
    mj.write_judgments(judgments, [judgment, judgment])
    judgments.write_text(judgments.read_text()[:-30], encoding="utf-8")
    with pytest.raises(RunFileError, match=r"gpt-4_single\.jsonl line 2: not valid JSON"):
        mj.read_judgments(judgments)
    judgments.write_text('{"question_id": 81, "score": 5}\n', encoding="utf-8")
    with pytest.raises(RunFileError, match="line 1: lacks 'model'"):
        mj.read_judgments(judgments)
    judgments.write_text(json.dumps({**judgment.to_json(), "score": "five"}) + "\n", "utf-8")
    with pytest.raises(RunFileError, match="line 1: 'score' is 'five', not a number"):
        mj.read_judgments(judgments)

    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text('{"idx": 1, "target_txt": "r", "review": "x"}\n', encoding="utf-8")
    with pytest.raises(RunFileError, match=r"reviews\.jsonl line 1: lacks 'score'"):
        fj.read_reviews(reviews)
    reviews.write_text(
        '{"idx": 1, "target_txt": "r", "review": "x", "score": [4], "total_tokens_step4": 0}\n',
        encoding="utf-8",
    )
    with pytest.raises(RunFileError, match="'score' is a list, not an object"):
        fj.read_reviews(reviews)


def test_annotations_are_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that dies before its rename leaves the previous file whole, and no temporary."""
    path = tmp_path / "annotations.json"
    ae.write_annotations(path, [_annotation(0)])
    before = path.read_bytes()

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        ae.write_annotations(path, [_annotation(1), _annotation(2)])
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["annotations.json"]


# --- the report's own files ---------------------------------------------------------------------


def test_tables_and_plots_are_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame([{"run": "a", "score": 1.0}])
    write_table(frame, tmp_path, "t")
    fig, _ = plt.subplots()
    plots.save(fig, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes().startswith(PNG)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"t.csv", "t.md", "p.png"}
    assert before["t.csv"] == frame.to_csv(index=False).encode()

    def killed(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_table(pd.DataFrame([{"run": "b", "score": 2.0}]), tmp_path, "t")
    fig, _ = plt.subplots()
    with pytest.raises(KeyboardInterrupt):
        plots.save(fig, tmp_path / "p.png")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- the report over damaged run directories ----------------------------------------------------


RUNS = {
    "moa": ("benchmark=alpaca_eval", "benchmark.limit=3", "moa=moa"),
    "lite": ("benchmark=alpaca_eval", "benchmark.limit=3", "moa=moa_lite"),
    "mt_bench": ("benchmark=mt_bench", "benchmark.limit=2", "moa=moa_lite"),
    "flask": ("benchmark=flask", "benchmark.limit=2", "moa=moa_lite"),
}


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small judged runs of every benchmark, on the scripted fake."""
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("judged")
    for overrides in RUNS.values():
        assert asyncio.run(dispatch(config(root, *overrides))) == 0
    return root


@pytest.fixture
def results(judged: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the judged runs' results, for a test to damage."""
    copy = tmp_path / "runs"
    shutil.copytree(judged / "runs", copy)
    yield copy


def run_dir(results: Path, name: str) -> Path:
    benchmark = RUNS[name][0].split("=")[1]
    variant = RUNS[name][2].split("=")[1]
    (found,) = (results / benchmark).glob(f"{variant}@*")
    return found


@needs_data
def test_an_intact_report_skips_nothing(results: Path, tmp_path: Path) -> None:
    report = write_report(results, tmp_path / "report")
    assert report.skipped == [] and "skipped" not in str(report)
    table2a = pd.read_csv(tmp_path / "report" / "table2a_alpaca_eval.csv").set_index("run")
    assert list(table2a.columns[1:6]) == ["judge", "provider", "subset", "n", "complete"]
    assert table2a["n"].tolist() == [3, 3] and table2a["complete"].all()
    assert table2a["subset"].tolist() == ["first3", "first3"]  # benchmark.limit=3
    table2b = pd.read_csv(tmp_path / "report" / "table2b_mt_bench.csv")
    assert table2b["n"].tolist() == [4] and table2b["complete"].all()  # 2 questions x 2 turns
    skills = pd.read_csv(tmp_path / "report" / "flask_skills.csv")
    assert skills["n"].tolist() == [2] and skills["complete"].all()
    assert (tmp_path / "report" / "flask_radar.png").read_bytes().startswith(PNG)
    assert not list((tmp_path / "report").glob(".*.tmp"))  # no temporary left behind


@needs_data
def test_a_zero_byte_annotations_file_skips_its_run_only(results: Path, tmp_path: Path) -> None:
    """A kill left 0 bytes in annotations.json: `task=report` crashed with a traceback."""
    damaged = run_dir(results, "moa")
    (damaged / "annotations.json").write_bytes(b"")
    report = write_report(results, tmp_path / "report")
    (skipped,) = report.skipped
    assert skipped.path == damaged
    assert str(damaged / "annotations.json") in skipped.reason and "empty" in skipped.reason
    line = f"skipped {damaged}: {skipped.reason}"
    assert str(skipped) == line and line in str(report) and "\n" not in line
    table2a = pd.read_csv(tmp_path / "report" / "table2a_alpaca_eval.csv")
    assert table2a["run"].tolist() == [run_dir(results, "lite").name]
    assert (tmp_path / "report" / "table2b_mt_bench.csv").exists()  # the other benchmarks too


def _drop_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _drop_last_annotation(path: Path) -> None:
    rows = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(rows[:-1]), encoding="utf-8")


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE: dict[str, tuple[str, str, Any, str]] = {
    "annotations short": (
        "moa", "annotations.json", _drop_last_annotation,
        "2 annotations, but the run's traces call for 3",
    ),
    "judgments torn": ("mt_bench", "model_judgment/*_single.jsonl", _cut, "not valid JSON"),
    "judgments short": (
        "mt_bench", "model_judgment/*_single.jsonl", _drop_last_line,
        "3 judgments, but the run's traces call for 4",
    ),
    "reviews short": (
        "flask", "review/reviews.jsonl", _drop_last_line,
        "1 reviews, but the run's traces call for 2",
    ),
    "reviews missing": ("flask", "review/reviews.jsonl", os.remove, "No such file"),
    "metrics torn": ("lite", "metrics.json", _cut, "not valid JSON"),
    "config torn": ("lite", "config.yaml", lambda p: p.write_text("a: [", "utf-8"), "config.yaml"),
    "traces damaged": ("lite", "traces.jsonl", lambda p: p.write_text("{}\nx\n", "utf-8"), "line"),
}  # fmt: skip


@needs_data
@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_is_skipped_with_the_file_named(results: Path, case: str) -> None:
    name, relpath, damage, problem = DAMAGE[case]
    damaged = run_dir(results, name)
    (path,) = damaged.glob(relpath)
    damage(path)
    runs, skipped = load_runs(results)
    assert [s.path for s in skipped] == [damaged]
    assert problem in skipped[0].reason and "\n" not in skipped[0].reason
    assert str(damaged) in skipped[0].reason
    assert len(runs) == len(RUNS) - 1


@needs_data
def test_an_incomplete_run_is_marked_and_gives_no_number(results: Path, tmp_path: Path) -> None:
    """The judge's key revoked after 2 of 3 calls: the row says n=2, incomplete, and shows no
    win rate and no interval; the complete run beside it is reported as usual."""
    rundir = RunDir(run_dir(results, "moa"))
    task = evaluation_for({"name": "alpaca_eval"}, Data(str(SHARED_DATA)))
    instances = select(task.load(), limit=3)
    finished = rundir.finished()
    outcomes = [
        Completion("m", 400, 1, "length", (TokenLogprob("m", -0.1, (("m", -0.1), ("M", -3))),)),
        Completion("M", 400, 1, "length", (TokenLogprob("M", -0.1, (("M", -0.1), ("m", -3))),)),
        None,
    ]
    judge = FakeJudge(
        {i.turns[0]: o for i, o in zip(instances, outcomes, strict=True)},
        error="permanent 401: invalid api key",
    )
    spec = SimpleNamespace(name="moa")
    results_ = [finished[i.id] for i in instances]
    address = "scripted/gpt-4-1106-preview"  # its judge, the others' (several: a table each)
    values = asyncio.run(task.judge(judge, address, rundir, spec, instances, results_))
    rundir.write_metrics(RunMetrics.of(address, 3, values))

    report = write_report(results, tmp_path / "report")
    assert report.skipped == []
    table2a = pd.read_csv(tmp_path / "report" / "table2a_alpaca_eval.csv").set_index("run")
    mine = table2a.loc[rundir.path.name]
    assert (mine["n"], bool(mine["complete"])) == (2, False)
    assert math.isnan(mine["win_rate"]) and pd.isna(mine["ci_low"]) and pd.isna(mine["ci_high"])
    assert mine["paper_lc"] == 65.1  # the paper's number stays beside ours
    other = table2a.loc[run_dir(results, "lite").name]
    assert bool(other["complete"]) and not math.isnan(other["win_rate"])
    paired = pd.read_csv(tmp_path / "report" / "paired_alpaca_eval.csv")
    assert not paired["complete"].any()
