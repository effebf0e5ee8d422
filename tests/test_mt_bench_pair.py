"""MT-Bench against a baseline (FastChat `--mode pairwise-baseline`): its requests on the real
templates, its verdicts, its native file and its table, and a scripted run end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.base import DataError
from eval.benchmarks.data import Data
from eval.cli import dispatch
from eval.evaluation import evaluation_for, evaluation_reading
from eval.judges import mt_bench_pair as mp
from eval.judges.common import Failure
from eval.plan import plan_points
from eval.runs import load_runs
from eval.settings import resolve
from moa.agents import Agent
from moa.mixture import MixtureSpec
from moa.types import GenerateConfig

from .fakes import FakeJudge
from .kit.cli import SHARED_DATA, scripted_config

DATA = SHARED_DATA / "mt_bench"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark data not found at {DATA}")
# Braces and a fake placeholder in an answer must pass through `format` untouched.
OURS = ("Ours first {answer_a} {'k': 1}", "Ours second [[A]] is not ours to parse")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_baseline(path: Path) -> Path:
    """A baseline answer file in FastChat's model_answer layout, built from the real questions."""
    rows = [
        {
            "question_id": q["question_id"],
            "answer_id": f"b{q['question_id']}",
            "model_id": path.stem,
            "choices": [
                {
                    "index": 0,
                    "turns": [f"Baseline {n}: {t[:30]}" for n, t in enumerate(q["turns"], 1)],
                }
            ],
            "tstamp": 0.0,
        }
        for q in _jsonl(DATA / "question.jsonl")
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    baseline = write_baseline(tmp_path_factory.mktemp("baseline") / "gpt-3.5-turbo.jsonl")
    return {
        "questions": _jsonl(DATA / "question.jsonl"),
        "references": {
            r["question_id"]: r for r in _jsonl(DATA / "reference_answer" / "gpt-4.jsonl")
        },
        "prompts": {p["name"]: p for p in _jsonl(DATA / "judge_prompts.jsonl")},
        "baseline": {r["question_id"]: r for r in _jsonl(baseline)},
        "baseline_file": baseline,
    }


def expected_request(bench: dict[str, Any], qid: int, turn: int, game: int) -> list[dict[str, str]]:
    """What FastChat's pair judging sends for one game, built from the template by hand: the
    judge's system prompt, then the template filled with the answers in the game's seats."""
    question = next(q for q in bench["questions"] if q["question_id"] == qid)
    math_like = question["category"] in ("math", "reasoning", "coding")
    name = ("pair-math-v1" if math_like else "pair-v2") + ("-multi-turn" if turn == 2 else "")
    prompt = bench["prompts"][name]
    theirs = bench["baseline"][qid]["choices"][0]["turns"]
    a, b = (OURS, theirs) if game == 1 else (theirs, OURS)
    refs = {}
    if math_like:  # the reference's second turn only at turn 2, as FastChat at 0e6d3e4
        ref = bench["references"][qid]["choices"][0]["turns"]
        refs = {"ref_answer_1": ref[0], **({"ref_answer_2": ref[1]} if turn == 2 else {})}
    q = question["turns"]
    if turn == 1:
        user = prompt["prompt_template"].format(question=q[0], answer_a=a[0], answer_b=b[0], **refs)
    else:
        user = prompt["prompt_template"].format(
            question_1=q[0], question_2=q[1], answer_a_1=a[0], answer_b_1=b[0],
            answer_a_2=a[1], answer_b_2=b[1], **refs,
        )  # fmt: skip
    return [
        {"role": "system", "content": prompt["system_prompt"]},
        {"role": "user", "content": user},
    ]


@needs_data
async def test_requests_are_fastchats_two_games_per_turn(bench: dict[str, Any]) -> None:
    data = Data(str(SHARED_DATA))
    task = evaluation_for(
        {"name": "mt_bench_pair", "baseline_file": str(bench["baseline_file"])}, data
    )
    instances = task.load()
    assert len(instances) == 80 and instances[0].meta["baseline_model"] == "gpt-3.5-turbo"
    judge = FakeJudge({"": "Assistant A is better. [[A]]"})
    await task.plan_judge(judge, "openai/gpt-4", _mixture(), instances, [OURS] * 80)
    assert len(judge.calls) == 80 * 2 * 2
    assert {c.config for c in judge.calls} == {GenerateConfig(temperature=0.0, max_tokens=2048)}
    assert {(c.model, c.tags["role"]) for c in judge.calls} == {("openai/gpt-4", "judge")}
    sent = [c.messages for c in judge.calls]
    order = [
        (q["question_id"], turn, game)
        for turn in (1, 2)
        for math_like in (False, True)
        for q in bench["questions"]
        if (q["category"] in ("math", "reasoning", "coding")) == math_like
        for game in (1, 2)
    ]
    assert sent == [expected_request(bench, *key) for key in order]


def _mixture() -> MixtureSpec:
    return MixtureSpec.paper("single", (), Agent("scripted/m"))


@pytest.mark.parametrize(
    ("judgment", "choice"),
    [
        ("Final verdict: [[A]]", "A"),
        ("[[B]]", "B"),
        ("It is a tie: [[C]]", "tie"),
        ("[[B]] at first, but finally [[A]]", "A"),  # FastChat looks for [[A]] first
        ("[[C]] then [[B]]", "B"),
    ],
)
def test_the_verdict_is_read_as_fastchat_reads_it(judgment: str, choice: str) -> None:
    assert mp.parse_choice(judgment) == choice


@pytest.mark.parametrize("judgment", ["[A]", "Assistant A is better.", "[[a]]", "$ERROR$"])
def test_no_verdict_is_a_parse_failure(judgment: str) -> None:
    failure = mp.parse_choice(judgment)
    assert isinstance(failure, Failure) and failure.kind == "parse"
    assert mp.game_winner(failure, 1) == "error"


def test_each_games_choice_is_mapped_to_its_seat() -> None:
    assert [mp.game_winner(c, 1) for c in ("A", "B", "tie")] == ["model_1", "model_2", "tie"]
    assert [mp.game_winner(c, 2) for c in ("A", "B", "tie")] == ["model_2", "model_1", "tie"]


def _row(qid: int, g1: str, g2: str, model: str = "moa", turn: int = 1) -> mp.PairJudgment:
    text = {"model_1": "[[A]]", "model_2": "[[B]]", "tie": "[[C]]", "error": "no verdict"}
    text2 = {"model_1": "[[B]]", "model_2": "[[A]]", "tie": "[[C]]", "error": "$ERROR$"}
    return mp.PairJudgment(
        qid, model, "gpt-3.5-turbo", g1, g2, ("gpt-4", "pair-v2"),
        "p1", text[g1], "p2", text2[g2], turn, 0.0,
    )  # fmt: skip


def test_games_are_combined_and_counted_as_show_result_does() -> None:
    rows = [
        _row(81, "model_1", "model_1"),  # both games: ours -> win
        _row(82, "model_1", "model_1", turn=2),  # win
        _row(83, "model_2", "model_2"),  # loss
        _row(84, "model_1", "model_2"),  # the games disagree -> tie
        _row(85, "tie", "tie"),  # tie
        _row(86, "tie", "model_1"),  # first game tied -> tie
        _row(87, "model_2", "tie"),  # disagree -> tie
        _row(88, "error", "model_1"),  # dropped
        _row(89, "model_1", "error"),  # dropped
        _row(81, "model_2", "model_2", model="other"),  # another model's: not ours
        dataclasses.replace(_row(90, "model_1", "model_1"), model_2="third"),  # no baseline in it
    ]
    table = mp.summarize(mp.rescore(rows), "gpt-3.5-turbo")
    assert set(table) == {"moa", "other"}  # the baseline's own row is removed
    moa = table["moa"]
    # by hand: 7 rows kept, 2 wins, 1 loss, 4 ties
    assert (moa.win, moa.loss, moa.tie) == (2, 1, 4)
    assert moa.win_rate == pytest.approx(2 / 7)
    assert moa.loss_rate == pytest.approx(1 / 7)
    assert moa.win_rate_adjusted == pytest.approx((2 + 0.5 * 4) / 7)
    assert moa.failures == {"call": 1, "parse": 1}
    assert (table["other"].win, table["other"].loss, table["other"].win_rate_adjusted) == (0, 1, 0)


async def test_judging_records_failures_and_writes_fastchats_file(tmp_path: Path) -> None:
    prompts = {
        "pair-v2": {
            "name": "pair-v2",
            "system_prompt": "Compare.",
            "prompt_template": "[Q]{question}[A]{answer_a}[B]{answer_b}",
        },
        "pair-v2-multi-turn": {
            "name": "pair-v2-multi-turn",
            "system_prompt": "Compare turn 2.",
            "prompt_template": (
                "{question_1}|{answer_a_1}|{answer_b_1}|{question_2}|{answer_a_2}|{answer_b_2}"
            ),
        },
    }
    questions = [{"question_id": 1, "category": "writing", "turns": ["Q1a", "Q1b"]}]
    matches = mp.make_pair_matches(
        questions, "moa", {1: ("O1", "O2")}, "base", {1: ("B1", "B2")}, prompts, {}
    )
    judge = FakeJudge(
        {
            "[A]O1[B]B1": "[[A]]",  # game 1: ours in seat A wins
            "[A]B1[B]O1": "[[B]]",  # game 2: ours in seat B wins
            "Q1a|O1|B1": "[[C]]",
            "Q1a|B1|O1": None,  # the call fails
        },
        error="transient 503: overloaded",
    )
    out = await mp.judge_pair_matches(judge, matches)
    assert [c.messages[0]["content"] for c in judge.calls] == ["Compare."] * 2 + [
        "Compare turn 2."
    ] * 2
    first, second = out
    assert (first.g1_winner, first.g2_winner, first.outcome("moa")) == ("model_1", "model_1", "win")
    assert (second.g1_winner, second.g2_winner, second.outcome("moa")) == ("tie", "error", None)
    assert second.g2_judgment == "$ERROR$" and second.g2_failure is not None
    assert "503" in second.g2_failure.reason and second.g2_failure.kind == "call"
    assert first.judge == ("gpt-4", "pair-v2") and second.judge == ("gpt-4", "pair-v2-multi-turn")

    path = mp.judgment_path(tmp_path)
    assert path == tmp_path / "model_judgment" / "gpt-4_pair.jsonl"
    mp.write_judgments(path, out)
    line = json.loads(path.read_text().splitlines()[0])
    assert list(line) == [
        "question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge",
        "g1_user_prompt", "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp",
    ]  # fmt: skip
    assert line["judge"] == ["gpt-4", "pair-v2"] and line["model_2"] == "base"
    back = mp.read_judgments(path)
    assert [(j.g1_winner, j.g2_winner) for j in back] == [("model_1", "model_1"), ("tie", "error")]
    assert back[1].g2_failure is not None and back[1].g2_failure.kind == "call"


@needs_data
@pytest.mark.parametrize("named", [None, "nowhere/gpt-3.5-turbo.jsonl"])
def test_a_missing_baseline_is_refused_in_one_line(named: str | None) -> None:
    task = evaluation_for({"name": "mt_bench_pair", "baseline_file": named}, Data(str(SHARED_DATA)))
    with pytest.raises(DataError, match=r"benchmark\.baseline_file=") as info:
        task.load()
    assert "\n" not in str(info.value)


@needs_data
def test_a_scripted_run_is_judged_reported_rescored_and_planned(
    tmp_path: Path, bench: dict[str, Any]
) -> None:
    base = (
        "benchmark=mt_bench_pair",
        f"benchmark.baseline_file={bench['baseline_file']}",
        "moa=single",
        "benchmark.limit=6",
    )
    assert asyncio.run(dispatch(scripted_config(tmp_path, *base))) == 0
    (run_dir,) = (tmp_path / "runs" / "mt_bench_pair").iterdir()
    rows = _jsonl(run_dir / "model_judgment" / "gpt-4_pair.jsonl")
    assert len(rows) == 6 * 2  # a row per question and turn, two games in each
    assert {(r["model_1"], r["model_2"]) for r in rows} == {(run_dir.name, "gpt-3.5-turbo")}
    assert {r["judge"][1] for r in rows} <= {
        "pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn",
    }  # fmt: skip
    # The baseline's answers are kept beside ours, in FastChat's layout.
    kept = _jsonl(run_dir / "model_answer" / "gpt-3.5-turbo.jsonl")
    assert [r["choices"][0]["turns"] for r in kept] == [
        bench["baseline"][r["question_id"]]["choices"][0]["turns"] for r in kept
    ]

    # Metrics, rescoring the native file and the table all count as show_result does.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    judged = mp.read_judgments(run_dir / "model_judgment" / "gpt-4_pair.jsonl")
    outcomes = [j.outcome(run_dir.name) for j in judged]
    win, loss, tie = (outcomes.count(k) for k in ("win", "loss", "tie"))
    assert {k: metrics["extras"][k] for k in ("win", "loss", "tie")} == {
        "win": win, "loss": loss, "tie": tie,
    }  # fmt: skip
    assert metrics["headline"] == pytest.approx((win + tie / 2) / (win + loss + tie))
    task = evaluation_reading(run_dir / "model_judgment" / "gpt-4_pair.jsonl")
    assert task.name == "mt_bench_pair"
    rescored = task.rescore(run_dir / "model_judgment" / "gpt-4_pair.jsonl")
    assert rescored["baseline"] == "gpt-3.5-turbo"
    assert rescored["models"][run_dir.name]["win_rate_adjusted"] == metrics["headline"]

    # The browser's verdicts: each game with its verdict, and the baseline's answer.
    (run,) = load_runs(tmp_path / "runs")[0]
    verdicts = run.verdicts()
    assert len(verdicts) == 6
    first = verdicts["81"]
    assert [r.title for r in first.readings] == [
        "turn 1, game 1", "turn 1, game 2", "turn 1, both games",
        "turn 2, game 1", "turn 2, game 2", "turn 2, both games",
    ]  # fmt: skip
    assert first.readings[0].facts["assistant A"] == "ours"
    assert first.readings[1].facts["assistant A"] == "gpt-3.5-turbo"
    assert first.reference is not None and first.reference[0] == "gpt-3.5-turbo"
    assert bench["baseline"][81]["choices"][0]["turns"][1] in first.reference[1]
    site = tmp_path / "site"
    assert (
        asyncio.run(dispatch(scripted_config(tmp_path, "task=view", f"view.out_dir={site}"))) == 0
    )
    shown = "".join(p.read_text() for p in site.glob("data/mt_bench_pair*/*.js"))
    assert "turn 2, game 2" in shown
    assert json.dumps(bench["baseline"][81]["choices"][0]["turns"][0])[1:-1] in shown

    # The report's table, with the judge named.
    out = tmp_path / "report"
    assert (
        asyncio.run(dispatch(scripted_config(tmp_path, "task=report", f"report.out_dir={out}")))
        == 0
    )
    text = (out / "mt_bench_pair.md").read_text()
    assert "MT-Bench against a baseline" in text and "gpt-4" in text
    assert "win_rate_adjusted" in text


@needs_data
async def test_the_plan_counts_two_games_per_turn(tmp_path: Path, bench: dict[str, Any]) -> None:
    overrides = ("moa=single", "benchmark.limit=4")
    baseline = f"benchmark.baseline_file={bench['baseline_file']}"
    cfg = resolve(scripted_config(tmp_path, "benchmark=mt_bench_pair", baseline, *overrides))
    ((_, result),) = await plan_points(cfg, [cfg])
    (v,) = result.variants
    assert v.calls == 4 * 2  # the model alone, at each turn
    assert v.judge_calls == v.judge_new_calls == 4 * 2 * 2
    # Its answers are MT-Bench's: once made for one, the other's generation is in the cache.
    assert await dispatch(scripted_config(tmp_path, "benchmark=mt_bench", *overrides)) == 0
    ((_, after),) = await plan_points(cfg, [cfg])
    assert after.variants[0].new_calls == 0 and after.variants[0].judge_new_calls == 4 * 2 * 2


def test_rescore_reads_a_file_as_fastchat_writes_it(tmp_path: Path) -> None:
    def line(qid: int, model: str, g1: str, g2: str, turn: int = 1) -> str:
        row = {
            "question_id": qid, "model_1": model, "model_2": "gpt-3.5-turbo",
            "g1_winner": {"[[A]]": "model_1", "[[B]]": "model_2"}.get(g1, "error"),
            "g2_winner": {"[[A]]": "model_2", "[[B]]": "model_1"}.get(g2, "error"),
            "judge": ("gpt-4", "pair-v2"), "g1_user_prompt": "p", "g1_judgment": g1,
            "g2_user_prompt": "p", "g2_judgment": g2, "turn": turn, "tstamp": 1.5,
        }  # fmt: skip
        return json.dumps(row) + "\n"

    path = tmp_path / "gpt-4_pair.jsonl"
    path.write_text(
        line(81, "vicuna", "[[A]]", "[[B]]")  # vicuna wins both games
        + line(81, "vicuna", "[[B]]", "[[B]]", turn=2)  # the games disagree: a tie
        + line(82, "vicuna", "I cannot tell.", "[[B]]")  # an error: dropped
        + line(81, "llama", "[[B]]", "[[A]]")  # the baseline wins both
    )
    scores = evaluation_reading(path).rescore(path)
    assert scores["baseline"] == "gpt-3.5-turbo" and set(scores["models"]) == {"vicuna", "llama"}
    vicuna, llama = scores["models"]["vicuna"], scores["models"]["llama"]
    assert (vicuna["win"], vicuna["loss"], vicuna["tie"]) == (1, 0, 1)
    assert (vicuna["win_rate"], vicuna["loss_rate"], vicuna["win_rate_adjusted"]) == (0.5, 0, 0.75)
    assert vicuna["failures"] == {"call": 0, "parse": 1}
    assert (llama["win"], llama["loss"], llama["win_rate_adjusted"]) == (0, 1, 0.0)
