"""Re-grading the paper judges' published MT-Bench and FLASK judgments, in the published order.

MT-Bench: FastChat's `<judge>_single.jsonl` keeps the very user prompt its judge was sent and
names the template (`judge[1]`), so the configured judge is sent that prompt under the template's
system prompt, with FastChat's decoding, and its `[[rating]]` read by FastChat's parser
(`eval.judges.mt_bench`). FLASK: a published review line holds the instance and the response, so
the review request is rebuilt by the `rubric` kind's setup (`eval.judges.flask`) and parsed
alike; each skill's score is one item. Only scored published items are kept: a published
failure has nothing to agree with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from eval.calibrate.scores import Graded
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.judges.common import JUDGE_TAGS, Failure, settle_all
from moa.errors import ConfigError
from moa.types import ChatMessage, Generator

T = TypeVar("T")


def _first(
    rows: Sequence[T], model_of: Callable[[T], str], models: Sequence[str], limit: int | None
) -> list[T]:
    """The rows of `models` (all when empty), at most `limit` per model, in file order."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        model = model_of(row)
        if models and model not in models:
            continue
        if limit is None or seen.get(model, 0) < limit:
            seen[model] = seen.get(model, 0) + 1
            out.append(row)
    missing = [m for m in models if m not in seen]
    if missing:
        raise ConfigError(f"calibrate.models: {', '.join(missing)}: not in the published file")
    return out


def single_judgments(
    paths: Sequence[Path],
    prompts: Mapping[str, mj.Prompt],
    models: Sequence[str],
    limit: int | None,
) -> list[mj.Judgment]:
    """The scored judgments of FastChat's files, each checked to be made of one of `prompts`."""
    rows = [j for path in paths for j in mj.read_judgments(path) if j.failure is None]
    for j in rows:
        prompt = prompts.get(j.judge[1])
        if prompt is None or not j.user_prompt.startswith(prompt["prompt_template"].split("{")[0]):
            raise ConfigError(
                f"question {j.question_id} turn {j.turn} of {j.model}: judged with "
                f"{j.judge[1]!r}, not one of FastChat's single-answer templates"
            )
    return _first(rows, lambda j: j.model, models, limit)


async def regrade_single(
    generator: Generator,
    judge: str,
    prompts: Mapping[str, mj.Prompt],
    judgments: Sequence[mj.Judgment],
) -> list[Graded]:
    """Each published judgment's prompt sent to `judge`; its rating beside the published one."""

    async def one(j: mj.Judgment) -> Graded:
        system = prompts[j.judge[1]]["system_prompt"]
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages.append(ChatMessage(role="user", content=j.user_prompt))
        outcome = await generator.generate(judge, messages, mj.JUDGE_CONFIG, tags=JUDGE_TAGS)
        rating = None if outcome.completion is None else mj.parse_rating(outcome.completion.text)
        new = None if rating is None or isinstance(rating, Failure) else float(rating)
        return Graded(j.model, f"{j.question_id}/{j.turn}", float(j.score), new)

    return await settle_all(one(j) for j in judgments)


def _item(review: fj.Review) -> dict[str, Any]:
    """The instance as the rubric kind reads it; FLASK's first published reviews spell its
    fields `question_id`, `text` and `metrics`."""
    item = review.item
    return {
        **item,
        "idx": item.get("idx", item.get("question_id")),
        "instruction": item.get("instruction", item.get("text")),
        "skill": item.get("skill", item.get("metrics")),
    }


def _scores(review: fj.Review) -> dict[str, float]:
    """A review's numeric scores by `aggregate_skill.py`'s skill key."""
    out = {}
    for key, value in review.score.items():
        skill, number = fj.skill_key(key), fj.as_float(value)
        if skill in fj.SKILL_ORDER and number is not None:
            out[skill] = number
    return out


def model_of_review_file(path: Path) -> str:
    """FLASK names a review file for its model: `gpt4_review.jsonl` is `gpt4`'s."""
    return path.stem.removesuffix("_review")


def rubric_reviews(
    paths: Sequence[Path], models: Sequence[str], limit: int | None
) -> list[tuple[str, fj.Review]]:
    """The published reviews with a score of FLASK's files, with their model."""
    rows = [
        (model_of_review_file(path), r)
        for path in paths
        for r in fj.read_reviews(path)
        if r.failure is None and _scores(r)
    ]
    for _, review in rows:
        item = _item(review)
        if item["instruction"] is None or item["skill"] is None or "answer" not in item:
            raise ConfigError(
                f"FLASK review {item['idx']}: lacks the instruction, skills or reference answer"
            )
    return _first(rows, lambda row: row[0], models, limit)


async def regrade_rubric(
    generator: Generator,
    judge: str,
    setup: fj.Setup,
    reviews: Sequence[tuple[str, fj.Review]],
) -> list[Graded]:
    """Each published review's request sent to `judge`; its skill scores beside the published."""
    items = [(_item(r), r.response) for _, r in reviews]
    fresh = await fj.judge_responses(generator, items, setup, judge=judge)
    graded = []
    for (model, old), new, (item, _) in zip(reviews, fresh, items, strict=True):
        scored = _scores(new) if new.failure is None else {}
        graded += [
            Graded(model, f"{item['idx']}/{skill}", score, scored.get(skill))
            for skill, score in _scores(old).items()
        ]
    return graded
