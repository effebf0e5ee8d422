"""Spending caps: a run stops scheduling calls before it would spend more than it may.

Every call that will reach an endpoint that bills is priced before it is sent, at catalogue
prices, for its estimated prompt (`moa.tokens`, which errs high) and its whole `max_tokens`, and
that estimate is held while the call is in flight; the real cost replaces it when the call ends. A
call is refused when the settled spend plus the held estimates plus its own would pass a cap, so
the cap can only be passed by what the estimates got wrong about calls already in flight.

`max_usd` caps money billed: calls to endpoints that do not bill (`moa.catalogue.endpoint_bills`:
scripted, local, replay, a self-hosted server that says `bills: false`) never count against it,
though they count against `max_calls`, which caps every call sent.

The caps cover a run directory across resumes: earlier runs' ledgers count (`from_ledgers`). Once
one call is refused every later one is too, so a stopped run stops; cached calls stay free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moa.catalogue import ModelEntry
from moa.errors import ConfigError
from moa.ledger import read_ledger
from moa.tokens import estimate_prompt
from moa.types import ChatMessage, Completion, GenerateConfig

# The answer length assumed when a call sets no max_tokens and the window is unknown.
DEFAULT_OUTPUT_TOKENS = 4096


class BudgetExceeded(Exception):
    """Raised instead of sending a call the caps do not allow. Not a call failure: nothing was
    sent, and the mixture must not treat it as a failed proposal."""


@dataclass(frozen=True)
class Hold:
    usd: float
    calls: int = 1  # a request of n draws (`supports_n`) counts as the n calls it answers


@dataclass
class Budget:
    max_usd: float | None = None
    max_calls: int | None = None
    spent_usd: float = 0.0  # settled calls, including earlier runs of the same run directory
    calls: int = 0
    held_usd: float = 0.0  # estimates of the calls in flight
    held_calls: int = 0
    refused: str | None = field(default=None)  # why the first call was refused
    # Endpoints whose calls cost nothing: `ModelClient` sets them from its endpoints' configs.
    unbilled: frozenset[str] = frozenset()

    @property
    def capped(self) -> bool:
        return self.max_usd is not None or self.max_calls is not None

    def bills(self, entry: ModelEntry) -> bool:
        """Whether a call to this model is paid for, so counts against `max_usd`."""
        return entry.endpoint not in self.unbilled

    def require_price(self, entry: ModelEntry) -> None:
        """A dollar cap needs every billed model priced: an unpriced call could cost anything."""
        if self.max_usd is not None and self.bills(entry) and math.isnan(entry.cost(1, 1)):
            raise ConfigError(
                f"budget.max_usd is set but {entry.address} has no price in the catalogue: "
                "add price_in and price_out, or unset budget.max_usd"
            )

    def hold(
        self,
        entry: ModelEntry,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        n: int = 1,
    ) -> Hold:
        """Reserves a call's estimated cost (of `n` draws in one request), or raises
        `BudgetExceeded`."""
        if not self.capped:
            return Hold(0.0, n)
        usd = estimate_usd(entry, messages, config, n) if self.bills(entry) else 0.0
        if self.refused is None:
            self.refused = self._refusal(usd, n)
        if self.refused is not None:
            raise BudgetExceeded(self.refused)
        self.held_usd += usd
        self.held_calls += n
        return Hold(usd, n)

    def settle(self, hold: Hold, entry: ModelEntry, completion: Completion | None) -> None:
        """The call ended: its real cost (none for a failed or unbilled call) replaces its
        estimate."""
        if not self.capped:
            return
        self.held_usd -= hold.usd
        self.held_calls -= hold.calls
        self.calls += hold.calls
        if completion is not None and self.bills(entry):
            cost = entry.cost(completion.input_tokens, completion.output_tokens)
            self.spent_usd += 0.0 if math.isnan(cost) else cost

    def status(self) -> str:
        """What has been spent against the caps, for the message a stopped run ends with."""
        caps = [f"budget.max_usd={self.max_usd:g}"] if self.max_usd is not None else []
        caps += [f"budget.max_calls={self.max_calls}"] if self.max_calls is not None else []
        return f"{self.calls} calls made, ${self.spent_usd:.4f} spent ({', '.join(caps)})"

    def _refusal(self, usd: float, n: int) -> str | None:
        if self.max_calls is not None and self.calls + self.held_calls + n > self.max_calls:
            return f"budget.max_calls={self.max_calls} reached: {self.calls} calls made" + (
                f", {self.held_calls} in flight" if self.held_calls else ""
            )
        if self.max_usd is not None and self.spent_usd + self.held_usd + usd > self.max_usd:
            return (
                f"budget.max_usd={self.max_usd:g} reached: ${self.spent_usd:.4f} spent"
                + (f", ${self.held_usd:.4f} in flight" if self.held_calls else "")
                + f"; the next call could cost ${usd:.4f}"
            )
        return None

    @classmethod
    def from_ledgers(
        cls, max_usd: float | None, max_calls: int | None, ledgers: Iterable[Path]
    ) -> Budget:
        """Caps with what earlier runs of this run directory already sent and were billed for.
        A line without `billed` was written before it existed, when every call sent was."""
        budget = cls(max_usd, max_calls)
        for path in ledgers:
            for row in read_ledger(path):
                if row["cached"] or row.get("unsent"):
                    continue
                budget.calls += 1
                if row.get("billed", True):
                    cost = float(row["cost_usd"])
                    budget.spent_usd += 0.0 if math.isnan(cost) else cost
        return budget


def estimate_usd(
    entry: ModelEntry, messages: Sequence[ChatMessage], config: GenerateConfig, n: int = 1
) -> float:
    """An upper estimate of one call's cost at catalogue prices (0 for an unpriced model); of
    `n` draws in one request, the prompt counted once."""
    prompt = estimate_prompt(messages)
    output = config.max_tokens
    if output is None:
        window = entry.context_length
        output = (
            window - prompt if window is not None and window > prompt else DEFAULT_OUTPUT_TOKENS
        )
    cost = entry.cost(prompt, output * n)
    return 0.0 if math.isnan(cost) else cost


def check_plan(
    max_usd: float | None, max_calls: int | None, planned_usd: float, planned_calls: int
) -> str | None:
    """A warning when a planned run would pass a cap (None when it fits), for plan mode."""
    over = []
    if max_usd is not None and planned_usd > max_usd:
        over.append(f"${planned_usd:,.2f} exceeds budget.max_usd={max_usd:g}")
    if max_calls is not None and planned_calls > max_calls:
        over.append(f"{planned_calls:,} calls exceed budget.max_calls={max_calls}")
    if not over:
        return None
    return (
        f"the plan passes the budget ({'; '.join(over)}): the run will stop at the cap; "
        "raise it to finish in one go"
    )
