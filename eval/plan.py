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
(`endpoint_identity`), and a request whose answer is stored is answered with it, so the requests
built on it (the next layer, the next turn, the judge's) get their real keys and are found too.
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
is unknown until cached (`_PlanningMixture`): where it would make two requests equal, or a
demo verdict a tie without a call, the plan counts one call too many, never one too few.
Every kind of agent (`moa.mixture`) and a user's strategy run as they do in a run, so their
calls are counted as made; a strategy whose calls depend on the answers' text says so
(`moa.strategy.plan_exact`) and the plan notes it. Repeats (`repeats`) are planned as the runs
they are, and draws of one request on an endpoint that `supports_n` pay their prompt once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
from rich.console import Console

from eval.benchmarks.base import Instance
from eval.evaluation import Evaluation
from eval.generate import judge_address, load_instances, task_of
from eval.run_labels import Namer
from eval.rundir import repeat_suffix
from eval.settings import Settings
from moa.agents import Agent
from moa.budget import check_plan
from moa.cache import CacheMode, CallCache, call_key
from moa.catalogue import BILLS, Catalogue, ModelEntry, split_address, unbilled_endpoints
from moa.client import SUPPORTS_N
from moa.flops import call_tflops, turn_tflops
from moa.ledger import price_hint
from moa.limits import LIMIT_KEYS
from moa.mixture import AgentOutput, Mixture, MixtureSpec
from moa.providers.base import create_provider
from moa.strategy import load_strategy, plan_exact
from moa.tokens import MESSAGE_OVERHEAD, estimate_tokens
from moa.trace import ConversationTrace, TurnTrace
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig

# What a planned call "answers": the name of its request. `pick` stands for the proposal a ranker
# picks, which only the model knows (see `_PlanningMixture`).
_PLACEHOLDER = re.compile("⟦(?:call|pick):[0-9a-f]{64}(?::[0-9]+)?⟧")
# What a planned ranker answers: a valid pick, so the mixture records no fallback.
_RANKER_ANSWER = "1"
_JUDGE_ROLE = "judge"  # `eval.judges.common.JUDGE_TAGS`

_COUNTS = ("calls", "cached", "new_calls", "input_tokens", "output_tokens")
_COLUMNS = (*_COUNTS, "usd", "new_usd", "tflops", "unpriced")
_JUDGE_COLUMNS = ("judge_calls", "judge_new_calls", "judge_usd", "judge_new_usd")


@dataclass
class VariantPlan:
    """One variant's share of the sweep. Each of its calls is cached (the call cache holds its
    answer), shared (an earlier variant makes it) or new (to make)."""

    name: str
    calls: int = 0  # every call the variant makes, as if it ran alone
    cached: int = 0  # of them, those the call cache answers: free
    new_calls: int = 0  # to make: not cached, nor made by an earlier variant or `already_cached`
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0  # all its calls at catalogue prices, as if it ran alone on an empty cache
    new_usd: float = 0.0  # its new calls: what it still costs
    tflops: float = math.nan  # mean per instance, counted as the paper counts it (`moa.flops`)
    unpriced: int = 0  # calls (judging's too) billed but unpriced: left out of every dollar
    judge_calls: int = 0  # judging its outputs, counted as its generation is
    judge_new_calls: int = 0
    judge_usd: float = 0.0
    judge_new_usd: float = 0.0
    # Not in the table: the calls no earlier variant makes, cached or not (its share of the
    # sweep with sharing, on an empty cache), and the unpriced calls by model address.
    sweep_calls: int = 0
    sweep_usd: float = 0.0
    unpriced_models: Counter[str] = field(default_factory=Counter)


@dataclass
class PlanResult:
    variants: list[VariantPlan]
    # The plan's key of every call the sweep makes: pass it as `already_cached` to plan what a
    # later sweep adds. Without `identities`, keys name endpoints by name: not the cache's keys.
    identities: frozenset[str] = field(repr=False)
    judge: str | None = None  # the judge's address (a stand-in said), when judging was planned
    notes: list[str] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        """Calls without sharing: what the variants would make run each on an empty cache."""
        return sum(v.calls for v in self.variants)

    @property
    def unique_calls(self) -> int:
        """Calls with sharing: the requests the sweep sends on an empty cache."""
        return sum(v.sweep_calls for v in self.variants)

    @property
    def to_make(self) -> int:
        """The requests the sweep still sends: `unique_calls` but those the cache answers."""
        return sum(v.new_calls for v in self.variants)

    @property
    def total_usd(self) -> float:
        return sum(v.usd for v in self.variants)

    @property
    def unique_usd(self) -> float:
        return sum(v.sweep_usd for v in self.variants)

    @property
    def to_pay(self) -> float:
        return sum(v.new_usd for v in self.variants)

    @property
    def judge_calls(self) -> int:
        return sum(v.judge_calls for v in self.variants)

    @property
    def judge_new_calls(self) -> int:
        return sum(v.judge_new_calls for v in self.variants)

    @property
    def judge_usd(self) -> float:
        return sum(v.judge_usd for v in self.variants)

    @property
    def judge_new_usd(self) -> float:
        return sum(v.judge_new_usd for v in self.variants)

    @property
    def unpriced(self) -> int:
        return sum(v.unpriced for v in self.variants)

    @property
    def unpriced_models(self) -> Counter[str]:
        return sum((v.unpriced_models for v in self.variants), Counter())

    def budget_warning(self, max_usd: float | None, max_calls: int | None) -> str | None:
        """One line per variant whose run would pass the caps (`budget.max_usd`, `max_calls`),
        or None. The caps hold per run directory, i.e. per variant, judging included, and a run
        in the sweep spends only its new calls: those are checked (`moa.budget.check_plan`)."""
        lines = []
        for v in self.variants:
            usd, calls = v.new_usd + v.judge_new_usd, v.new_calls + v.judge_new_calls
            if warning := check_plan(max_usd, max_calls, usd, calls):
                lines.append(f"{v.name}: {warning}")
            if max_usd is not None and v.unpriced:
                lines.append(
                    f"{v.name}: {v.unpriced:,} calls have no catalogue price, so a run with "
                    "budget.max_usd set refuses to start"
                )
        return "\n".join(lines) or None

    def columns(self) -> tuple[str, ...]:
        return (*_COLUMNS, *_JUDGE_COLUMNS) if self.judge else _COLUMNS

    def to_frame(self) -> pd.DataFrame:
        """One row per variant plus a `total` row (the columns' sums), indexed by name."""
        columns = self.columns()
        rows: list[dict[str, Any]] = [
            {"name": v.name, **{c: getattr(v, c) for c in columns}} for v in self.variants
        ]
        total: dict[str, Any] = {"name": "total"}
        total |= {c: sum(getattr(v, c) for v in self.variants) for c in columns}
        total["tflops"] = math.nan  # a per-instance mean of one variant: it does not add up
        rows.append(total)
        return pd.DataFrame(rows, columns=["name", *columns]).set_index("name")

    def render(self, max_usd: float | None = None, max_calls: int | None = None) -> str:
        """The table and totals, then `budget_warning` for the given caps, if any."""
        frame = self.to_frame()
        counts, dollars = "{:,}".format, "${:,.2f}".format
        formats = {c: dollars if c.endswith("usd") else counts for c in frame.columns}
        text = frame.to_string(na_rep="-", formatters={**formats, "tflops": "{:,.1f}".format})
        in_cache = self.unique_calls - self.to_make
        rest = "the rest are shared" + (f" or in the cache ({in_cache:,})" if in_cache else "")
        lines = [
            text,
            f"{self.to_make:,} of {self.total_calls:,} calls to make ({rest}),"
            f" ${self.to_pay:,.2f} of ${self.total_usd:,.2f}",
        ]
        if self.judge:
            lines.append(
                f"judging ({self.judge}): {self.judge_new_calls:,} of {self.judge_calls:,} calls"
                f" to make, ${self.judge_new_usd:,.2f} of ${self.judge_usd:,.2f}"
            )
        if self.unpriced:
            models = self.unpriced_models.most_common()
            named = ", ".join(f"{address} ({n:,})" for address, n in models)
            lines.append(
                f"{self.unpriced:,} calls have no catalogue price: not in the dollars. "
                f"Unpriced: {named}. To price one, {price_hint(models[0][0])}"
            )
        lines += self.notes
        if warning := self.budget_warning(max_usd, max_calls):
            lines.append(warning)
        return "\n".join(lines)


def _plan_key(
    endpoint: str, model: str, messages: Sequence[ChatMessage], config: str, sample: int
) -> str:
    """A plan's own key of a request: equal exactly when `moa.cache.call_key`'s would be (each
    field length-prefixed, `config` as `_Planner._config` gives it), without its JSON."""
    digest = hashlib.sha256()
    for part in (
        endpoint,
        model,
        config,
        str(sample),
        *[p for m in messages for p in (m["role"], m["content"])],
    ):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return digest.hexdigest()


class _Planner:
    """A `moa.types.Generator` that calls no model.

    Each call gets the key `moa.client.ModelClient` would give it, with `identities[endpoint]`
    for the endpoint's identity, else its name, and answers what `cache` holds for that key,
    else a placeholder naming the key: a ranker answers a valid pick instead. With neither
    `cache` nor `identities` only equality matters, and keys are `_plan_key`s. A call is shared
    when an earlier call of the sweep, or `already_cached`, had its key. Tokens are `moa.tokens`
    estimates of the request, each placeholder counting as the answer it stands for, and
    `output_tokens(model)` for the answer, capped by `max_tokens`; a cached answer counts the
    tokens it was billed.
    """

    def __init__(
        self,
        output_tokens: Callable[[str], int],
        already_cached: frozenset[str],
        cache: CallCache | None = None,
        identities: Mapping[str, str] | None = None,
        batches: Callable[[str], bool] | None = None,
    ) -> None:
        self.output_tokens = output_tokens
        self.batches = batches or (lambda _endpoint: False)
        self.already_cached = already_cached
        self.cache = cache
        self.identities = dict(identities or {})
        self.seen: set[str] = set()
        self.stored: set[str] = set()  # keys the cache answered
        self.unclaimed: set[str] = set()  # keys first sent, until a tally counts them
        self.recording: list[CallRecord] | None = None  # every call's record, while set
        self.stands_for: dict[str, int] = {}  # placeholder -> the tokens of the answer it names
        self._estimates: dict[str, int] = {}
        # Identical requests get one key and one answer, computed once. The requests are kept
        # as tuples of strings and numbers, which the garbage collector does not need to follow.
        self._configs: dict[int, tuple[GenerateConfig, int, str]] = {}  # by id(); keeps them
        self._canonical: dict[str, int] = {}
        # The cache's own keys only where they are looked up or asked for (they cost a JSON
        # encoding of the request, a third of a planned call's time): else `_plan_key`.
        self.real_keys = cache is not None or bool(self.identities)
        self._answers: dict[tuple[str | int, ...], tuple[str, Completion]] = {}

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        role = None if tags is None else tags.get("role")
        # A judge's request is one of a kind (it holds the output judged): not worth keeping.
        request: tuple[str | int, ...] | None = None
        if role != _JUDGE_ROLE:
            request = (
                model,
                sample,
                self._config(config)[0],
                *[p for m in messages for p in (m["role"], m["content"])],
            )
        known = None if request is None else self._answers.get(request)
        if known is not None:  # the very same request: the sweep has made it already
            key, completion = known
            record = CallRecord(
                key, model, sample, completion.input_tokens, completion.output_tokens, cached=True
            )
            return self._outcome(completion, record)
        endpoint, model_id = split_address(model)
        if self.real_keys:
            identity = self.identities.get(endpoint, endpoint)
            key = call_key(identity, model_id, messages, config, sample)
        else:
            key = _plan_key(endpoint, model_id, messages, self._config(config)[1], sample)
        found = None if self.cache is None else self.cache.get(key)
        if found is not None:
            self.stored.add(key)
            completion = found
        else:
            estimate = self._estimates.get(model)
            if estimate is None:
                estimate = self._estimates[model] = self.output_tokens(model)
            out = estimate if config.max_tokens is None else min(estimate, config.max_tokens)
            if role == "ranker":
                text = _RANKER_ANSWER
            else:
                text = f"⟦call:{key}⟧"
                self.stands_for[text] = out
            prompt = sum(self._estimate(m["content"]) for m in messages)
            completion = Completion(text, prompt, out)
        if request is not None:
            self._answers[request] = key, completion
        first = key not in self.seen and key not in self.already_cached
        if first:
            self.unclaimed.add(key)
        self.seen.add(key)
        record = CallRecord(
            key,
            model,
            sample,
            completion.input_tokens,
            completion.output_tokens,
            cached=found is not None or not first,
        )
        return self._outcome(completion, record)

    async def generate_batch(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
        tags: Mapping[str, str] | None = None,
    ) -> list[CallOutcome]:
        """Draws of one request, as `ModelClient.generate_batch` makes them: on an endpoint that
        `batches`, the draws still to make go as one request, whose prompt is billed once."""
        outcomes = [
            await self.generate(model, messages, config, sample=s, tags=tags) for s in samples
        ]
        if not self.batches(split_address(model)[0]):
            return outcomes
        fresh = [i for i, o in enumerate(outcomes) if not o.record.cached]
        for i in fresh[1:] if len(fresh) > 1 else ():
            outcome = outcomes[i]
            outcome.record.input_tokens = 0
            outcomes[i] = CallOutcome(
                dataclasses.replace(cast(Completion, outcome.completion), input_tokens=0),
                outcome.record,
            )
        return outcomes

    def _outcome(self, completion: Completion, record: CallRecord) -> CallOutcome:
        if self.recording is not None:
            self.recording.append(record)
        return CallOutcome(completion, record)

    def _config(self, config: GenerateConfig) -> tuple[int, str]:
        """A number per config as the cache key sees it (0 and 0.0, equal in Python, are not),
        and that view of it, as JSON."""
        known = self._configs.get(id(config))
        if known is not None:
            return known[1], known[2]
        canonical = json.dumps(config.as_dict(), sort_keys=True)
        number = self._canonical.setdefault(canonical, len(self._canonical))
        self._configs[id(config)] = config, number, canonical
        return number, canonical

    def tokens_of(self, text: str) -> int:
        """An answer's estimated tokens, each placeholder in it counted as what it names."""
        return self._estimate(text) - MESSAGE_OVERHEAD

    def _estimate(self, content: str) -> int:
        """One message's share of `moa.tokens.estimate_prompt`, each placeholder counted as the
        answer it names."""
        names = _PLACEHOLDER.findall(content) if "⟦" in content else []
        text = _PLACEHOLDER.sub("", content) if names else content
        return (
            estimate_tokens(text) + MESSAGE_OVERHEAD + sum(map(self.stands_for.__getitem__, names))
        )


class _PlanningMixture(Mixture):
    """The real mixture, but for a ranker's output. The real output is the proposal the ranker
    picks, which only the model knows: the plan gives it a name of its own, so that a later turn
    never shares with a variant whose output happens to be that very proposal (the plan may
    overcount then, never undercount). It stands for the mean length of the proposals. A pick
    the cache holds is known: then the output is the real one."""

    generator: _Planner

    async def run_turn(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
    ) -> TurnTrace:
        trace = await super().run_turn(messages, config, tags)
        final = trace.final
        if self.spec.mode == "rank" and trace.output is not None and final is not None:
            if final.key in self.generator.stored:
                return trace
            lengths = [c.output_tokens for c in trace.layers[-1] if c.text is not None]
            trace.output = f"⟦pick:{final.key}⟧"
            self.generator.stands_for[trace.output] = sum(lengths) // max(len(lengths), 1)
        return trace

    async def _rank(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        """A ranker within the mixture passes on picks only the model knows: each gets a name
        of its own (standing for the answer in its place), so that two variants whose rankers
        differ never share the next layer's requests in the plan unless they would in a run."""
        done = await super()._rank(agent, messages, references, config, tags)
        call = done.sent[0].call
        if tags.get("layer") == "0" or not done.outputs or call.key in self.generator.stored:
            return done
        names = [f"⟦pick:{call.key}:{i}⟧" for i in range(len(done.outputs))]
        for name, answer in zip(names, done.outputs, strict=True):
            self.generator.stands_for[name] = self.generator.tokens_of(answer)
        done.outputs = names
        return done


class _Tally:
    """Adds up a variant's traces as `eval.runs` adds up a real run's, and its judging."""

    def __init__(
        self, name: str, catalogue: Catalogue, planner: _Planner, bills: Callable[[str], bool]
    ) -> None:
        self.plan = VariantPlan(name)
        self.catalogue = catalogue
        self.planner = planner
        self.bills = bills
        self.billing: dict[str, bool] = {}  # by endpoint
        self.entries: dict[str, ModelEntry] = {}
        self.tflops: list[float] = []  # per instance
        self.served: Callable[[str], ModelEntry] = catalogue.by_address  # whose size counts

    def _entry(self, address: str) -> ModelEntry:
        entry = self.entries.get(address)
        if entry is None:
            entry = self.entries[address] = self.catalogue.by_address(address)
        return entry

    def _count(
        self, key: str, address: str, input_tokens: int, output_tokens: int, judging: bool
    ) -> None:
        tally, planner = self.plan, self.planner
        cached = key in planner.stored
        first = key in planner.unclaimed  # the sweep's first call with this key
        if first:
            planner.unclaimed.discard(key)
        new = first and not cached
        endpoint = address.partition("/")[0]
        bills = self.billing.get(endpoint)
        if bills is None:
            bills = self.billing[endpoint] = self.bills(endpoint)
        usd = self._entry(address).cost(input_tokens, output_tokens) if bills else 0.0
        if math.isnan(usd):
            tally.unpriced += 1
            tally.unpriced_models[address] += 1
            usd = 0.0
        if judging:
            tally.judge_calls += 1
            tally.judge_new_calls += new
            tally.judge_usd += usd
            tally.judge_new_usd += usd if new else 0.0
            return
        tally.calls += 1
        tally.cached += cached
        tally.new_calls += new
        tally.input_tokens += input_tokens
        tally.output_tokens += output_tokens
        tally.usd += usd
        tally.new_usd += usd if new else 0.0
        tally.sweep_calls += first
        tally.sweep_usd += usd if first else 0.0

    def add(self, trace: ConversationTrace) -> None:
        layers = []
        for turn in trace.turns:
            for layer in [*turn.layers, [turn.final] if turn.final else []]:
                layer_flops = []
                for call in layer:
                    if not call.key:  # refused by the context policy: never sent
                        continue
                    self._count(
                        call.key, call.model, call.input_tokens, call.output_tokens, judging=False
                    )
                    tokens = call.input_tokens + call.output_tokens
                    params = self.served(call.model).active_params_b
                    layer_flops.append(call_tflops(params, tokens))
                layers.append(layer_flops)
        self.tflops.append(turn_tflops(layers))

    def add_judging(self, records: Sequence[CallRecord]) -> None:
        for r in records:
            self._count(r.key, r.model, r.input_tokens, r.output_tokens, judging=True)

    def result(self) -> VariantPlan:
        flops = self.tflops
        self.plan.tflops = sum(flops) / len(flops) if flops else math.nan
        return self.plan


@dataclass(frozen=True)
class Judging:
    """Who judges a benchmark's planned outputs: its task, and the judge model's address."""

    task: Evaluation
    model: str


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
    with `identities` (endpoint name -> `endpoint_identity`); without it nothing is cached and
    endpoints may be named by name. `bills(endpoint)` says whether an endpoint's calls cost
    money (without it, all do); `batches(endpoint)` whether it takes draws of one request as
    one request (`supports_n`: their prompt is billed once); `served(address)` the model that
    answers an address, whose size counts (a stand-in's, `eval.run_labels.Namer.served`; by
    default the catalogue's entry). A coroutine, though it waits on
    nothing: it runs the real mixture, whose layers gather their calls on the running event
    loop.
    """
    estimate = output_tokens if callable(output_tokens) else lambda _address: output_tokens
    planner = _Planner(estimate, frozenset(already_cached), cache, identities, batches)
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
    for spec in variants:
        mixture = _PlanningMixture(spec, planner)
        tally = _Tally(spec.name + repeat_suffix(spec.repeat), catalogue, planner, charged)
        tally.served = served or catalogue.by_address
        outputs = []
        for instance, config in zip(instances, configs, strict=True):
            trace = await mixture.converse(instance.turns, config)
            tally.add(trace)
            outputs.append(trace.outputs)
        if judge is not None:
            planner.recording = []
            try:
                await judge.task.plan_judge(planner, judge.model, spec, instances, outputs)
            except NotImplementedError:
                notes.append(f"judging is not planned: the {judge.task.name} task cannot plan it")
                judge = None
            else:
                tally.add_judging(planner.recording)
            finally:
                planner.recording = None
        plans.append(tally.result())
    return PlanResult(plans, frozenset(planner.seen), None if judge is None else judge.model, notes)


async def endpoint_identity(name: str, spec: Mapping[str, Any]) -> str:
    """The identity `moa.client.ModelClient` puts into the cache keys of an endpoint's calls:
    its provider's own `identity`, from a provider built as the client builds it but needing no
    API key (the key is in no cache key). The `local` provider is not built, which would load
    the weights or start a server: its identity names the weights file only."""
    kind = str(spec.get("provider", "openai"))
    if kind == "local":
        from moa.providers import local

        if spec.get("mode") == "server":
            return object.__new__(local.ManagedServer).identity
        return object.__new__(local.InProcess).identity
    skip = {"provider", BILLS, SUPPORTS_N, "api_key_env", *LIMIT_KEYS}
    api = create_provider(kind, name, {k: v for k, v in spec.items() if k not in skip})
    try:
        return api.identity
    finally:
        await api.aclose()


def batches(spec: Mapping[str, Any]) -> bool:
    """Whether an endpoint's draws of one request go as one (`ModelClient.generate_batch`)."""
    return bool(spec.get(SUPPORTS_N, False)) and spec.get("on_empty", "keep") != "retry"


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
    counted once), each judged after it when `judge.enabled`, against the configured cache."""
    catalogue, endpoints = settings.catalogue, settings.endpoints
    unbilled = unbilled_endpoints(endpoints)
    namer = Namer(catalogue, endpoints)
    by_benchmark: dict[str, list[Settings]] = {}
    for point in points:
        by_benchmark.setdefault(point.benchmark.name, []).append(point)
    cache = open_cache(settings)
    identities: dict[str, str] = {}
    results = []
    try:
        for name, group in by_benchmark.items():
            first = group[0]
            specs = list(dict.fromkeys(s for c in group for s in repeats(c)))
            task = task_of(first)
            judging = None
            if first.judge.enabled:
                judging = Judging(task, judge_address(first, task))
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
                batches=lambda endpoint: batches(endpoints[endpoint]),
                served=namer.served,
            )
            if result.judge is not None and namer.stands_in(result.judge):  # said to be one
                result.judge = f"{result.judge}: {namer(result.judge)}"
            results.append((name, result))
    finally:
        if cache is not None:
            cache.close()
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


async def plan_sweep(settings: Settings, points: Sequence[Settings], console: Console) -> None:
    """`task=plan`: a table per benchmark (`plan_points`), then the totals of the whole sweep."""
    results = await plan_points(settings, points)
    budget = settings.budget
    for name, result in results:
        console.rule(f"{name}: {len(result.variants)} variant(s)")
        # a wide table: rich would wrap it to the terminal
        print(result.render(budget.max_usd, budget.max_calls))
    console.rule("all")
    console.print(sweep_totals(results, settings.plan.output_tokens))
