"""Plan mode: a sweep's calls, tokens, dollars and TFLOPs, predicted before anything is spent.

A real sweep shares calls through the content-addressed cache: two variants make one call when
model, messages, decoding config and sample index agree (`moa.cache.call_key`). MoA-Lite after
MoA, for instance, costs nothing: its layer 1 is MoA's layer 1 and its aggregator request is
MoA's layer-2 Qwen1.5-72B proposer request. So the plan runs the real `moa.mixture.Mixture` over
every instance with a generator that calls no model: each call is answered with a placeholder
that names the request by its cache key, so later requests are built from exactly what they
would be built from, and two requests are one call exactly when they would be byte-identical.

Judging (when `judge.enabled`) is planned the same way, after each variant as a run judges it:
the judge kind's `plan` (`eval.judges.kind`) sends the judge's very requests for the planned
outputs through the same generator, so judge calls are counted, shared and priced like the rest,
at the judge model's price. A judge's answer is estimated like any other, capped by the judge's
`max_tokens` (one token for AlpacaEval's annotator, 2048 for MT-Bench's grader).

What is paid already: `plan_points` reads the configured call cache (`cache.path`, read-only;
not with `cache.mode` off or write, under which a run reuses nothing). Each request then gets the
very key the run's `moa.client.ModelClient` gives it, the endpoint's real identity included
(`moa.client.endpoint_identity`), and a request whose answer is stored is answered with it, so
the requests built on it (the next layer, the next turn, the judge's) get their real keys and
are found too.
A call found is `cached`: free, and not to make. Judge calls follow the same rule: one is made
when its answer is in the cache, which is exactly what `task=run` pays when it judges again (it
always does, from the cache); a run directory's `metrics.json` or `judge_calls.jsonl` is not
read. So a finished instance whose calls are gone from the cache (a deleted cache) is priced as
still to make, though a re-run keeps it from its traces: the plan may overcount, not undercount.

Money: a call costs its catalogue price only on an endpoint that bills
(`moa.catalogue.endpoint_bills`); replayed, scripted and local calls are free, though counted.
A call to an endpoint that bills whose model has no price is left out of the dollars, and the
plan names the model and how to price it.

Failed proposals are out of scope: the plan assumes every call succeeds. The context policy
fits placeholders, not answers, so the plan also assumes no reference is trimmed or dropped
(but for answers found in the cache, which are fitted as the run fits them). A ranker's pick
is unknown until cached (`eval.plan_stand_in`): where it would make two requests equal, or a
demo verdict a tie without a call, the plan counts one call too many, never one too few.
Every kind of agent (`moa.mixture`) and a user's strategy run as they do in a run, so their
calls are counted as made; a strategy whose calls depend on the answers' text says so
(`moa.strategy.plan_exact`) and the plan notes it. Repeats (`repeats`) are planned as the runs
they are, and draws of one request on an endpoint that `supports_n` pay their prompt once
(`moa.client.batches_draws`, the client's own rule).

The stand-in generator and mixture are `eval.plan_stand_in`; the figures, their table and how
traces add up into them, `eval.plan_figures`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import multiprocessing
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from rich.console import Console

from eval.benchmarks.base import Instance
from eval.evaluation import Evaluation
from eval.generate import judge_address, load_instances, task_of
from eval.judge_repeats import RepeatedJudge
from eval.plan_figures import PlanResult as PlanResult
from eval.plan_figures import Tally
from eval.plan_stand_in import PlanningMixture, StandIn
from eval.run_labels import Namer
from eval.rundir import repeat_suffix
from eval.settings import Settings
from eval.suite import cpus
from moa.cache import CacheMode, CallCache
from moa.catalogue import Catalogue, ModelEntry, split_address, unbilled_endpoints
from moa.client import endpoint_batches, endpoint_identity
from moa.mixture import MixtureSpec
from moa.strategy import load_strategy, plan_exact
from moa.trace import ConversationTrace
from moa.types import CallRecord, GenerateConfig

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Judging:
    """Who judges a benchmark's planned outputs: its task, and the judge model's address."""

    task: Evaluation
    model: str
    repeats: int = 1  # `judge.repeats`: each repeat after the first under its own sample index


def _uncollected(run: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`run` with the cyclic garbage collector paused (if it runs): a plan makes millions of
    objects and keeps most (requests, answers, traces) but makes no cycle, so each full
    collection their growth sets off walks them all again for nothing, a quarter of a sweep's
    plan. Reference counting frees them as ever; the collector resumes once they are freed, so
    it never walks them at all."""

    @functools.wraps(run)
    async def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return await run(*args, **kwargs)
        gc.disable()
        try:
            return await run(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@_uncollected
async def plan(
    variants: Sequence[MixtureSpec],
    instances: Sequence[Instance],
    config_for: Callable[[Instance], GenerateConfig],
    catalogue: Catalogue,
    *,
    output_tokens: int | Callable[[str], int] = 400,
    already_cached: Collection[str] = (),
    judge: Judging | None = None,
    cache: CallCache | None = None,
    identities: Mapping[str, str] | None = None,
    bills: Callable[[str], bool] | None = None,
    batches: Callable[[str], bool] | None = None,
    served: Callable[[str], ModelEntry] | None = None,
) -> PlanResult:
    """Predicts what running `variants` in order over `instances` will call and cost.

    A variant's `new_calls` are the calls that neither an earlier variant in the list nor
    `already_cached` (e.g. an earlier plan's `identities`) makes, nor `cache` answers. Tokens are
    estimated, not counted: `moa.tokens` for the requests, `output_tokens` (a number, or one per
    model address) for every answer, capped by `max_tokens`. TFLOPs follow the paper
    (`moa.flops`), averaged over instances. With `judge`, each variant's judging is planned
    after it, as a run does. `cache` is read as the module's docstring says, its keys computed
    with `identities` (endpoint name -> `moa.client.endpoint_identity`); without it nothing is
    cached and endpoints may be named by name. `bills(endpoint)` says whether an endpoint's
    calls cost money (without it, all do); `batches(endpoint)` whether it takes draws of one
    request as one request (`moa.client.endpoint_batches`: their prompt is billed once);
    `served(address)` the model that
    answers an address, whose size counts (a stand-in's, `eval.run_labels.Namer.served`; by
    default the catalogue's entry). A coroutine, though it waits on
    nothing: it runs the real mixture, whose layers gather their calls on the running event
    loop.
    """
    estimate = output_tokens if callable(output_tokens) else lambda _address: output_tokens
    planner = StandIn(estimate, frozenset(already_cached), cache, identities, batches)
    charged = bills or (lambda _endpoint: True)
    configs = [config_for(instance) for instance in instances]
    plans, notes = [], []
    strategies = {a.strategy for v in variants for a in v.agents() if a.strategy}
    guessed = sorted(s for s in strategies if not plan_exact(load_strategy(s)))
    if guessed:
        notes.append(
            f"the calls of {', '.join(guessed)} depend on the answers (plan_exact = False): "
            "counted on stand-in answers, an estimate"
        )
    # A variant the sweep runs under several names (one experiment's `moa` is another's) makes
    # the very same requests each time: simulated once, its traces and judging recounted.
    simulated: dict[MixtureSpec, tuple[list[ConversationTrace], list[CallRecord]]] = {}
    for spec in variants:
        tally = Tally(spec.name + repeat_suffix(spec.repeat), catalogue, planner, charged)
        tally.served = served or catalogue.by_address
        same = dataclasses.replace(spec, name="")
        if same not in simulated:
            mixture = PlanningMixture(spec, planner)
            traces = [
                await mixture.converse(instance.turns, config, system=instance.system)
                for instance, config in zip(instances, configs, strict=True)
            ]
            judged: list[CallRecord] = []
            if judge is not None:
                planner.recording = judged
                outputs = [trace.outputs for trace in traces]
                try:
                    for repeat in range(judge.repeats):
                        judging = RepeatedJudge(planner, repeat) if repeat else planner
                        await judge.task.plan_judge(judging, judge.model, spec, instances, outputs)
                except NotImplementedError:
                    notes.append(
                        f"judging is not planned: the {judge.task.name} task cannot plan it"
                    )
                    judge = None
                finally:
                    planner.recording = None
            simulated[same] = traces, judged
        traces, judged = simulated[same]
        for trace in traces:
            tally.add(trace)
        if judge is not None:
            tally.add_judging(judged)
        plans.append(tally.result())
    return PlanResult(plans, frozenset(planner.seen), None if judge is None else judge.model, notes)


def repeats(settings: Settings) -> list[MixtureSpec]:
    """Each run a point makes: its `repeats` (run 1 first), or its one `repeat`."""
    spec, count = settings.spec, settings.repeats
    return [spec.repeated(r) for r in range(1, count + 1)] if count > 1 else [spec]


def open_cache(settings: Settings) -> CallCache | None:
    """The configured call cache, read-only, if a run would read it and it holds any call."""
    mode, path = settings.cache.mode, settings.cache.path
    if not mode.reads or not path.is_file():
        return None
    cache = CallCache(path, CacheMode.READ)
    if not len(cache):
        cache.close()
        return None
    return cache


async def plan_points(
    settings: Settings, points: Sequence[Settings]
) -> list[tuple[str, PlanResult]]:
    """Every benchmark's variants planned together, in the order a sweep runs them (sharing
    counted once), each judged after it when `judge.enabled`, against the configured cache
    (with two CPUs and no cache, benchmarks but the first are planned in a forked process)."""
    by_benchmark: dict[str, list[Settings]] = {}
    for point in points:
        by_benchmark.setdefault(point.benchmark.name, []).append(point)
    groups = list(by_benchmark.values())
    cache = open_cache(settings)
    if cache is None and len(groups) > 1 and cpus() > 1:
        return await _planned_in_two(settings, groups)
    try:
        return await _plan_groups(settings, groups, cache)
    finally:
        if cache is not None:
            cache.close()


async def _planned_in_two(
    settings: Settings, groups: list[list[Settings]]
) -> list[tuple[str, PlanResult]]:
    """Benchmarks share no call (each is planned on a stand-in of its own), so a forked copy
    of this process plans all but the first while this one plans the first, most of a sweep's
    calls. Only without a cache: no connection is carried across the fork."""
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=fork) as pool:
        later = pool.submit(_plan_elsewhere, settings, groups[1:])
        first = await _plan_groups(settings, groups[:1], None)
        try:
            rest = later.result()
        except Exception:  # planned again here, to raise the error as it is (with its causes)
            rest = await _plan_groups(settings, groups[1:], None)
    return first + rest


