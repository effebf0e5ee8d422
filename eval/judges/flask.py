"""FLASK fine-grained skill scoring, faithful to kaistAI/FLASK `gpt_review/`.

`gpt4_eval.py` is restated: prompt_id 2 (with the reference answer), the instance's skills with
their criteria and 1-5 rubrics, `parse_score`, and `aggregate_skill.py`'s per-skill averages.
Prompts, reviewer settings and skill descriptions come from FLASK's own files, read at run time.

Decoding: FLASK's `gpt4_eval.py` builds a temperature and max_tokens beside the request it sends
(`openai_concurrent` sends `item["request"]`: model and messages only), so its published reviews
used the API's defaults: `load_setup`'s default, `GenerateConfig()`. The settings `reviewer.jsonl`
lists (temperature 0.2, max_tokens 1024) are `reviewer_config`, sent only when asked for
(`load_setup(..., reviewer_settings=True)`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval.benchmarks.flask import (
    SCORES,
    ReviewPrompt,
    Skill,
    read_review_prompts,
    read_reviewers,
    read_skills,
)
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    call_failure,
    count_failures,
    jsonl_records,
    parse_records,
    settle_all,
)
from eval.rundir import write_jsonl
from moa.types import ChatMessage, GenerateConfig, Generator

PROMPT_ID = 2
DEFAULT_JUDGE = "openai/gpt-4-0613"
NOT_APPLICABLE = "N/A"
# `aggregate_skill.py`'s report order, by the key each skill's name is reduced to.
SKILL_ORDER = (
    "robustness",
    "correctness",
    "efficiency",
    "factuality",
    "commonsense",
    "comprehension",
    "insightfulness",
    "completeness",
    "metacognition",
    "readability",
    "conciseness",
    "harmlessness",
)
_DICT_PATTERN = re.compile(r"{[^}]+}")
_NA_SPELLINGS = ("na", "n/a", "not applicable")


@dataclass(frozen=True)
class Setup:
    """Everything `gen_prompt` reads from FLASK's files, plus the decoding settings."""

    system_prompt: str
    prompt_template: str
    defaults: Mapping[str, str]
    skills: Sequence[Skill]  # in file order
    config: GenerateConfig


def make_setup(
    prompts: Mapping[int, ReviewPrompt],
    skills: Mapping[str, Skill],
    *,
    config: GenerateConfig,
    prompt_id: int = PROMPT_ID,
) -> Setup:
    """The judge from FLASK's prompts and skills, as `gen_prompt` uses them."""
    prompt = prompts.get(prompt_id)
    if prompt is None:
        raise ValueError(f"FLASK's review prompts have no prompt_id {prompt_id}")
    return Setup(
        system_prompt=prompt.system_prompt,
        prompt_template=prompt.template,
        defaults=prompt.defaults,
        skills=list(skills.values()),
        config=config,
    )


def reviewer_config(reviewer_file: Path, prompt_id: int = PROMPT_ID) -> GenerateConfig:
    """The decoding settings FLASK's reviewer file lists for the prompt (which FLASK never
    sends)."""
    reviewer = next((r for r in read_reviewers(reviewer_file) if r.prompt_id == prompt_id), None)
    if reviewer is None:
        raise ValueError(f"{reviewer_file}: no reviewer for prompt_id {prompt_id}")
    return GenerateConfig(temperature=reviewer.temperature, max_tokens=reviewer.max_tokens)


def load_setup(
    prompt_file: Path,
    reviewer_file: Path,
    skillset_file: Path,
    *,
    prompt_id: int = PROMPT_ID,
    config: GenerateConfig | None = None,
    reviewer_settings: bool = False,
) -> Setup:
    """FLASK's prompt, reviewer and skill files, read and checked by `eval.benchmarks.flask`
    (the reviewer file must list the prompt, as FLASK picks its prompt through it). Decoding:
    `config` if given; else with `reviewer_settings` the reviewer file's settings for the
    prompt; else what FLASK sends, the API's defaults (`GenerateConfig()`)."""
    if reviewer_settings and config is not None:
        raise ValueError("give config= or reviewer_settings=True, not both")
    listed = reviewer_config(reviewer_file, prompt_id)
    if config is None:
        config = listed if reviewer_settings else GenerateConfig()
    return make_setup(
        read_review_prompts(prompt_file),
        read_skills(skillset_file),
        config=config,
        prompt_id=prompt_id,
    )


def render_skills(labels: Sequence[str], skills: Sequence[Skill]) -> str:
    """Each label's first skill whose name contains it, with criteria and rubric, as FLASK."""
    text = ""
    for label in labels:
        for skill in skills:
            if label in skill.name:
                text += f"\n{skill.name}: {skill.criteria}"
                for score in SCORES:
                    text += f"\nScore {score}: {skill.rubric[score]}"
                text += "\n\n"
                break
    return text


def render_prompt(setup: Setup, item: Mapping[str, Any], response: str) -> str:
    """`gen_prompt`'s `prompt_template.format(...)` for one evaluation instance."""
    return setup.prompt_template.format(
        question=item["instruction"],
        response=response,
        skills=render_skills(item["skill"], setup.skills),
        num=3,
        sample_answer=item["answer"],
        **setup.defaults,
    )


def build_messages(setup: Setup, item: Mapping[str, Any], response: str) -> list[ChatMessage]:
    return [
        ChatMessage(role="system", content=setup.system_prompt),
        ChatMessage(role="user", content=render_prompt(setup, item, response)),
    ]


