"""Which runs a paired difference may be taken between: the same judge, the same instances.

A difference between two judges' verdicts measures the judges as much as the runs, and one over
the instances two different selections happen to share is neither run's; either is refused, and
the report says why, instead of printing a number that reads as significant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eval.runs import Run

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
