"""A run's headline and a paired difference from repeated generations and judgments, with the
variance of each split into its sources.

A score is indexed by instance i, generation repeat g (`repeats`: another run of the variant on
the same instances) and judge repeat k (`judge.repeats`: the same answer judged again). The
headline is the mean over instances of each instance's mean over its repeats; its interval
resamples clusters (the instance itself, or MT-Bench's question with its two turns) with all
their repeats, and its standard error is the cluster-robust (linearised) one. Both hold whatever
the repeats' correlation within a cluster, so neither needs a model.

The split needs one: a nested random-effects model, score = mean + instance + generation within
instance + judgment within generation, whose two inner variances are estimated by the method of
moments (the within-cell mean squares of a nested ANOVA, exact for unbalanced repeats): closed
form and unbiased, with no iterative fit to converge (as REML's would have to), and it only
apportions the total, it never sets the interval. What the generation and judge parts leave of
the total is the part between instances (clusters).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from eval.stats.intervals import RESAMPLES, SEED, Interval, cluster_bootstrap


def mt_bench_question(key: str) -> str:
    """MT-Bench's instance keys are `<question>/<turn>`: its clusters are the questions."""
    return key.rpartition("/")[0] or key


@dataclass(frozen=True, eq=False)
class Scores:
    """One variant's scores: `values[i, g, k]` is instance i's score in generation repeat g by
    judge repeat k, NaN where there is none (a failed call or verdict, counted where it failed);
    `clusters[i]` names the unit resampled with instance i (by default the instance itself)."""

    instances: tuple[str, ...]
    clusters: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[0] != len(self.instances):
            raise ValueError(f"values {self.values.shape}: one (repeats x judgments) per instance")
        if len(self.clusters) != len(self.instances) or len(set(self.instances)) < len(
            self.instances
        ):
            raise ValueError("one cluster per instance, and each instance once")

    @classmethod
    def of(cls, scores: Mapping[str, float], cluster: Callable[[str], str] | None = None) -> Scores:
        """One run judged once: today's per-instance scores."""
        return cls.from_runs([[scores]], cluster)

    @classmethod
    def from_runs(
        cls,
        runs: Sequence[Sequence[Mapping[str, float]]],
        cluster: Callable[[str], str] | None = None,
    ) -> Scores:
        """`runs[g][k]`: generation repeat g's per-instance scores from judge repeat k."""
        instances = tuple(sorted({key for run in runs for judged in run for key in judged}))
        depth = max((len(run) for run in runs), default=0)
        values = np.full((len(instances), len(runs), depth), np.nan)
        row = {key: i for i, key in enumerate(instances)}
        for g, run in enumerate(runs):
            for k, judged in enumerate(run):
                for key, score in judged.items():
                    values[row[key], g, k] = score
        clusters = tuple(cluster(key) if cluster else key for key in instances)
        return cls(instances, clusters, values)


@dataclass(frozen=True)
class Split:
    """The variance of an estimate (the square of its standard error) by source. `instances` is
    what the generation and judge parts leave of `total`, floored at 0; a part is None where the
    data cannot separate it, and is then inside the part above it: with one judgment per
    generation the judge's variance is in `generation`; with one generation per instance, the
    generation's is in `instances`. `clusters`, `repeats` and `judgments` are the design:
    units resampled, mean generation repeats per instance, mean judgments per generation."""

    total: float
    instances: float
    generation: float | None
    judge: float | None
    clusters: int
    repeats: float
    judgments: float
    method: str


@dataclass(frozen=True)
class Estimate:
    """A mean (a headline, or a paired difference) with its 95% interval, standard error and
    the split of its variance; `n` clusters resampled, holding `instances` instances."""

    mean: float
    low: float
    high: float
    se: float
    n: int
    instances: int
    split: Split
    method: str

    @property
    def interval(self) -> Interval:
        return Interval(self.mean, self.low, self.high, self.n)


