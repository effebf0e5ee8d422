"""The plan simulates a variant the sweep runs under several names once, and counts it as often
as the sweep runs it, with the same figures the simulation would give again."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import weakref
from typing import Any

import pytest

import eval.plan
from eval.plan import plan
from eval.plan_stand_in import PlanningMixture, StandIn, _plan_key
from moa.mixture import Mixture
from moa.tokens import MESSAGE_OVERHEAD, estimate_tokens
from moa.types import ChatMessage
from tests.test_plan import constant, instance, presets, questions


async def test_a_variant_under_another_name_is_simulated_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (moa, lite), catalogue = presets(("moa",), ("moa_lite",))
    again = dataclasses.replace(moa, name="again")
    simulated: list[str] = []
    real = eval.plan.PlanningMixture

    def counted(spec: Any, planner: Any) -> Any:
        simulated.append(spec.name)
        return real(spec, planner)

    monkeypatch.setattr(eval.plan, "PlanningMixture", counted)
    items = questions(10)
    result = await plan([moa, lite, again], items, constant, catalogue)
    assert simulated == ["moa", "moa_lite"]
    first, _, second = result.variants
    assert second.name == "again"
    figures = ("calls", "input_tokens", "output_tokens", "usd", "tflops")
    assert [getattr(second, f) for f in figures] == [getattr(first, f) for f in figures]
    assert (second.new_calls, second.sweep_calls, second.new_usd) == (0, 0, 0.0)
    assert (result.total_calls, result.unique_calls) == (130 + 70 + 130, 130)


async def test_a_plan_pauses_the_collector_and_leaves_it_nothing_to_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan runs with the cyclic garbage collector paused, which is sound because what it
    makes is freed by reference counting alone: its mixtures and stand-in make no cycle."""
    (moa, rank), catalogue = presets(("moa",), ("llm_ranker",))
    made: list[weakref.ref[object]] = []
    collecting: list[bool] = []
    real = eval.plan.PlanningMixture

    def tracked(spec: Any, planner: Any) -> Any:
        mixture = real(spec, planner)
        made.extend((weakref.ref(mixture), weakref.ref(planner)))
        collecting.append(gc.isenabled())
        return mixture

    monkeypatch.setattr(eval.plan, "PlanningMixture", tracked)
    await plan([moa, rank], questions(10), constant, catalogue)
    assert collecting == [False, False] and gc.isenabled()
    gc.disable()  # what follows must not depend on a collection
    try:
        await plan([moa, rank], questions(10), constant, catalogue)
        assert not gc.isenabled()  # left as found
    finally:
        gc.enable()
    assert len(made) == 8 and all(ref() is None for ref in made)


async def test_kept_estimates_are_the_estimates_made_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A message's token estimate, kept by its text, is what estimating it again gives: the
    sweep's figures are the same with every estimate made afresh."""
    (moa, lite, rank), catalogue = presets(("moa",), ("moa_lite",), ("llm_ranker",))
    items = questions(10)
    kept = await plan([moa, lite, rank], items, constant, catalogue)
    monkeypatch.setattr(StandIn, "_estimate_kept", StandIn._estimate)
    afresh = await plan([moa, lite, rank], items, constant, catalogue)
    assert kept.variants == afresh.variants
    assert kept.total_calls == afresh.total_calls > 0


async def test_agents_given_what_they_were_given_before_run_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Agents of a later variant given the very input an earlier variant's were given pass on
    what those made, and the sweep's figures are those of running every agent again."""
    specs, catalogue = presets(
        ("moa",), ("moa_lite",), ("moa_gpt4o",), ("llm_ranker",), ("as_aggregator",)
    )
    items = [*questions(6), instance("two", "First turn.", "Second turn.")]
    made: list[int] = []
    real = eval.plan.PlanningMixture

    def kept(spec: Any, planner: Any) -> Any:
        made.append(len(planner.made))
        return real(spec, planner)

    monkeypatch.setattr(eval.plan, "PlanningMixture", kept)
    once = await plan(specs, items, constant, catalogue)
    monkeypatch.setattr(PlanningMixture, "_agents", Mixture._agents)
    again = await plan(specs, items, constant, catalogue)
    assert repr(once.variants) == repr(again.variants)  # tflops may be NaN (GPT-4o)
    assert (once.total_calls, once.unique_calls) == (again.total_calls, again.unique_calls)
    assert once.notes == again.notes
    # MoA-Lite runs its aggregator at each of the 8 turns, but its proposers only at the second
    # turn of "two" (which follows its own answer): their first turns are MoA's layer 1.
    assert made[2] - made[1] == 8 + 6


