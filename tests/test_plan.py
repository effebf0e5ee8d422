"""Plan mode: call counts with sharing, agreement with real runs, cost and TFLOPs arithmetic."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from eval.benchmarks.base import Instance
from eval.cli import dispatch
from eval.generate import load_instances, task_of
from eval.judges import alpaca_eval as ae
from eval.judges.pairwise import request_preferences
from eval.mixture_config import build_mixture
from eval.plan import PlanResult, open_cache, plan, plan_points, sweep_totals
from eval.rundir import JUDGE_LEDGER, LEDGER
from eval.settings import CONF_DIR, resolve, to_dict
from moa.agents import Agent
from moa.cache import CacheMode, CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient, endpoint_identity
from moa.flops import call_tflops, turn_tflops
from moa.ledger import read_ledger
from moa.mixture import Mixture, MixtureSpec
from moa.prompts import AGGREGATE_AND_SYNTHESIZE, RANK_AND_SELECT, inject_references
from moa.tokens import MESSAGE_OVERHEAD, estimate_prompt
from moa.types import (
    CallOutcome,
    CallRecord,
    ChatMessage,
    Completion,
    GenerateConfig,
    TokenLogprob,
)

from .kit.cli import SHARED_DATA

CONFIG = GenerateConfig(temperature=0.7, max_tokens=2048)
MODELS = ("qwen1.5-110b", "qwen1.5-72b", "wizardlm-2-8x22b", "llama-3-70b", "mixtral-8x22b", "dbrx")


def presets(*variants: tuple[str, ...]) -> tuple[list[MixtureSpec], Catalogue]:
    """Each variant is a `moa=` preset plus overrides, composed as `-m` would compose it."""
    specs = []
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for name, *overrides in variants:
            cfg = compose("config", [f"moa={name}", "provider_override=scripted", *overrides])
            catalogue = resolve(cfg).catalogue
            specs.append(build_mixture(to_dict(cfg.moa), catalogue))
    return specs, catalogue


def instance(id: str, *turns: str, category: str | None = None) -> Instance:
    return Instance(id=id, turns=turns, category=category, references=None, meta={})


def questions(n: int) -> list[Instance]:
    return [instance(str(i), f"Question {i}: explain something.") for i in range(n)]


def constant(_: Instance) -> GenerateConfig:
    return CONFIG


async def test_moa_lite_after_moa_adds_no_call() -> None:
    (moa, lite), catalogue = presets(("moa",), ("moa_lite",))
    items = questions(10)
    assert (await plan([moa], items, constant, catalogue)).variants[0].calls == 130
    assert (await plan([lite], items, constant, catalogue)).unique_calls == 70
    both = await plan([moa, lite], items, constant, catalogue)
    assert (both.total_calls, both.unique_calls) == (200, 130)
    assert [(v.calls, v.new_calls) for v in both.variants] == [(130, 130), (70, 0)]
    assert both.variants[1].new_usd == 0.0 < both.variants[1].usd
    # The other order shares as much: MoA then adds layer 2 but Qwen1.5-72B, and its aggregator.
    reverse = await plan([lite, moa], items, constant, catalogue)
    assert [v.new_calls for v in reverse.variants] == [70, 60]


async def test_a_multirun_list_makes_layer_one_once() -> None:
    specs, catalogue = presets(("moa",), ("moa_lite",))
    items = questions(805)
    result = await plan(specs, items, constant, catalogue)
    assert result.unique_calls == 13 * 805 and result.total_calls == 20 * 805
    # Layer 1 is each proposer answering the question alone: the very requests of the six
    # single-model baselines, made once for both mixtures.
    singles, _ = presets(*(("single", f"moa.aggregator={m}") for m in MODELS))
    alone = await plan(singles, items, constant, catalogue)
    assert len(alone.identities) == 6 * 805
    assert alone.identities <= result.identities
    after = await plan(singles, items, constant, catalogue, already_cached=result.identities)
    assert after.unique_calls == 0


async def test_ranking_is_not_aggregating() -> None:
    # The ranker (Qwen1.5-110B over layer 1) sends MoA's layer-2 Qwen1.5-110B request but for
    # the preamble and max_tokens: it must not count as shared.
    (moa, ranker), catalogue = presets(("moa",), ("llm_ranker",))
    result = await plan([moa, ranker], questions(4), constant, catalogue)
    assert result.variants[1].new_calls == 4


async def test_an_earlier_plan_counts_as_cached() -> None:
    (moa, lite), catalogue = presets(("moa",), ("moa_lite",))
    items = questions(3)
    first = await plan([lite], items, constant, catalogue)
    later = await plan([moa], items, constant, catalogue, already_cached=first.identities)
    assert later.variants[0].new_calls == 13 * 3 - 7 * 3


async def test_a_suite_of_paper_size_plans_with_sharing() -> None:
    models = ("qwen1.5-110b", "qwen1.5-72b", "llama-3-70b", "dbrx", "gpt-4o", "gpt-4")
    variants: list[tuple[str, ...]] = [("moa",), ("moa_lite",), ("moa_gpt4o",), ("self_moa",)]
    variants += [("moa", f"moa.layers={n}") for n in (2, 4, 5)]
    variants += [("llm_ranker", f"moa.layers={n}") for n in (2, 3)]
    variants += [("single_proposer", f"moa.samples={n}") for n in range(1, 7)]
    variants += [("single", f"moa.aggregator={m}") for m in models]
    variants += [("moa", f"moa.aggregator={m}") for m in models]
    variants += [("single_proposer", f"moa.proposers=[{m}]") for m in models]
    specs, catalogue = presets(*variants)
    items = questions(725) + [instance(f"t{i}", f"First {i}.", f"Then {i}.") for i in range(80)]
    result = await plan(specs, items, constant, catalogue)
    assert result.total_calls > 200_000 and 0 < result.unique_calls < result.total_calls


# Real runs: the plan's calls must be the calls the mixture makes, and its new calls the requests
# the cache lets through.


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[ModelClient]:
    client = ModelClient(
        {"scripted": {"provider": "scripted"}},
        Catalogue({}, ["scripted"]),
        CallCache(tmp_path / "c.sqlite"),
    )
    yield client
    await client.aclose()


def by_category(item: Instance) -> GenerateConfig:
    """As MT-Bench does: deterministic decoding for some categories."""
    return CONFIG.merged(temperature=0.0) if item.category == "math" else CONFIG


async def test_the_plan_counts_the_requests_a_real_run_sends(scripted: ModelClient) -> None:
    specs, catalogue = presets(
        ("moa",), ("moa_lite",), ("llm_ranker",), ("single_proposer", "moa.samples=3"), ("single",)
    )
    items = [
        instance("s1", "Write a limerick about tea."),
        instance("s2", "Name three prime numbers."),
        instance("s3", "Write a limerick about tea.", category="math"),  # same text, other config
        instance("t1", "Plan a picnic.", "Now make it rainy."),
        instance("t2", "Name three prime numbers.", "Now three even ones."),  # turn 1 is s2's
    ]
    predicted = await plan(specs, items, by_category, catalogue)
    made, sent = [], []
    first_outputs: dict[str, list[str | None]] = {}
    for spec in specs:
        mixture = Mixture(spec, scripted)
        before = scripted.ledger.totals.calls, scripted.ledger.totals.requests
        traces = await asyncio.gather(*(mixture.converse(i.turns, by_category(i)) for i in items))
        made.append(scripted.ledger.totals.calls - before[0])
        sent.append(scripted.ledger.totals.requests - before[1])
        assert all(t.outputs is not None for t in traces)
        first_outputs[spec.name] = [t.turns[0].output for t in traces if len(t.turns) == 2]
    # A later turn can share with another variant whose earlier output is the proposal the ranker
    # picked; no plan can foresee a pick, so these instances must not meet that case.
    ranked = first_outputs.pop("llm_ranker_l2")
    assert not set(ranked) & {o for outputs in first_outputs.values() for o in outputs}
    assert [v.calls for v in predicted.variants] == made
    assert [v.new_calls for v in predicted.variants] == sent
    assert sent[1] == 2 * 7  # MoA-Lite after MoA: only the second turns, which hold its answers
    assert sent[4] == 2  # single Qwen1.5-110B: its first turns are MoA's layer-1 requests


async def test_a_ranked_output_is_never_taken_for_the_proposal() -> None:
    # The ranker picks among x/a and x/b; had it picked x/a, its second turn's x/a request would
    # be the single x/a's. The plan cannot know the pick, so it counts that request as new.
    ranker = MixtureSpec.paper("rank", ((Agent("x/a"), Agent("x/b")),), Agent("x/a"), mode="rank")
    single = MixtureSpec.paper("single", (), Agent("x/a"))
    items = [instance("1", "First.", "Then.")]
    result = await plan([single, ranker], items, lambda _: GenerateConfig(), CATALOGUE)
    assert [(v.calls, v.new_calls) for v in result.variants] == [(2, 2), (6, 5)]


# Arithmetic on hand-computable cases: requests are estimated by `moa.tokens`, each answer in
# them counted as the tokens estimated for it.

CATALOGUE = Catalogue(
    {
        "a": {"address": "x/a", "price_in": 1.0, "price_out": 2.0, "active_params_b": 10},
        "b": {"address": "x/b", "price_in": 3.0, "price_out": 4.0, "active_params_b": 20},
        "free": {"address": "x/free"},  # no price, no size
    },
    ["x"],
)
TWO_TO_ONE = MixtureSpec.paper("two_to_one", ((Agent("x/a"), Agent("x/b")),), Agent("x/a"))


def asked(*turns: str) -> list[ChatMessage]:
    return [{"role": "user", "content": t} for t in turns]


def aggregated(text: str, answers: int, each: int) -> int:
    """Tokens of an aggregator's request over `answers` references of `each` tokens."""
    empty = inject_references(asked(text), [""] * answers, AGGREGATE_AND_SYNTHESIZE)
    return estimate_prompt(empty) + answers * each


