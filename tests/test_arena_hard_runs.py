"""Arena-Hard-Auto end to end on the scripted fake, offline: generate, judge, native files that
arena-hard-auto's own code reads, `task=rescore` of a file its code wrote, the published v0.1
answers replayed and judged, the report and the browser."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eval.benchmarks.data import Data
from eval.cli import dispatch
from eval.evaluation import evaluation_reading
from eval.rundir import RunDir
from eval.runs import load_run
from tests.kit.cli import scripted_config as config

from .conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

ARENA = SHARED_DATA / "arena_hard"
V01_ANSWERS = ARENA / "data/arena-hard-v0.1/model_answer"
REFERENCE_V20 = ARENA / "reference/v2.0"
PUBLISHED = ("gpt-4-0613", "gpt-3.5-turbo-0125")
LIMIT = 60

RUNS = (
    ("benchmark=arena_hard_v0.1", "moa=moa_lite", f"benchmark.limit={LIMIT}"),
    ("benchmark=arena_hard_v2.0", "moa=moa_lite", "benchmark.categories=[hard_prompt]",
     f"benchmark.limit={LIMIT}"),
    *(
        ("benchmark=arena_hard_v0.1", "moa=single", f"moa.aggregator=replay/{model}",
         f"endpoints.replay.outputs_dir={V01_ANSWERS}", f"benchmark.limit={LIMIT}")
        for model in PUBLISHED
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("arena")
    for overrides in RUNS:
        assert asyncio.run(dispatch(config(root, *overrides))) == 0
    return root


def run_dir(runs: Path, bench: str, name: str) -> Path:
    subset = "~hard_prompt" if bench == "arena_hard_v2.0" else ""
    return runs / "runs" / bench / f"{name}@scripted{subset}~first{LIMIT}"


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open()]


def test_native_files_are_in_arena_hard_autos_layout(runs: Path) -> None:
    run = run_dir(runs, "arena_hard_v0.1", "moa_lite")
    answers = _rows(run / "model_answer" / f"{run.name}.jsonl")
    assert len(answers) == LIMIT and {a["model"] for a in answers} == {run.name}
    assert all(a["messages"][-1]["content"]["answer"] for a in answers)
    assert set(answers[0]["metadata"]) >= {"header_count", "list_count", "bold_count"}
    (judgments,) = (run / "model_judgment").glob("*/*.jsonl")
    assert judgments.parent.name == "gpt-4-1106-preview" and judgments.stem == run.name
    rows = _rows(judgments)
    assert [r["uid"] for r in rows] == [a["uid"] for a in answers]
    assert all(len(r["games"]) == 2 and r["baseline"] == "gpt-4-0314" for r in rows)


@contextlib.contextmanager
def _v20_show_result(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """reference/v2.0/show_result.py imported with torch stood in for (not installed; the
    functions called here do not use it) and its real `utils.judge_utils`."""
    math_utils = types.ModuleType("utils.math_utils")
    for name in ("one_hot_encode", "to_winrate_probabilities", "bootstrap_pairwise_model"):
        setattr(math_utils, name, None)
    package = types.ModuleType("utils")
    package.__path__ = [str(REFERENCE_V20 / "utils")]  # type: ignore[attr-defined]
    for name in ("utils", "utils.judge_utils", "show_result"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "utils", package)
    monkeypatch.setitem(sys.modules, "utils.math_utils", math_utils)
    monkeypatch.syspath_prepend(str(REFERENCE_V20))
    yield __import__("show_result")


def test_v20_reference_show_result_reads_our_files_and_agrees(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = run_dir(runs, "arena_hard_v2.0", "moa_lite")
    bench = tmp_path / "data/arena-hard-v2.0"
    shutil.copytree(run / "model_judgment", bench / "model_judgment")
    shutil.copytree(run / "model_answer", bench / "model_answer")
    (judge,) = (p.name for p in (bench / "model_judgment").iterdir())
    monkeypatch.chdir(tmp_path)
    with _v20_show_result(monkeypatch) as reference:
        battles = reference.load_judgments([judge], "arena-hard-v2.0")
        style = reference.get_model_style_metadata("arena-hard-v2.0")
        np.random.seed(42)  # ours is seeded so; the reference leaves numpy's global generator
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            reference.print_leaderboard(battles, "hard_prompt")
    assert len(style[run.name]) == LIMIT
    line = next(x for x in printed.getvalue().splitlines() if run.name in x)
    metrics = RunDir(run).metrics()
    assert metrics is not None
    assert float(line.split()[2]) == round(metrics.extras["score"], 1)


class _Words:
    """A tokenizer standing in for tiktoken's gpt-4o encoding, which is downloaded once."""

    def encode(self, text: str, disallowed_special: Any = ()) -> list[str]:
        return text.split()


