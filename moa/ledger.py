"""The call ledger: one JSON line per call, plus running totals for progress and reports."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from moa.jsonl import open_append, read_lines
from moa.types import CallRecord

__all__ = ["Ledger", "Totals", "open_append", "read_ledger"]


@dataclass
class Totals:
    calls: int = 0
    cached: int = 0
    errors: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # paid: calls that reached an endpoint
    nominal_usd: float = 0.0  # what every call would cost uncached
    unpriced: int = 0  # calls whose model has no price in the catalogue

    @property
    def requests(self) -> int:
        """Calls that went to an endpoint (not answered from the cache)."""
        return self.calls - self.cached


class Ledger:
    """Appends each record as one whole line and flushes, so a kill leaves at most a torn tail."""

    def __init__(self, path: Path | None = None) -> None:
        self.totals = Totals()
        self.path = path
        self._file: IO[str] | None = None
        if path is not None:
            self._file = open_append(path)

    def add(self, record: CallRecord) -> None:
        t = self.totals
        t.calls += 1
        t.retries += max(record.attempts - 1, 0)
        t.input_tokens += record.input_tokens
        t.output_tokens += record.output_tokens
        if record.cached:
            t.cached += 1
        if record.error is not None:
            t.errors += 1
        if math.isnan(record.cost_usd):
            t.unpriced += 1
        else:
            t.nominal_usd += record.cost_usd
            if not record.cached:
                t.cost_usd += record.cost_usd
        if self._file is not None:
            self._file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line; a torn last line from a killed run is skipped."""
    return read_lines(path, torn_tail_ok=True)
