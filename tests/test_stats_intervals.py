"""`eval.stats`: today's bootstrap kept as it was, and the headline and paired difference from
generation and judge repeats, checked by simulation against known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm, t

from eval.stats import Interval, bootstrap, cluster_bootstrap, paired
from eval.stats.repeats import Scores, difference, estimate, mt_bench_question

RUNS = 1000  # simulated paired runs per outcome: 95% coverage is then known to +-1.4 points


def test_todays_callers_get_the_same_numbers() -> None:
    # (computed by eval/stats.py before it became a package)
    values = np.arange(1, 41, dtype=float) % 7
    assert bootstrap(values) == Interval(mean=3.0, low=2.425, high=3.625, n=40)
    a = {str(i): float(i % 5) for i in range(30)}
    b = {str(i): float((i * 3) % 4) for i in range(5, 40)}
    assert paired(a, b) == Interval(mean=0.44, low=-0.28, high=1.16, n=25)
    assert bootstrap(np.array([])).n == 0


def test_one_run_judged_once_is_the_bootstrap_and_clusters_resample_whole() -> None:
    rng = np.random.default_rng(1)
    scores = {f"i{k:03d}": float(v) for k, v in enumerate(rng.normal(size=97))}
    one = estimate(Scores.of(scores))
    # the draws of `bootstrap`, the percentile levels widened to a t interval's (Hesterberg)
    values = np.array([scores[k] for k in sorted(scores)])
    means = values[np.random.default_rng(0).integers(0, 97, (2000, 97))].mean(axis=1)
    tail = norm.cdf(-np.sqrt(97 / 96) * t.ppf(0.975, 96))
    assert (one.low, one.high) == pytest.approx(
        np.percentile(means, [100 * tail, 100 - 100 * tail])
    )
    today = bootstrap(values)
    assert one.mean == today.mean and one.low < today.low and one.high > today.high
    assert one.split.generation is None and one.split.judge is None  # nothing to separate
    assert one.se == pytest.approx(np.std(list(scores.values()), ddof=1) / np.sqrt(97))

    # MT-Bench: two turns per question, strongly alike; the question is the unit
    question = rng.normal(0, 2, 80)
    turns = {
        f"{81 + q}/{turn}": float(question[q] + rng.normal(0, 0.3))
        for q in range(80)
        for turn in (1, 2)
    }
    clustered = estimate(Scores.of(turns, mt_bench_question))
    flat = estimate(Scores.of(turns))
    assert (clustered.n, clustered.instances, flat.n) == (80, 160, 160)
    assert clustered.mean == pytest.approx(np.mean(list(turns.values())))
    assert clustered.se > 1.3 * flat.se  # as if 80 answers, not 160
    sums = {str(q): turns[f"{q}/1"] + turns[f"{q}/2"] for q in range(81, 161)}
    resampled = cluster_bootstrap(np.array([sums[q] for q in sorted(sums)]), np.full(80, 2.0))
    assert (clustered.low, clustered.high) == pytest.approx((resampled.low, resampled.high))


def test_repeats_arrive_as_runs_with_missing_verdicts_left_out() -> None:
    runs = [[{"a": 1.0, "b": 0.0}, {"a": 0.0}], [{"a": 1.0, "b": 1.0}, {"b": 1.0}]]
    scores = Scores.from_runs(runs)
    assert scores.instances == ("a", "b") and scores.values.shape == (2, 2, 2)
    # a: generation means 0.5 and 1 -> 0.75; b: 0 and 1 -> 0.5
    assert estimate(scores).mean == pytest.approx(0.625)
    with pytest.raises(ValueError):
        Scores(("a",), ("a",), np.zeros((2, 1, 1)))


def test_the_split_recovers_each_source_of_variance() -> None:
    """Instance, generation and judge variances 1, 0.5^2 and 0.7^2 over 200 instances, 3
    generations judged twice, a tenth of the verdicts missing (the same ones in each of 400
    runs): each part's mean is that source's share of the headline's variance, and the total
    is the headline's variance across the runs."""
    rng = np.random.default_rng(2)
    runs, n, g, k = 400, 200, 3, 2
    values = (
        rng.normal(0, 1.0, (runs, n, 1, 1))
        + rng.normal(0, 0.5, (runs, n, g, 1))
        + rng.normal(0, 0.7, (runs, n, g, k))
    )
    values[:, rng.random((n, g, k)) < 0.1] = np.nan
    keys = tuple(str(i) for i in range(n))
    found = [estimate(Scores(keys, keys, v), resamples=10) for v in values]
    # the headline is the mean over instances of the mean over generations of the mean verdict
    judged = (~np.isnan(values[0])).sum(axis=2)
    generations = (judged > 0).sum(axis=1)
    generation = 0.25 * (1 / generations).sum() / n**2
    judge = (
        0.49
        * (np.where(judged > 0, 1 / np.maximum(judged, 1), 0).sum(axis=1) / generations**2).sum()
        / n**2
    )
    assert np.mean([e.split.generation for e in found]) == pytest.approx(generation, rel=0.05)
    assert np.mean([e.split.judge for e in found]) == pytest.approx(judge, rel=0.05)
    assert np.mean([e.split.instances for e in found]) == pytest.approx(1.0 / n, rel=0.1)
    variance = np.var([e.mean for e in found], ddof=1)
    assert np.mean([e.split.total for e in found]) == pytest.approx(variance, rel=0.15)
    assert variance == pytest.approx(1.0 / n + generation + judge, rel=0.15)