def instance_means(values: np.ndarray) -> np.ndarray:
    """Each instance's mean over its generations of each generation's mean judgment, from
    values[i, g, k] (NaN: none); generations never judged are left out."""
    k = (~np.isnan(values)).sum(axis=2)
    cell_sum = np.nansum(values, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cell_mean = np.where(k > 0, cell_sum / np.maximum(k, 1), 0.0)
        means: np.ndarray = cell_mean.sum(axis=1) / (k > 0).sum(axis=1)
    return means


def _scored(scores: Scores) -> np.ndarray:
    return np.asarray((~np.isnan(scores.values)).any(axis=(1, 2)))


def cluster_sums(per_instance: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cluster, the sum of its instances' values and how many there are."""
    labels, index = np.unique(clusters, return_inverse=True)
    sums = np.bincount(index, weights=per_instance, minlength=labels.size)
    return sums, np.bincount(index, minlength=labels.size).astype(float)


@dataclass(frozen=True)
class _Within:
    """One variant's within-instance sums: each inner variance's mean square and its weight in
    the variance of the instance-mean average."""

    judge_var: float | None
    generation_var: float | None
    judge_weight: float
    generation_weight: float
    repeats: float
    judgments: float


def _within(values: np.ndarray) -> _Within:
    """Method-of-moments estimates from values[i, g, k] (every instance with a score)."""
    k = (~np.isnan(values)).sum(axis=2)  # judgments per cell
    cells = k > 0
    g = cells.sum(axis=1)  # generations per instance
    cell_mean = np.where(cells, np.nansum(values, axis=2) / np.maximum(k, 1), 0.0)
    inverse_k = np.where(cells, 1.0 / np.maximum(k, 1), 0.0)
    instance_mean = instance_means(values)
    ss_judge = float(np.nansum((values - cell_mean[:, :, None]) ** 2))
    df_judge = int((k - 1)[cells].sum())
    judge_var = ss_judge / df_judge if df_judge else None
    spread = np.where(cells, cell_mean - instance_mean[:, None], 0.0)
    ss_gen = float((spread**2).sum())
    df_gen = int((g - 1).sum())
    generation_var = None
    if df_gen:
        # E[ss_gen] = var_gen * df_gen + var_judge * sum_i (1 - 1/G_i) sum_g 1/k_ig; with one
        # judgment per generation the judge's variance stays in the generation part
        judge_share = float(((1 - 1 / g) * inverse_k.sum(axis=1)).sum())
        generation_var = max(0.0, (ss_gen - (judge_var or 0.0) * judge_share) / df_gen)
    return _Within(
        judge_var=judge_var,
        generation_var=generation_var,
        judge_weight=float((inverse_k.sum(axis=1) / g**2).sum()),
        generation_weight=float((1 / g).sum()),
        repeats=float(g.mean()),
        judgments=float(k[cells].mean()),
    )


def _part(within: Sequence[_Within], source: str, n: int) -> float | None:
    """A source's share of the variance of the mean of n instance means, summed over the
    variants (independent); None if any variant cannot separate it."""
    total = 0.0
    for w in within:
        variance = w.judge_var if source == "judge" else w.generation_var
        if variance is None:
            return None
        total += variance * (w.judge_weight if source == "judge" else w.generation_weight)
    return total / n**2


def _estimate(
    sides: Sequence[np.ndarray],
    clusters: np.ndarray,
    what: str,
    resamples: int,
    seed: int,
) -> Estimate:
    """The mean of per-instance values (one side's instance means, or a minus b's) over
    `sides`' values[i, g, k], resampled by `clusters`."""
    n = clusters.size
    if n == 0:
        nan = float("nan")
        split = Split(nan, nan, None, None, 0, nan, nan, "no instance scored")
        return Estimate(nan, nan, nan, nan, 0, 0, split, f"{what}: no instance scored")
    per_instance = instance_means(sides[0])
    if len(sides) == 2:
        per_instance = per_instance - instance_means(sides[1])
    within = [_within(values) for values in sides]
    sums, counts = cluster_sums(per_instance, clusters)
    interval = cluster_bootstrap(sums, counts, resamples=resamples, seed=seed)
    c = sums.size
    total = float("nan")
    if c > 1:
        total = float(c / (c - 1) * ((sums - counts * interval.mean) ** 2).sum() / n**2)
    judge, generation = _part(within, "judge", n), _part(within, "generation", n)
    split = Split(
        total=total,
        instances=max(0.0, total - (generation or 0.0) - (judge or 0.0)),
        generation=generation,
        judge=judge,
        clusters=c,
        repeats=float(np.mean([w.repeats for w in within])),
        judgments=float(np.mean([w.judgments for w in within])),
        method="cluster-robust variance; generation and judge parts by nested-ANOVA moments",
    )
    method = (
        f"{what} over {n} instances in {c} clusters; 95% interval: percentile cluster "
        f"bootstrap ({resamples} resamples of the clusters with all their repeats)"
    )
    return Estimate(
        mean=interval.mean,
        low=interval.low,
        high=interval.high,
        se=float(np.sqrt(total)),
        n=c,
        instances=n,
        split=split,
        method=method,
    )


def estimate(scores: Scores, *, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """A run's headline (the mean of its instance means) with its interval and variance split.
    For one run judged once it is `bootstrap` over the scores (clusters: `cluster_bootstrap`)."""
    keep = _scored(scores)
    values = scores.values[keep]
    return _estimate(
        [values], np.asarray(scores.clusters, dtype=str)[keep], "mean", resamples, seed
    )


def aligned(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a's and b's values on the instances both scored, in one order, with a's clusters."""
    rows_b = {key: i for i, (key, s) in enumerate(zip(b.instances, _scored(b), strict=True)) if s}
    rows_a = [i for i, s in enumerate(_scored(a)) if s and a.instances[i] in rows_b]
    va = a.values[rows_a]
    vb = b.values[[rows_b[a.instances[i]] for i in rows_a]]
    return va, vb, np.asarray([a.clusters[i] for i in rows_a], dtype=str)


def difference(a: Scores, b: Scores, *, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """The paired difference a - b on the instances both scored (clusters: a's), with its
    interval and the split of its variance: the generation and judge parts are the two
    variants' (their repeats are independent), the rest is between instances, which pairing
    shrinks by what the two variants share."""
    va, vb, clusters = aligned(a, b)
    return _estimate([va, vb], clusters, "paired difference", resamples, seed)