async def test_calls_one_after_the_other_plan_what_a_gather_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan runs a layer's calls in turn, without a task each: its figures are those of
    the mixture's own concurrent gather."""
    specs, catalogue = presets(("moa",), ("llm_ranker",), ("rank_fuse",), ("moa_lite",))
    items = [*questions(5), instance("two", "First turn.", "Second turn.")]
    in_turn = await plan(specs, items, constant, catalogue)
    monkeypatch.setattr(PlanningMixture, "_settle", Mixture._settle)
    gathered = await plan(specs, items, constant, catalogue)
    assert repr(in_turn.variants) == repr(gathered.variants)
    assert in_turn.identities == gathered.identities


async def test_calls_in_turn_all_end_before_an_error_is_raised() -> None:
    """As `moa.scheduling.settle_all` does: results in order, and an error raised only once
    every call has ended."""
    (moa,), _ = presets(("moa",))
    mixture = PlanningMixture(moa, StandIn(lambda _model: 1, frozenset()))
    ended: list[int] = []

    async def call(i: int) -> int:
        ended.append(i)
        if i == 1:
            raise ValueError("refused")
        return i

    assert await mixture._settle(call(i) for i in (0, 2, 3)) == [0, 2, 3]
    ended.clear()
    with pytest.raises(ValueError, match="refused"):
        await mixture._settle(call(i) for i in range(4))
    assert ended == [0, 1, 2, 3]


def test_a_placeholder_counts_as_what_it_names_and_its_text_as_none() -> None:
    """A message's estimate is `moa.tokens`' of its text with the placeholders cut out, plus
    what each placeholder stands for (counted without cutting them out)."""
    stand_in = StandIn(lambda _model: 1, frozenset())
    call, pick = f"⟦call:{'a' * 64}⟧", f"⟦pick:{'0f' * 32}:2⟧"
    stand_in.stands_for.update({call: 400, pick: 37})
    for content in (
        "Plain text, no placeholder.",
        f"Responses:\n1. {call}\n2. {pick}",
        f"Ünïcode — 中文 {call} and ⟦ a stray bracket ⟧ {call}{pick}.",
        f"{call}",
        "",
    ):
        names = [n for n in (call, pick) for _ in range(content.count(n))]
        text = content.replace(call, "").replace(pick, "")
        expected = (
            estimate_tokens(text) + MESSAGE_OVERHEAD + sum(stand_in.stands_for[n] for n in names)
        )
        assert stand_in._estimate(content) == expected, content


def test_a_plan_key_is_the_digest_of_its_fields_each_length_prefixed() -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": f"Refs:\n1. ⟦call:{'b' * 64}⟧"},
        {"role": "user", "content": "Ünïcode and \udcff a lone surrogate."},
    ]
    digest = hashlib.sha256()
    for part in ("together", "m/x", '{"n": 1}', "3", *[p for m in messages for p in m.values()]):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    assert _plan_key("together", "m/x", messages, '{"n": 1}', 3) == digest.hexdigest()


async def test_whether_an_endpoint_batches_draws_is_asked_once_per_endpoint() -> None:
    """Draws of one request on an endpoint that batches pay their prompt once; the plan asks
    each endpoint once however many batches it sends."""
    (spec,), catalogue = presets(("single_proposer", "moa.n=3"))
    items = questions(4)
    asked: list[str] = []

    def batches(endpoint: str) -> bool:
        asked.append(endpoint)
        return True

    batched = await plan([spec], items, constant, catalogue, batches=batches)
    apart = await plan([spec], items, constant, catalogue)
    assert sorted(asked) == sorted(set(asked)) and asked
    assert batched.variants[0].calls == apart.variants[0].calls == 4 * 4
    assert 0 < batched.variants[0].input_tokens < apart.variants[0].input_tokens