async def test_cost_of_a_two_proposer_mixture() -> None:
    text = "x" * 40
    items = [instance("1", text)]
    result = await plan(
        [TWO_TO_ONE], items, lambda _: GenerateConfig(), CATALOGUE, output_tokens=100
    )
    question = estimate_prompt(asked(text))
    aggregator_in = aggregated(text, 2, 100)
    assert aggregator_in > question + 2 * 100  # the preamble counts too
    (v,) = result.variants
    assert (v.calls, v.input_tokens, v.output_tokens) == (3, 2 * question + aggregator_in, 300)
    expected = (question * 1 + 100 * 2) + (question * 3 + 100 * 4) + (aggregator_in * 1 + 100 * 2)
    assert v.usd == pytest.approx(expected / 1e6) and v.new_usd == v.usd
    assert result.total_usd == result.unique_usd == v.usd and v.unpriced == 0


async def test_outputs_are_capped_by_max_tokens_and_the_ranker_cap() -> None:
    ranker = MixtureSpec.paper(
        "rank",
        ((Agent("x/a"), Agent("x/b")),),
        Agent("x/a", decoding=(("max_tokens", 5),)),
        mode="rank",
    )
    estimate = {"x/a": 100, "x/b": 30}.__getitem__
    config = GenerateConfig(max_tokens=50)
    result = await plan(
        [ranker], [instance("1", "")], lambda _: config, CATALOGUE, output_tokens=estimate
    )
    assert result.variants[0].output_tokens == 50 + 30 + 5


