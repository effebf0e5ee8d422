"""Who gets a free slot first, and how many slots a model gets.

`PRIORITY` is the calling task's place in line: the runner sets it per instance, to the
instance's position (lower = started earlier = served first), so that a run stopped early (at a
budget cap) leaves whole instances rather than many half-done ones. Every wait for a slot in
`moa.client` serves waiters lowest priority first, first come first served within one priority;
a task that set none waits behind every task that did. Tasks inherit it from the task that
created them, so a mixture's concurrent proposer calls share their instance's.

`Slots` is a counting semaphore with that order, for an endpoint's `max_concurrency`.
`AdaptiveSlots` is one model's concurrency, learned from the server's refusals (see its class).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import TypeVar, cast

PRIORITY: ContextVar[int | None] = ContextVar("moa_priority", default=None)

_LAST = math.inf  # the place of a waiter whose task set no priority
_MOST_PATIENCE = 16.0  # a found limit is probed at least once per 16 x limit successes
# The least a model's learned concurrency starts at (`opening`) unless the endpoint says.
SLOW_START = 4


def opening(cap: int) -> int:
    """Where a model's learned concurrency starts (`AdaptiveSlots`' slow start) unless the
    endpoint sets `start_concurrency`: half its cap, at least `SLOW_START`. A round of calls
    below the cap costs a call's duration at part width, a refusal only an instant answer: from
    half the cap one round of successes reaches it, and a cap above the server's real limit meets
    at most half the opening refusals of a full-width start."""
    return min(cap, max(SLOW_START, cap // 2))


class Slots:
    """At most `capacity` holders at once; waiters are served by `PRIORITY`, then arrival.

    A free slot goes straight to the first waiter, so a newcomer never overtakes one. A waiter
    cancelled before it was served leaves its entry behind (dropped when it reaches the top); one
    cancelled after it was handed a slot, but before it ran, gives the slot on.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = max(1, capacity)
        self.in_use = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def waiting(self) -> int:
        """Waiters not yet served (cancelled ones included until they reach the top)."""
        return len(self._waiters)

    async def acquire(self) -> None:
        if not self._waiters and self.in_use < self.capacity:
            self.in_use += 1
            return
        priority = PRIORITY.get()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        place = _LAST if priority is None else priority
        heapq.heappush(self._waiters, (place, next(self._arrivals), future))
        self._wake()  # the entries ahead may all be cancelled ones
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # it was handed a slot it will never use
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_use < self.capacity:
            future = heapq.heappop(waiters)[2]
            if not future.done():  # else: cancelled while waiting
                self.in_use += 1
                future.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class AdaptiveSlots(Slots):
    """One model's concurrency, learned: a slow start, then additive increase, multiplicative
    decrease.

    The limit starts at `start` (default `cap`, the configured concurrency) and never passes
    `cap`. Until the first refusal it is in slow start: each success adds two slots while the
    slots are all in use or wanted (the limit triples per round of calls: the rounds spent below
    the real limit are most of what a short run loses), so an unknown limit is found in a few
    rounds without a full-width burst of refusals. The first refusal ends the slow start: the
    limit drops to the calls sent before the refused one and still in flight (what the server
    was holding when it refused: a provider refuses at once), not below a quarter; halving
    instead would undershoot a limit just passed and take many rounds of additive increase to
    win back, or overshoot it when the tripling ran past twice the limit. Refusals of calls
    sent before that decrease may lower it again to their own count, not below the quarter (a
    server answers them in any order). Then a call holds one slot while in flight (`take`,
    then `give_back` with how it ended):

    - a success adds 1/(limit x patience) while the slots are all in use or wanted, up to `cap`:
      one more slot per `limit` successes while patience is 1;
    - a refusal (HTTP 429, or 503 with Retry-After: `refused=True`) lowers it, at most once per
      window: a refusal of a request sent before the last decrease is already accounted for. If
      the limit had grown since its last decrease, the refused request was the probe one above
      what worked: the limit takes back that slot, and patience doubles (up to 16), so a limit
      once found is probed less and less often. Else the limit is still too high: it halves,
      never below 1, and patience is back to 1. Growing two slots past the last decrease also
      puts patience back to 1: the server takes more than it did;
    - any other ending leaves it as it is.

    `give_back` says whether a refusal was the limiter learning (it lowered the limit, or was
    already accounted for): `ModelClient` does not count such an attempt against
    `max_attempts` (up to `moa.client.FREE_REFUSALS` of them per call). A refusal at a limit of
    1 teaches nothing more, and counts.
    """

    def __init__(self, cap: int, start: int | None = None) -> None:
        super().__init__(cap)
        self.cap = max(1, cap)
        self.limit = float(self.cap if start is None else min(max(1, start), self.cap))
        self.slow_start = self.limit < self.cap
        self.lowest = self.capacity  # the lowest the limit went, for a run's summary and tests
        self.decreases = 0
        self._sent = 0  # requests let through so far: their tickets
        self._flying: set[int] = set()  # the tickets of the requests in flight
        self._window = 0  # tickets below this were sent before the last decrease
        self._level = self.cap  # the slots right after the last decrease
        self._patience = 1.0
        # After the slow start's end, until the next decrease: the lowest the limit may go
        # (a quarter of where it ended) while the refusals of calls sent before it come in.
        self._settling: float | None = None

    @property
    def capacity(self) -> int:
        return max(1, int(self.limit))

    async def take(self) -> int:
        """Waits for a slot; returns the ticket to give back with it."""
        await self.acquire()
        ticket = self._sent
        self._sent += 1
        self._flying.add(ticket)
        return ticket

    def give_back(self, ticket: int, *, ok: bool = False, refused: bool = False) -> bool:
        """Frees the slot; adapts the limit to how the call ended. True when a refusal was the
        limiter learning (see the class)."""
        learned = False
        self._flying.discard(ticket)
        if ok:
            if self.limit < self.cap and (self._waiters or self.in_use >= self.capacity):
                step = 2.0 if self.slow_start else 1.0 / (self.limit * self._patience)
                self.limit = min(float(self.cap), self.limit + step)
                if self.capacity >= self._level + 2:
                    self._patience = 1.0
        elif refused:
            slow_start, self.slow_start = self.slow_start, False
            if ticket < self._window:
                learned = True  # sent before the last decrease: that one accounted for it
                if self._settling is not None:  # the slow start's end: the fewest held wins
                    self.limit = max(self._settling, min(self.limit, self._held_before(ticket)))
                    self._level = self.capacity
                    self.lowest = min(self.lowest, self._level)
            elif self.limit > 1.0:
                if slow_start:  # past the real limit: back to it, and grow slowly from there
                    self._settling = max(1.0, self.limit / 4.0)
                    held = min(self._held_before(ticket), self.limit - 1.0)
                    self.limit = max(self._settling, held)
                elif self.capacity > self._level:  # a probe
                    self.limit -= 1.0
                    self._patience = min(2.0 * self._patience, _MOST_PATIENCE)
                    self._settling = None
                else:
                    self.limit = max(1.0, self.limit / 2.0)
                    self._patience = 1.0
                    self._settling = None
                self._level = self.capacity
                self.lowest = min(self.lowest, self._level)
                self._window = self._sent
                self.decreases += 1
                learned = True
        self.release()
        return learned

    def _held_before(self, ticket: int) -> float:
        """The calls sent before `ticket` and still in flight: what the server held when it
        refused that one, as a provider refuses at once."""
        return float(sum(1 for t in self._flying if t < ticket))


T = TypeVar("T")


async def settle_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Every call's result, in order, the calls run concurrently. One that raises (a budget stop:
    `moa.budget.BudgetExceeded`) does not abandon its siblings: its exception is raised once every
    other call has ended, so the calls already sent finish and are recorded once, while the client
    is still open, and the calls not yet admitted are refused by the same budget."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)
