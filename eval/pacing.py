"""Under a budget cap, when the runner may start another instance.

Money spent on an instance that cannot finish buys nothing, so a run stopped at a cap should
leave whole instances. The budget (`moa.budget`) serves the calls of instances started earlier
first; this decides when a new instance starts. What an instance costs is learned from those
ended so far, in this run or an earlier one of its directory (the mean of what they were billed
and of the calls they sent); what the caps leave counts the calls in flight at their likely cost
(`Budget.room_usd`). A new instance starts:

- while the running ones and it fit even if every call of theirs ran to its worst (its likely
  cost plus `Budget.headroom`, the most a call's worst case has exceeded its real cost);
- else, when the running ones and it likely cost at most half of what is left and no more than
  two run per instance ended: the estimate is what protects them now, and a mean of a few
  instances can be low by much;
- alone, when its likely cost and one call's headroom fit: its last call is sent only if its
  worst case fits (`moa.budget`).

Until an instance has ended nothing is known of what one costs, so the first runs alone. When
no instance is running and the next does not fit, the run stops, saying why. With room for many
instances this changes nothing but that first one: it paces a run's end.
"""

from __future__ import annotations

import asyncio
import math

from eval.rundir import InstanceResult
from moa.budget import Budget
from moa.types import GenerateConfig


class Pacer:
    """One run's instance starts under its budget's caps (see the module's docstring)."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.running = 0
        self._ended = 0
        self._usd = 0.0  # what the ended instances were billed
        self._calls = 0  # the calls they sent
        self._change = asyncio.Event()

    async def admit(self, config: GenerateConfig) -> str | None:
        """Waits until the next instance (decoded with `config`) may start (None, and it counts
        as running), or says why it may not while none is running: the stop."""
        while True:
            short = self._short(config)
            if short is None:
                self.running += 1
                return None
            if self.running == 0:
                return short
            change = self._change
            await change.wait()

    def ended(self, result: InstanceResult | None) -> None:
        """An admitted instance ended: with its result, or without (it was stopped)."""
        self.running -= 1
        if result is not None:
            self.learn(result)
        self._change.set()
        self._change = asyncio.Event()

    def learn(self, result: InstanceResult) -> None:
        """What an ended instance cost (one of this run, or of an earlier run of its directory,
        so that a resumed run knows it from the start)."""
        self._ended += 1
        for call in result.trace.calls():
            if call.billed and not math.isnan(call.cost_usd):
                self._usd += call.cost_usd
            if call.key and not call.cached:
                self._calls += 1

    def _short(self, config: GenerateConfig) -> str | None:
        """Why the next instance may not start now (None: it may); see the module's docstring."""
        budget = self.budget
        if budget.refused is not None:
            return budget.refused
        if not self._ended:
            return None if self.running == 0 else "the first instance is still running"
        calls = self._calls / self._ended
        usd = self._usd / self._ended
        headroom = budget.headroom(config)
        worst = usd + calls * headroom
        instances = self.running + 1
        if budget.room_calls() >= instances * calls and budget.room_usd() >= instances * worst:
            return None
        if self.running >= 2 * self._ended:
            return "too few instances ended to trust what one costs"
        share = 2 * instances if self.running else 1
        if budget.room_calls() < share * calls:
            return budget.reached("max_calls", f"the next instance would likely need {calls:.0f}")
        if budget.room_usd() < share * usd + headroom:
            return budget.reached(
                "max_usd",
                f"the next instance would likely cost ${usd:.4f}, and its last call up to "
                f"${headroom:.4f} more",
            )
        return None