async def test_the_second_turn_carries_the_first_output() -> None:
    single = MixtureSpec.paper("single", (), Agent("x/a"))
    first, second = "x" * 40, "y" * 80
    items = [instance("1", first, second)]
    (v,) = (
        await plan([single], items, lambda _: GenerateConfig(), CATALOGUE, output_tokens=7)
    ).variants
    answer = MESSAGE_OVERHEAD + 7  # the assistant message holding turn 1's answer
    turn_two = estimate_prompt(asked(first)) + answer + estimate_prompt(asked(second))
    assert v.input_tokens == estimate_prompt(asked(first)) + turn_two


async def test_a_ranked_output_counts_as_the_mean_proposal() -> None:
    ranker = MixtureSpec.paper("rank", ((Agent("x/a"), Agent("x/b")),), Agent("x/a"), mode="rank")
    estimate = {"x/a": 100, "x/b": 30}.__getitem__
    items = [instance("1", "x" * 40, "y" * 80)]
    (v,) = (
        await plan([ranker], items, lambda _: GenerateConfig(), CATALOGUE, output_tokens=estimate)
    ).variants
    first = estimate_prompt(asked("x" * 40))
    history = first + MESSAGE_OVERHEAD + (100 + 30) // 2 + estimate_prompt(asked("y" * 80))
    system = estimate_prompt(inject_references([], ["", ""], RANK_AND_SELECT))
    # Per turn: two proposers on the conversation, the ranker on it and on both proposals.
    turn_one = 2 * first + (system + first + 100 + 30)
    turn_two = 2 * history + (system + history + 100 + 30)
    assert v.input_tokens == turn_one + turn_two
    assert v.output_tokens == 2 * (100 + 30 + 16)  # the ranker's answer: RANKER_MAX_TOKENS


