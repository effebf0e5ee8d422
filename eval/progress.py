"""Progress a person can trust while money is spent: live call, token and dollar counts.

The counts are read from the ledger's running totals at each redraw (four a second, on rich's
own thread), so they move as calls finish, not only when an instance does, and cost nothing per
call; retries are counted as they happen, before their call ends. The bar, its count and the
ETA come first, so they stay visible on an 80-column terminal; the counts after them are cut at
the edge if they must be.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

from moa.ledger import Ledger

REDRAWS_PER_SECOND = 4


def counts(ledger: Ledger) -> str:
    """The ledger's totals, most important first."""
    t = ledger.totals
    tokens = t.input_tokens + t.output_tokens
    return (
        f"${t.cost_usd:,.2f} paid · {t.calls:,} calls · {t.cached:,} cached · "
        f"{t.retries + t.retrying:,} retries · {t.errors:,} errors · {tokens:,} tokens"
    )


class _Counts(ProgressColumn):
    def __init__(self, ledger: Ledger) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
        self.ledger = ledger

    def render(self, task: Task) -> Text:
        return Text(counts(self.ledger), style="dim", no_wrap=True, overflow="ellipsis")


def progress(ledger: Ledger, *, enabled: bool = True, console: Console | None = None) -> Progress:
    """A bar per stage (instances, judging) followed by the ledger's live counts, which take
    what width is left and are cut at the edge."""
    return Progress(
        TextColumn("[bold]{task.description}", table_column=_fixed()),
        BarColumn(bar_width=20, table_column=_fixed()),
        MofNCompleteColumn(table_column=_fixed()),
        TimeRemainingColumn(table_column=_fixed()),
        _Counts(ledger),
        disable=not enabled,
        console=console,
        refresh_per_second=REDRAWS_PER_SECOND,
        transient=False,
        expand=True,
    )


def _fixed() -> Column:
    return Column(no_wrap=True)


@contextlib.asynccontextmanager
async def following(
    bar: Progress, task: TaskID, done: Callable[[], int], every_s: float = 0.25
) -> AsyncIterator[None]:
    """Moves `task` to `done()` while the body runs (for work with no per-item hook, such as a
    judge's concurrent calls), and once more at the end."""

    async def poll() -> None:
        while True:
            bar.update(task, completed=done())
            await asyncio.sleep(every_s)

    poller = asyncio.create_task(poll())
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        bar.update(task, completed=done())
