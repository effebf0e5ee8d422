"""The resumable runner: every instance through the mixture, concurrently, keeping every trace.

Each finished instance becomes one line of the run directory's `traces.jsonl` (`eval.rundir`):
its outputs or its error, and the full trace. Re-running the same command skips instances that
already have outputs; the call cache makes any half-finished instance free to redo.

A run can be killed at any moment: each trace line is written whole and flushed, a torn last line
is cut before the next run appends, and other files are replaced atomically. It can also stop on
purpose, keeping all it finished: at a budget cap (under a cap instances start as `eval.pacing`
allows; at the stop the calls in flight finish and no new instance starts) or on Ctrl-C (the
instances in flight are abandoned; their finished calls are cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from eval.pacing import Pacer
from eval.progress import progress
from eval.rundir import InstanceResult, RunDir
from moa.budget import Budget, BudgetExceeded
from moa.cache import CacheWriteError
from moa.jsonl import to_json_text
from moa.ledger import Ledger, open_append
from moa.mixture import Mixture
from moa.scheduling import PRIORITY
from moa.types import GenerateConfig

log = logging.getLogger("moa_bench")
EXIT_BUDGET = 3
EXIT_CACHE = 4  # the call cache could not be written: no new call was made after that
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
_WAVE = 8  # instances starting per turn of the event loop at a run's start (`Runner.run`)


class RunStopped(Exception):
    """A run that stopped early on purpose; what it finished is saved, and the message says how
    to carry on."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Stop:
    reason: str
    exit_code: int


