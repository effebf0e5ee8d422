"""Arena-Hard-Auto's part of the report: each run's score against the baseline with the
interval arena-hard-auto's `show_result.py` gives it (v0.1: 95% Bradley-Terry bootstrap; v2.0:
5%-95% of the bootstrap means), the judge and baseline named, and what the games left unread."""

from __future__ import annotations

from typing import Any

from eval.report import plots, score_intervals
from eval.report.frames import as_float, coverage, frame_of
from eval.report.section import Section
from eval.runs import Run

_INTERVAL = {
    "arena_hard_v0.1": "95% interval of 100 Bradley-Terry bootstraps (2.5th-97.5th percentile)",
    "arena_hard_v2.0": "5th-95th percentile of 100 bootstrap means, the mean of which is the score",
}


def _row(run: Run) -> dict[str, Any]:
    metrics = run.metrics if run.complete else run.metrics.get("partial") or {}
    return {
        "run": run.name,
        "variant": run.variant,
        **coverage(run),
        "baseline": ", ".join(run.metrics.get("baseline") or []),
        "score": as_float(metrics.get("score")),
        "ci_low": as_float(metrics.get("lower")),
        "ci_high": as_float(metrics.get("upper")),
        "battles": metrics.get("n"),
        "games": run.metrics.get("games"),
        "unparseable": run.metrics.get("unparseable"),
    }


def sections(benchmark: str, title: str, runs: list[Run], section: Section) -> list[str]:
    """One table of every run of this judge, best score first, and a figure of the scored ones'
    intervals."""
    rows = sorted((_row(r) for r in runs), key=lambda r: -(r["score"] or -1.0))
    note = (
        f"{title}: win rate (%) against the baseline's answers, two games per prompt with the "
        f"positions swapped, a strong verdict counted three times; `ci_low`/`ci_high`: "
        f"{_INTERVAL[benchmark]}; `n`: prompts judged; `battles`: the verdicts scored; "
        "`unparseable`: games whose verdict could not be read (left out, as upstream).\n\n"
    )
    parts = [section.table(frame_of(rows), f"scores_{benchmark}", note, title)]
    drawn = [
        (r["run"], r["score"], r["ci_low"], r["ci_high"])
        for r in rows
        if None not in (r["score"], r["ci_low"], r["ci_high"])
    ]
    if drawn:
        who = ", ".join(sorted({b for r in rows if (b := r["baseline"])})) or "the baseline"
        missing = [f"not drawn (no score): {r['run']}" for r in rows if r["score"] is None]
        parts.append(
            score_intervals.draw(
                drawn,
                section.path(f"figure_{benchmark}"),
                xlabel=f"win rate (%) against {who}",
                title=f"{title}: win rate against {who}\n{plots.describe(title, runs)}",
                notes=[f"bars: {_INTERVAL[benchmark]}", *missing],
            )
        )
    return parts
