"""Paired tests (`eval.stats.significance`) and Holm's correction (`eval.stats.family`) against
scipy's and statsmodels' own, on random tables and p-values."""

from __future__ import annotations

import gc
import itertools

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar
from statsmodels.stats.descriptivestats import sign_test as statsmodels_sign_test
from statsmodels.stats.multitest import multipletests

from eval.stats.family import correct, holm
from eval.stats.repeats import Scores, mt_bench_question
from eval.stats.significance import (
    compare,
    mcnemar,
    permutation,
    sign_test,
    wilcoxon,
)


def test_mcnemar_and_the_sign_test_are_statsmodels_and_scipy_on_random_tables() -> None:
    rng = np.random.default_rng(10)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        a = rng.random(n) < rng.random()
        b = rng.random(n) < rng.random()
        table = np.bincount(2 * ~a + ~b, minlength=4).reshape(2, 2)  # rows: a right, a wrong
        expected = statsmodels_mcnemar(table, exact=True)
        found = mcnemar(a.astype(float), b.astype(float))
        assert (found.statistic, found.p_value, found.n) == (expected.statistic, expected.pvalue, n)
        discordant = int((a & ~b).sum()), int((~a & b).sum())
        if sum(discordant):
            exact = scipy.stats.binomtest(discordant[0], sum(discordant)).pvalue
            assert found.p_value == pytest.approx(exact, rel=1e-12)
        # McNemar's exact test is the sign test on right/wrong differences
        assert sign_test(a.astype(float) - b).p_value == pytest.approx(found.p_value, rel=1e-12)


def test_the_sign_test_and_wilcoxon_are_statsmodels_and_scipy_on_random_scores() -> None:
    rng = np.random.default_rng(11)
    for _ in range(40):
        d = rng.integers(-3, 4, int(rng.integers(5, 200))).astype(float)  # ratings' ties
        statistic, p = statsmodels_sign_test(d, 0)
        found = sign_test(d)
        assert (found.statistic, found.p_value) == pytest.approx((statistic, p), rel=1e-12)
        if d.any():
            expected = scipy.stats.wilcoxon(d)
            found = wilcoxon(d)
            assert (found.statistic, found.p_value) == (expected.statistic, expected.pvalue)
    assert wilcoxon(np.zeros(5)).p_value == 1.0 and sign_test(np.zeros(5)).p_value == 1.0


def test_the_permutation_test_flips_signs_exactly_where_it_can() -> None:
    rng = np.random.default_rng(12)
    d = rng.normal(0.4, 1, 11)  # 2^11 = 2048 sign patterns: scipy enumerates them
    signs = np.array(list(itertools.product([1, -1], repeat=11)))
    means = (signs * d).mean(axis=1)
    observed = d.mean()
    exact = min(1.0, 2 * min((means >= observed).mean(), (means <= observed).mean()))
    assert permutation(d).p_value == pytest.approx(exact, rel=1e-9)


def test_holm_is_statsmodels_multipletests_on_random_p_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # multipletests(method="holm") runs gc.collect() at each call: a fifth of a second in a
    # test process's heap, nothing to the numbers
    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(13)
    for _ in range(100):
        p = rng.random(int(rng.integers(1, 30))) ** 3
        adjusted = holm(p)
        reject, expected, *_ = multipletests(p, alpha=0.05, method="holm")
        assert np.array_equal(adjusted, expected)
        # the verdict is the adjusted p-value's, the same as multipletests' rejections
        assert np.array_equal(adjusted <= 0.05, reject)
    # an untested comparison (NaN) is left out of the family
    mixed = holm([0.01, float("nan"), 0.04])
    assert np.isnan(mixed[1]) and np.array_equal(
        mixed[[0, 2]], multipletests([0.01, 0.04], method="holm")[1]
    )


def _scores(values: np.ndarray, cluster: bool = False) -> Scores:
    keys = tuple(f"{81 + i // 2}/{1 + i % 2}" for i in range(values.shape[0]))
    return Scores(keys, tuple(mt_bench_question(k) if cluster else k for k in keys), values)


def test_each_outcome_gets_its_test_and_significance_only_after_holm() -> None:
    rng = np.random.default_rng(14)
    right_a = (rng.random((120, 1, 1)) < 0.7).astype(float)
    right_b = (rng.random((120, 1, 1)) < 0.5).astype(float)
    one = compare(_scores(right_a), _scores(right_b), "right_wrong", name="a - b")
    assert one.test == mcnemar(right_a[:, 0, 0], right_b[:, 0, 0])
    assert one.difference.mean == pytest.approx(right_a.mean() - right_b.mean())

    # right/wrong over repeats: accuracies per instance, a permutation test
    repeated = compare(
        _scores((rng.random((120, 3, 1)) < 0.7).astype(float)),
        _scores((rng.random((120, 3, 1)) < 0.5).astype(float)),
        "right_wrong",
    )
    assert repeated.test.method.startswith("paired permutation") and repeated.test.n == 120

    # MT-Bench: 60 questions of two turns, the test's units the questions
    ratings_a = rng.integers(1, 11, (120, 2, 2)).astype(float)
    ratings_b = rng.integers(1, 11, (120, 2, 2)).astype(float)
    scored = compare(_scores(ratings_a, True), _scores(ratings_b, True), "score")
    assert scored.test.method.startswith("paired permutation")
    assert (scored.test.n, scored.difference.n, scored.difference.instances) == (60, 60, 120)
    with pytest.raises(ValueError, match="0 or 1"):
        compare(_scores(ratings_a), _scores(ratings_b), "right_wrong")

    family = correct([one, repeated, scored])
    raw = [one.test.p_value, repeated.test.p_value, scored.test.p_value]
    assert [c.p_holm for c in family] == list(multipletests(raw, method="holm")[1])
    assert [c.significant for c in family] == list(multipletests(raw, method="holm")[0])
    assert family[0].label.startswith("significant at 0.05 (p = ")
    assert family[0].label.endswith("Holm-adjusted over 3 comparisons)")
    assert not hasattr(one, "significant")  # a raw p-value is never called significant


def test_a_comparison_without_common_instances_is_not_in_the_family() -> None:
    a = Scores(("x",), ("x",), np.ones((1, 1, 1)))
    b = Scores(("y",), ("y",), np.zeros((1, 1, 1)))
    empty = compare(a, b, "score", name="disjoint")
    assert empty.test.n == 0 and empty.difference.n == 0
    some = compare(_scores(np.ones((30, 1, 1))), _scores(np.zeros((30, 1, 1))), "score")
    family = correct([empty, some])
    assert family[0].label == "not tested" and not family[0].significant
    assert family[1].family == 1 and family[1].p_holm == some.test.p_value
