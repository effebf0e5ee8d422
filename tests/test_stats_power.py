"""`eval.stats.power`: the sizes it plans reach the power it promises, in simulation, with the
test the report runs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.stats

from eval.stats.power import (
    Noise,
    designs,
    detectable,
    mcnemar_power,
    needed,
    needed_mcnemar,
)
from eval.stats.repeats import Scores, difference
from eval.stats.significance import permutation_p
from moa.errors import ConfigError

SIMULATIONS = 2000  # power 0.8 is then known to +-1.8 points


def test_a_planned_score_comparison_with_repeats_has_the_power_it_promises() -> None:
    """Unit differences: between instances 0.8, per generation 1.2, per judgment 0.6; two
    generations judged twice, a true difference of 0.3; tested as the report tests scores
    (the sign-flip permutation test, here with 999 resamples)."""
    noise = Noise(instance=0.8, generation=1.2, judge=0.6, source="stated")
    plan = needed(0.3, noise, repeats=2, judgments=2)
    assert plan.sd == pytest.approx(np.sqrt(0.8 + 1.2 / 2 + 0.6 / 4))
    n = plan.units
    rng = np.random.default_rng(20)
    units = (
        0.3
        + rng.normal(0, np.sqrt(0.8), (SIMULATIONS, n))
        + rng.normal(0, np.sqrt(1.2), (SIMULATIONS, n, 2)).mean(axis=2)
        + rng.normal(0, np.sqrt(0.6), (SIMULATIONS, n, 2, 2)).mean(axis=(2, 3))
    )
    achieved = (permutation_p(units, resamples=999) <= 0.05).mean()
    assert abs(achieved - 0.8) <= 0.03
    # and what a run of that size can detect is the difference it was planned for
    smallest = detectable(n, noise, repeats=2, judgments=2)
    assert smallest.difference == pytest.approx(0.3, rel=0.02) and smallest.difference <= 0.3


def test_a_planned_right_wrong_comparison_has_the_power_of_mcnemars_exact_test() -> None:
    """a right and b wrong on 20% of instances, the reverse on 12%: eight points of accuracy."""
    plan = needed_mcnemar(0.08, 0.32)
    rng = np.random.default_rng(21)
    tables = rng.multinomial(plan.units, [0.2, 0.12, 0.68], size=SIMULATIONS)
    a_only, b_only = tables[:, 0], tables[:, 1]
    # McNemar's exact p-value, as statsmodels computes it (tests/test_stats_significance.py)
    p = np.minimum(1, 2 * scipy.stats.binom.cdf(np.minimum(a_only, b_only), a_only + b_only, 0.5))
    achieved = (p <= 0.05).mean()
    assert abs(achieved - 0.8) <= 0.03
    assert mcnemar_power(plan.units, 0.08, 0.32) >= 0.8 > mcnemar_power(plan.units - 1, 0.08, 0.32)
    # the normal approximation would promise 0.8 with fewer, and deliver less
    approximate = needed(0.08, Noise(0.32 - 0.08**2, 0, 0, "stated")).units
    assert approximate < plan.units and mcnemar_power(approximate, 0.08, 0.32) < 0.79


def test_noise_is_read_from_an_existing_pair_of_runs() -> None:
    """805 instances, three generations judged twice: per variant, a variant-by-instance
    variance 0.5, generation 0.4, judge 0.3 (the instance's own 1.0 is shared and cancels)."""
    rng = np.random.default_rng(22)
    n, g, k = 805, 3, 2
    shared = rng.normal(0, 1.0, (n, 1, 1))

    def run() -> np.ndarray:
        return (
            shared
            + rng.normal(0, np.sqrt(0.5), (n, 1, 1))
            + rng.normal(0, np.sqrt(0.4), (n, g, 1))
            + rng.normal(0, np.sqrt(0.3), (n, g, k))
        )

    keys = tuple(str(i) for i in range(n))
    noise = Noise.of_difference(difference(Scores(keys, keys, run()), Scores(keys, keys, run())))
    assert noise.instance == pytest.approx(2 * 0.5, rel=0.2)
    assert noise.generation == pytest.approx(2 * 0.4, rel=0.2)
    assert noise.judge == pytest.approx(2 * 0.3, rel=0.2)
    assert noise.source == "a paired difference over 805 units"


def test_repeats_buy_only_what_was_seen_to_vary() -> None:
    seen = Noise(instance=0.5, generation=1.0, judge=1.0, source="stated")
    options = designs(0.2, seen, available=300)
    by_design = {(o.repeats, o.judgments): o for o in options}
    assert by_design[(3, 3)].units < by_design[(3, 1)].units < by_design[(1, 1)].units
    assert by_design[(1, 1)].fits is False and by_design[(3, 3)].fits is True
    assert [o.judged for o in options] == sorted(o.judged for o in options)
    unseen = Noise(instance=2.5, generation=0.0, judge=0.0, source="one run, judged once")
    assert needed(0.2, unseen, repeats=3).units == needed(0.2, unseen).units


@pytest.mark.parametrize(
    "call",
    [
        lambda: needed(0.0, Noise(1, 0, 0, "stated")),
        lambda: needed(0.1, Noise(1, 0, 0, "stated"), power=1.2),
        lambda: needed(0.1, Noise(1, 0, 0, "stated"), repeats=0),
        lambda: detectable(1, Noise(1, 0, 0, "stated")),
        lambda: needed_mcnemar(0.3, 0.2),
    ],
)
def test_impossible_plans_are_one_clear_refusal(call: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        call()