async def test_tflops_sum_the_largest_call_of_each_layer() -> None:
    texts = ("x" * 40, "x" * 80)
    items = [instance(str(i), t) for i, t in enumerate(texts)]
    result = await plan(
        [TWO_TO_ONE], items, lambda _: GenerateConfig(), CATALOGUE, output_tokens=100
    )

    def per_instance(text: str) -> float:
        question = estimate_prompt(asked(text))
        layer_one = max(2 * 10e9 * (question + 100), 2 * 20e9 * (question + 100))  # b is larger
        aggregator = 2 * 10e9 * (aggregated(text, 2, 100) + 100)
        return (layer_one + aggregator) / 1e12

    expected = sum(map(per_instance, texts)) / 2
    assert result.variants[0].tflops == pytest.approx(expected)


def test_the_papers_tflops_rule() -> None:
    assert call_tflops(70, 1000) == pytest.approx(2 * 70e9 * 1000 / 1e12)
    assert math.isnan(call_tflops(None, 1000))
    assert turn_tflops([[1.0, 3.0], [2.0], []]) == 5.0  # the largest call per layer, summed
    assert turn_tflops([]) == 0.0
    assert math.isnan(turn_tflops([[1.0], [2.0, math.nan]]))


async def test_unpriced_models_are_counted_not_summed() -> None:
    spec = MixtureSpec.paper("mixed", ((Agent("x/a"), Agent("x/free")),), Agent("x/a"))
    text = "x" * 40
    items = [instance("1", text)]
    result = await plan(
        [TWO_TO_ONE, spec], items, lambda _: GenerateConfig(), CATALOGUE, output_tokens=100
    )
    _, mixed = result.variants
    assert mixed.unpriced == 1 and result.unpriced == 1
    assert mixed.new_calls == 2  # layer-1 x/a is shared with the first variant
    question = estimate_prompt(asked(text))
    assert mixed.usd == pytest.approx(
        (question + 200) / 1e6 + (aggregated(text, 2, 100) + 200) / 1e6
    )
    assert math.isfinite(result.total_usd) and math.isfinite(result.unique_usd)
    assert math.isnan(mixed.tflops)  # x/free has no active_params_b
    frame = result.to_frame()
    assert list(frame.index) == ["two_to_one", "mixed", "total"]
    assert frame.loc["total", "unpriced"] == 1
    assert frame.loc["total", "calls"] == 6
    rendered = result.render()
    assert "mixed" in rendered and "1 calls have no catalogue price" in rendered
    assert "Unpriced: x/free (1)" in rendered  # named, with how to price it


