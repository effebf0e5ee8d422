"""How far a new judge's preferences are from the published judge's on the same pairs.

Preferences are alpaca-eval's: 1 the first output (the baseline) wins, 2 the second, 1.5 a tie.
Agreement and Cohen's kappa compare the two judges' winners; the mean shift compares the
weights; the length preference is the share of decided pairs, of outputs of unequal length,
won by the longer output; per-model win rates (alpaca-eval's: the mean preference minus 1, in
percent) are compared across models by rank and by value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats
from sklearn.metrics import cohen_kappa_score

_TIE = 1.5


@dataclass(frozen=True)
class Judged:
    """One pair as both judges saw it (`new` is None when the new judge gave no verdict)."""

    published: float
    new: float | None
    length_1: int  # characters of the first output (the baseline's)
    length_2: int


def winner(preference: float) -> int:
    """0 a tie, else which output won (1 or 2)."""
    return 0 if preference == _TIE else 1 if preference < _TIE else 2


def win_rate(preferences: Sequence[float]) -> float | None:
    """alpaca-eval's win rate of the second output, in percent."""
    return 100 * sum(p - 1 for p in preferences) / len(preferences) if preferences else None


def _longer_wins(rows: Sequence[tuple[float, Judged]]) -> float | None:
    """Of the decided pairs whose outputs differ in length, the share the longer one won."""
    counted = [
        winner(p) == (2 if j.length_2 > j.length_1 else 1)
        for p, j in rows
        if winner(p) and j.length_1 != j.length_2
    ]
    return sum(counted) / len(counted) if counted else None


def compare(judged: Sequence[Judged]) -> dict[str, Any]:
    """`n` (pairs both judged), `agreement`, `kappa`, `mean_shift`, `length_preference` (new and
    published), the win rates of both, and `failed` (pairs the new judge gave no verdict)."""
    both = [j for j in judged if j.new is not None]
    new = [float(j.new) for j in both if j.new is not None]
    old = [j.published for j in both]
    agree = [winner(a) == winner(b) for a, b in zip(new, old, strict=True)]
    shift = sum(a - b for a, b in zip(new, old, strict=True)) / len(both) if both else None
    kappa = None
    if both:
        value = float(cohen_kappa_score([winner(p) for p in old], [winner(p) for p in new]))
        kappa = None if math.isnan(value) else value
    return {
        "n": len(both),
        "failed": len(judged) - len(both),
        "agreement": sum(agree) / len(agree) if agree else None,
        "kappa": kappa,
        "mean_shift": shift,
        "length_preference": {
            "new": _longer_wins(list(zip(new, both, strict=True))),
            "published": _longer_wins(list(zip(old, both, strict=True))),
        },
        "win_rate": {"new": win_rate(new), "published": win_rate(old)},
    }


def position_consistency(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Of pairs judged in both orders (the preference as shown, and with the outputs swapped,
    in the swapped frame), the share whose winner is the same output both times."""
    same = [winner(a) == {0: 0, 1: 2, 2: 1}[winner(b)] for a, b in pairs]
    return {"n": len(same), "share": sum(same) / len(same) if same else None}


def correlations(published: Sequence[float], new: Sequence[float]) -> dict[str, float | None]:
    """Spearman's and Pearson's correlation of per-model win rates (None below 3 models)."""
    if len(published) < 3:
        return {"spearman": None, "pearson": None}
    rho = float(stats.spearmanr(published, new).statistic)
    r = float(stats.pearsonr(published, new).statistic)
    return {
        "spearman": None if math.isnan(rho) else rho,
        "pearson": None if math.isnan(r) else r,
    }
