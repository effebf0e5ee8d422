"""MT-Bench single-answer grading, faithful to FastChat's `fastchat/llm_judge`.

fschat itself is not a dependency (it pins openai<1 and imports torch), so the few steps of
`gen_judgment.py`, `common.run_judge_single` and `show_result.py` that define the benchmark are
restated here: which template judges what, how it is filled, how the rating is read, how the
table is averaged. Templates come from FastChat's `judge_prompts.jsonl`, read at run time.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.benchmarks._read import read_jsonl
from eval.benchmarks.mt_bench import NEED_REF_CATEGORIES
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    call_failure,
    count_failures,
    jsonl_records,
    judge_model_name,
    parse_records,
    settle_all,
)
from eval.rundir import write_jsonl
from moa.types import ChatMessage, GenerateConfig, Generator

DEFAULT_JUDGE = "openai/gpt-4"
JUDGE_CONFIG = GenerateConfig(temperature=0.0, max_tokens=2048)
API_ERROR_OUTPUT = "$ERROR$"  # what FastChat records as the judgment when the call fails
NO_RATING = -1
ONE_SCORE_PATTERN = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_PATTERN_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

Prompt = Mapping[str, str]


def load_judge_prompts(path: Path) -> dict[str, Prompt]:
    """`judge_prompts.jsonl` keyed by name, like FastChat's `load_judge_prompts`."""
    return {entry["name"]: entry for entry in read_jsonl(path)}


def prompt_name(category: str, turn: int) -> str:
    """`make_judge_single`: math-like categories get the reference-based template."""
    name = "single-math-v1" if category in NEED_REF_CATEGORIES else "single-v1"
    return name if turn == 1 else f"{name}-multi-turn"


@dataclass(frozen=True)
class Match:
    """One model's answer to one question, for one turn (FastChat's `MatchSingle`)."""

    question: Mapping[str, Any]
    model: str
    answer: Sequence[str]
    prompt: Prompt
    reference: Sequence[str] | None
    turn: int


def make_matches(
    questions: Sequence[Mapping[str, Any]],
    model: str,
    answers: Mapping[int, Sequence[str]],
    prompts: Mapping[str, Prompt],
    references: Mapping[int, Sequence[str]],
) -> list[Match]:
    """The matches `gen_judgment.py --mode single` plays, in its order.

    `answers` and `references` map question_id to the turns of the answer; references (the
    judge's own, `reference_answer/gpt-4.jsonl`) are used for NEED_REF_CATEGORIES only.
    """
    matches = []
    for turn in (1, 2):
        for math_like in (False, True):
            for q in questions:
                if (q["category"] in NEED_REF_CATEGORIES) != math_like:
                    continue
                if turn == 2 and len(q["turns"]) != 2:
                    continue
                qid = q["question_id"]
                if qid not in answers:
                    raise ValueError(f"model {model!r} has no answer to question {qid}")
                if math_like and qid not in references:
                    raise ValueError(f"no reference answer for question {qid}")
                matches.append(
                    Match(
                        question=q,
                        model=model,
                        answer=answers[qid],
                        prompt=prompts[prompt_name(q["category"], turn)],
                        reference=references[qid] if math_like else None,
                        turn=turn,
                    )
                )
    return matches


def render_user_prompt(match: Match) -> str:
    """`run_judge_single`'s `template.format(...)`, with the same keyword arguments."""
    kwargs = {}
    if match.reference is not None:
        kwargs["ref_answer_1"] = match.reference[0]
        kwargs["ref_answer_2"] = match.reference[1]
    template = match.prompt["prompt_template"]
    turns = match.question["turns"]
    if match.turn == 2:
        return template.format(
            question_1=turns[0],
            question_2=turns[1],
            answer_1=match.answer[0],
            answer_2=match.answer[1],
            **kwargs,
        )
    return template.format(question=turns[0], answer=match.answer[0], **kwargs)


def build_messages(match: Match, user_prompt: str) -> list[ChatMessage]:
    """FastChat's chatgpt conversation with the judge's system prompt set, as OpenAI messages."""
    messages = []
    system = match.prompt["system_prompt"]
    if system:  # `to_openai_api_messages` leaves out an empty system message
        messages.append(ChatMessage(role="system", content=system))
    messages.append(ChatMessage(role="user", content=user_prompt))
    return messages


def parse_rating(judgment: str) -> int | float | Failure:
    """`[[x]]`, else the backup `[x]`, read with `ast.literal_eval` as FastChat does."""
    match = ONE_SCORE_PATTERN.search(judgment) or ONE_SCORE_PATTERN_BACKUP.search(judgment)
    if match is None:
        return Failure(FailureKind.PARSE, "no [[rating]] in the judgment")
    try:  # FastChat would crash here (e.g. on "[[07]]"); we record it instead
        rating: int | float = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError) as exc:
        return Failure(FailureKind.PARSE, f"rating {match.group(1)!r} unreadable: {exc}")
    return rating