async def test_a_run_over_the_budget_is_warned_of() -> None:
    # The caps hold per run directory: each variant is checked for the calls it adds.
    single = MixtureSpec.paper("single_a", (), Agent("x/a"))
    mixed = MixtureSpec.paper("mixed", ((Agent("x/a"), Agent("x/free")),), Agent("x/a"))
    items = [instance("1", "x" * 40)]
    result = await plan([TWO_TO_ONE, single, mixed], items, lambda _: GenerateConfig(), CATALOGUE)
    first, alone, _ = result.variants
    assert (first.new_calls, alone.new_calls, alone.calls) == (3, 0, 1)  # single_a: shared
    assert result.budget_warning(None, None) is None
    assert result.budget_warning(None, 3) is None
    over = result.budget_warning(None, 1)
    assert over is not None and over.splitlines() == [
        "two_to_one: the plan passes the budget (3 calls exceed budget.max_calls=1): the run "
        "will stop at the cap; raise it to finish in one go",
        "mixed: the plan passes the budget (2 calls exceed budget.max_calls=1): the run will "
        "stop at the cap; raise it to finish in one go",
    ]
    dollars = result.budget_warning(first.new_usd / 2, None)
    assert dollars is not None
    assert dollars.startswith("two_to_one: the plan passes the budget ($0.00 exceeds budget")
    # A dollar cap needs every model priced: the run would refuse to start.
    assert "mixed: 1 calls have no catalogue price" in dollars
    assert "single_a" not in dollars
    assert dollars in result.render(max_usd=first.new_usd / 2)
    assert "budget" not in result.render()


async def test_a_model_given_by_address_without_a_price_is_named() -> None:
    spec = MixtureSpec.paper(
        "mine", ((Agent("x/a"), Agent("x/mystery-7b")),), Agent("x/mystery-7b")
    )
    result = await plan([spec], questions(3), constant, CATALOGUE)
    assert result.unpriced == 6 and result.unpriced_models == {"x/mystery-7b": 6}
    rendered = result.render()
    assert "6 calls have no catalogue price: not in the dollars. Unpriced: x/mystery-7b (6)" in (
        rendered
    )
    # How to price it, as the run summary says it (`moa.ledger.price_hint`).
    assert "price_in" in rendered and '+catalogue.<name>={address:"x/mystery-7b"' in rendered
    # Endpoints that do not bill need no price: their calls are free, not unpriced.
    free = await plan([spec], questions(3), constant, CATALOGUE, bills=lambda e: e != "x")
    assert free.unpriced == 0 and free.total_usd == 0.0
    assert "no catalogue price" not in free.render()


# Judging, money and the call cache, through the configs a run composes (`plan_points`).

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def config(root: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "config",
            [
                f"data_dir={SHARED_DATA}",
                f"results_dir={root / 'runs'}",
                f"cache.path={root / 'calls.sqlite'}",
                *overrides,
            ],
        )


async def sweep(root: Path, variants: Sequence[str], *overrides: str) -> PlanResult:
    """The plan of one benchmark's `variants` (`moa=` presets), in order, as a sweep runs them."""
    points = [resolve(config(root, *overrides, f"moa={v}")) for v in variants]
    ((_, result),) = await plan_points(points[0], points)
    return result


@needs_data
@pytest.mark.parametrize(
    ("benchmark", "per_instance", "answers", "judge_out"),
    [
        # AlpacaEval: one weighted GPT-4 Turbo call, the answer in it, one token out.
        ("alpaca_eval", 1, 1, 0),
        # MT-Bench: GPT-4 grades each turn, seeing one answer at turn 1 and two at turn 2; its
        # judgment (max_tokens 2048) is estimated like any answer.
        ("mt_bench", 2, 3, 2),
        # FLASK: one GPT-4-0613 review, with the API's default max_tokens.
        ("flask", 1, 1, 1),
    ],
)
async def test_judge_calls_are_counted_and_priced(
    tmp_path: Path, benchmark: str, per_instance: int, answers: int, judge_out: int
) -> None:
    overrides = (f"benchmark={benchmark}", "benchmark.limit=4")
    cfg = resolve(config(tmp_path, *overrides))
    result = await sweep(tmp_path, ["single"], *overrides)
    (v,) = result.variants
    assert v.calls == 4 * len(load_instances(cfg)[0].turns)
    assert (v.judge_calls, v.judge_new_calls) == (4 * per_instance, 4 * per_instance)
    assert v.judge_usd == v.judge_new_usd > 0
    # A judge call's estimate holds the answers it judges, and its own answer unless capped
    # (AlpacaEval's annotator asks for one token): 100 more estimated tokens per answer cost
    # that much more at the judge model's catalogue price.
    (longer,) = (await sweep(tmp_path, ["single"], *overrides, "plan.output_tokens=500")).variants
    judge = cfg.catalogue.resolve(task_of(cfg).judge_model(cfg.judge.section))
    assert judge.price_in is not None and judge.price_out is not None
    more_in, more_out = 4 * answers * 100, 4 * judge_out * 100
    expected = (more_in * judge.price_in + more_out * judge.price_out) / 1e6
    assert longer.judge_usd - v.judge_usd == pytest.approx(expected)
    # The table and the totals show them; with judge=none nothing is judged, nor shown.
    assert {"judge_calls", "judge_new_calls", "judge_usd"} <= set(result.to_frame().columns)
    assert f"Judging: {4 * per_instance:,} calls" in sweep_totals([("b", result)], 400)
    assert f"judging ({judge.address}): {4 * per_instance:,} of" in result.render()
    unjudged = await sweep(tmp_path, ["single"], *overrides, "judge=none")
    assert unjudged.variants[0].judge_calls == 0
    assert "judge_calls" not in unjudged.to_frame().columns
    assert "Judging" not in sweep_totals([("b", unjudged)], 400)