def _plan_elsewhere(
    settings: Settings, groups: list[list[Settings]]
) -> list[tuple[str, PlanResult]]:
    """`_plan_groups` in a forked process, on an event loop of its own."""
    return asyncio.run(_plan_groups(settings, groups, None))


async def _plan_groups(
    settings: Settings, groups: list[list[Settings]], cache: CallCache | None
) -> list[tuple[str, PlanResult]]:
    """Each benchmark's points (`groups`) planned in turn, against `cache`."""
    catalogue, endpoints = settings.catalogue, settings.endpoints
    unbilled = unbilled_endpoints(endpoints)
    namer = Namer(catalogue, endpoints)
    identities: dict[str, str] = {}
    results = []
    for group in groups:
        first = group[0]
        specs = list(dict.fromkeys(s for c in group for s in repeats(c)))
        task = task_of(first)
        judging = None
        if first.judge.enabled:
            judging = Judging(task, judge_address(first, task), first.judge.repeats)
        if cache is not None:  # no cache, no need of the real keys
            used = [m for spec in specs for m in spec.models()]
            used += [judging.model] if judging else []
            for endpoint in {split_address(a)[0] for a in used} - identities.keys():
                identities[endpoint] = await endpoint_identity(endpoint, endpoints[endpoint])
        result = await plan(
            specs,
            load_instances(first, task),
            task.generation(),
            catalogue,
            output_tokens=settings.plan.output_tokens,
            judge=judging,
            cache=cache,
            identities=identities,
            bills=lambda endpoint: endpoint not in unbilled,
            batches=lambda endpoint: endpoint_batches(endpoint, endpoints[endpoint]),
            served=namer.served,
        )
        if result.judge is not None and namer.stands_in(result.judge):  # said to be one
            result.judge = f"{result.judge}: {namer(result.judge)}"
        results.append((first.benchmark.name, result))
    return results


