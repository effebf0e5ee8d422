"""Spending caps: a run never spends more than it may, and may spend up to the cap.

Every call to an endpoint that bills is priced before it is sent, at catalogue prices, twice: at
its worst (`most`: its estimated prompt, `moa.tokens`, which errs high, and its whole
`max_tokens`) and at what it likely costs (`likely`: the prompt and the mean answer of its model
so far at that `max_tokens`, never more than the worst; the worst until the model has answered).
A call in flight holds both; its real cost replaces them when it ends. A call is sent only when
the settled spend plus the worst of every call in flight and of its own fits under the cap, so
the paid total never passes it, whatever the answers' lengths.

A call that does not fit while others are in flight is not refused: it waits for them to end
(`NoRoom`), in line by `moa.scheduling.PRIORITY` (instances started earlier first), then
arrival, and room freed goes straight to the first in line. The cap is reached only when nothing
is in flight and the first in line still does not fit: that call and every later one is refused
(`BudgetExceeded`), so a stopped run stops; cached calls stay free. What calls likely cost is
what the runner plans instances with (`eval.pacing`).

`max_usd` caps money billed: calls to endpoints that do not bill (`moa.catalogue.endpoint_bills`:
scripted, local, replay, a self-hosted server that says `bills: false`) never count against it,
though they count against `max_calls`, which caps every call sent.

The caps cover a run directory across resumes: earlier runs' ledgers count (`from_ledgers`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moa.catalogue import ModelEntry
from moa.errors import ConfigError
from moa.ledger import read_ledger
from moa.scheduling import PRIORITY
from moa.tokens import estimate_prompt
from moa.types import ChatMessage, Completion, GenerateConfig

# The answer length assumed when a call sets no max_tokens and the window is unknown.
DEFAULT_OUTPUT_TOKENS = 4096
_SLACK = 1e-12  # dollars: float sums that should be equal to the cap count as within it


class BudgetExceeded(Exception):
    """Raised instead of sending a call the caps do not allow. Not a call failure: nothing was
    sent, and the mixture must not treat it as a failed proposal."""


@dataclass(frozen=True)
class Hold:
    """A call's reservation: its worst and likely cost, and the calls it counts as (a request
    of n draws, `supports_n`, counts as the n calls it answers)."""

    most: float = 0.0
    likely: float = 0.0
    calls: int = 1
    answers: tuple[str, int] = ("", 0)  # whose answers, at which bound, teach `likely`


# A call waiting for room: its place in line (priority, arrival), what it needs, and where its
# hold is handed to it.
_Waiter = tuple[float, int, Hold, asyncio.Future[Hold]]


class NoRoom(Exception):
    """Raised by `Budget.hold` when a call does not fit yet but calls in flight will free room:
    the caller gives back its concurrency slots and awaits `admitted`, its place in line kept,
    so that a call waiting for money never holds a slot a call in flight needs for its retry."""

    def __init__(self, budget: Budget, waiter: _Waiter) -> None:
        super().__init__("waiting for room under the budget caps")
        self._budget = budget
        self._waiter = waiter

    async def admitted(self) -> Hold:
        """The call's hold, made for it once it is first in line and fits; `BudgetExceeded`
        if a cap is reached first."""
        return await self._budget._admitted(self._waiter)


@dataclass
class Budget:
    max_usd: float | None = None
    max_calls: int | None = None
    spent_usd: float = 0.0  # settled calls, including earlier runs of the same run directory
    calls: int = 0
    held_usd: float = 0.0  # the worst the calls in flight can still cost
    likely_usd: float = 0.0  # what they likely cost
    held_calls: int = 0
    # The most a billed call's worst case has exceeded its real cost (None before one ended).
    overrun_usd: float | None = None
    refused: str | None = field(default=None)  # why the first call was refused
    # Endpoints whose calls cost nothing: `ModelClient` sets them from its endpoints' configs.
    unbilled: frozenset[str] = frozenset()
    _waiters: list[_Waiter] = field(default_factory=list, init=False, repr=False)
    _arrivals: itertools.count[int] = field(default_factory=itertools.count, init=False)
    # Per model and answer bound: answers settled and their output tokens, for `likely`.
    _answers: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict, init=False)
    _expected: list[ModelEntry] = field(default_factory=list, init=False)  # `expect`

    @property
    def capped(self) -> bool:
        return self.max_usd is not None or self.max_calls is not None

    def bills(self, entry: ModelEntry) -> bool:
        """Whether a call to this model is paid for, so counts against `max_usd`."""
        return entry.endpoint not in self.unbilled

    def expect(self, entry: ModelEntry) -> None:
        """A model the run will call, before any call: under a dollar cap a billed one must be
        priced (an unpriced call could cost anything), and its answers bound `headroom`."""
        if self.max_usd is not None and self.bills(entry) and math.isnan(entry.cost(1, 1)):
            raise ConfigError(
                f"budget.max_usd is set but {entry.address} has no price in the catalogue: "
                "add price_in and price_out, or unset budget.max_usd"
            )
        self._expected.append(entry)

    def headroom(self, config: GenerateConfig) -> float:
        """What a call may cost beyond its likely cost: the most a call's worst case has
        exceeded its real cost so far or, before any has ended (a resumed run), the dearest
        whole answer `config` allows among the billed models expected."""
        if self.overrun_usd is not None:
            return self.overrun_usd
        billed = [e for e in self._expected if self.bills(e)]
        return max((_usd(e, 0, answer_bound(e, config, 0)) for e in billed), default=0.0)

    def hold(
        self,
        entry: ModelEntry,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        n: int = 1,
    ) -> Hold:
        """Reserves a call's cost (of `n` draws in one request) when it fits and no call is
        ahead of it in line; else raises `NoRoom` (wait for calls in flight to end) or
        `BudgetExceeded` (a cap is reached)."""
        if not self.capped:
            return Hold(calls=n)
        need = self._price(entry, messages, config, n)
        if self.refused is not None:
            raise BudgetExceeded(self.refused)
        free = self.max_calls is None and need.most == 0.0  # nothing to wait for
        if free or (not self._waiters and self._fits(need)):
            return self._reserve(need)
        priority = PRIORITY.get()
        future: asyncio.Future[Hold] = asyncio.get_running_loop().create_future()
        waiter: _Waiter = (math.inf if priority is None else priority, next(self._arrivals),
                           need, future)  # fmt: skip
        heapq.heappush(self._waiters, waiter)
        self._serve()
        if future.done():
            return future.result()  # first in line and it fits, or a cap is reached
        raise NoRoom(self, waiter)

    def settle(
        self, hold: Hold, entry: ModelEntry, completion: Completion | None, *, sent: bool = True
    ) -> None:
        """The call ended: its real cost (none for a failed or unbilled call) replaces its
        hold, and counts as `hold.calls` calls if anything was `sent`."""
        if not self.capped:
            return
        self._release(hold)
        if sent:
            self.calls += hold.calls
        if completion is not None:
            answers, tokens = self._answers.get(hold.answers, (0, 0))
            self._answers[hold.answers] = (answers + hold.calls, tokens + completion.output_tokens)
            cost = entry.cost(completion.input_tokens, completion.output_tokens)
            if self.bills(entry) and not math.isnan(cost):
                self.spent_usd += cost
                self.overrun_usd = max(self.overrun_usd or 0.0, hold.most - cost)
        self._serve()

    def room_usd(self) -> float:
        """What `max_usd` likely leaves once the calls in flight end (inf without it)."""
        if self.max_usd is None:
            return math.inf
        return self.max_usd - self.spent_usd - self.likely_usd

    def room_calls(self) -> float:
        """What `max_calls` leaves once the calls in flight end (inf without it)."""
        if self.max_calls is None:
            return math.inf
        return float(self.max_calls - self.calls - self.held_calls)

    def reached(self, cap: str, why: str) -> str:
        """A stop at a cap (`max_usd` or `max_calls`), in one form for both: what was spent,
        what calls in flight hold, what is left, and why nothing more fits."""
        if cap == "max_calls" and self.max_calls is not None:
            left = self.max_calls - self.calls - self.held_calls
            return (
                f"budget.max_calls={self.max_calls} reached: {self.calls} calls made, "
                f"{self.held_calls} reserved by calls in flight, {left} left; {why}"
            )
        left_usd = (self.max_usd or 0.0) - self.spent_usd - self.held_usd
        return (
            f"budget.max_usd={self.max_usd:g} reached: ${self.spent_usd:.4f} paid, "
            f"${self.held_usd:.4f} reserved by calls in flight, ${max(left_usd, 0.0):.4f} left; "
            f"{why}"
        )

    def _price(
        self, entry: ModelEntry, messages: Sequence[ChatMessage], config: GenerateConfig, n: int
    ) -> Hold:
        prompt = estimate_prompt(messages)
        bound = answer_bound(entry, config, prompt)
        if not self.bills(entry):
            return Hold(calls=n, answers=(entry.address, bound))
        answers, tokens = self._answers.get((entry.address, bound), (0, 0))
        likely = min(bound, math.ceil(tokens / answers)) if answers else bound
        most = _usd(entry, prompt, bound * n)
        return Hold(most, min(_usd(entry, prompt, likely * n), most), n, (entry.address, bound))

    def _fits(self, need: Hold) -> bool:
        if (
            self.max_calls is not None
            and self.calls + self.held_calls + need.calls > self.max_calls
        ):
            return False
        return self.max_usd is None or (
            self.spent_usd + self.held_usd + need.most <= self.max_usd + _SLACK
        )

    def _refusal(self, need: Hold) -> str:
        if (
            self.max_calls is not None
            and self.calls + self.held_calls + need.calls > self.max_calls
        ):
            return self.reached("max_calls", f"the next call needs {need.calls}")
        return self.reached("max_usd", f"the next call could cost up to ${need.most:.4f}")

    def _reserve(self, need: Hold) -> Hold:
        self.held_usd += need.most
        self.likely_usd += need.likely
        self.held_calls += need.calls
        return need

    def _release(self, hold: Hold) -> None:
        self.held_calls -= hold.calls
        if self.held_calls:
            self.held_usd -= hold.most
            self.likely_usd -= hold.likely
        else:  # exactly, not what float subtraction leaves
            self.held_usd = self.likely_usd = 0.0

    def _serve(self) -> None:
        """Hands room to the first in line while it fits; when nothing in flight is left to free
        more, the cap is reached and everyone in line is refused."""
        waiters = self._waiters
        while waiters:
            future = waiters[0][3]
            if future.done():  # cancelled while waiting
                heapq.heappop(waiters)
                continue
            need = waiters[0][2]
            if self.refused is None and self._fits(need):
                heapq.heappop(waiters)
                future.set_result(self._reserve(need))
                continue
            if self.refused is None and self.held_calls > 0:
                return  # calls in flight will free room
            self.refused = self.refused or self._refusal(need)
            for *_, waiting in waiters:
                if not waiting.done():
                    waiting.set_exception(BudgetExceeded(self.refused))
            waiters.clear()

    async def _admitted(self, waiter: _Waiter) -> Hold:
        future = waiter[3]
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release(future.result())  # handed room it will never use
            self._serve()
            raise

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


def answer_bound(entry: ModelEntry, config: GenerateConfig, prompt: int) -> int:
    """The longest answer a call may be billed for: its max_tokens, else the rest of the
    model's window, else `DEFAULT_OUTPUT_TOKENS`."""
    if config.max_tokens is not None:
        return config.max_tokens
    window = entry.context_length
    return window - prompt if window is not None and window > prompt else DEFAULT_OUTPUT_TOKENS


def _usd(entry: ModelEntry, prompt: int, output: int) -> float:
    cost = entry.cost(prompt, output)
    return 0.0 if math.isnan(cost) else cost


def estimate_usd(
    entry: ModelEntry, messages: Sequence[ChatMessage], config: GenerateConfig, n: int = 1
) -> float:
    """The worst a call can cost at catalogue prices (0 for an unpriced model); of `n` draws in
    one request, the prompt counted once."""
    prompt = estimate_prompt(messages)
    return _usd(entry, prompt, answer_bound(entry, config, prompt) * n)


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
