"""Power before spending (`task=plan plan.detect=<difference>`): the instances, generation repeats
and judge repeats a paired comparison needs to detect a difference, what each design costs, and
the smallest difference the configured run can detect (`eval.stats.power`).

The noise is read from the judged runs of the same benchmark under `results_dir`: a paired
difference between the reference variant and another configuration by the same judge on the
same instances if there is one, else one configuration's own variance doubled (nothing assumed
shared between the two variants, which errs towards more instances), else a stated default.
Costs are the configured variant's, per variant, from the call plan printed above (a comparison
runs two variants; what the cache holds already is not subtracted here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eval.generate import judge_address, load_instances, task_of
from eval.plan_figures import PlanResult
from eval.report.paired_tests import OUTCOMES
from eval.report.precision import groups, scores_of
from eval.runs import Run, load_runs
from eval.settings import Settings
from eval.stats.power import Detectable, Noise, SampleSize, designs, detectable
from eval.stats.repeats import difference, estimate
from eval.stats.significance import Outcome
from moa.errors import ConfigError

# With no run to read: a paired difference of verdicts varies at most as two independent fair
# ones (0/100 win points, 0/1 right or wrong); a 1-10 rating's, as two independent ratings of
# sd 2.5.
DEFAULTS = {
    "preference": (5000.0, "a stated default: two independent fair verdicts, 0 or 100 each"),
    "right_wrong": (0.5, "a stated default: two independent fair right/wrong outcomes"),
    "score": (12.5, "a stated default: two independent 1-10 ratings of sd 2.5"),
}
# The largest difference each outcome's scale allows, and the scale in words.
SCALES = {"preference": (100.0, "points of win rate (0-100)"),
          "right_wrong": (1.0, "a share of accuracy (0.02 is two points)"),
          "score": (9.0, "rating points (1-10)")}  # fmt: skip


METHOD = (
    "paired t-test power (statsmodels TTestPower) on a unit's variance instance + "
    "generation / repeats + judge / (repeats x judgments)"
)


@dataclass(frozen=True)
class Costs:
    """Dollars per instance generated and per instance judged once, of one variant."""

    generation: float
    judgment: float

    def of(self, units: int, repeats: int, judgments: int) -> float:
        return units * repeats * (self.generation + judgments * self.judgment)


def costs_of(result: PlanResult, instances: int, judge_repeats: int) -> Costs:
    """The configured variant's costs from its call plan (its first run, as if alone)."""
    first = result.variants[0]
    return Costs(first.usd / max(instances, 1), first.judge_usd / max(instances * judge_repeats, 1))


def noise_of(
    runs: Sequence[Run], benchmark: str, judge: str, reference: str, outcome: Outcome
) -> Noise:
    """The unit variance of a paired difference, from the runs as the module says."""
    mine = [r for r in runs if r.benchmark == benchmark and (not judge or r.judge == judge)]
    found = groups(mine)
    bases = {(g[0].judge, g[0].subset): g for g in found if g[0].variant == reference}
    for group in found:
        base = bases.get((group[0].judge, group[0].subset))
        if base is not None and base is not group:
            paired = difference(scores_of(group), scores_of(base))
            if paired.n > 1:
                source = f"{group[0].name} minus {base[0].name} ({paired.n} units)"
                return Noise.of_difference(paired, source)
    if found:
        largest = max(found, key=lambda g: g[0].n)
        one = estimate(scores_of(largest))
        if one.n > 1:
            return Noise.of_run(one, source=f"twice the variance of {largest[0].name}")
    variance, source = DEFAULTS[outcome]
    return Noise(variance, 0.0, 0.0, source)


@dataclass(frozen=True)
class PowerPlan:
    """What `plan.detect` asks: designs that detect it, and what the configured run detects."""

    options: list[SampleSize]
    configured: Detectable
    noise: Noise
    costs: Costs | None

    def render(self) -> str:
        first = self.options[0]
        lines = [
            f"to detect a difference of {first.difference:g} with power {first.power:g} "
            f"(two-sided alpha {first.alpha:g}), in the per-instance score's units; noise from "
            f"{self.noise.source}; method: {METHOD}",
            f"{'instances':>10} {'repeats':>8} {'judgments':>10} {'fits':>5} {'USD/variant':>12}",
        ]
        for o in self.options:
            usd = (
                ""
                if self.costs is None
                else f"{self.costs.of(o.units, o.repeats, o.judgments):.2f}"
            )
            fits = "" if o.fits is None else ("yes" if o.fits else "no")
            lines.append(f"{o.units:>10} {o.repeats:>8} {o.judgments:>10} {fits:>5} {usd:>12}")
        c = self.configured
        lines.append(
            f"the configured run ({c.units} instances, {c.repeats} repeat(s), {c.judgments} "
            f"judgment(s) each) detects {c.difference:.4g} with power {c.power:g}"
        )
        return "\n".join(lines)


def power_plan(
    detect: float,
    power: float,
    *,
    outcome: Outcome,
    available: int,
    configured: int,
    repeats: int,
    judgments: int,
    noise: Noise,
    costs: Costs | None,
) -> PowerPlan:
    """Designs of 1-3 generation repeats and 1-3 judge repeats for `detect` (fewest judgments
    first), and the configured run's smallest detectable difference."""
    largest, unit = SCALES[outcome]
    if not 0 < abs(detect) < largest:
        raise ConfigError(f"plan.detect={detect}: give the difference in {unit}, below {largest:g}")
    options = designs(detect, noise, available=available, power=power)
    smallest = detectable(configured, noise, repeats=repeats, judgments=judgments, power=power)
    return PowerPlan(options, smallest, noise, costs)


def outcome_for(kind: str) -> Outcome:
    return OUTCOMES.get(kind, "score")


def runs_under(results_dir: Path) -> list[Run]:
    return load_runs(results_dir)[0] if results_dir.is_dir() else []


def plan_power(settings: Settings, result: PlanResult | None) -> PowerPlan:
    """`plan.detect` for the configured benchmark, variant and judge (`task=plan`)."""
    task = task_of(settings)
    outcome = outcome_for(task.judging.kind)
    judge = judge_address(settings, task) if settings.judge.enabled else ""
    runs = runs_under(settings.results_dir)
    noise = noise_of(runs, settings.benchmark.name, judge, settings.report.reference, outcome)
    chosen = len(load_instances(settings, task))
    judged = settings.judge.repeats if settings.judge.enabled else 1
    return power_plan(
        settings.plan.detect or 0.0,
        settings.plan.power,
        outcome=outcome,
        available=len(task.load()),
        configured=chosen,
        repeats=settings.repeats,
        judgments=judged,
        noise=noise,
        costs=None if result is None else costs_of(result, chosen, judged),
    )