def sweep_totals(results: Sequence[tuple[str, PlanResult]], output_tokens: int) -> str:
    """The whole sweep's totals line."""
    plans = [r for _, r in results]
    total, unique = sum(r.total_calls for r in plans), sum(r.unique_calls for r in plans)
    total_usd, unique_usd = sum(r.total_usd for r in plans), sum(r.unique_usd for r in plans)
    to_make, to_pay = sum(r.to_make for r in plans), sum(r.to_pay for r in plans)
    text = (
        f"calls without sharing: {total:,} (${total_usd:,.2f}); with sharing: {unique:,} "
        f"(${unique_usd:,.2f}); ratio {unique / max(total, 1):.2f}."
    )
    if to_make != unique:
        text += f" In the cache: {unique - to_make:,}; to make: {to_make:,} (${to_pay:,.2f})."
    judged = [r for r in plans if r.judge]
    if judged:
        calls, new = sum(r.judge_calls for r in judged), sum(r.judge_new_calls for r in judged)
        usd, new_usd = sum(r.judge_usd for r in judged), sum(r.judge_new_usd for r in judged)
        text += (
            f" Judging: {calls:,} calls (${usd:,.2f}), {new:,} to make (${new_usd:,.2f}). "
            f"Still to pay in all: ${to_pay + new_usd:,.2f}."
        )
    if unpriced := sum(r.unpriced for r in plans):
        text += f" {unpriced:,} calls have no catalogue price and are in no dollars (named above)."
    return (
        f"{text} Output tokens are estimated at {output_tokens} per call; prices are the "
        "catalogue's; calls to endpoints that do not bill (replay, scripted, local, bills: false) "
        "are free."
    )


async def plan_sweep(
    settings: Settings, points: Sequence[Settings], console: Console
) -> list[tuple[str, PlanResult]]:
    """`task=plan`: a table per benchmark (`plan_points`), then the totals of the whole sweep;
    returns the plans."""
    results = await plan_points(settings, points)
    budget = settings.budget
    for name, result in results:
        console.rule(f"{name}: {len(result.variants)} variant(s)")
        # a wide table: rich would wrap it to the terminal
        print(result.render(budget.max_usd, budget.max_calls))
    console.rule("all")
    console.print(sweep_totals(results, settings.plan.output_tokens))
    return results
