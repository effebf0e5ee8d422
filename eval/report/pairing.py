"""Paired differences between runs, and which runs one may be taken between: the same judge, the
same instances.

A difference between two judges' verdicts measures the judges as much as the runs, and one over
the instances two different selections happen to share is neither run's; either is refused, and
the report says why, instead of printing a number that reads as significant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from eval.paper_rows import PAPER_AGGREGATOR
from eval.report.frames import as_float, as_int, ci, collapse_repeats, coverage, frame_of
from eval.report.metric import Metric
from eval.runs import Run, preferred
from eval.stats import Interval, paired

RULE = (
    "Pairs are taken only between runs judged by the same judge on the same instances (the same "
    "selection); any other pair is refused, with the reason."
)


def refusal(run: Run, base: Run) -> str:
    """Why `run` may not be paired with `base`, in words; empty when it may."""
    reasons = []
    if run.judge != base.judge:
        reasons.append(f"judged by {run.judge or 'no judge'}, {base.name} by {base.judge}")
    if run.subset != base.subset:
        ours, theirs = run.subset or "the whole benchmark", base.subset or "the whole benchmark"
        reasons.append(f"other instances ({ours}; {base.name}: {theirs})")
    return "; ".join(reasons)


def bases(runs: Iterable[Run], preferred: Sequence[Run]) -> dict[tuple[str, str], Run]:
    """Per (judge, selection), the run of those given that the others of its kind are paired
    with: the first in `preferred` order."""
    found: dict[tuple[str, str], Run] = {}
    for run in preferred:
        found.setdefault((run.judge, run.subset), run)
    wanted = {(r.judge, r.subset) for r in runs}
    return {k: v for k, v in found.items() if k in wanted}


def _difference(run: Run, base: Run) -> dict[str, Any]:
    """`run` minus `base` per instance with its interval, or why they may not be paired."""
    refused = refusal(run, base)
    diff: Interval | None = None if refused else paired(run.scores, base.scores)
    empty = diff is None or diff.n == 0
    return {
        "minus": base.name,
        "minus_judge": base.judge_shown,
        "difference": None if empty or diff is None else diff.mean,
        "diff_ci_low": None if empty or diff is None else diff.low,
        "diff_ci_high": None if empty or diff is None else diff.high,
        "n_paired": None if diff is None else diff.n,
        "refused": refused or None,
    }


def comparisons(
    runs: Sequence[Run], reference: str, everyone: Sequence[Run] | None = None
) -> pd.DataFrame:
    """Each run minus a run of the reference variant judged by the same judge on the same
    instances (the whole benchmark's, wholly judged, if there are several), paired on the
    instances both were judged on. A run with no such run to pair with, and each such run
    beside the first of the reference variant's, is refused (`refusal`): `refused` says
    why and `minus` names the first. `everyone` are the runs the reference's are looked for
    in (by default `runs`), so that a run is refused against another judge's."""
    references = preferred(r for r in (everyone or runs) if r.variant == reference)
    if not references:
        return pd.DataFrame()
    first, by_kind = references[0], bases(references, references)

    def row(run: Run) -> dict[str, Any]:
        base = by_kind.get((run.judge, run.subset))
        against = base if base is not None and base is not run else first
        return {
            "run": run.name,
            "judge": run.judge_shown,
            "provider": run.provider,
            "subset": run.subset,
            "n": run.n,
            "avg_length": as_int(run.avg_length),
            **_difference(run, against),
            "complete": run.complete and against.complete,  # both runs wholly judged
        }

    rows = collapse_repeats([run for run in runs if run is not first], row)
    return frame_of(rows) if rows else pd.DataFrame()


def published_reference(runs: Sequence[Run], reference: str) -> Run | None:
    """The published-proposals run the others are paired against: the `reference` variant's if
    it is one of them, else the first (`published_table`'s order)."""
    ordered = _published_order(runs)
    chosen = preferred(r for r in ordered if r.variant == reference)
    return chosen[0] if chosen else (ordered[0] if ordered else None)


def _published_order(runs: Iterable[Run]) -> list[Run]:
    """The paper's aggregator first (`published_proposers`' default), then by run name."""
    published = [r for r in runs if r.published]
    return sorted(published, key=lambda r: (r.aggregator != PAPER_AGGREGATOR, r.name))


def published_table(runs: Sequence[Run], reference: str, metric: Metric) -> pd.DataFrame:
    """Aggregators compared with the proposals held fixed (the published outputs, replayed):
    per aggregator its scores, then its paired difference, per instruction, from the reference
    run's (`published_reference`), with a bootstrap 95% interval (`diff_ci_low`/`_high`)."""
    ordered = _published_order(runs)
    base = published_reference(ordered, reference)
    if base is None:
        return pd.DataFrame()

    def row(run: Run) -> dict[str, Any]:
        judged = run.complete
        head: dict[str, Any] = {
            "run": run.name,
            "aggregator": run.shown(run.identity.aggregator_model),
            **coverage(run),
            ("lc_win_rate" if metric.lc else "win_rate"): metric.of(run),
            **(
                {"win_rate": as_float(run.metrics.get("win_rate")) if judged else None}
                if metric.lc
                else {}
            ),
            "standard_error": as_float(run.metrics.get("standard_error")) if judged else None,
            **ci(run),
            "avg_length": as_int(run.avg_length),
        }
        if run is base:
            return {**head, "minus": "(reference)", "minus_judge": base.judge_shown,
                    "difference": None, "diff_ci_low": None, "diff_ci_high": None,
                    "n_paired": None, "refused": None}  # fmt: skip
        return {**head, **_difference(run, base)}

    return frame_of(collapse_repeats(ordered, row))
