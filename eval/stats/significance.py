"""The paired test matching an outcome, between two variants scored on the same instances.

Right/wrong outcomes, one per instance and side: McNemar's exact test (statsmodels), which is
the exact sign test on the discordant pairs. Scores and preferences (and accuracies averaged
over repeats): a paired permutation test (scipy; each cluster's difference's sign flipped at
random), which tests the mean the interval estimates and takes the ties of 1-10 ratings and
0 / 0.5 / 1 preferences as they are; Wilcoxon's signed-rank test (a shift of a symmetric
distribution) and the sign test (the median) are here for whoever asks for them. A test's p-value
alone says nothing of significance: `family.correct` says that, after Holm's correction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats
from statsmodels.stats.contingency_tables import mcnemar as _mcnemar

from eval.stats.intervals import SEED
from eval.stats.repeats import Estimate, Scores, aligned, cluster_sums, difference, instance_means

Outcome = Literal["right_wrong", "score", "preference"]
PERMUTATIONS = 9999


@dataclass(frozen=True)
class Test:
    """A test's two-sided p-value on n paired units (instances, or clusters of them)."""

    method: str
    statistic: float
    p_value: float
    n: int


@dataclass(frozen=True)
class Comparison:
    """Variant a minus variant b (`name` says which): the paired difference with its interval,
    and the test the outcome calls for."""

    name: str
    outcome: Outcome
    difference: Estimate
    test: Test


def mcnemar(a: np.ndarray, b: np.ndarray) -> Test:
    """McNemar's exact test on paired right (1) / wrong (0) outcomes: a binomial test on the
    pairs where exactly one side is right; its statistic is the smaller of those two counts."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    table = [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]
    result = _mcnemar(table, exact=True)
    return Test("McNemar exact", float(result.statistic), float(result.pvalue), int(a.size))


def sign_test(differences: np.ndarray) -> Test:
    """The exact sign test (scipy's binomial test) on the signs of paired differences, zeros
    dropped; its statistic is (positives - negatives) / 2, as statsmodels' `sign_test` gives."""
    d = np.asarray(differences, dtype=float)
    up, down = int((d > 0).sum()), int((d < 0).sum())
    p = scipy.stats.binomtest(up, up + down).pvalue if up + down else 1.0
    return Test("exact sign test", (up - down) / 2, float(p), int(d.size))


def wilcoxon(differences: np.ndarray) -> Test:
    """Wilcoxon's signed-rank test (scipy, zero differences dropped); p is 1 with no nonzero
    difference."""
    d = np.asarray(differences, dtype=float)
    if not d.any():
        return Test("Wilcoxon signed-rank", 0.0, 1.0, int(d.size))
    result = scipy.stats.wilcoxon(d)
    return Test("Wilcoxon signed-rank", float(result.statistic), float(result.pvalue), d.size)


def permutation_p(
    differences: np.ndarray, *, resamples: int = PERMUTATIONS, seed: int = SEED
) -> np.ndarray:
    """Two-sided p-values of the mean of paired differences along the last axis, under random
    sign flips (scipy's `permutation_test`; exact where 2^n <= resamples); leading axes are
    separate samples."""
    result = scipy.stats.permutation_test(
        (np.asarray(differences, dtype=float),),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        batch=max(1, 2_000_000 // max(1, np.asarray(differences).size)),
        axis=-1,
        rng=seed,
    )
    return np.asarray(result.pvalue, dtype=float)


def permutation(
    differences: np.ndarray, *, resamples: int = PERMUTATIONS, seed: int = SEED
) -> Test:
    d = np.asarray(differences, dtype=float)
    p = float(permutation_p(d, resamples=resamples, seed=seed))
    method = f"paired permutation (sign flips, {resamples} resamples)"
    return Test(method, float(d.mean()), p, int(d.size))


def compare(
    a: Scores,
    b: Scores,
    outcome: Outcome,
    *,
    name: str = "",
    resamples: int = PERMUTATIONS,
    seed: int = SEED,
) -> Comparison:
    """a - b on the instances both scored. The test's units are the clusters (each one's sum of
    instance differences); McNemar applies where each unit is one right/wrong outcome per side,
    and the permutation test everywhere else."""
    va, vb, clusters = aligned(a, b)
    diff = difference(a, b)
    if diff.instances == 0:
        return Comparison(name, outcome, diff, Test("no instance in common", 0.0, 1.0, 0))
    single = va.shape[1:] == (1, 1) and vb.shape[1:] == (1, 1)
    if outcome == "right_wrong":  # 0/1 each, or means of them over repeats
        scored = np.concatenate([va, vb], axis=None)
        if not np.isin(scored[~np.isnan(scored)], [0.0, 1.0]).all():
            raise ValueError(f"{name or 'comparison'}: right/wrong scores must be 0 or 1")
        if single and len(set(clusters)) == len(clusters):
            return Comparison(name, outcome, diff, mcnemar(va[:, 0, 0], vb[:, 0, 0]))
    units, _ = cluster_sums(instance_means(va) - instance_means(vb), clusters)
    return Comparison(name, outcome, diff, permutation(units, resamples=resamples, seed=seed))
