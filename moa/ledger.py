"""The call ledger: one JSON line per call, plus running totals for progress and reports."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from moa.jsonl import open_append, read_lines, to_json_text
from moa.types import CallRecord

__all__ = ["Ledger", "Totals", "open_append", "price_hint", "read_ledger", "usd"]


def price_hint(address: str) -> str:
    """How to give a model a price, for a summary that found none (`Totals.money`)."""
    override = f'+catalogue.<name>={{address:"{address}",price_in:...,price_out:...}}'
    return (
        "add it to the catalogue (conf/catalogue/*.yaml: price_in, price_out per million tokens)"
        f" or override '{override}'"
    )


@dataclass
class Totals:
    """Running totals of a ledger. Money at catalogue prices, calls to endpoints that do not bill
    priced free: `cost_usd` was paid (calls sent to endpoints that bill), cache hits cost
    nothing; `nominal_usd` is both."""

    calls: int = 0
    cached: int = 0
    errors: int = 0
    retries: int = 0
    retrying: int = 0  # retries of calls still under way: `retries` counts them once each ends
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # paid: calls sent to an endpoint that bills (`CallRecord.billed`)
    nominal_usd: float = 0.0  # every call at catalogue prices, cached and free ones included
    unpriced: int = 0  # calls whose model has no price in the catalogue
    unbilled_endpoints: set[str] = field(default_factory=set)  # free endpoints called
    unpriced_models: set[str] = field(default_factory=set)  # addresses of the unpriced calls
    # The answers' marks (`CallRecord`), cache hits included: each counts a call whose answer
    # was so, whether it was kept or a policy failed the call for it.
    truncated: int = 0  # cut off at max_tokens (finish_reason "length")
    empty: int = 0  # no text
    tokens_estimated: int = 0  # the endpoint sent no usage: tokens and cost are estimates
    unsent: int = 0  # failed without a request: their endpoint had refused the key
    repaired: int = 0  # lone surrogates replaced by U+FFFD

    @property
    def requests(self) -> int:
        """Calls that went to an endpoint (not answered from the cache, not refused unsent)."""
        return self.calls - self.cached - self.unsent

    def marks(self) -> str:
        """The answers kept with a mark, and the calls never sent, as a phrase ('' if none)."""
        parts = [
            f"{n:,} {what}"
            for n, what in (
                (self.truncated, "cut at max_tokens"),
                (self.empty, "empty"),
                (self.tokens_estimated, "with tokens estimated (no usage)"),
                (self.repaired, "with lone surrogates replaced by U+FFFD"),
                (self.unsent, "not sent (endpoint stopped)"),
            )
            if n
        ]
        return "answers: " + ", ".join(parts) if parts else ""

    def money(self) -> str:
        """The money in one phrase for a summary, e.g. "$0.00 paid; free endpoints (scripted)
        cost nothing", naming any unpriced model and how to price it."""
        parts = [f"{usd(self.cost_usd)} paid"]
        if self.unbilled_endpoints:
            names = ", ".join(sorted(self.unbilled_endpoints))
            parts.append(f"free endpoints ({names}) cost nothing")
        hits = self.nominal_usd - self.cost_usd
        if hits > 5e-5:  # below what `usd` shows, it is rounding
            parts.append(f"cache hits worth {usd(hits)} at catalogue prices")
        if self.unpriced_models:
            models = sorted(self.unpriced_models)
            shown = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if models[3:] else "")
            parts.append(f"no price for {shown}: {price_hint(models[0])}")
        return "; ".join(parts)


def usd(amount: float) -> str:
    """Dollars as a summary shows them: cents from $1 up, a hundredth of a cent below."""
    if amount == 0:
        return "$0.00"
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.4f}"


class Ledger:
    """Appends each record as one whole line and flushes, so a kill leaves at most a torn tail."""

    def __init__(self, path: Path | None = None) -> None:
        self.totals = Totals()
        self.path = path
        self._file: IO[str] | None = None
        if path is not None:
            self._file = open_append(path)

    def add(self, record: CallRecord) -> None:
        t = self.totals
        t.calls += 1
        t.retries += max(record.attempts - 1, 0)
        t.input_tokens += record.input_tokens
        t.output_tokens += record.output_tokens
        if record.cached:
            t.cached += 1
        if record.error is not None:
            t.errors += 1
        if record.truncated:
            t.truncated += 1
        if record.empty:
            t.empty += 1
        if record.tokens_estimated:
            t.tokens_estimated += 1
        if record.unsent:
            t.unsent += 1
        if record.repaired:
            t.repaired += 1
        cost = record.cost_usd
        if math.isnan(cost):
            t.unpriced += 1
            t.unpriced_models.add(record.model)
        else:
            t.nominal_usd += cost
            if record.billed:
                t.cost_usd += cost
        if not record.billed and not record.cached:
            t.unbilled_endpoints.add(record.model.partition("/")[0])
        if self._file is not None:
            self._file.write(to_json_text(record.to_json()) + "\n")
            self._file.flush()

    def retrying(self, change: int) -> None:
        """A call under way retried (+1), or ended with its retries (-n) to be counted by `add`:
        the progress bar shows retries as they happen, not only once their call ends."""
        self.totals.retrying += change

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line; a torn last line from a killed run is skipped."""
    return read_lines(path, torn_tail_ok=True)
