"""What the three judges share: the ledger tag, judge names, how a missing verdict is kept, how
their calls are run together, and how a judged set says whether it is whole.

A judgment that yields no score is never dropped or guessed: it carries a `Failure` saying
whether the call failed or the verdict could not be read, so reports can count both.

Coverage: an instance is *judged* when the judge answered every call it takes (a verdict that
cannot be read is still the judge's answer: counted as a parse failure, and left out of the
metrics as the reference implementations leave it out); a set is *complete* when every
instance expected was judged. The metrics of an incomplete set hold no headline number: what
the judged part gives is kept under `partial`, never presented as the run's result.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from eval.rundir import RunFileError
from moa.jsonl import JsonLinesError, numbered_lines
from moa.scheduling import settle_all as settle_all  # the judges' shared gather
from moa.types import CallOutcome

T = TypeVar("T")

JUDGE_TAGS: Mapping[str, str] = MappingProxyType({"role": "judge"})


class FailureKind(enum.StrEnum):
    CALL = "call"  # the judge model returned no completion
    PARSE = "parse"  # it answered, but no verdict could be read from the answer


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str


def call_failure(outcome: CallOutcome) -> Failure:
    return Failure(FailureKind.CALL, outcome.record.error or "no completion")


def judge_model_name(address: str) -> str:
    """`openai/gpt-4` -> `gpt-4`: the name the reference code writes into its files."""
    return address.split("/", 1)[-1]


def count_failures(failures: Iterable[Failure | None]) -> dict[str, int]:
    """How many judgments have no verdict, per kind (zero kinds included, for stable reports)."""
    counts = Counter(f.kind for f in failures if f is not None)
    return {kind.value: counts[kind] for kind in FailureKind}


def judge_error(failures: Iterable[Failure | None]) -> dict[str, str]:
    """`{"judge_error": reason}`, the commonest reason a judge call failed; empty if none did."""
    reasons = Counter(f.reason for f in failures if f is not None and f.kind is FailureKind.CALL)
    return {"judge_error": reasons.most_common(1)[0][0]} if reasons else {}


def coverage(n_expected: int, n_judged: int) -> dict[str, Any]:
    """The metrics keys that say how much of a set was judged (see the module's docstring)."""
    return {"n_expected": n_expected, "n_judged": n_judged, "complete": n_judged == n_expected}


def is_complete(metrics: Mapping[str, Any]) -> bool:
    """Whether a run's metrics come from every instance. Metrics written before `complete` was
    recorded are complete unless a judge call failed."""
    if "complete" in metrics:
        return bool(metrics["complete"])
    failures = metrics.get("failures")
    return not (isinstance(failures, Mapping) and failures.get(FailureKind.CALL.value))


def incomplete_reason(metrics: Mapping[str, Any]) -> str | None:
    """One line saying what judging left undone (None when complete), for the end of a run."""
    if is_complete(metrics):
        return None
    failures = metrics.get("failures")
    calls = failures.get(FailureKind.CALL.value, 0) if isinstance(failures, Mapping) else 0
    judged, expected = metrics.get("n_judged", "?"), metrics.get("n_expected", "?")
    error = metrics.get("judge_error")
    why = ""
    if calls:
        why = f"; {calls} judge call(s) failed" + (f", e.g. {error}" if error else "")
    return (
        f"judging incomplete: {judged} of {expected} instances judged{why}; no result is "
        "reported (the judged part is under 'partial' in metrics.json): run the same command "
        "again to judge the rest"
    )


def _text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise RunFileError(
            f"{path}: empty ({len(text)} bytes): a write cut short? judge the run again"
        )
    return text


def json_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The numbered objects of a judge's JSON file whose top level is a list (alpaca_eval's
    annotations); damage is a `RunFileError` naming the file, in one line."""
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise RunFileError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}): truncated? "
            "judge the run again"
        ) from None
    if not isinstance(data, list):
        raise RunFileError(f"{path}: holds a JSON {type(data).__name__}, not a list of records")
    for n, row in enumerate(data, 1):
        if not isinstance(row, dict):
            raise RunFileError(f"{path} record {n}: not a JSON object")
    return list(enumerate(data, 1))


def jsonl_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The numbered objects of a judge's JSON-lines file (FastChat's judgments, FLASK's reviews),
    blank lines skipped as their readers skip them; damage is a one-line `RunFileError`. The file
    is written whole, so a last line without its newline is read, not taken for a torn one."""
    try:
        return list(numbered_lines(path, torn_tail_ok=False))
    except JsonLinesError as exc:
        raise RunFileError(f"{exc}: truncated? judge the run again") from None
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def parse_records(
    path: Path,
    records: Iterable[tuple[int, Mapping[str, Any]]],
    parse: Callable[[Mapping[str, Any]], T],
    where: str = "line",
) -> list[T]:
    """`parse` of each record; a record that lacks a field or holds the wrong type of value is a
    `RunFileError` naming the file and the record, not a KeyError from deep inside."""
    out = []
    for n, row in records:
        try:
            out.append(parse(row))
        except KeyError as exc:
            raise RunFileError(f"{path} {where} {n}: lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise RunFileError(f"{path} {where} {n}: {exc}") from None
    return out


def avg_length(outputs: Iterable[str]) -> int | None:
    """alpaca-eval's leaderboard `avg_length`: the mean length of the outputs in characters,
    truncated to an integer (as `alpaca_eval.main.evaluate` writes it); none without outputs."""
    lengths = [len(o) for o in outputs]
    return int(sum(lengths) / len(lengths)) if lengths else None
