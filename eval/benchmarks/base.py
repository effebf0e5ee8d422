"""The two types every benchmark module shares: the instance it yields and the error it raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class DataError(Exception):
    """A benchmark file is missing, unreachable or malformed.

    The message is one line that names the file, what is wrong and how to fix it, so a run fails
    before it spends money on a model call rather than halfway through.
    """


@dataclass(frozen=True)
class Instance:
    """One benchmark item, in the one shape that generators, judges and metrics consume.

    `turns` are the user messages in order (one for single-turn benchmarks); `references` holds a
    reference answer per turn where the benchmark's judge uses one; `meta` keeps the fields that
    only one benchmark has (AlpacaEval's `dataset`, FLASK's `skill`, ...), read-only. `system`
    is the system message the benchmark's reference sends first (CRUXEval's); with none, the
    requests are the turns alone, as every other benchmark's (and their cache keys) always were.
    """

    id: str
    turns: tuple[str, ...]
    category: str | None
    references: tuple[str, ...] | None
    meta: Mapping[str, Any] = field(hash=False)
    system: str | None = None
