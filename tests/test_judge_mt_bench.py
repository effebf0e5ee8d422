"""MT-Bench judge: prompts checked to the byte against FastChat's formatting, restated here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from eval.judges import mt_bench as mt
from eval.judges.common import Failure
from moa.types import GenerateConfig

from .fakes import FakeJudge

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mt_bench"
needs_data = pytest.mark.skipif(
    not (DATA / "judge_prompts.jsonl").exists(), reason=f"benchmark data not found at {DATA}"
)
# A made-up answer with braces and a fake placeholder: it must pass through format untouched.
ANSWER_TURNS = ("First {answer} with a dict {'a': 1}.\n", "Second answer: [[not a rating]]")


def fastchat_user_prompt(
    judge_prompt: Mapping[str, Any],
    question: Mapping[str, Any],
    answer: Mapping[str, Any],
    ref_answer: Mapping[str, Any] | None,
    multi_turn: bool,
) -> str:
    """FastChat `common.run_judge_single`'s formatting, restated literally as the oracle."""
    kwargs = {}
    if ref_answer is not None:
        kwargs["ref_answer_1"] = ref_answer["choices"][0]["turns"][0]
        kwargs["ref_answer_2"] = ref_answer["choices"][0]["turns"][1]

    if multi_turn:
        user_prompt = judge_prompt["prompt_template"].format(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=answer["choices"][0]["turns"][0],
            answer_2=answer["choices"][0]["turns"][1],
            **kwargs,
        )
    else:
        user_prompt = judge_prompt["prompt_template"].format(
            question=question["turns"][0],
            answer=answer["choices"][0]["turns"][0],
            **kwargs,
        )
    return str(user_prompt)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def bench() -> dict[str, Any]:
    questions = _jsonl(DATA / "question.jsonl")
    references = _jsonl(DATA / "reference_answer" / "gpt-4.jsonl")
    return {
        "questions": questions,
        "prompts": mt.load_judge_prompts(DATA / "judge_prompts.jsonl"),
        "references": {r["question_id"]: r for r in references},
    }


def _matches(bench: dict[str, Any]) -> list[mt.Match]:
    answers = {q["question_id"]: ANSWER_TURNS for q in bench["questions"]}
    refs = {qid: r["choices"][0]["turns"] for qid, r in bench["references"].items()}
    return mt.make_matches(bench["questions"], "my-moa", answers, bench["prompts"], refs)


@needs_data
@pytest.mark.parametrize(
    ("question_id", "turn", "template"),
    [
        (81, 1, "single-v1"),
        (81, 2, "single-v1-multi-turn"),
        (111, 1, "single-math-v1"),
        (111, 2, "single-math-v1-multi-turn"),
        (121, 2, "single-math-v1-multi-turn"),  # coding also needs the reference
    ],
)
def test_rendered_prompt_equals_fastchats_to_the_byte(
    bench: dict[str, Any], question_id: int, turn: int, template: str
) -> None:
    match = next(
        m for m in _matches(bench) if m.question["question_id"] == question_id and m.turn == turn
    )
    assert match.prompt["name"] == template
    question = next(q for q in bench["questions"] if q["question_id"] == question_id)
    answer = {"choices": [{"index": 0, "turns": list(ANSWER_TURNS)}]}
    ref = bench["references"][question_id] if "math" in template else None
    expected = fastchat_user_prompt(bench["prompts"][template], question, answer, ref, turn == 2)

    user_prompt = mt.render_user_prompt(match)
    assert user_prompt == expected
    assert mt.build_messages(match, user_prompt) == [
        {"role": "system", "content": bench["prompts"][template]["system_prompt"]},
        {"role": "user", "content": expected},
    ]


@needs_data
def test_matches_follow_gen_judgment(bench: dict[str, Any]) -> None:
    matches = _matches(bench)
    assert len(matches) == 160
    assert [m.turn for m in matches] == [1] * 80 + [2] * 80
    for m in matches:
        math_like = m.question["category"] in mt.NEED_REF_CATEGORIES
        assert (m.reference is not None) == math_like
        assert m.prompt["name"].startswith("single-math-v1" if math_like else "single-v1")


@needs_data
def test_a_math_question_without_reference_is_refused(bench: dict[str, Any]) -> None:
    answers = {q["question_id"]: ANSWER_TURNS for q in bench["questions"]}
    with pytest.raises(ValueError, match="no reference answer"):
        mt.make_matches(bench["questions"], "m", answers, bench["prompts"], {})


@pytest.mark.parametrize(
    ("judgment", "rating"),
    [
        ("Good answer. Rating: [[8]]", 8),
        ("Rating: [[8.5]]", 8.5),
        ("Rating: [7]", 7),
        ("[[3]] then [[9]]", 3),
        ("[5] first, but [[8]] wins", 8),
        ("Rating: [[10.]]", 10.0),
    ],
)
def test_rating_is_read_as_fastchat_reads_it(judgment: str, rating: float) -> None:
    parsed = mt.parse_rating(judgment)
    assert parsed == rating and type(parsed) is type(rating)


