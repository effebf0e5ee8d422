"""`task=calibrate` for Arena-Hard-Auto: the configured judge plays again the games of a
published judgment file (arena-hard-auto's layout, v0.1's `question_id` or v2.0's `uid`), each
with the user prompt the published judge was sent, and its verdict labels are compared with the
published ones: the same label, the same side (strength aside), Cohen's kappa of the labels, and
each model's score against the baseline under both judges, correlated across models.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.metrics import cohen_kappa_score

from eval.calibrate.measures import correlations
from eval.judges.games import Game, Games, Judgment, read_judgments
from moa.types import ChatMessage, Generator

# A label -> the side it prefers ("A", "B" or "=" for a tie), in either version's spelling.
_SIDE = {
    "A>>B": "A", "A>B": "A", "B<A": "A", "B<<A": "A",
    "B>>A": "B", "B>A": "B", "A<B": "B", "A<<B": "B",
    "A=B": "=", "B=A": "=",
}  # fmt: skip


def published_judgments(
    paths: Sequence[Path], models: Sequence[str], limit: int | None
) -> list[Judgment]:
    """The files' judgments in order (their labels as stored), of `models` (all when empty),
    the first `limit` of each model; a game without a user prompt cannot be played again."""
    out: list[Judgment] = []
    taken: dict[str, int] = {}
    for path in paths:
        for j in read_judgments(path):
            if (models and j.model not in models) or taken.get(j.model, 0) == (limit or -1):
                continue
            taken[j.model] = taken.get(j.model, 0) + 1
            out.append(j)
    return out


def _user(game: Game) -> str | None:
    return next((m["content"] for m in game.prompt if m.get("role") == "user"), None)


async def rejudge(
    generator: Generator, kind: Games, judge: str, published: Sequence[Judgment]
) -> list[Judgment]:
    """Each published game played again by `judge`: the category's system prompt and the
    published user prompt, the kind's decoding and verdict reading; in the same order."""

    async def play(j: Judgment, game: Game) -> Game:
        user = _user(game)
        if user is None:
            return Game(None, "", [])
        messages = [
            ChatMessage(role="system", content=kind.config.system_prompt(j.category)),
            ChatMessage(role="user", content=user),
        ]
        return await kind.play_game(generator, judge, j.category, messages)

    async def one(j: Judgment) -> Judgment:
        first, second = await asyncio.gather(play(j, j.games[0]), play(j, j.games[1]))
        return Judgment(j.uid, j.category, judge, j.model, j.baseline, (first, second))

    return list(await asyncio.gather(*(one(j) for j in published)))


def _kappa(old: Sequence[str], new: Sequence[str]) -> float | None:
    if not old:
        return None
    if len(set(old) | set(new)) == 1:  # one label throughout: kappa is undefined, they agree
        return 1.0
    value = float(cohen_kappa_score(old, new))
    return None if math.isnan(value) else value


def _compare(kind: Games, old: Sequence[Judgment], new: Sequence[Judgment]) -> dict[str, Any]:
    """`n` (games both judges labelled), `failed` (the new judge's unread or failed games),
    `exact`, `same_side`, `kappa`, and the score against the baseline under each judge."""
    pairs = [
        (a.score, b.score)
        for j, k in zip(old, new, strict=True)
        for a, b in zip(j.games, k.games, strict=True)
        if a.score in _SIDE and a.failure is None
    ]
    both = [(a, b) for a, b in pairs if b is not None and b in _SIDE]
    shares = [float(a == b) for a, b in both], [float(_SIDE[a] == _SIDE[b]) for a, b in both]
    scores = [kind.score(js) for js in (old, new)]
    return {
        "n": len(both),
        "failed": len(pairs) - len(both),
        "exact": sum(shares[0]) / len(both) if both else None,
        "same_side": sum(shares[1]) / len(both) if both else None,
        "kappa": _kappa([a for a, _ in both], [b for _, b in both]),
        "score": {
            "published": None if scores[0] is None else scores[0].score,
            "new": None if scores[1] is None else scores[1].score,
        },
    }


def compare(kind: Games, old: Sequence[Judgment], new: Sequence[Judgment]) -> dict[str, Any]:
    """`overall` and `models` (first-seen order), each `_compare`; the overall part adds the
    Spearman and Pearson correlation of the models' scores (None below 3 models)."""
    models = list(dict.fromkeys(j.model for j in old))
    per = {
        m: _compare(
            kind,
            [j for j in old if j.model == m],
            [k for j, k in zip(old, new, strict=True) if j.model == m],
        )
        for m in models
    }
    scored = [s["score"] for s in per.values() if None not in s["score"].values()]
    overall = {k: v for k, v in _compare(kind, old, new).items() if k != "score"}
    overall |= correlations([s["published"] for s in scored], [s["new"] for s in scored])
    return {"overall": overall, "models": per}
