"""How far a new judge's scores are from the published judge's on the same graded items.

For MT-Bench (a 1-10 rating per question and turn) and FLASK (a 1-5 score per instance and
skill): the share of items scored exactly alike and within one point, Pearson's and Spearman's
correlation of the item scores, and the mean shift (new minus published).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats


@dataclass(frozen=True)
class Graded:
    """One item as both judges scored it (`new` is None when the new judge gave no score)."""

    model: str
    item: str  # "<question>/<turn>" (MT-Bench), "<idx>/<skill>" (FLASK)
    published: float
    new: float | None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _correlation(kind: str, a: Sequence[float], b: Sequence[float]) -> float | None:
    """None where it is undefined: fewer than 2 items, or either side constant."""
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    test = stats.pearsonr if kind == "pearson" else stats.spearmanr
    value = float(test(a, b).statistic)
    return None if math.isnan(value) else value


def compare_scores(graded: Sequence[Graded]) -> dict[str, Any]:
    """`n` (items both scored), `failed` (the new judge gave no score), `exact`, `within_1`,
    `pearson`, `spearman`, `mean_shift` and both judges' mean score."""
    both = [(g.published, g.new) for g in graded if g.new is not None]
    old = [p for p, _ in both]
    new = [n for _, n in both]
    return {
        "n": len(both),
        "failed": len(graded) - len(both),
        "exact": _mean([float(p == n) for p, n in both]),
        "within_1": _mean([float(abs(n - p) <= 1) for p, n in both]),
        "pearson": _correlation("pearson", old, new),
        "spearman": _correlation("spearman", old, new),
        "mean_shift": _mean([n - p for p, n in both]),
        "mean_score": {"published": _mean(old), "new": _mean(new)},
    }


def by_model(graded: Sequence[Graded]) -> dict[str, Any]:
    """`overall` and `models` (in first-seen order), each `compare_scores`."""
    models: dict[str, list[Graded]] = {}
    for g in graded:
        models.setdefault(g.model, []).append(g)
    return {
        "overall": compare_scores(graded),
        "models": {model: compare_scores(rows) for model, rows in models.items()},
    }
