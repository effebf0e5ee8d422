"""`task=report`: tables and plots from the judged runs under `results_dir`."""

from __future__ import annotations

from rich.markup import escape

from eval.commands.output import console
from eval.settings import Settings


async def report_task(settings: Settings) -> int:
    from eval.report.build import write_report  # matplotlib and pandas: only for the report

    out_dir = settings.report.out_dir
    report = write_report(
        settings.results_dir, out_dir, settings.report.reference, settings.report.runs
    )
    print(report)
    for skipped in report.skipped:
        console.print(f"[yellow]{escape(str(skipped))}")
    console.print(f"tables and plots: {out_dir} (an index of them all: {report.index})")
    return 0
