"""The judge's biases per run: a share of a pairwise judge's pairs judged again in the other
order (`judge.swap_share`), position consistency, the longer answer's share and the length
curve; a grader's score against length. In metrics.json, the report and the run browser.
Offline, on the scripted fake."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from eval.benchmarks.data import Data
from eval.judge_bias import finite, pair_verdicts, summary, swapped_path
from eval.judges import alpaca_eval as ae
from eval.report.build import write_report
from eval.runs import load_runs
from eval.stats.bias import score_length
from eval.view.site import build_site
from tests.kit.cli import SHARED_DATA, read_jsonl, scripted_runs

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
ALPACA = ("benchmark=alpaca_eval", "benchmark.limit=20", "moa=moa_lite")


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("bias")
    scripted_runs(root, [(*ALPACA, "judge.swap_share=0.5"),
                         ("benchmark=mt_bench", "benchmark.limit=4", "moa=moa_lite")])  # fmt: skip
    return root


@needs_data
def test_a_share_of_the_pairs_is_judged_in_the_other_order(judged: Path) -> None:
    folder = judged / "runs" / "alpaca_eval" / "moa_lite@scripted~first20"
    (run,) = [r for r in load_runs(judged / "runs")[0] if r.benchmark == "alpaca_eval"]
    assert run.judgment is not None
    kind = run.judgment.task.judging
    swapped = ae.read_annotations(swapped_path(kind, run.judgment.rundir))  # type: ignore[arg-type]
    own = ae.read_annotations(folder / "annotations.json")
    differ = [a for a in own if a.pair.output_1 != a.pair.output_2]
    assert len(swapped) == math.ceil(0.5 * len(differ))
    assert [a.pair.output_1 for a in swapped] == [a.pair.output_2 for a in differ[: len(swapped)]]
    # the swapped calls are judge calls of their own, in the judge's ledger
    judge_calls = [r for r in read_jsonl(folder / "judge_calls.jsonl") if r["tags"]]
    assert len(judge_calls) == len(own) + len(swapped) - (len(own) - len(differ))
    verdicts = pair_verdicts(kind, run.judgment.rundir)  # type: ignore[arg-type]
    assert len(verdicts) == len([a for a in own if a.preference is not None]) + len(swapped)
    # each pair's two orders: the run's answer is a, shown first in exactly one of them
    by_pair: dict[str, set[bool]] = {}
    for v in verdicts:
        by_pair.setdefault(v.pair, set()).add(v.a_first)
    assert sum(len(s) == 2 for s in by_pair.values()) == len(swapped)


@needs_data
def test_the_biases_are_in_metrics_the_report_and_the_browser(judged: Path) -> None:
    folder = judged / "runs" / "alpaca_eval" / "moa_lite@scripted~first20"
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    bias = metrics["bias"]
    assert bias["kind"] == "pairwise" and bias["consistency"]["n"] >= 1
    for share in ("first", "consistency", "longer"):
        assert bias[share]["low"] <= bias[share]["value"] <= bias[share]["high"]
        assert bias[share]["method"]
    graded = judged / "runs" / "mt_bench" / "moa_lite@scripted~first4" / "metrics.json"
    assert json.loads(graded.read_text(encoding="utf-8"))["bias"]["kind"] == "grader"
    out = judged / "report"
    write_report(judged / "runs", out, reference="moa")
    (row,) = pd.read_csv(out / "judge_bias_alpaca_eval.csv").to_dict("records")
    assert row["consistency"] == pytest.approx(bias["consistency"]["value"])
    assert row["pairs_swapped"] == bias["consistency"]["n"]
    assert row["length_slope_ci_low"] <= row["length_slope"] <= row["length_slope_ci_high"]
    assert (out / "length_bias_alpaca_eval_moa_lite-scripted-first20.png").stat().st_size > 0
    (graded_row,) = pd.read_csv(out / "judge_bias_mt_bench.csv").to_dict("records")
    assert -1 <= graded_row["score_length_r"] <= 1
    caption = (out / "judge_bias_alpaca_eval.md").read_text(encoding="utf-8")
    assert "Wilson" in caption and "logistic GLM" in caption
    site = judged / "site"
    build_site(judged / "runs", site, Data(str(SHARED_DATA)))
    pages = "".join(p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*")
                    if p.is_file() and p.suffix in (".json", ".js", ".html"))  # fmt: skip
    assert "the winner survives the swap in" in pages and "score vs log length: r = " in pages


def test_an_undefined_bias_is_written_as_null_and_said_so() -> None:
    """A grader that gives every answer one score has no correlation: null, not NaN."""
    r = score_length({"a": 5.0, "b": 5.0, "c": 5.0, "d": 5.0}, {"a": 1, "b": 2, "c": 3, "d": 4})
    found = finite({"kind": "grader", "score_length": dataclasses.asdict(r)})
    assert found["score_length"]["r"] is None
    json.dumps(found, allow_nan=False)
    assert summary(found) == "score vs log length: r = undefined"