# --- coverage: 1,000 simulated paired runs per outcome --------------------------------------


def _keys(n: int) -> tuple[str, ...]:
    return tuple(f"{i:04d}" for i in range(n))


def _coverage(
    a: np.ndarray, b: np.ndarray, keys: tuple[str, ...], clusters: tuple[str, ...], truth: float
) -> float:
    hits = 0
    for va, vb in zip(a, b, strict=True):
        found = difference(Scores(keys, clusters, va), Scores(keys, clusters, vb))
        hits += found.low <= truth <= found.high
    return hits / len(a)


def test_paired_win_rate_intervals_cover_the_true_difference() -> None:
    """AlpacaEval-like: 400 instructions, each variant generated twice and judged twice against
    the baseline; a verdict is a win, a tie or a loss of a latent margin (instruction, variant
    by instruction, generation and judge noise, all normal), so the true win rates are
    normal probabilities."""
    rng = np.random.default_rng(3)
    n, g, k, tie = 400, 2, 2, 0.1
    scale = np.sqrt(1.0 + 0.6**2 + 0.7**2 + 0.5**2)
    instruction = rng.normal(0, 1.0, (RUNS, n, 1, 1))

    def verdicts(mean: float) -> np.ndarray:
        margin = (
            mean
            + instruction
            + rng.normal(0, 0.6, (RUNS, n, 1, 1))
            + rng.normal(0, 0.7, (RUNS, n, g, 1))
            + rng.normal(0, 0.5, (RUNS, n, g, k))
        )
        return np.where(margin > tie, 1.0, np.where(margin < -tie, 0.0, 0.5))

    def win_rate(mean: float) -> float:
        return float(
            norm.sf(tie, mean, scale)
            + 0.5 * (norm.cdf(tie, mean, scale) - norm.cdf(-tie, mean, scale))
        )

    truth = win_rate(0.15) - win_rate(-0.05)
    keys = _keys(n)
    covered = _coverage(verdicts(0.15), verdicts(-0.05), keys, keys, truth)
    assert 0.94 <= covered <= 0.96


def test_paired_score_intervals_cover_the_true_difference() -> None:
    """MT-Bench-like: 80 questions of two turns, clustered by question; each variant generated
    three times and each answer rated twice, 1-10, the rating a rounded, clipped normal."""
    rng = np.random.default_rng(4)
    questions, g, k = 80, 3, 2
    turn = np.array([0.0, -0.4])[None, None, :, None, None]
    shared = (
        rng.normal(0, 1.2, (RUNS, questions, 1, 1, 1))
        + turn
        + rng.normal(0, 0.6, (RUNS, questions, 2, 1, 1))
    )
    sd = np.sqrt(1.2**2 + 0.6**2 + 0.5**2 + 0.8**2 + 0.6**2)

    def ratings(mean: float) -> np.ndarray:
        latent = (
            mean
            + shared
            + rng.normal(0, 0.5, (RUNS, questions, 2, 1, 1))
            + rng.normal(0, 0.8, (RUNS, questions, 2, g, 1))
            + rng.normal(0, 0.6, (RUNS, questions, 2, g, k))
        )
        return np.clip(np.round(latent), 1, 10).reshape(RUNS, questions * 2, g, k)

    def expected(mean: float) -> float:
        edges = np.array([-np.inf, *np.arange(1.5, 10.5), np.inf])
        return float(
            np.mean(
                [
                    (np.arange(1, 11) * np.diff(norm.cdf(edges, mean + shift, sd))).sum()
                    for shift in (0.0, -0.4)
                ]
            )
        )

    truth = expected(6.5) - expected(6.2)
    keys = tuple(f"{81 + q}/{n}" for q in range(questions) for n in (1, 2))
    clusters = tuple(mt_bench_question(key) for key in keys)
    covered = _coverage(ratings(6.5), ratings(6.2), keys, clusters, truth)
    assert 0.94 <= covered <= 0.96


def test_paired_accuracy_intervals_cover_the_true_difference() -> None:
    """Right/wrong: 500 problems, three generations each, an exact grader (one judgment)."""
    rng = np.random.default_rng(5)
    n, g = 500, 3
    difficulty = rng.normal(0, 1.0, (RUNS, n, 1, 1))
    scale = np.sqrt(1.0 + 0.5**2 + 0.8**2)

    def right(mean: float) -> np.ndarray:
        latent = (
            mean
            + difficulty
            + rng.normal(0, 0.5, (RUNS, n, 1, 1))
            + rng.normal(0, 0.8, (RUNS, n, g, 1))
        )
        return (latent > 0).astype(float)

    truth = float(norm.cdf(0.2 / scale) - norm.cdf(0.05 / scale))
    keys = _keys(n)
    covered = _coverage(right(0.2), right(0.05), keys, keys, truth)
    assert 0.94 <= covered <= 0.96
