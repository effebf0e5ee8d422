"""Which runs a report covers: `report.runs`, `report.judges`, `report.providers`, as globs.

`report.runs=[alpaca_eval/moa*,'*@scripted']` keeps the runs whose `<benchmark>/<run>` (or run
directory name alone) matches one of the globs; `report.judges=['openai/*']` those whose judge's
address matches; `report.providers=[together]` those generated on a matching endpoint (any of
theirs). Unset, a setting keeps every run; set, all of them must hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from moa.errors import ConfigError

SETTINGS = ("runs", "judges", "providers")


def _globs(setting: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"report.{setting}={value!r}: give a glob or a list of globs")


@dataclass(frozen=True)
class RunFilter:
    runs: tuple[str, ...] = ()
    judges: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, report: Mapping[str, Any]) -> RunFilter:
        """The filter of the `report:` settings; a setting that is no glob is a ConfigError."""
        return cls(*(_globs(s, report.get(s)) for s in SETTINGS))

    def admits(self, benchmark: str, name: str, judge: str, endpoints: Iterable[str]) -> bool:
        """Whether a run (`<benchmark>/<name>`, judged by `judge`, generated on `endpoints`)
        is in the report."""
        return (
            _any(self.runs, (f"{benchmark}/{name}", name))
            and _any(self.judges, (judge,))
            and _any(self.providers, tuple(endpoints))
        )

    def __str__(self) -> str:
        said = [f"report.{s}={list(g)}" for s in SETTINGS if (g := getattr(self, s))]
        return ", ".join(said)


def _any(globs: Sequence[str], values: Sequence[str]) -> bool:
    return not globs or any(fnmatchcase(v, g) for g in globs for v in values)
