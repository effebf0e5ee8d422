"""A judge's own biases: the position of an answer, and its length.

Pairwise judges: position consistency (the share of pairs, judged in both orders, whose winner
survives the swap), the share of verdicts for the answer shown first, the share for the longer
answer, and the preference as a function of the length ratio (a logistic curve, fitted with
statsmodels' GLM, its interval cluster-robust by pair). Graders: the correlation of score and
log answer length. The shares are descriptive: a longer answer may also be a better one, which
verdicts alone cannot tell apart; only the position bias is a bias by construction, since each
order is judged on the same pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from eval.stats.intervals import (
    RESAMPLES,
    SEED,
    cluster_bootstrap,
    expanded_percentiles,
    resampled_totals,
)
from eval.stats.repeats import cluster_sums

GRID = 41  # points of the fitted curve


@dataclass(frozen=True)
class PairVerdict:
    """One judgment of answer a against answer b (alpaca-eval: the run's output against the
    reference's), with the judge's order undone: `a_wins` is the preference for a in [0, 1]
    (0.5 a tie, a fraction for a weighted judge), `a_first` whether a was shown first, and the
    two answers' lengths in one unit (characters, or tokens). `pair` names the instance."""

    pair: str
    a_wins: float
    a_first: bool
    a_length: int
    b_length: int


@dataclass(frozen=True)
class Share:
    """A share in [0, 1] with its 95% interval over `n` verdicts (or pairs), and the method."""

    value: float
    low: float
    high: float
    n: int
    method: str


@dataclass(frozen=True)
class Position:
    """`first`: the chance that the answer shown first wins, the two orders weighed alike (0.5:
    no bias; None: every verdict has one order); `consistency`: the share of pairs judged in
    both orders whose winner (or tie) is the same both ways (None: no pair was)."""

    first: Share | None
    consistency: Share | None


@dataclass(frozen=True)
class Coefficient:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class CurvePoint:
    """The fitted preference for a at log2 length ratio `x`, with its 95% band."""

    x: float
    p: float
    low: float
    high: float


@dataclass(frozen=True)
class Bin:
    """The verdicts whose log2 length ratio falls in one bin: their centre and mean."""

    x: float
    p: float
    n: int


@dataclass(frozen=True)
class LengthCurve:
    """P(a wins) = logistic(intercept + slope * x + position * s), x = log2 of (a's length + 1)
    over (b's + 1), s = +1/2 when a is shown first and -1/2 when second (left out when every
    verdict has one order). `slope` is the length bias in log-odds per doubling of the ratio,
    `position` the first place's advantage in log-odds; `curve` is the fit at s = 0 (both
    orders alike), `bins` the observed means beside it."""

    slope: Coefficient
    intercept: Coefficient
    position: Coefficient | None
    curve: tuple[CurvePoint, ...]
    bins: tuple[Bin, ...]
    n: int
    method: str


@dataclass(frozen=True)
class Correlation:
    """A grader's score against log2 answer length: Pearson's r with its 95% interval."""

    r: float
    low: float
    high: float
    n: int
    method: str


def _first(verdicts: Sequence[PairVerdict], resamples: int, seed: int) -> Share | None:
    """The mean of P(a wins | a first) and P(b wins | b first): 0.5 plus the first place's
    edge, whichever share of the verdicts has a first (the plain share of wins for the first
    answer mixes in the win rate when the orders are not half and half)."""
    a_first = np.array([v.a_first for v in verdicts])
    if a_first.all() or not a_first.any():
        return None
    wins = np.array([v.a_wins for v in verdicts], dtype=float)
    _, index = np.unique(np.array([v.pair for v in verdicts], dtype=str), return_inverse=True)
    columns = np.column_stack(
        [
            np.bincount(index, weights=np.where(a_first, wins, 0.0)),
            np.bincount(index, weights=a_first.astype(float)),
            np.bincount(index, weights=np.where(a_first, 0.0, 1 - wins)),
            np.bincount(index, weights=(~a_first).astype(float)),
        ]
    )

    def statistic(totals: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            share: np.ndarray = (
                totals[..., 0] / totals[..., 1] + totals[..., 2] / totals[..., 3]
            ) / 2
        return share

    low, high = expanded_percentiles(
        statistic(resampled_totals(columns, resamples=resamples, seed=seed)), columns.shape[0]
    )
    method = (
        "mean of the first answer's win rate with a first and with b first; 95% interval: "
        f"expanded percentile bootstrap over {columns.shape[0]} pairs"
    )
    return Share(float(statistic(columns.sum(axis=0))), low, high, len(verdicts), method)


def position(
    verdicts: Sequence[PairVerdict], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Position:
    """The first place's share of the wins, and the consistency of the pairs judged both ways."""
    first = _first(verdicts, resamples, seed)
    orders: dict[str, dict[bool, float]] = {}
    for v in verdicts:
        orders.setdefault(v.pair, {}).setdefault(v.a_first, v.a_wins)
    both = [(o[True], o[False]) for o in orders.values() if len(o) == 2]
    if not both:
        return Position(first, None)
    same = int(sum(np.sign(x - 0.5) == np.sign(y - 0.5) for x, y in both))
    low, high = proportion_confint(same, len(both), alpha=0.05, method="wilson")
    method = "share of pairs whose winner (or tie) survives the swap; 95% interval: Wilson"
    consistency = Share(same / len(both), float(low), float(high), len(both), method)
    return Position(first, consistency)


def longer_share(
    verdicts: Sequence[PairVerdict], *, resamples: int = RESAMPLES, seed: int = SEED
) -> Share:
    """The longer answer's share of the wins, over the verdicts whose answers differ in
    length (a tie counts a half, a weighted preference its weight)."""
    unequal = [v for v in verdicts if v.a_length != v.b_length]
    wins = np.array([v.a_wins if v.a_length > v.b_length else 1 - v.a_wins for v in unequal])
    sums, counts = cluster_sums(wins, np.array([v.pair for v in unequal], dtype=str))
    found = cluster_bootstrap(sums, counts, resamples=resamples, seed=seed)
    method = (
        "share of verdicts for the longer answer; 95% interval: expanded percentile bootstrap "
        f"over {found.n} pairs"
    )
    return Share(found.mean, found.low, found.high, len(unequal), method)


def _log_ratio(verdicts: Sequence[PairVerdict]) -> np.ndarray:
    a = np.array([v.a_length for v in verdicts], dtype=float)
    b = np.array([v.b_length for v in verdicts], dtype=float)
    return np.asarray(np.log2((a + 1) / (b + 1)))


def _coefficient(fit: sm.GLM, i: int) -> Coefficient:
    low, high = np.asarray(fit.conf_int(alpha=0.05))[i]
    return Coefficient(float(fit.params[i]), float(low), float(high))


def length_curve(verdicts: Sequence[PairVerdict], *, bins: int = 8) -> LengthCurve:
    """The preference for a as a function of the log2 length ratio (`LengthCurve`)."""
    x = _log_ratio(verdicts)
    y = np.array([v.a_wins for v in verdicts], dtype=float)
    s = np.array([0.5 if v.a_first else -0.5 for v in verdicts])
    both = len({v.a_first for v in verdicts}) == 2
    columns = [np.ones_like(x), x, s] if both else [np.ones_like(x), x]
    _, groups = np.unique(np.array([v.pair for v in verdicts], dtype=str), return_inverse=True)
    fit = sm.GLM(y, np.column_stack(columns), family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    grid = np.linspace(np.quantile(x, 0.02), np.quantile(x, 0.98), GRID)
    at = np.column_stack([np.ones_like(grid), grid, *([np.zeros_like(grid)] if both else [])])
    predicted = fit.get_prediction(at)
    band = np.asarray(predicted.conf_int(alpha=0.05))
    curve = tuple(
        CurvePoint(float(g), float(p), float(lo), float(hi))
        for g, p, (lo, hi) in zip(grid, predicted.predicted_mean, band, strict=True)
    )
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(0, edges.size - 2))
    observed = tuple(
        Bin(float(x[which == b].mean()), float(y[which == b].mean()), int((which == b).sum()))
        for b in range(max(1, edges.size - 1))
        if (which == b).any()
    )
    method = (
        "logistic GLM (statsmodels) of the preference on the log2 length ratio"
        + (" and the order" if both else "")
        + f"; 95% intervals cluster-robust by pair; {len(verdicts)} verdicts"
    )
    return LengthCurve(
        slope=_coefficient(fit, 1),
        intercept=_coefficient(fit, 0),
        position=_coefficient(fit, 2) if both else None,
        curve=curve,
        bins=observed,
        n=len(verdicts),
        method=method,
    )


def score_length(scores: Mapping[str, float], lengths: Mapping[str, int]) -> Correlation:
    """A grader's scores against its answers' lengths, over the instances both name."""
    common = sorted(scores.keys() & lengths.keys())
    score = np.array([scores[k] for k in common], dtype=float)
    length = np.log2(np.array([lengths[k] for k in common], dtype=float) + 1)
    result = scipy.stats.pearsonr(score, length)
    low, high = result.confidence_interval(confidence_level=0.95)
    method = "Pearson's r of score and log2(length + 1); 95% interval: Fisher's z (scipy)"
    return Correlation(float(result.statistic), float(low), float(high), len(common), method)
