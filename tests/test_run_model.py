"""The runs' read-model (`eval.runs`) and the layering above it: the report and the browser read
runs through it and decide what a benchmark's runs get; the benchmarks know nothing of them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from eval.evaluation import known
from eval.report import benchmarks, run_figures
from eval.rundir import RunDir
from eval.runs import load_runs
from tests.kit.cli import SHARED_DATA, scripted_runs

EVAL = Path(__file__).resolve().parents[1] / "eval"


def imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_the_benchmarks_and_judges_import_neither_the_report_nor_its_plots() -> None:
    paths = [*EVAL.glob("benchmarks/*.py"), *EVAL.glob("judges/*.py"), EVAL / "evaluation.py"]
    for path in sorted(paths):
        above = {m for m in imports(path) if m.startswith(("eval.report", "matplotlib"))}
        assert above == set(), f"{path.name} imports {sorted(above)}"


def test_the_report_names_only_benchmarks_that_exist() -> None:
    assert set(benchmarks.BY_BENCHMARK) <= set(known())
    assert set(run_figures.BY_BENCHMARK) <= set(known())
    # a benchmark the report has no tables for gets none, without an error
    assert benchmarks.sections("demo", [], None) == []  # type: ignore[arg-type]
    assert run_figures.figures("demo", "demo", {}, {}) == []


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_run_read_through_the_model_has_its_coverage_scores_and_verdicts(
    tmp_path: Path,
) -> None:
    results = scripted_runs(tmp_path, [("benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=2")])
    runs, skipped = load_runs(results)
    assert skipped == []
    (run,) = runs
    assert (run.benchmark, run.variant, run.subset) == ("mt_bench", "moa_lite", "first2")
    assert run.complete and run.judge.startswith("scripted/") and run.provider == "scripted"
    assert run.n == 4  # two questions, two turns each
    finished = RunDir(run.path).finished()
    verdicts = run.verdicts()
    assert set(verdicts) == set(finished)
    for question, verdict in verdicts.items():
        turns = [score for key, score in run.scores.items() if key.split("/")[0] == question]
        assert len(turns) == 2 and verdict.score == pytest.approx(sum(turns) / 2)  # their mean