async def test_the_demo_judges_against_the_model_alone(tmp_path: Path) -> None:
    # Per instance the aggregator model alone answers every turn (9 turns in all), then one
    # verdict (8); each first turn is the mixture's own proposal #0: made already.
    (v,) = (await sweep(tmp_path, ["demo"], "benchmark=demo")).variants
    assert (v.judge_calls, v.judge_new_calls) == (9 + 8, 1 + 8)
    assert v.judge_usd == 0.0 and v.unpriced == 0  # the embedded model does not bill


@needs_data
async def test_replayed_proposals_are_free(tmp_path: Path) -> None:
    overrides = ("benchmark=alpaca_eval", "benchmark.limit=3", "judge=none")
    (v,) = (await sweep(tmp_path, ["published_proposers"], *overrides)).variants
    assert v.calls == 3 * 6 and v.unpriced == 0
    # Only the aggregator's calls cost anything: planned with every endpoint billing, the five
    # replayed proposers' calls have no price, and the dollars are the same.
    cfg = resolve(config(tmp_path, *overrides, "moa=published_proposers"))
    catalogue, task = cfg.catalogue, task_of(cfg)
    billed = await plan([cfg.spec], load_instances(cfg, task), task.generation(), catalogue)
    assert billed.unpriced == 3 * 5
    assert v.usd == billed.total_usd > 0 and v.new_usd == v.usd


def new_records(path: Path, skip: int) -> list[dict[str, object]]:
    return list(read_ledger(path))[skip:] if path.exists() else []


@needs_data
@pytest.mark.parametrize("benchmark", ["mt_bench", "alpaca_eval", "flask", "demo"])
async def test_a_half_run_sweep_is_priced_for_what_is_left(tmp_path: Path, benchmark: str) -> None:
    """After a real run of part of a sweep, the plan of the sweep finds those calls (judging's
    too) in the cache, and the calls it says are left are what the sweep's real runs send."""
    # Scripted calls are free: priced here as if they billed, to see the dollars follow.
    base = (
        f"benchmark={benchmark}",
        "provider_override=scripted",
        "++endpoints.scripted.bills=true",
    )
    variants = ["moa_lite", "moa", "llm_ranker"]  # a ranker's pick is known once cached
    if benchmark == "demo":
        # Unless cached, a pick is unknown: the demo's verdict on a ranker that picked the
        # proposal of its own model is a tie without a call, which the plan counts as one.
        variants.pop()
    half = config(tmp_path, *base, "benchmark.limit=2", "moa=moa_lite")
    assert await dispatch(half) == 0
    done = len(list(read_ledger(Path(str(half.run_dir)) / LEDGER)))
    result = await sweep(tmp_path, variants, *base, "benchmark.limit=4")
    lite, *_ = result.variants
    assert lite.cached == done and lite.new_calls == lite.calls - done
    assert 0 < lite.new_usd < lite.usd and 0 < lite.judge_new_calls < lite.judge_calls
    assert f"or in the cache ({done:,})" in result.render()
    for variant, predicted in zip(variants, result.variants, strict=True):
        cfg = config(tmp_path, *base, "benchmark.limit=4", f"moa={variant}")
        run_dir = Path(str(cfg.run_dir))
        before = [len(new_records(run_dir / name, 0)) for name in (LEDGER, JUDGE_LEDGER)]
        assert await dispatch(cfg) == 0
        sent, judged = (
            sum(not r["cached"] for r in new_records(run_dir / name, skip))
            for name, skip in zip((LEDGER, JUDGE_LEDGER), before, strict=True)
        )
        assert (sent, judged) == (predicted.new_calls, predicted.judge_new_calls), variant
    after = await sweep(tmp_path, variants, *base, "benchmark.limit=4")
    assert after.to_make == after.judge_new_calls == 0 and after.to_pay == 0.0
    assert [v.cached for v in after.variants] == [v.calls for v in after.variants]
    assert "In the cache: " in sweep_totals([("b", after)], 400)