@pytest.mark.parametrize("judgment", ["no rating here", "Rating: 8/10", "[[07]]", "$ERROR$"])
def test_unreadable_rating_is_a_failure(judgment: str) -> None:
    parsed = mt.parse_rating(judgment)
    assert isinstance(parsed, Failure) and parsed.kind == "parse"


PROMPTS: dict[str, mt.Prompt] = {
    "single-v1": {
        "name": "single-v1",
        "system_prompt": "You are a helpful assistant.",
        "prompt_template": "[Question]\n{question}\n[Answer]\n{answer}",
    },
    "single-v1-multi-turn": {
        "name": "single-v1-multi-turn",
        "system_prompt": "Judge turn 2.\n\n",
        "prompt_template": "{question_1}|{answer_1}|{question_2}|{answer_2}",
    },
}


async def test_judging_records_scores_failures_and_round_trips(tmp_path: Path) -> None:
    questions = [
        {"question_id": 1, "category": "writing", "turns": ["Q1a", "Q1b"]},
        {"question_id": 2, "category": "roleplay", "turns": ["Q2a", "Q2b"]},
    ]
    answers = {1: ("A1a", "A1b"), 2: ("A2a", "A2b")}
    matches = mt.make_matches(questions, "moa", answers, PROMPTS, {})
    judge = FakeJudge(
        {
            "Q1a\n": "Rating: [[9]]",
            "Q2a\n": "Rating: [[4]]",
            "Q1a|": "I cannot decide.",
            "Q2a|": None,
        },
        error="transient 503: overloaded",
    )
    out = await mt.judge_matches(judge, matches)

    assert {(c.model, c.tags["role"]) for c in judge.calls} == {("openai/gpt-4", "judge")}
    assert {c.config for c in judge.calls} == {GenerateConfig(temperature=0.0, max_tokens=2048)}
    assert [(j.question_id, j.turn, j.score) for j in out] == [
        (1, 1, 9),
        (2, 1, 4),
        (1, 2, -1),
        (2, 2, -1),
    ]
    unparsed, failed = out[2], out[3]
    assert unparsed.failure is not None and unparsed.failure.kind == "parse"
    assert failed.judgment == "$ERROR$"
    assert failed.failure is not None and "503" in failed.failure.reason
    assert out[0].judge == ("gpt-4", "single-v1")

    path = mt.judgment_path(tmp_path)
    assert path == tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    mt.write_judgments(path, out)
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == [
        "question_id",
        "model",
        "judge",
        "user_prompt",
        "judgment",
        "score",
        "turn",
        "tstamp",
    ]
    assert first["judge"] == ["gpt-4", "single-v1"]
    back = mt.read_judgments(path)
    assert [j.score for j in back] == [9, 4, -1, -1]
    assert [j.failure.kind if j.failure else None for j in mt.rescore(back)] == [
        None,
        None,
        "parse",
        "call",
    ]


def _judgment(model: str, turn: int, score: float, text: str | None = None) -> mt.Judgment:
    text = f"Rating: [[{score}]]" if text is None else text
    return mt.Judgment(1, model, ("gpt-4", "single-v1"), "p", text, score, turn, 0.0)


def test_table_averages_as_show_result_does() -> None:
    judgments = [
        _judgment("a", 1, 10),
        _judgment("a", 1, 7),
        _judgment("a", 1, 4),
        _judgment("a", 2, 1),
        _judgment("a", 2, -1, "no rating"),
        _judgment("b", 1, -1, "$ERROR$"),
    ]
    table = mt.summarize(mt.rescore(judgments))
    a = table["a"]
    assert (a.turn_1, a.turn_2) == (7.0, 1.0)
    assert a.average == 22 / 4  # all valid scores pooled, not (7 + 1) / 2
    assert a.n_scored == 4 and a.failures == {"call": 0, "parse": 1}
    b = table["b"]
    assert (b.turn_1, b.turn_2, b.average, b.n_scored) == (None, None, None, 0)
    assert b.failures == {"call": 1, "parse": 0}


def test_rescoring_recomputes_the_table_without_calls(tmp_path: Path) -> None:
    path = tmp_path / "gpt-4_single.jsonl"
    stored = [
        _judgment("a", 1, -1, "Rating: [[6]]"),  # stored wrongly: re-reading fixes it
        _judgment("a", 2, 8, "Rating: [[8]]"),
        _judgment("a", 2, -1, "$ERROR$"),
    ]
    mt.write_judgments(path, stored)
    table = mt.summarize(mt.rescore(mt.read_judgments(path)))
    assert (table["a"].turn_1, table["a"].turn_2, table["a"].average) == (6, 8, 7)
    assert table["a"].failures == {"call": 1, "parse": 0}