class Item(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def turns(self) -> tuple[str, ...]: ...
    @property
    def references(self) -> tuple[str, ...] | None: ...
    @property
    def system(self) -> str | None: ...


ItemT = TypeVar("ItemT", bound=Item)


def not_run(item_id: str, stop: Stop) -> InstanceResult:
    return InstanceResult(item_id, None, f"not run: {stop.reason}", 0, 0, 0, 0.0)


def not_generated(item_id: str) -> InstanceResult:
    return InstanceResult(item_id, None, "not generated yet", 0, 0, 0, 0.0)


@contextlib.contextmanager
def _ctrl_c_stops(runner: Runner[Any]) -> Iterator[None]:
    """The first Ctrl-C stops the run cleanly; a second one gets the default handling."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    installed = False

    def restore() -> None:
        nonlocal installed
        if installed:
            installed = False
            loop.remove_signal_handler(signal.SIGINT)
            signal.signal(
                signal.SIGINT, signal.default_int_handler if previous is None else previous
            )

    def on_ctrl_c() -> None:
        restore()
        runner.interrupt()

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not main thread
        loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
        installed = True
    try:
        yield
    finally:
        restore()


class Runner(Generic[ItemT]):
    def __init__(
        self,
        mixture: Mixture,
        ledger: Ledger,
        rundir: RunDir,
        *,
        concurrency: int = 256,
        show_progress: bool = True,
        redo_degraded: bool = True,
        budget: Budget | None = None,
    ) -> None:
        self.mixture = mixture
        self.ledger = ledger
        self.rundir = rundir
        self.concurrency = concurrency
        self.show_progress = show_progress
        # An instance answered without a proposal that failed runs again on resume: its cached
        # calls are free, its failed ones are retried, and what depends on them is redone.
        self.redo_degraded = redo_degraded
        # Under a budget cap, instances start as the budget likely pays for them whole
        # (`eval.pacing`) and calls of instances started earlier are served first, so that a stop
        # leaves whole instances; without one, arrival order keeps every endpoint busier
        # (earliest-first starts the last instances' chains late: MT-Bench lost a fifth of its
        # throughput to that tail).
        self.pacer = Pacer(budget) if budget is not None and budget.capped else None
        self.stopped: Stop | None = None
        self._workers: list[asyncio.Task[None]] = []

    def interrupt(self) -> None:
        """Stops now: no new instance starts and those in flight are abandoned."""
        self.stopped = self.stopped or Stop("interrupted", EXIT_INTERRUPTED)
        for task in self._workers:
            task.cancel()

    async def run(
        self,
        items: Sequence[ItemT],
        config_for: Callable[[ItemT], GenerateConfig],
        tags: Mapping[str, str] | None = None,
    ) -> list[InstanceResult]:
        """Results in the order of `items`, reusing finished ones from an earlier run.

        After a stop (`self.stopped`), the instances that did not finish have results with
        neither outputs nor calls, and nothing of them is written."""
        wanted = {item.id for item in items}
        finished = {
            i: r
            for i, r in self.rundir.finished().items()
            if i in wanted and not (self.redo_degraded and r.degraded)
        }
        todo = [item for item in items if item.id not in finished]
        if self.pacer is not None:
            for result in finished.values():
                self.pacer.learn(result)
        queue: asyncio.Queue[tuple[int, ItemT]] = asyncio.Queue()
        for order, item in enumerate(todo):
            queue.put_nowait((order, item))
        results: dict[str, InstanceResult] = dict(finished)
        with (
            open_append(self.rundir.traces) as sink,
            progress(self.ledger, enabled=self.show_progress) as bar,
            _ctrl_c_stops(self),
        ):
            if finished:
                kept = f"resuming: {len(finished)} of {len(items)} instances kept from before"
                bar.console.print(kept)
                log.info(kept)
            # Turns where an instance has several (MT-Bench's two, each a mixture of its own):
            # counting instances, the bar would sit at 0 until whole conversations end.
            turns = any(len(item.turns) > 1 for item in items)

            def unit(item: ItemT) -> int:
                return len(item.turns) if turns else 1

            task_id = bar.add_task(
                "turns" if turns else "instances",
                total=sum(unit(item) for item in items),
                completed=sum(unit(item) for item in items if item.id in finished),
            )

            def turn_done() -> None:
                bar.update(task_id, advance=1)

            async def worker(place: int) -> None:
                pacer = self.pacer
                # The workers start a wave per turn of the loop, not all at once: each instance
                # prepares its first calls (keys, cache lookups) before yielding, so hundreds
                # starting together would hold the first request back by all of their work.
                for _ in range(place // _WAVE):
                    await asyncio.sleep(0)
                while self.stopped is None and not queue.empty():
                    order, item = queue.get_nowait()
                    config = config_for(item)
                    if pacer is not None:
                        refusal = await pacer.admit(config)
                        if refusal is not None:
                            self.stopped = self.stopped or Stop(refusal, EXIT_BUDGET)
                        if self.stopped is not None:
                            return
                        PRIORITY.set(order)
                    result: InstanceResult | None = None
                    try:
                        result = await self._one(item, config, tags, turn_done if turns else None)
                    except BudgetExceeded as exc:
                        self.stopped = self.stopped or Stop(str(exc), EXIT_BUDGET)
                        return
                    except CacheWriteError as exc:  # no new call: it could not be kept
                        self.stopped = self.stopped or Stop(str(exc), EXIT_CACHE)
                        return
                    finally:
                        if pacer is not None:
                            pacer.ended(result)
                    results[item.id] = result
                    sink.write(to_json_text(result.to_json()) + "\n")
                    sink.flush()
                    # a conversation that ended early (a failed turn) counts whole
                    left = unit(item) - len(result.trace.turns) if turns else 1
                    bar.update(task_id, advance=left)

            count = min(self.concurrency, len(todo))
            self._workers = [asyncio.create_task(worker(place)) for place in range(count)]
            # Every worker ends before anything is raised, so no call is left running unowned.
            ended = await asyncio.gather(*self._workers, return_exceptions=True)
            for outcome in ended:
                if isinstance(outcome, asyncio.CancelledError) and self.stopped is not None:
                    continue  # abandoned by `interrupt`
                if isinstance(outcome, BaseException):
                    raise outcome
        if self.stopped is None:
            return [results[item.id] for item in items]
        return [results.get(i.id) or not_run(i.id, self.stopped) for i in items]

    async def _one(
        self,
        item: ItemT,
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
        on_turn: Callable[[], None] | None = None,
    ) -> InstanceResult:
        started = time.perf_counter()
        trace = await self.mixture.converse(
            item.turns,
            config,
            {**(tags or {}), "instance": item.id},
            system=item.system,
            on_turn=on_turn,
        )
        calls = trace.calls()
        return InstanceResult(
            id=item.id,
            outputs=trace.outputs,
            error=trace.error,
            calls=len(calls),
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            seconds=time.perf_counter() - started,
            finished_at=time.time(),
            trace=trace,
            turns=list(item.turns),
            references=None if item.references is None else list(item.references),
        )
