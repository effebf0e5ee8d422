"""Bootstrap intervals and paired comparisons over per-instance scores.

Instances are the unit of resampling: two variants judged on the same instructions are compared
on their per-instruction differences, which removes the spread that instruction difficulty adds.
Where instances come in clusters (MT-Bench's two turns of one question), the clusters are
resampled whole (`cluster_bootstrap`), since the turns of one question are not independent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f} [{self.low:.2f}, {self.high:.2f}]"


def bootstrap(values: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """Mean with a percentile 95% interval; seeded so that reports are reproducible."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(values.mean()), float(low), float(high), int(values.size))


def paired(
    a: Mapping[str, float], b: Mapping[str, float], *, resamples: int = RESAMPLES
) -> Interval:
    """Mean of a - b over the instances both have, with a bootstrap 95% interval."""
    common = sorted(a.keys() & b.keys())
    diffs = np.array([a[k] - b[k] for k in common], dtype=float)
    return bootstrap(diffs, resamples=resamples)


@functools.lru_cache(maxsize=4)
def _multiplicities(clusters: int, resamples: int, seed: int) -> np.ndarray:
    """How often each cluster is drawn in each resample, from the draws `bootstrap` makes for
    the same size and seed: a resample's sum is then one matrix product. They depend on the
    size alone, so a report's many runs of one benchmark draw them once."""
    picks = np.random.default_rng(seed).integers(0, clusters, (resamples, clusters))
    cells = (np.arange(resamples)[:, None] * clusters + picks).ravel()
    drawn = np.bincount(cells, minlength=resamples * clusters).reshape(resamples, clusters)
    weights = drawn.astype(float)
    weights.flags.writeable = False
    return weights


def resampled_totals(
    columns: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """Each column's total in each cluster bootstrap resample (`columns`: one row per cluster),
    resamples x columns: the statistics of several sums (a ratio, a mean of two) are computed
    from it."""
    columns = np.asarray(columns, dtype=float)
    weights = _multiplicities(columns.shape[0], resamples, seed)
    # einsum, a column at a time: one thread, where BLAS's threads contend for a shared
    # machine's cores and take several times as long on these small products
    return np.stack([np.einsum("rc,c->r", weights, column) for column in columns.T], axis=1)


def expanded_percentiles(resampled: np.ndarray, clusters: int) -> tuple[float, float]:
    """The expanded percentile 95% interval (Hesterberg 2015) of a statistic's resampled values:
    the percentile bootstrap is too narrow with few clusters (its spread is the plug-in one,
    its tails normal), so its levels are widened to those of a t interval with the unbiased
    variance, for C clusters 2.5% -> Phi(-sqrt(C / (C - 1)) t(C - 1, 0.975)): it matters at
    MT-Bench's 80 questions, hardly at AlpacaEval's 805. Resamples where the statistic is
    undefined (NaN) are left out; one cluster has no interval."""
    from scipy.special import ndtr, stdtrit  # the report's, not a run's start-up

    if clusters < 2:
        return float("nan"), float("nan")
    tail = float(ndtr(-np.sqrt(clusters / (clusters - 1)) * stdtrit(clusters - 1, 0.975)))
    low, high = np.nanpercentile(resampled, [100 * tail, 100 * (1 - tail)])
    return float(low), float(high)


def cluster_bootstrap(
    sums: np.ndarray, counts: np.ndarray, *, resamples: int = RESAMPLES, seed: int = SEED
) -> Interval:
    """The ratio sum(sums) / sum(counts) with its expanded percentile 95% interval, resampling
    clusters (`sums[c]`: the sum of cluster c's instance values, `counts[c]`: its instances)."""
    sums = np.asarray(sums, dtype=float)
    counts = np.asarray(counts, dtype=float)
    c = sums.size
    if c < 2:
        mean = float(sums.sum() / counts.sum()) if c else float("nan")
        return Interval(mean, float("nan"), float("nan"), c)
    totals = resampled_totals(np.column_stack([sums, counts]), resamples=resamples, seed=seed)
    low, high = expanded_percentiles(totals[:, 0] / totals[:, 1], c)
    return Interval(float(sums.sum() / counts.sum()), low, high, c)