def parse_score(review: str) -> dict[Any, Any] | Failure:
    """FLASK's `parse_score`: the last `{...}` in the review, normalised and literal_eval'd.

    FLASK turns every failure into `{}`; we say why instead.
    """
    found = _DICT_PATTERN.findall(review)
    if not found:
        return Failure(FailureKind.PARSE, "no {...} in the review")
    text = found[-1].replace("\n", "").replace("_", " ").lower()
    try:
        scores = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        return Failure(FailureKind.PARSE, f"score dict unreadable: {exc!r}")
    if not isinstance(scores, dict):
        return Failure(FailureKind.PARSE, f"score part is a {type(scores).__name__}, not a dict")
    return {k: NOT_APPLICABLE if v in _NA_SPELLINGS else v for k, v in scores.items()}


@dataclass(frozen=True)
class Review:
    """One line of FLASK's review file: the instance, the response, the review and its scores."""

    item: Mapping[str, Any]
    response: str
    review: str | None
    score: Mapping[Any, Any]
    total_tokens: int = 0
    failure: Failure | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.item,
            "target_txt": self.response,
            "review": self.review,
            "score": dict(self.score),
            "total_tokens_step4": self.total_tokens,
        }


def _scored(review: Review) -> Review:
    if review.review is None:
        return review
    verdict = parse_score(review.review)
    if isinstance(verdict, Failure):
        return replace(review, score={}, failure=verdict)
    return replace(review, score=verdict, failure=None)


async def judge_responses(
    generator: Generator,
    items: Sequence[tuple[Mapping[str, Any], str]],
    setup: Setup,
    *,
    judge: str = DEFAULT_JUDGE,
) -> list[Review]:
    """Review every (instance, response) concurrently; a failed call keeps its reason."""

    async def one(item: Mapping[str, Any], response: str) -> Review:
        messages = build_messages(setup, item, response)
        outcome = await generator.generate(judge, messages, setup.config, tags=JUDGE_TAGS)
        if outcome.completion is None:
            return Review(item, response, None, {}, failure=call_failure(outcome))
        c = outcome.completion
        return _scored(Review(item, response, c.text, {}, c.input_tokens + c.output_tokens))

    return await settle_all(one(item, response) for item, response in items)


def rescore(reviews: Sequence[Review]) -> list[Review]:
    """Re-parse every stored review into scores, without calling any model."""
    return [_scored(r) for r in reviews]


def write_reviews(path: Path, reviews: Sequence[Review]) -> None:
    """FLASK's review file: reviewed instances only, one `json.dumps` line each, sorted by idx."""
    done = sorted((r for r in reviews if r.review is not None), key=lambda r: r.item["idx"])
    write_jsonl(path, (r.to_json() for r in done))


def read_reviews(path: Path) -> list[Review]:
    """A review file, FLASK's or ours; a damaged one is a `RunFileError` naming it and the line."""
    return parse_records(path, jsonl_records(path), _review)


_REVIEW_FIELDS = ("target_txt", "review", "score", "total_tokens_step4")


def _review(row: Mapping[str, Any]) -> Review:
    if not isinstance(row["score"], dict):
        raise TypeError(f"'score' is a {type(row['score']).__name__}, not an object")
    item = {k: v for k, v in row.items() if k not in _REVIEW_FIELDS}
    stored = Review(item, row["target_txt"], row["review"], row["score"], row["total_tokens_step4"])
    return _scored(stored) if not row["score"] else stored


@dataclass(frozen=True)
class SkillScore:
    total: float
    count: int

    @property
    def average(self) -> float:
        return self.total / self.count


@dataclass(frozen=True)
class SkillTable:
    """`aggregate_skill.py`'s per-skill sums and counts, with what it skips counted."""

    skills: dict[str, SkillScore]  # in SKILL_ORDER, only skills that were scored
    n_reviews: int
    n_not_three_scores: int  # reviews whose score dict does not have 3 entries (kept)
    n_not_applicable: int  # "N/A" scores, skipped
    n_unusable: int  # scores float() rejects or whose key maps to no skill: skipped, as FLASK
    failures: dict[str, int]  # failed calls (not in FLASK's review file) and unparsed reviews


def aggregate_skills(reviews: Sequence[Review]) -> SkillTable:
    """Sum and count every numeric score under its skill key, as `aggregate_skill.py` does.

    A key is reduced to its first word, or its second when it contains "logical", so
    "logical correctness" counts as "correctness". Failed calls are not in FLASK's review file
    and a review that could not be parsed has `{}`: neither contributes any score.
    """
    sums: dict[str, list[float]] = {}
    not_three = not_applicable = unusable = 0
    reviewed = [r for r in reviews if r.review is not None]
    for r in reviewed:
        if len(r.score) != 3:
            not_three += 1
        for key, value in r.score.items():
            if value == NOT_APPLICABLE:
                not_applicable += 1
                continue
            skill = skill_key(key)
            number = as_float(value)
            if number is None or skill not in SKILL_ORDER:
                unusable += 1
                continue
            sums.setdefault(skill, []).append(number)
    return SkillTable(
        skills={k: SkillScore(sum(v), len(v)) for k in SKILL_ORDER if (v := sums.get(k))},
        n_reviews=len(reviewed),
        n_not_three_scores=not_three,
        n_not_applicable=not_applicable,
        n_unusable=unusable,
        failures=count_failures(r.failure for r in reviews),
    )


def skill_key(key: Any) -> str | None:
    words = str(key).split(" ")
    if "logical" in str(key):
        return words[1] if len(words) > 1 else None
    return words[0]


def as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
