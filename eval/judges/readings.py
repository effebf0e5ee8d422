"""A judge's verdicts as the run browser shows them, and the check that a native file is whole."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eval.rundir import RunFileError


@dataclass(frozen=True)
class Reading:
    """One judge call's result as the run browser (`eval.view`) shows it: a title, its facts in
    words (`score: 8`, `shown first: ours`), the judge's own text, and the prompt it was given
    where the judge file keeps it."""

    title: str
    facts: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the judge said of one instance, in terms the browser needs no benchmark to show.

    `score` is the instance's score as `instance_scores` gives it (summed over turns into one
    number per instance), `outcome` the verdict in a word or number that two runs are said to
    disagree on when it differs, `tags` the categories or skills to filter by, `reference` the
    answer the judge compared against, when it is not the instance's own reference."""

    score: float | None
    outcome: str
    readings: list[Reading]
    tags: list[str] = field(default_factory=list)
    reference: tuple[str, str] | None = None  # (whose, text)


def check_rows(path: Path, found: int, expected: int, what: str) -> None:
    """A judge's native file must hold as many rows as judging the run's answered instances
    writes: fewer or more is a damaged or stale file, named in one line."""
    if found != expected:
        raise RunFileError(
            f"{path}: {found} {what}, but the run's traces call for {expected}: damaged or "
            "stale, judge the run again"
        )