@dataclass(frozen=True)
class Judgment:
    """One line of FastChat's `model_judgment/<judge>_single.jsonl`; score -1 has a `failure`."""

    question_id: int
    model: str
    judge: tuple[str, str]
    user_prompt: str
    judgment: str
    score: int | float
    turn: int
    tstamp: float
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "question_id": self.question_id,
            "model": self.model,
            "judge": list(self.judge),
            "user_prompt": self.user_prompt,
            "judgment": self.judgment,
            "score": self.score,
            "turn": self.turn,
            "tstamp": self.tstamp,
        }


def _scored(judgment: Judgment, verdict: int | float | Failure) -> Judgment:
    if isinstance(verdict, Failure):
        return replace(judgment, score=NO_RATING, failure=verdict)
    return replace(judgment, score=verdict, failure=None)


_CALL_FAILED = Failure(FailureKind.CALL, f"judge call failed (judgment {API_ERROR_OUTPUT})")


def _call_failed(judgment: Judgment) -> bool:
    return judgment.judgment == API_ERROR_OUTPUT


async def judge_matches(
    generator: Generator, matches: Sequence[Match], *, judge: str = DEFAULT_JUDGE
) -> list[Judgment]:
    """Play every match concurrently; a failed call is recorded as FastChat's `$ERROR$`."""

    async def one(match: Match) -> Judgment:
        user_prompt = render_user_prompt(match)
        messages = build_messages(match, user_prompt)
        outcome = await generator.generate(judge, messages, JUDGE_CONFIG, tags=JUDGE_TAGS)
        text = API_ERROR_OUTPUT if outcome.completion is None else outcome.completion.text
        judgment = Judgment(
            question_id=match.question["question_id"],
            model=match.model,
            judge=(judge_model_name(judge), match.prompt["name"]),
            user_prompt=user_prompt,
            judgment=text,
            score=NO_RATING,
            turn=match.turn,
            tstamp=time.time(),
        )
        if outcome.completion is None:
            return _scored(judgment, call_failure(outcome))
        return _scored(judgment, parse_rating(text))

    return await settle_all(one(m) for m in matches)


def rescore(judgments: Sequence[Judgment]) -> list[Judgment]:
    """Re-read every rating from its judgment text, without calling any model."""
    return [
        _scored(j, (j.failure or _CALL_FAILED) if _call_failed(j) else parse_rating(j.judgment))
        for j in judgments
    ]


def judgment_path(root: Path, judge: str = DEFAULT_JUDGE) -> Path:
    """Where FastChat writes single-answer judgments: `model_judgment/<judge>_single.jsonl`."""
    return root / "model_judgment" / f"{judge_model_name(judge)}_single.jsonl"


def write_judgments(path: Path, judgments: Sequence[Judgment]) -> None:
    """One `json.dumps` line each, as `play_a_match_single` appends them, written whole."""
    write_jsonl(path, (j.to_json() for j in judgments))


def read_judgments(path: Path) -> list[Judgment]:
    """A judgment file, FastChat's or ours, with its stored scores; -1 gets a `Failure`. A
    damaged file is a `RunFileError` naming it and the line, in one line."""
    judgments = parse_records(path, jsonl_records(path), _judgment)
    return [_with_stored_failure(j) for j in judgments]


def _judgment(row: Mapping[str, Any]) -> Judgment:
    score = row["score"]
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise TypeError(f"'score' is {score!r}, not a number")
    return Judgment(
        question_id=row["question_id"],
        model=row["model"],
        judge=(row["judge"][0], row["judge"][1]),
        user_prompt=row["user_prompt"],
        judgment=row["judgment"],
        score=score,
        turn=row["turn"],
        tstamp=row["tstamp"],
    )


def _with_stored_failure(judgment: Judgment) -> Judgment:
    if _call_failed(judgment):
        return replace(judgment, failure=_CALL_FAILED)
    if judgment.score == NO_RATING:
        return replace(judgment, failure=Failure(FailureKind.PARSE, "stored score is -1"))
    return judgment


@dataclass(frozen=True)
class ModelScores:
    """`show_result.py --mode single` for one model: rows with score -1 are left out."""

    model: str
    turn_1: float | None
    turn_2: float | None
    average: float | None  # the mean over both turns' scores pooled, not of the two means
    n_scored: int
    failures: dict[str, int]


def summarize(judgments: Sequence[Judgment]) -> dict[str, ModelScores]:
    table = {}
    for model in sorted({j.model for j in judgments}):
        mine = [j for j in judgments if j.model == model]
        valid = [j for j in mine if j.score != NO_RATING]
        table[model] = ModelScores(
            model=model,
            turn_1=_mean([j.score for j in valid if j.turn == 1]),
            turn_2=_mean([j.score for j in valid if j.turn == 2]),
            average=_mean([j.score for j in valid]),
            n_scored=len(valid),
            failures=count_failures(j.failure for j in mine),
        )
    return table


def _mean(values: Sequence[int | float]) -> float | None:
    return sum(values) / len(values) if values else None
