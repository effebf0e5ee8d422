"""Plan mode: a sweep's calls, tokens, dollars and TFLOPs, predicted before anything is spent.

A real sweep shares calls through the content-addressed cache: two variants make one call when
model, messages, decoding config and sample index agree (`moa.cache.call_key`). MoA-Lite after
MoA, for instance, costs nothing: its layer 1 is MoA's layer 1 and its aggregator request is
MoA's layer-2 Qwen1.5-72B proposer request. So the plan runs the real `moa.mixture.Mixture` over
every instance with a generator that calls no model: each call is answered with a placeholder
that names the request by its cache key, so later requests are built from exactly what they
would be built from, and two requests are one call exactly when they would be byte-identical.

Failed proposals are out of scope: the plan assumes every call succeeds. The context policy
fits placeholders, not answers, so the plan also assumes no reference is trimmed or dropped.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from eval.benchmarks.base import Instance
from moa.budget import check_plan
from moa.cache import call_key
from moa.catalogue import Catalogue, ModelEntry, split_address
from moa.flops import call_tflops, turn_tflops
from moa.mixture import Mixture, MixtureSpec
from moa.tokens import MESSAGE_OVERHEAD, estimate_tokens
from moa.trace import ConversationTrace, TurnTrace
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig

# What a planned call "answers": the name of its request. `pick` stands for the proposal a ranker
# picks, which only the model knows (see `_PlanningMixture`).
_PLACEHOLDER = re.compile("⟦(?:call|pick):[0-9a-f]{64}⟧")
# What a planned ranker answers: a valid pick, so the mixture records no fallback.
_RANKER_ANSWER = "1"


@dataclass
class VariantPlan:
    """One variant's share of the sweep."""

    name: str
    calls: int = 0  # every call the variant makes, as if it ran alone
    new_calls: int = 0  # calls no earlier variant (nor `already_cached`) made: what it adds
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0  # uncached cost of all its calls
    new_usd: float = 0.0  # cost of its new calls only
    tflops: float = math.nan  # mean per instance, counted as the paper counts it (`moa.flops`)
    unpriced: int = 0  # calls whose model has no price: left out of `usd` and `new_usd`


@dataclass
class PlanResult:
    variants: list[VariantPlan]
    # The plan's key of every call the sweep makes: pass it as `already_cached` to plan what a
    # later sweep adds. Keys name endpoints by name, so they are not the cache's own keys.
    identities: frozenset[str] = field(repr=False)

    @property
    def total_calls(self) -> int:
        """Calls without sharing: what the variants would make run each on an empty cache."""
        return sum(v.calls for v in self.variants)

    @property
    def unique_calls(self) -> int:
        """Calls with sharing: the requests the sweep will actually send."""
        return sum(v.new_calls for v in self.variants)

    @property
    def total_usd(self) -> float:
        return sum(v.usd for v in self.variants)

    @property
    def unique_usd(self) -> float:
        return sum(v.new_usd for v in self.variants)

    @property
    def unpriced(self) -> int:
        return sum(v.unpriced for v in self.variants)

    def budget_warning(self, max_usd: float | None, max_calls: int | None) -> str | None:
        """One line per variant whose run would pass the caps (`budget.max_usd`, `max_calls`),
        or None. The caps hold per run directory, i.e. per variant, and a run in the sweep
        spends only its new calls: those are what is checked (`moa.budget.check_plan`)."""
        lines = []
        for v in self.variants:
            if warning := check_plan(max_usd, max_calls, v.new_usd, v.new_calls):
                lines.append(f"{v.name}: {warning}")
            if max_usd is not None and v.unpriced:
                lines.append(
                    f"{v.name}: {v.unpriced:,} calls have no catalogue price, so a run with "
                    "budget.max_usd set refuses to start"
                )
        return "\n".join(lines) or None

    def to_frame(self) -> pd.DataFrame:
        """One row per variant plus a `total` row, indexed by variant name."""
        rows = [asdict(v) for v in self.variants]
        rows.append(
            {
                "name": "total",
                "calls": self.total_calls,
                "new_calls": self.unique_calls,
                "input_tokens": sum(v.input_tokens for v in self.variants),
                "output_tokens": sum(v.output_tokens for v in self.variants),
                "usd": self.total_usd,
                "new_usd": self.unique_usd,
                "tflops": math.nan,  # a per-instance mean of one variant: it does not add up
                "unpriced": self.unpriced,
            }
        )
        return pd.DataFrame(rows).set_index("name")

    def render(self, max_usd: float | None = None, max_calls: int | None = None) -> str:
        """The table and totals, then `budget_warning` for the given caps, if any."""
        frame = self.to_frame()
        counts = "{:,}".format
        text = frame.to_string(
            na_rep="-",
            formatters={
                "calls": counts,
                "new_calls": counts,
                "input_tokens": counts,
                "output_tokens": counts,
                "unpriced": counts,
                "usd": "${:,.2f}".format,
                "new_usd": "${:,.2f}".format,
                "tflops": "{:,.1f}".format,
            },
        )
        lines = [
            text,
            f"{self.unique_calls:,} of {self.total_calls:,} calls to make (the rest are shared),"
            f" ${self.unique_usd:,.2f} of ${self.total_usd:,.2f}",
        ]
        if self.unpriced:
            lines.append(f"{self.unpriced:,} calls have no catalogue price: not in the dollars")
        if warning := self.budget_warning(max_usd, max_calls):
            lines.append(warning)
        return "\n".join(lines)


