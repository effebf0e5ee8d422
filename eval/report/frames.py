"""Building the report's frames from runs: typed columns, coverage and interval cells, and the
repeats of one configuration as one row (mean ± std).

Every table says how many instances each number is over (`n`) and which runs cover only a
subset of the benchmark (`subset`). In the CSV an interval is two numeric columns (`ci_low`,
`ci_high`), a spread over repeated runs is its own `<column>_std` column, integers are integers
and an empty cell is empty.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from eval.runs import Run
from eval.stats import Interval, bootstrap


def missing(value: Any) -> bool:
    """Whether a cell is a gap: none, pandas' NA or NaN."""
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def is_int(value: Any) -> bool:
    """Whether a cell is an integer (a flag is not)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def frame_of(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A table from row dicts: a column of integers (and gaps) stays integer, a column of
    flags stays boolean, every gap is missing (empty in the CSV and the Markdown)."""
    names = (
        list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    )
    frame = pd.DataFrame([{c: r.get(c) for c in names} for r in rows], columns=names)
    for column in names:
        values = [r.get(column) for r in rows if not missing(r.get(column))]
        if values and all(is_int(v) for v in values):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="Int64")
        elif values and all(isinstance(v, bool | np.bool_) for v in values):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="boolean")
    return frame


def _interval(run: Run) -> Interval | None:
    if not run.complete or not run.scores:
        return None
    return bootstrap(np.array(list(run.scores.values())))


def coverage(run: Run) -> dict[str, Any]:
    """What made the row's numbers, `judge` and `provider` (where the answers were generated),
    and over what: `subset` (empty: the whole benchmark), `n` (instances scored) and `complete`
    (every instance judged)."""
    return {"judge": run.judge_shown, "provider": run.provider, "subset": run.subset,
            "n": run.n, "complete": run.complete}  # fmt: skip


def mean_score(run: Run) -> float | None:
    """The mean of the run's per-instance scores, the middle of its interval."""
    return float(np.mean(list(run.scores.values()))) if run.complete and run.scores else None


def ci(run: Run) -> dict[str, Any]:
    """The bootstrap 95% interval of a wholly judged run's scores as `ci_low`/`ci_high`."""
    interval = _interval(run)
    return {
        "ci_low": interval.low if interval else None,
        "ci_high": interval.high if interval else None,
    }


def as_int(value: float) -> int | None:
    """A count as a cell: none for NaN."""
    return None if math.isnan(value) else int(value)


def as_float(value: Any) -> float | None:
    """A number as a cell: none for a gap."""
    return None if missing(value) else float(value)


def _repeat_group(run: Run) -> str:
    """What repeats of one configuration share: the folder they are in, the judge and the whole
    identity (the repeat index apart)."""
    identity = {k: v for k, v in dataclasses.asdict(run.identity).items() if k != "repeat"}
    return json.dumps([str(run.path.parent), run.benchmark, run.judge, identity], sort_keys=True)


def repeats_of(run: Run, runs: Iterable[Run]) -> list[Run]:
    """`run` and its repeats among `runs` (`_repeat_group`; each repeat index once, `run`'s
    first), in repeat order."""
    key, found = _repeat_group(run), {run.repeat: run}
    for other in runs:
        if _repeat_group(other) == key:
            found.setdefault(other.repeat, other)
    return [found[r] for r in sorted(found)]


def collapse_repeats(
    runs: Sequence[Run], row: Callable[[Run], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per run, but repeats of one configuration (`_repeat_group`, each repeat index
    once) as one row (`merge_repeats`)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        members = groups.setdefault(_repeat_group(run), [])
        if any(m.repeat == run.repeat for m in members):  # the same run twice: not a repeat
            groups[f"{run.path}\0{run.name}"] = [run]
        else:
            members.append(run)
    if all(len(members) == 1 for members in groups.values()):
        return [row(run) for run in runs]
    return [
        merge_repeats([row(run) for run in sorted(members, key=lambda r: (r.repeat, r.name))])
        for members in groups.values()
    ]


def merge_repeats(parts: Sequence[Mapping[str, Any]], count: str = "repeats") -> dict[str, Any]:
    """The rows of repeats of one configuration as one: `count` counts them, a number that
    differs between them is their mean with a `<column>_std` (sample standard deviation) beside
    it and each run's value in `<column>_runs` (in the CSV; the Markdown leaves it out), flags
    are and-ed and texts joined."""
    merged: dict[str, Any] = {}
    for column in parts[0]:
        values = [p.get(column) for p in parts]
        present = [v for v in values if not missing(v)]
        if len({json.dumps(v, default=str) for v in values}) <= 1:
            merged[column] = values[0]
        elif present and all(isinstance(v, bool | np.bool_) for v in present):
            merged[column] = all(present) and len(present) == len(values)
        elif present and all(isinstance(v, int | float | np.number) for v in present):
            numbers = [float(v) for v in present if v is not None]
            merged[column] = statistics.fmean(numbers)
            merged[f"{column}_std"] = statistics.stdev(numbers) if len(numbers) > 1 else None
            merged[f"{column}_runs"] = " ".join(f"{v:.4g}" for v in numbers)  # CSV only
        else:
            merged[column] = ", ".join(dict.fromkeys(str(v) for v in present))
    merged[count] = len(parts)
    return merged


def ordered(runs: Iterable[Run], order: Sequence[str]) -> list[Run]:
    """Runs in the paper's order of their variants (`order`), the others after, by name."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(runs, key=lambda r: (rank.get(r.variant, len(rank)), r.name))
