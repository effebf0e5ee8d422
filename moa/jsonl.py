"""JSON-lines files that a run appends to (ledgers, traces, judgments): one home for both ends.

A writer appends each record as one whole line and flushes, so a killed run leaves at most a
torn last line: `open_append` cuts it before appending, and `read_lines` skips it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# `json.dumps(value, ensure_ascii=False)`, text for text: `dumps` builds its encoder on every
# call, which cost as much as encoding a call's record; this one is built once.
to_json_text = json.JSONEncoder(ensure_ascii=False).encode


class JsonLinesError(ValueError):
    """A damaged line that is not a killed run's torn tail; the message names the file and line."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path} line {line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


def open_append(path: Path) -> IO[str]:
    """Opens a JSON-lines file for appending, first cutting a torn last line left by a kill:
    appended to, it would glue the next record onto a fragment and lose both."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab+") as f:
        end = pos = f.seek(0, os.SEEK_END)
        while pos > 0:
            step = min(pos, 1 << 16)
            f.seek(pos - step)
            chunk = f.read(step)
            if pos == end and chunk.endswith(b"\n"):
                break
            if (newline := chunk.rfind(b"\n")) >= 0:
                f.truncate(pos - step + newline + 1)
                break
            pos -= step
        else:
            f.truncate(0)
    return path.open("a", encoding="utf-8")


def numbered_lines(
    path: Path, *, torn_tail_ok: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each record of a JSON-lines file with its 1-based line number; blank lines are skipped.

    With `torn_tail_ok` (a file a run appends to), a last line without its newline is a killed
    run's torn write and is skipped, as `open_append` would cut it. Without it (a file written
    whole, e.g. upstream data), the last line counts with or without its newline. Any other line
    that is not a JSON object raises `JsonLinesError`.
    """
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if torn_tail_ok and not line.endswith("\n"):
                return  # torn tail from a killed run: only the last line can lack its newline
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonLinesError(path, n, f"not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise JsonLinesError(path, n, "not a JSON object")
            yield n, row


def read_lines(path: Path, *, torn_tail_ok: bool = True) -> Iterator[dict[str, Any]]:
    """Each record of a JSON-lines file, as `numbered_lines` reads them."""
    for _, row in numbered_lines(path, torn_tail_ok=torn_tail_ok):
        yield row
