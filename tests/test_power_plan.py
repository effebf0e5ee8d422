"""`task=plan plan.detect=...`: the designs a comparison needs, their cost, and what the configured
run detects, from existing runs' variance or a stated default. Offline, on the scripted fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.plan_figures import PlanResult, VariantPlan
from eval.power_plan import Costs, costs_of, plan_power
from eval.report.precision import scores_of
from eval.runs import load_runs
from eval.settings import resolve
from eval.stats.power import Noise, detectable, needed
from eval.stats.repeats import difference
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA, scripted_config, scripted_runs

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
MT = ("benchmark=mt_bench", "benchmark.limit=6")


@needs_data
def test_without_runs_the_default_is_stated_and_used(tmp_path: Path) -> None:
    settings = resolve(scripted_config(tmp_path, *MT, "moa=moa_lite", "plan.detect=0.5"))
    found = plan_power(settings, None)
    assert "stated default" in found.noise.source and found.costs is None
    noise = Noise(12.5, 0.0, 0.0, "")
    assert {o.units for o in found.options} == {needed(0.5, noise).units}
    assert found.options[0].fits is False  # 80 questions are too few for half a point
    assert found.configured.units == 6
    assert found.configured.difference == pytest.approx(detectable(6, noise).difference)
    text = found.render()
    assert "stated default" in text and "TTestPower" in text and "detects" in text


@needs_data
def test_the_noise_is_read_from_a_paired_difference_of_existing_runs(tmp_path: Path) -> None:
    scripted_runs(tmp_path, [(*MT, "moa=moa", "judge.repeats=2"),
                             (*MT, "moa=moa_lite", "judge.repeats=2")])  # fmt: skip
    settings = resolve(
        scripted_config(tmp_path, *MT, "moa=moa_lite", "plan.detect=1", "judge.repeats=3")
    )
    found = plan_power(settings, None)
    runs = {r.variant: r for r in load_runs(tmp_path / "runs")[0]}
    paired = difference(scores_of([runs["moa_lite"]]), scores_of([runs["moa"]]))
    expected = Noise.of_difference(paired)
    assert "moa_lite@scripted~first6 minus moa@scripted~first6" in found.noise.source
    assert found.noise.judge == pytest.approx(expected.judge) and expected.judge > 0
    assert found.noise.instance == pytest.approx(expected.instance)
    assert found.configured.judgments == 3
    assert found.configured.difference == pytest.approx(
        detectable(6, expected, judgments=3).difference
    )
    # more judgments never need more instances when the judge was seen to vary
    by_judgments = {o.judgments: o.units for o in found.options if o.repeats == 1}
    assert by_judgments[3] <= by_judgments[2] <= by_judgments[1]


def test_costs_are_the_configured_variants_per_instance_and_judgment() -> None:
    result = PlanResult([VariantPlan("moa", usd=10.0, judge_usd=4.0)], frozenset())
    costs = costs_of(result, instances=5, judge_repeats=2)
    assert costs == Costs(generation=2.0, judgment=0.4)
    assert costs.of(units=10, repeats=2, judgments=3) == pytest.approx(10 * 2 * (2.0 + 3 * 0.4))


@needs_data
@pytest.mark.parametrize("bad", ["plan.detect=150", "plan.detect=0", "plan.power=1.5"])
def test_an_impossible_difference_is_one_clear_line(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        settings = resolve(scripted_config(tmp_path, "benchmark=alpaca_eval", bad))
        plan_power(settings, None)
    assert bad.split("=")[0] in str(refused.value) and "\n" not in str(refused.value)
