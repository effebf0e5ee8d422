"""The report's paired tests: each configuration against the reference's, the test its outcome
calls for, Holm across the table, and "significant" only ever after Holm. Offline, on the
scripted fake."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from eval.report.build import write_report
from eval.report.paired_tests import outcome_of
from eval.runs import load_runs
from tests.kit.cli import SHARED_DATA, scripted_runs

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("tests")
    base = ("benchmark=alpaca_eval", "benchmark.limit=12")
    scripted_runs(root, [
        (*base, "moa=moa"),
        (*base, "moa=moa_lite", "repeats=2"),
        (*base, "moa=single", "moa.aggregator=gpt-4o", "moa.name=mine", "judge.repeats=2"),
        ("benchmark=alpaca_eval", "benchmark.limit=5", "moa=self_moa"),  # other instances
    ])  # fmt: skip
    out = root / "report"
    write_report(root / "runs", out, reference="moa")
    return out


@needs_data
def test_each_configuration_is_tested_and_corrected_across_the_table(report: Path) -> None:
    rows = pd.read_csv(report / "tests_alpaca_eval.csv").set_index("run")
    tested = rows[rows["refused"].isna()]
    assert len(tested) == 2  # moa_lite (two runs as one row) and mine
    assert "moa_lite@scripted~first12, moa_lite@scripted~first12~run2" in tested.index
    assert set(tested["outcome"]) == {"preference"}
    assert all(t.startswith("paired permutation") for t in tested["test"])
    expected = multipletests(tested["p_value"].to_numpy(), method="holm")[1]
    assert np.allclose(tested["p_holm"].to_numpy(), expected)
    for verdict, p in zip(tested["verdict"], tested["p_holm"], strict=True):
        assert "Holm-adjusted over 2 comparisons" in verdict and f"{p:.3g}" in verdict
    assert (tested["diff_ci_low"] <= tested["difference"]).all()
    assert (tested["difference"] <= tested["diff_ci_high"]).all()
    (refused,) = rows[rows["refused"].notna()].index
    assert refused == "self_moa@scripted~first5"
    assert rows.loc[refused, "verdict"] == "not tested" and pd.isna(rows.loc[refused, "p_holm"])


@needs_data
def test_significant_is_never_printed_uncorrected(report: Path) -> None:
    for page in report.glob("*.md"):
        for line in page.read_text(encoding="utf-8").splitlines():
            for found in re.finditer(r"\bsignificant\b", line):
                assert "Holm" in line or "p_holm" in line, (page.name, line, found)


@needs_data
def test_the_outcome_follows_the_judge_kind(tmp_path: Path) -> None:
    scripted_runs(tmp_path, [("benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=2")])
    (run,) = load_runs(tmp_path / "runs")[0]
    assert outcome_of(run) == "score"