class _Recorder:
    """A generator that keeps every request (and answers as a judge with logprobs does)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[ChatMessage], GenerateConfig]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.requests.append((model, list(messages), config))
        answer = Completion("m", 1, 1, logprobs=(TokenLogprob("m", 0.0, (("m", 0.0),)),))
        return CallOutcome(answer, CallRecord("", model, sample))


@needs_data
async def test_planned_alpaca_eval_requests_are_the_judges(tmp_path: Path) -> None:
    """`request_preferences` fills the template without alpaca_eval's DataFrame per row: its
    requests must be `ae.annotate`'s, byte for byte, tricky outputs included."""
    instances = load_instances(resolve(config(tmp_path, "benchmark=alpaca_eval")))
    tricky = ["{output_1} and {instruction}", "{output_2}", "naïve ⟦x⟧ 日本語", "", " padded \n"]
    pairs = [
        ae.Pair(i.turns[0], i.meta["reference_output"], "gpt4", tricky[n % 5] + str(n % 7), "m")
        for n, i in enumerate(instances)
    ]
    pairs.append(ae.Pair("same", "same output", "a", "same output", "b"))  # a tie: no call
    planned, judged = _Recorder(), _Recorder()
    await request_preferences(planned, pairs, "openai/judge")
    await ae.annotate(judged, pairs, judge="openai/judge")
    assert len(planned.requests) == len(pairs) - 1
    assert sorted(planned.requests, key=repr) == sorted(judged.requests, key=repr)


async def test_endpoint_identities_are_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAN_TEST_KEY", "sk-not-a-key")
    specs: dict[str, dict[str, Any]] = {
        "scripted": {"provider": "scripted", "max_concurrency": 4, "bills": True},
        "replay": {"provider": "replay", "outputs_dir": "some/dir"},
        "api": {"provider": "openai", "base_url": "http://h:1/v1/", "api_key_env": "PLAN_TEST_KEY"},
    }
    client = ModelClient(specs, Catalogue({}, specs), CallCache("unused", CacheMode.OFF))
    try:
        for name, spec in specs.items():
            assert await endpoint_identity(name, spec) == client.endpoint(name).api.identity
    finally:
        await client.aclose()
    monkeypatch.delenv("PLAN_TEST_KEY")  # the plan needs no key
    assert await endpoint_identity("api", specs["api"]) == "openai:http://h:1/v1"
    local = await endpoint_identity("local", {"provider": "local"})
    assert local.startswith("local:") and local.endswith(".gguf")


def test_a_cache_a_run_would_not_read_is_not_read(tmp_path: Path) -> None:
    cfg = resolve(config(tmp_path))
    assert open_cache(cfg) is None  # no file
    CallCache(cfg.cache.path).close()
    assert open_cache(cfg) is None  # empty: nothing to find, the plan's own keys will do
    cache = CallCache(cfg.cache.path)
    cache.put("k" * 64, "x/a", Completion("an answer", 1, 1))
    cache.close()
    found = open_cache(cfg)
    assert found is not None and found.mode is CacheMode.READ
    found.close()
    for mode in ("write", "off"):  # a run would reuse nothing
        assert open_cache(resolve(config(tmp_path, f"cache.mode={mode}"))) is None
