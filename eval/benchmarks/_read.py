"""Reading and checking benchmark files, so that every defect surfaces as one `DataError` line."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eval.benchmarks.base import DataError
from moa.jsonl import JsonLinesError, read_lines

REPLACE = "replace it with an intact copy (delete a cached copy to download it again)"


def bad(path: Path, problem: str, fix: str = REPLACE) -> DataError:
    return DataError(f"{path}: {problem}; {fix}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise bad(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc.strerror})") from exc


def read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise bad(path, f"invalid JSON at line {exc.lineno} ({exc.msg}), truncated?") from exc


def read_json_records(path: Path) -> list[dict[str, Any]]:
    """A JSON file whose top level is a list of objects (AlpacaEval's and FLASK's format)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise bad(path, f"top level is a JSON {type(data).__name__}, expected a list of objects")
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise bad(path, f"record {n} is not a JSON object")
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line; blank lines are skipped, as the upstream readers do."""
    try:
        return list(read_lines(path, torn_tail_ok=False))
    except JsonLinesError as exc:
        hint = ", truncated?" if exc.problem.startswith("not valid JSON") else ""
        raise bad(path, f"line {exc.line} is {exc.problem}{hint}") from exc
    except UnicodeDecodeError as exc:
        raise bad(path, f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc.strerror})") from exc


def text(path: Path, row: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise bad(path, f"{where}: field {key!r} is missing or not a string")
    if not empty and not value.strip():
        raise bad(path, f"{where}: field {key!r} is empty")
    return value


def texts(
    path: Path, row: Mapping[str, Any], key: str, where: str, *, empty: bool = False
) -> tuple[str, ...]:
    """A non-empty list of strings; `empty` allows blank strings inside it."""
    value = row.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise bad(path, f"{where}: field {key!r} is missing or not a non-empty list of strings")
    if not empty and not all(v.strip() for v in value):
        raise bad(path, f"{where}: field {key!r} holds an empty string")
    return tuple(value)


def integer(path: Path, row: Mapping[str, Any], key: str, where: str) -> int:
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(path, f"{where}: field {key!r} is missing or not an integer")
    return value


def check_count(path: Path, found: int, expected: int, what: str) -> None:
    if found != expected:
        raise bad(
            path, f"expected {expected} {what}, found {found} (truncated or another version?)"
        )


def check_unique(path: Path, ids: Iterable[object], what: str) -> None:
    repeated = [key for key, n in Counter(ids).items() if n > 1]
    if repeated:
        raise bad(path, f"{what} {repeated[0]!r} occurs more than once")
