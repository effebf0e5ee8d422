"""`judge.repeats`: each answer judged k times, told apart in the cache by the sample index (repeat
0 keeps today's keys), each repeat's judgments kept, and the report's standard error split into
its sources. Offline, on the scripted fake."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from eval.records import RunMetrics
from eval.report.build import write_report
from eval.runs import load_runs
from eval.settings import resolve
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA, read_jsonl, scripted_config, scripted_runs

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
BASE = ("benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=3")


def _judge_calls(folder: Path) -> list[dict[str, object]]:
    return [r for r in read_jsonl(folder / "judge_calls.jsonl") if r["tags"] == {"role": "judge"}]


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    once, twice = tmp_path_factory.mktemp("once"), tmp_path_factory.mktemp("twice")
    scripted_runs(once, [BASE])
    scripted_runs(twice, [(*BASE, "judge.repeats=3", "repeats=2")])
    return once, twice


@needs_data
def test_repeat_zero_keeps_todays_keys_and_each_repeat_its_sample(
    repeated: tuple[Path, Path],
) -> None:
    once, twice = repeated
    today = _judge_calls(once / "runs" / "mt_bench" / "moa_lite@scripted~first3")
    folder = twice / "runs" / "mt_bench" / "moa_lite@scripted~first3"
    calls = _judge_calls(folder)
    by_sample: dict[object, set[object]] = {}
    for call in calls:
        by_sample.setdefault(call["sample"], set()).add(call["key"])
    assert sorted(by_sample) == [0, 1, 2]
    assert by_sample[0] == {c["key"] for c in today}  # existing caches stay valid
    assert all(len(keys) == len(today) for keys in by_sample.values())
    assert not by_sample[1] & by_sample[0] and not by_sample[2] & by_sample[1]
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert [r["repeat"] for r in metrics["judge_repeats"]] == [1, 2]
    kept = folder / "judge_repeats" / "2" / folder.name / "model_judgment"
    assert len(read_jsonl(next(kept.iterdir()))) == 6  # three questions, two turns
    precision = metrics["precision"]  # the run's own error, split over instances and judgments
    assert precision["judgments"] == 3 and precision["repeats"] == 1
    assert precision["se_judge"] is not None and "cluster bootstrap" in precision["method"]
    # a run judged once writes no repeats field, and no judge part it cannot tell apart
    plain = json.loads(
        (once / "runs" / "mt_bench" / "moa_lite@scripted~first3" / "metrics.json").read_text()
    )
    assert "judge_repeats" not in plain and plain["precision"]["se_judge"] is None


def test_the_new_metrics_fields_are_optional_in_format_2_and_absent_from_v1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "metrics.json"
    full = RunMetrics("scripted/j", 6, {"win_rate": 50.0}, 50.0, judge_repeats=[
        {"repeat": 1, "headline": 40.0, "values": {"win_rate": 40.0}}],
        bias={"kind": "grader"}, precision={"se": 1.0})  # fmt: skip
    assert RunMetrics.from_json(path, json.loads(json.dumps(full.to_json()))) == full
    bare = RunMetrics("scripted/j", 6, {"win_rate": 50.0}, 50.0)
    assert not {"judge_repeats", "bias", "precision"} & bare.to_json().keys()
    assert RunMetrics.from_json(path, bare.to_json()) == bare
    v1 = RunMetrics.from_json(path, {"judge": "scripted/j", "judge_calls": 6, "win_rate": 50.0})
    assert v1.judge_repeats is None and v1.bias is None and v1.precision is None


@needs_data
def test_the_report_splits_the_error_into_its_sources(
    repeated: tuple[Path, Path], tmp_path: Path
) -> None:
    _, twice = repeated
    runs, skipped = load_runs(twice / "runs")
    assert not skipped and len(runs) == 2
    assert all(len(r.judgment.repeat_scores()) == 2 for r in runs if r.judgment)
    write_report(twice / "runs", tmp_path / "report", reference="moa_lite")
    (row,) = pd.read_csv(tmp_path / "report" / "precision_mt_bench.csv").to_dict("records")
    assert row["repeats"] == 2 and row["judgments"] == 3 and row["clusters"] == 3
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert row["se_judge"] >= 0 and row["se_generation"] >= 0
    parts = row["se_instances"] ** 2 + row["se_generation"] ** 2 + row["se_judge"] ** 2
    assert parts == pytest.approx(row["se"] ** 2) or row["se_instances"] == 0
    caption = (tmp_path / "report" / "precision_mt_bench.md").read_text(encoding="utf-8")
    assert "cluster-robust" in caption and "method-of-moments" in caption


@pytest.mark.parametrize("bad", ["judge.repeats=0", "judge.repeats=1.5", "judge.swap_share=2"])
def test_a_bad_repeat_setting_is_one_clear_line(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        resolve(scripted_config(tmp_path, bad))
    assert bad.split("=")[0] in str(refused.value) and "\n" not in str(refused.value)
