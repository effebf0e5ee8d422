"""Power before spending: the instances and repeats a paired comparison needs to detect a
difference, and the smallest difference a configured run can detect.

A paired difference's unit (an instance, or MT-Bench's question) varies by `Noise`: a part
between units, which only more units shrink, a part per generation, which repeats shrink, and a
part per judgment, which judge repeats shrink too. With G repeats and K judgments per answer a
unit's variance is instance + generation / G + judge / (G K); the test is taken to be a paired
t-test on the units (statsmodels' `TTestPower`), which the permutation test the report runs
matches closely at these sizes. Right/wrong outcomes judged once are tested with McNemar's
exact test, which is conservative: their sizes come from that test's exact power instead
(`needed_mcnemar`), given the share of instances on which the two variants disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from statsmodels.stats.power import TTestPower

from eval.stats.repeats import Estimate
from moa.errors import ConfigError

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class Noise:
    """The variance of one unit's paired difference with one generation judged once, by source;
    a source the data could not separate is 0 here and inside the part above it (judge in
    generation, generation in instance), so that repeats are never credited with shrinking
    what was not seen to vary. `source` says where the numbers come from."""

    instance: float
    generation: float
    judge: float
    source: str

    def variance(self, repeats: int = 1, judgments: int = 1) -> float:
        return self.instance + self.generation / repeats + self.judge / (repeats * judgments)

    @classmethod
    def of_difference(cls, difference: Estimate, source: str = "") -> Noise:
        """From an existing paired difference of the same benchmark."""
        split = difference.split
        c, g, k = split.clusters, split.repeats, split.judgments
        return cls(
            instance=split.instances * c,
            generation=(split.generation or 0.0) * c * g,
            judge=(split.judge or 0.0) * c * g * k,
            source=source or f"a paired difference over {c} units",
        )

    @classmethod
    def of_run(cls, run: Estimate, *, correlation: float = 0.0, source: str = "") -> Noise:
        """For two variants each varying as `run` does, their instance effects correlated by
        `correlation` (0, the default, assumes nothing shared: pairing then gains nothing, so
        the numbers err on the side of more instances)."""
        one = cls.of_difference(run)
        return cls(
            instance=2 * (1 - correlation) * one.instance,
            generation=2 * one.generation,
            judge=2 * one.judge,
            source=source
            or f"twice one run's variance over {run.n} units, instance correlation {correlation}",
        )


@dataclass(frozen=True)
class SampleSize:
    """Units (instances; MT-Bench's questions) a paired comparison needs to detect `difference`
    with `power` at two-sided `alpha`, with `repeats` generations of each variant and
    `judgments` per answer; `fits` when it is at most the units the benchmark has (None:
    not said)."""

    units: int
    repeats: int
    judgments: int
    difference: float
    sd: float
    alpha: float
    power: float
    fits: bool | None
    method: str

    @property
    def generations(self) -> int:
        """Answers to generate per variant."""
        return self.units * self.repeats

    @property
    def judged(self) -> int:
        """Judgments per variant."""
        return self.units * self.repeats * self.judgments


@dataclass(frozen=True)
class Detectable:
    """The smallest difference `units` paired units detect with `power` at two-sided `alpha`."""

    difference: float
    units: int
    repeats: int
    judgments: int
    sd: float
    alpha: float
    power: float
    method: str


def _check(alpha: float, power: float, repeats: int, judgments: int) -> None:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ConfigError(f"alpha ({alpha}) and power ({power}) must be between 0 and 1")
    if repeats < 1 or judgments < 1:
        raise ConfigError(f"repeats ({repeats}) and judgments ({judgments}) must be at least 1")


def _method(noise: Noise, repeats: int, judgments: int) -> str:
    return (
        f"paired t-test power (statsmodels TTestPower), unit variance instance + generation / "
        f"{repeats} + judge / {repeats * judgments}, from {noise.source}"
    )


def needed(
    difference: float,
    noise: Noise,
    *,
    repeats: int = 1,
    judgments: int = 1,
    available: int | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> SampleSize:
    """The units a paired comparison needs to detect a true `difference` (in the score's own
    units: 0.05 for five points of win rate or accuracy on a 0-1 scale)."""
    _check(alpha, power, repeats, judgments)
    if not difference or not math.isfinite(difference):
        raise ConfigError(f"the difference to detect must be a nonzero number, not {difference}")
    sd = math.sqrt(noise.variance(repeats, judgments))
    if sd == 0:
        units = 2
    else:
        effect = abs(difference) / sd
        solved = TTestPower().solve_power(effect_size=effect, alpha=alpha, power=power)
        units = max(2, math.ceil(float(solved)))
    return SampleSize(
        units=units,
        repeats=repeats,
        judgments=judgments,
        difference=abs(difference),
        sd=sd,
        alpha=alpha,
        power=power,
        fits=None if available is None else units <= available,
        method=_method(noise, repeats, judgments),
    )


def designs(
    difference: float,
    noise: Noise,
    *,
    available: int | None = None,
    repeats: Sequence[int] = (1, 2, 3),
    judgments: Sequence[int] = (1, 2, 3),
    alpha: float = ALPHA,
    power: float = POWER,
) -> list[SampleSize]:
    """`needed` for each number of repeats and judgments, fewest judgments in all first: where
    the benchmark has too few instances, repeats are what is left to buy."""
    options = []
    for g in repeats:
        for k in judgments:
            option = needed(
                difference,
                noise,
                repeats=g,
                judgments=k,
                available=available,
                alpha=alpha,
                power=power,
            )
            options.append(option)
    return sorted(options, key=lambda s: (s.judged, s.generations))


def detectable(
    units: int,
    noise: Noise,
    *,
    repeats: int = 1,
    judgments: int = 1,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Detectable:
    """The smallest true difference a comparison on `units` paired units detects."""
    _check(alpha, power, repeats, judgments)
    if units < 2:
        raise ConfigError(f"a paired comparison needs at least 2 instances, not {units}")
    sd = math.sqrt(noise.variance(repeats, judgments))
    effect = float(TTestPower().solve_power(nobs=units, alpha=alpha, power=power))
    return Detectable(
        difference=effect * sd,
        units=units,
        repeats=repeats,
        judgments=judgments,
        sd=sd,
        alpha=alpha,
        power=power,
        method=_method(noise, repeats, judgments),
    )


def mcnemar_power(units: int, difference: float, discordance: float, alpha: float = ALPHA) -> float:
    """The exact power of McNemar's exact two-sided test on `units` pairs, when a share
    `discordance` of them has exactly one side right and a's rate exceeds b's by `difference`:
    the discordant count is binomial, and given it, a's share of the discordant pairs is
    binomial with p = (discordance + difference) / (2 discordance)."""
    m = np.arange(units + 1)
    # largest k with 2 P(X <= k | m, 1/2) <= alpha (-1: none), the rejection region's edge
    edge = scipy.stats.binom.ppf(alpha / 2, m, 0.5).astype(int)
    edge = np.where(2 * scipy.stats.binom.cdf(edge, m, 0.5) <= alpha, edge, edge - 1)
    q = (discordance + difference) / (2 * discordance)
    reject = np.where(
        edge >= 0,
        scipy.stats.binom.cdf(edge, m, q) + scipy.stats.binom.sf(m - edge - 1, m, q),
        0.0,
    )
    return float((scipy.stats.binom.pmf(m, units, discordance) * reject).sum())


def needed_mcnemar(
    difference: float,
    discordance: float,
    *,
    available: int | None = None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> SampleSize:
    """The instances a right/wrong comparison judged once needs for McNemar's exact test to
    detect `difference` (0.05: five points of accuracy), when a share `discordance` of the
    instances has one variant right and the other wrong (from existing runs: the mean absolute
    difference of their right/wrong outcomes). The size where the exact power crosses `power`,
    found by bisection (it zigzags with size by a point or so, so a size or two below may
    reach it too)."""
    _check(alpha, power, 1, 1)
    if not 0 < abs(difference) <= discordance <= 1:
        raise ConfigError(
            f"a difference of {difference} needs a discordance between it and 1, not {discordance}"
        )
    noise = Noise(discordance - difference**2, 0.0, 0.0, f"discordance {discordance}")

    def reaches(n: int) -> bool:
        return mcnemar_power(n, abs(difference), discordance, alpha) >= power

    low, high = 1, needed(difference, noise, alpha=alpha, power=power).units
    while not reaches(high):
        low, high = high, 2 * high
    while high - low > 1:  # bisection: power(low) < target <= power(high)
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    units = high
    return SampleSize(
        units=units,
        repeats=1,
        judgments=1,
        difference=abs(difference),
        sd=math.sqrt(noise.instance),
        alpha=alpha,
        power=power,
        fits=None if available is None else units <= available,
        method=f"exact power of McNemar's exact test, discordance {discordance}",
    )