class _Planner:
    """A `moa.types.Generator` that calls no model.

    Each call gets the key `moa.client.ModelClient` would give it, with the endpoint's name
    standing in for its identity (only equality matters here), and answers a placeholder naming
    that key: a ranker answers a valid pick instead. A call is cached when an earlier call of the
    sweep, or `already_cached`, had its key. Tokens are `moa.tokens` estimates of the request,
    each placeholder counting as the answer it stands for, and `output_tokens(model)` for the
    answer, capped by `max_tokens`.
    """

    def __init__(self, output_tokens: Callable[[str], int], already_cached: frozenset[str]) -> None:
        self.output_tokens = output_tokens
        self.already_cached = already_cached
        self.seen: set[str] = set()
        self.stands_for: dict[str, int] = {}  # placeholder -> the tokens of the answer it names
        self._estimates: dict[str, int] = {}
        # Identical requests get one key and one answer, computed once. The requests are kept
        # as tuples of strings and numbers, which the garbage collector does not need to follow.
        self._configs: dict[int, tuple[GenerateConfig, int]] = {}  # by id(); keeps them alive
        self._canonical: dict[str, int] = {}
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
        request: tuple[str | int, ...] = (
            model,
            sample,
            self._config_id(config),
            *[p for m in messages for p in (m["role"], m["content"])],
        )
        known = self._answers.get(request)
        if known is not None:  # the very same request: the sweep has made it already
            key, completion = known
            record = CallRecord(
                key, model, sample, completion.input_tokens, completion.output_tokens, cached=True
            )
            return CallOutcome(completion, record)
        endpoint, model_id = split_address(model)
        key = call_key(endpoint, model_id, messages, config, sample)
        estimate = self._estimates.get(model)
        if estimate is None:
            estimate = self._estimates[model] = self.output_tokens(model)
        out = estimate if config.max_tokens is None else min(estimate, config.max_tokens)
        if tags is not None and tags.get("role") == "ranker":
            text = _RANKER_ANSWER
        else:
            text = f"⟦call:{key}⟧"
            self.stands_for[text] = out
        prompt = sum(self._estimate(m["content"]) for m in messages)
        completion = Completion(text, prompt, out)
        self._answers[request] = key, completion
        cached = key in self.seen or key in self.already_cached
        self.seen.add(key)
        return CallOutcome(completion, CallRecord(key, model, sample, prompt, out, cached=cached))

    def _config_id(self, config: GenerateConfig) -> int:
        """A number per config as the cache key sees it: 0 and 0.0, equal in Python, are not."""
        known = self._configs.get(id(config))
        if known is not None:
            return known[1]
        canonical = json.dumps(config.as_dict(), sort_keys=True)
        number = self._canonical.setdefault(canonical, len(self._canonical))
        self._configs[id(config)] = config, number
        return number

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
    overcount then, never undercount). It stands for the mean length of the proposals."""

    generator: _Planner

    async def run_turn(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
    ) -> TurnTrace:
        trace = await super().run_turn(messages, config, tags)
        if self.spec.mode == "rank" and trace.output is not None and trace.final is not None:
            lengths = [c.output_tokens for c in trace.layers[-1] if c.text is not None]
            trace.output = f"⟦pick:{trace.final.key}⟧"
            self.generator.stands_for[trace.output] = sum(lengths) // max(len(lengths), 1)
        return trace


class _Tally:
    """Adds up a variant's traces as `eval.report` adds up a real run's."""

    def __init__(self, name: str, catalogue: Catalogue) -> None:
        self.plan = VariantPlan(name)
        self.catalogue = catalogue
        self.entries: dict[str, ModelEntry] = {}
        self.tflops: list[float] = []  # per instance

    def add(self, trace: ConversationTrace) -> None:
        tally = self.plan
        layers = []
        for turn in trace.turns:
            for layer in [*turn.layers, [turn.final] if turn.final else []]:
                layer_flops = []
                for call in layer:
                    if not call.key:  # refused by the context policy: never sent
                        continue
                    entry = self.entries.get(call.model)
                    if entry is None:
                        entry = self.entries[call.model] = self.catalogue.by_address(call.model)
                    tally.calls += 1
                    tally.new_calls += not call.cached
                    tally.input_tokens += call.input_tokens
                    tally.output_tokens += call.output_tokens
                    usd = entry.cost(call.input_tokens, call.output_tokens)
                    if math.isnan(usd):
                        tally.unpriced += 1
                    else:
                        tally.usd += usd
                        if not call.cached:
                            tally.new_usd += usd
                    tokens = call.input_tokens + call.output_tokens
                    layer_flops.append(call_tflops(entry.active_params_b, tokens))
                layers.append(layer_flops)
        self.tflops.append(turn_tflops(layers))

    def result(self) -> VariantPlan:
        flops = self.tflops
        self.plan.tflops = sum(flops) / len(flops) if flops else math.nan
        return self.plan


async def plan(
    variants: Sequence[MixtureSpec],
    instances: Sequence[Instance],
    config_for: Callable[[Instance], GenerateConfig],
    catalogue: Catalogue,
    *,
    output_tokens: int | Callable[[str], int] = 400,
    already_cached: Collection[str] = (),
) -> PlanResult:
    """Predicts what running `variants` in order over `instances` will call and cost.

    A variant's `new_calls` are the calls that neither an earlier variant in the list nor
    `already_cached` (e.g. an earlier plan's `identities`) makes. Tokens are estimated, not
    counted: `moa.tokens` for the requests, `output_tokens` (a number, or one per model address)
    for every answer, capped by `max_tokens`. TFLOPs follow the paper (`moa.flops`), averaged
    over instances. A coroutine, though it waits on nothing: it runs the real mixture, whose
    layers gather their calls on the running event loop.
    """
    estimate = output_tokens if callable(output_tokens) else lambda _address: output_tokens
    planner = _Planner(estimate, frozenset(already_cached))
    configs = [config_for(instance) for instance in instances]
    plans = []
    for spec in variants:
        mixture = _PlanningMixture(spec, planner)
        tally = _Tally(spec.name, catalogue)
        for instance, config in zip(instances, configs, strict=True):
            tally.add(await mixture.converse(instance.turns, config))
        plans.append(tally.result())
    return PlanResult(plans, frozenset(planner.seen))
