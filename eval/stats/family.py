"""Holm's family-wise correction across a table's comparisons: the only place a comparison is
called significant.

A table comparing six variants with a reference makes six tests; at alpha 0.05 each, the chance
that one of six true nulls looks significant is about 26%. Holm's step-down correction keeps
that chance at alpha for the whole table and is never less powerful than Bonferroni's. A
`Comparison` carries its raw p-value only; `correct` gives each its Holm-adjusted p-value and
the verdict, and `Corrected.label` is what a table prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests

from eval.stats.significance import Comparison

ALPHA = 0.05


@dataclass(frozen=True)
class Corrected:
    """A comparison with its Holm-adjusted p-value among `family` tested comparisons; a
    comparison with no p-value (no instance in common) is not in the family, and never
    significant."""

    comparison: Comparison
    p_holm: float
    significant: bool
    family: int
    alpha: float
    method: str = "Holm"

    @property
    def label(self) -> str:
        if np.isnan(self.p_holm):
            return "not tested"
        verdict = "significant" if self.significant else "not significant"
        return (
            f"{verdict} at {self.alpha:g} (p = {self.p_holm:.3g}, {self.method}-adjusted over "
            f"{self.family} comparison{'s' if self.family != 1 else ''})"
        )


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels' `multipletests`), NaN where a p-value is NaN: those
    are left out of the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], method="holm")[1]
    return adjusted


def correct(comparisons: Sequence[Comparison], *, alpha: float = ALPHA) -> list[Corrected]:
    """Each of a table's comparisons, in order, with its Holm-adjusted p-value and verdict."""
    p = [c.test.p_value if c.test.n else float("nan") for c in comparisons]
    adjusted = holm(p)
    family = int((~np.isnan(adjusted)).sum())
    return [
        Corrected(c, float(q), bool(q <= alpha), family, alpha)
        for c, q in zip(comparisons, adjusted, strict=True)
    ]
