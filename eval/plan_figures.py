"""What a plan says: each variant's calls, tokens, dollars and TFLOPs (`VariantPlan`), the
sweep's (`PlanResult`) with its table, totals and budget warning, and how a variant's planned
traces and judging add up into them (`Tally`), as `eval.report` adds up a real run's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from eval.plan_stand_in import StandIn
from moa.budget import check_plan
from moa.catalogue import Catalogue, ModelEntry
from moa.flops import call_tflops, turn_tflops
from moa.ledger import price_hint
from moa.trace import ConversationTrace
from moa.types import CallRecord

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


class Tally:
    """Adds up a variant's traces as `eval.report` adds up a real run's, and its judging."""

    def __init__(
        self, name: str, catalogue: Catalogue, planner: StandIn, bills: Callable[[str], bool]
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

    def add_calls(self, records: Sequence[CallRecord]) -> None:
        """Calls made outside a mixture, counted as a variant's own (a calibration's judge
        calls, `eval.calibrate.plan`)."""
        for r in records:
            self._count(r.key, r.model, r.input_tokens, r.output_tokens, judging=False)

    def result(self) -> VariantPlan:
        flops = self.tflops
        self.plan.tflops = sum(flops) / len(flops) if flops else math.nan
        return self.plan