def test_v20_style_control_where_token_lengths_are_known(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eval.benchmarks import arena_hard
    from eval.evaluation import evaluation_for
    from eval.judges.games import Games, read_judgments

    run = run_dir(runs, "arena_hard_v2.0", "moa_lite")
    metrics = RunDir(run).metrics()
    assert metrics is not None
    extras = metrics.extras
    assert "style_controlled" in extras or "ours" in extras["style_controlled_unavailable"]
    monkeypatch.setattr(arena_hard, "_encoder", _Words)
    section = {"name": "arena_hard_v2.0", "categories": ["hard_prompt"]}
    kind = evaluation_for(section, Data(str(SHARED_DATA))).judging
    assert isinstance(kind, Games) and kind.controls == ("length", "markdown")
    instances = {i.id: i for i in kind.benchmark.load()}
    (path,) = (run / "model_judgment").glob("*/*.jsonl")
    answers = _rows(run / "model_answer" / f"{run.name}.jsonl")
    pairs = [(instances[r["uid"]], r["messages"][-1]["content"]["answer"]) for r in answers]
    got = kind._style_controlled(read_judgments(path), pairs)["style_controlled"]["hard_prompt"]
    assert got["lower"] <= got["score"] <= got["upper"] and got["n"] == extras["n"]


def test_rescore_reads_a_file_the_reference_judge_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_arena_hard import REFERENCE  # noqa: F401 (the same files)

    completion = types.ModuleType("utils.completion")
    for name in ("load_questions", "load_model_answers", "make_config"):
        setattr(completion, name, None)
    completion.get_endpoint = lambda endpoints: None  # type: ignore[attr-defined]
    verdicts = iter(["[[A>>B]]", "[[B>A]]", "no label", "[[A=B]]"] * 10)
    completion.registered_api_completion = {  # type: ignore[attr-defined]
        "fake": lambda **kwargs: {"answer": next(verdicts)}
    }
    package = types.ModuleType("utils")
    package.__path__ = [str(REFERENCE_V20 / "utils")]  # type: ignore[attr-defined]
    for name in ("utils", "utils.judge_utils", "gen_judgment"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "utils", package)
    monkeypatch.setitem(sys.modules, "utils.completion", completion)
    monkeypatch.syspath_prepend(str(REFERENCE_V20))
    reference = __import__("gen_judgment")
    import yaml

    configs = yaml.safe_load((ARENA / "config/arena-hard-v2.0.yaml").read_text())
    path = tmp_path / "model_judgment/gpt-4.1/ours.jsonl"
    path.parent.mkdir(parents=True)
    questions = _rows(ARENA / "data/arena-hard-v2.0/question.jsonl")[:8]
    for q in questions:
        answer = {"model": "ours", "messages": [{"content": {"answer": "ours"}}]}
        base = {"model": "o3-mini-2025-01-31", "messages": [{"content": {"answer": "theirs"}}]}
        reference.judgment({"question": q, "answer": answer, "baseline": base, "reference": None,
                            "configs": configs, "settings": {"endpoints": None, "api_type": "fake"},
                            "output_file": str(path)})  # fmt: skip
    evaluation = evaluation_reading(path, Data(str(SHARED_DATA)))
    assert evaluation.name == "arena_hard_v2.0"
    metrics = evaluation.rescore(path)
    assert metrics["games"] == 16 and metrics["unparseable"] == 4 and metrics["complete"]
    assert {"score", "lower", "upper"} <= set(metrics)
    root = tmp_path / "cli"
    assert asyncio.run(dispatch(config(root, "task=rescore", f"rescore.path={path}"))) == 0


def test_v01_rescore_reads_the_question_id_layout(tmp_path: Path) -> None:
    """The v0.1 reference (3071ef9) writes `question_id` and a user prompt per game."""
    path = tmp_path / "gpt-4-0613.jsonl"
    rows = [
        {"question_id": f"q{n}", "model": "gpt-4-0613", "judge": "gpt-4-1106-preview",
         "games": [{"user_prompt": "p", "judgment": f"\n[[{a}]]", "score": a},
                   {"user_prompt": "p", "judgment": f"\n[[{b}]]", "score": b}]}
        for n, (a, b) in enumerate([("A>B", "B>A"), ("A=B", "A>>B"), ("B>>A", "A=B")])
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    evaluation = evaluation_reading(path, Data(str(SHARED_DATA)))
    assert evaluation.name == "arena_hard_v0.1"
    metrics = evaluation.rescore(path)
    # battles: game 1 A>B baseline; B>A baseline; A=B tie; A>>B ours x3; B>>A ours x3; A=B tie
    assert metrics["n"] == 10 and metrics["score"] == pytest.approx(70.0, abs=1e-3)


@pytest.mark.parametrize("model", PUBLISHED)
def test_published_answers_replayed_and_judged(runs: Path, model: str) -> None:
    run = run_dir(runs, "arena_hard_v0.1", f"single_replay+{model}")
    published = {
        r["uid"]: r["messages"][-1]["content"]["answer"]
        for r in _rows(V01_ANSWERS / f"{model}.jsonl")
    }
    ours = _rows(run / "model_answer" / f"{run.name}.jsonl")
    assert all(r["messages"][-1]["content"]["answer"] == published[r["uid"]] for r in ours)
    metrics = RunDir(run).metrics()
    assert metrics is not None and metrics.coverage is not None
    assert metrics.extras["games"] == 2 * LIMIT and 0 < metrics.extras["score"] < 100


def test_report_table_names_score_interval_judge_and_n(runs: Path) -> None:
    out = runs / "report"
    assert asyncio.run(dispatch(config(runs, "task=report", f"report.out_dir={out}"))) == 0
    table = pd.read_csv(out / "scores_arena_hard_v0.1.csv")
    variants = ("moa_lite", *(f"single_replay+{p}" for p in PUBLISHED))
    assert set(table["run"]) == {run_dir(runs, "arena_hard_v0.1", m).name for m in variants}
    assert set(table["judge"]) == {"scripted/gpt-4-1106-preview"} and set(table["n"]) == {LIMIT}
    assert (table["ci_low"] <= table["score"]).all()
    assert (table["score"] <= table["ci_high"]).all()
    assert (out / "scores_arena_hard_v2.0.csv").is_file()
    index = "".join(p.read_text() for p in out.glob("*.md"))
    for version in ("v0.1", "v2.0"):
        (figure,) = out.glob(f"*figure_arena_hard_{version}.png")
        assert figure.stat().st_size > 0 and f"]({figure.name})" in index


def test_browser_shows_both_games_and_the_baselines_answer(runs: Path) -> None:
    site = runs / "site"
    assert asyncio.run(dispatch(config(runs, "task=view", f"view.out_dir={site}"))) == 0
    run = run_dir(runs, "arena_hard_v0.1", "moa_lite")
    verdict = load_run(RunDir(run), data=Data(str(SHARED_DATA))).verdicts()[_first_uid(run)]
    assert [r.title for r in verdict.readings] == ["game 1", "game 2"]
    assert verdict.readings[0].facts["shown as A"] == "the baseline (gpt-4-0314)"
    baseline = {
        r["uid"]: r["messages"][-1]["content"]["answer"]
        for r in _rows(V01_ANSWERS / "gpt-4-0314.jsonl")
    }
    assert verdict.reference == ("gpt-4-0314", baseline[_first_uid(run)])
    shown = "".join(p.read_text() for p in site.glob("data/arena_hard_v0.1_moa_lite*/*.js"))
    assert "shown as A" in shown and "gpt-4-0314" in shown


def _first_uid(run: Path) -> str:
    return str(_rows(run / "model_answer" / f"{run.name}.jsonl")[0]["uid"])


def test_plan_counts_two_games_per_prompt(tmp_path: Path) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = asyncio.run(dispatch(config(tmp_path, "task=plan", "benchmark=arena_hard_v0.1",
                                           "moa=moa_lite", "benchmark.limit=7")))  # fmt: skip
    assert (
        code == 0 and "judging (scripted/gpt-4-1106-preview): 14 of 14 calls" in printed.getvalue()
    )
