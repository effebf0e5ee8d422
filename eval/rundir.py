"""The run directory: every file name in it, atomic writes, and its typed, versioned records.

A run directory (`results/runs/<benchmark>/<variant>[@<provider>]/`) holds:

- `run.json`: the run's identity (`RunIdentity`), what must match for the directory to be resumed;
- `config.yaml`: the resolved config, secrets blanked;
- `traces.jsonl`: one `InstanceResult` per finished instance, with its full typed trace;
- `calls.jsonl` and `judge_calls.jsonl`: the ledgers of generation and judging;
- `metrics.json`: the judge's summary (`RunMetrics`);
- the benchmark's native files, named by its benchmark (`eval.benchmarks`) under `RunDir.native`.

Every record carries `format`; the records and the upgraders of older formats are
`eval.records`. Readers say which file is damaged and how, in one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

# The records, where the modules that read a run directory have always found them.
from eval.records import InstanceResult as InstanceResult
from eval.records import RunFileError as RunFileError
from eval.records import RunIdentity as RunIdentity
from eval.records import RunMetrics as RunMetrics
from eval.records import version
from moa.errors import ConfigError
from moa.jsonl import JsonLinesError, numbered_lines

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
TRACES = "traces.jsonl"
LEDGER = "calls.jsonl"
JUDGE_LEDGER = "judge_calls.jsonl"
METRICS = "metrics.json"
LOCK = ".lock"
# The log Hydra opens in the run directory before the run starts (`conf/hydra/job_logging/`).
RUN_LOG = "cli.log"


def subset_suffix(categories: Any, ids: Any, limit: Any) -> str:
    """The run directory's mark of a subset: `~math+coding`, `~ids-<hash>`, `~first5`, so
    that a quick subset never overwrites the whole benchmark's native files and metrics."""
    parts = []
    if categories:
        parts.append("+".join(sorted(str(c) for c in categories)))
    if ids:
        joined = ",".join(str(i) for i in ids)
        digest = hashlib.sha1(joined.encode()).hexdigest()[:8]
        parts.append(f"ids-{joined}" if len(joined) <= 20 else f"ids-{digest}")
    if limit is not None:
        parts.append(f"first{limit}")
    return "".join(f"~{p}" for p in parts)


def repeat_suffix(repeat: Any) -> str:
    """The run directory's mark of run r > 1 of a repeated variant: `~run2`."""
    return "" if repeat in (None, 1, "1") else f"~run{repeat}"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` when the block ends well: written to a temporary file
    beside it, synced, then renamed, so readers never see half a file. The temporary file's
    name carries this process's id, so that only a dead writer's leftovers are ever cleaned up
    (`RunDir.claim`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> None:
    """`text` as `path`, in UTF-8, through `atomic_file`."""
    with atomic_file(path) as f:
        f.write(text.encode("utf-8"))


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]], *, ascii_only: bool = True) -> None:
    """JSON lines (one `json.dumps` of each row, as the reference tools write theirs), written
    whole through `write_atomic`; `ascii_only=False` keeps non-ASCII text as it is."""
    text = "".join(json.dumps(row, ensure_ascii=ascii_only) + "\n" for row in rows)
    write_atomic(path, text)


def _object(path: Path, text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc.msg}); is it {what}?") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: holds {type(data).__name__}, not {what}")
    version(path, data)
    return data


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The numbered records of a JSON-lines file a run appends to; a killed run's torn last
    line is skipped, any other damage is a `RunFileError` naming the line."""
    try:
        yield from numbered_lines(path)
    except JsonLinesError as exc:
        raise RunFileError(str(exc)) from None


def _writer_pid(name: str) -> int | None:
    """The process id in a `write_atomic` temporary file's name, if it has one."""
    parts = name.split(".")
    return int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None


def leftover(path: Path) -> bool:
    """Whether `path` is a temporary file of `atomic_file` whose writer is dead: a write that a
    kill cut short, which no one will finish."""
    return (
        path.name.startswith(".")
        and path.name.endswith(".tmp")
        and not _alive(_writer_pid(path.name))
    )


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False  # written before names carried a process id: nobody's now
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDir:
    """One run directory: its paths, its records, and the check that it holds this run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def traces(self) -> Path:
        return self.path / TRACES

    @property
    def ledger(self) -> Path:
        return self.path / LEDGER

    @property
    def judge_ledger(self) -> Path:
        return self.path / JUDGE_LEDGER

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    def ledgers(self) -> list[Path]:
        """Every ledger of the directory, generation and judging, for budgets over resumes."""
        return [p for p in (self.ledger, self.judge_ledger) if p.exists()]

    def native(self, *parts: str) -> Path:
        """A benchmark's own file, named by its task."""
        return self.path.joinpath(*parts)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds the directory for this process: a second run on it is refused in one line.
        The lock is the kernel's (`flock`), so a killed run never leaves it behind."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = (self.path / LOCK).open("a+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {self.path}: {exc.strerror}"
            ) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise ConfigError(
                    f"{self.path} is in use by another moa-bench run ({owner}): wait for it "
                    "to end, or give this run its own run_dir"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def identity(self) -> RunIdentity | None:
        if not self.run_file.exists():
            return None
        data = _object(self.run_file, self.run_file.read_text(encoding="utf-8"), "a run.json")
        return RunIdentity.from_json(self.run_file, data)

    def refuse_foreign(self) -> None:
        """Refuses, in one line, a directory that holds files but no run: a run directory is
        made by the harness, which records its run (`run.json`) before anything else, so only
        the log and lock a run starts with, or a cut write's leftovers, may precede it."""
        if self.run_file.exists() or not self.path.is_dir():
            return
        ours = (RUN_LOG, LOCK)
        foreign = sorted(
            p.name for p in self.path.iterdir() if p.name not in ours and not leftover(p)
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ConfigError(
                f"{self.path} holds files that are not a moa-bench run ({shown}) and no "
                f"{RUN_FILE}: a run directory is made by moa-bench; "
                "choose another moa.name or run_dir"
            )

    def claim(self, identity: RunIdentity) -> None:
        """Refuses a directory that holds a different run, or files but no run; else makes it
        and records the run."""
        self.refuse_foreign()
        previous = self.identity()
        if previous is not None and previous.judge is not None and identity.judge is None:
            identity = dataclasses.replace(identity, judge=previous.judge)  # a resume keeps it
        if previous is not None and previous != identity:
            raise ConfigError(
                f"{self.path} holds a different run of {previous.variant!r} "
                f"({previous.differences(identity)}): give the new variant its own directory "
                f"with moa.name=<name> (or choose another run_dir), or delete {self.path} to "
                "start over"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in self.path.rglob(".*.tmp"):  # from a write that a kill cut short
                if leftover(stale):
                    stale.unlink(missing_ok=True)
            self._write_identity(identity)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {self.path}: {exc.strerror}"
            ) from None

    def _write_identity(self, identity: RunIdentity) -> None:
        text = json.dumps(identity.to_json(), indent=2, sort_keys=True) + "\n"
        write_atomic(self.run_file, text)

    def name_judge(self, judge: str) -> None:
        """Records in `run.json` the judge that wrote `metrics.json`."""
        identity = self.identity()
        if identity is not None and identity.judge != judge:
            self._write_identity(dataclasses.replace(identity, judge=judge))

    def finished(self) -> dict[str, InstanceResult]:
        """The last complete record per instance id that has outputs."""
        return {k: r for k, r in self.results().items() if r.outputs is not None}

    def results(self) -> dict[str, InstanceResult]:
        """The last complete record per instance id, failed ones included (for readers that
        show failures, as the run browser does), but a failure never hides an answer recorded
        before it (a re-run that failed to repair a degraded answer keeps the answer)."""
        found: dict[str, InstanceResult] = {}
        if not self.traces.exists():
            return found
        for n, row in read_lines(self.traces):
            result = InstanceResult.from_json(self.traces, row, f" line {n}")
            kept = found.get(result.id)
            if result.outputs is not None or kept is None or kept.outputs is None:
                found[result.id] = result
        return found

    def fingerprint(self) -> str:
        """A digest of every file's name, size and modification time (the lock and leftover
        temporary files aside): it changes whenever the run's records do, so a reader can keep
        what it derived from an unchanged directory."""
        stats = sorted(
            (str(p.relative_to(self.path)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in self.path.rglob("*")
            if p.is_file() and p.name != LOCK and not p.name.endswith(".tmp")
        )
        return hashlib.sha1(json.dumps(stats).encode()).hexdigest()

    def metrics(self) -> RunMetrics | None:
        if not self.metrics_file.exists():
            return None
        text = self.metrics_file.read_text(encoding="utf-8")
        return RunMetrics.from_json(self.metrics_file, _object(self.metrics_file, text, "metrics"))

    def write_metrics(self, metrics: RunMetrics) -> None:
        write_atomic(self.metrics_file, json.dumps(metrics.to_json(), indent=2, default=str) + "\n")


def run_folder(path: str) -> str:
    """`path`, unless it holds files but no run (`RunDir.refuse_foreign`): Hydra's run
    directory, checked before Hydra makes it and opens its log there."""
    RunDir(Path(path)).refuse_foreign()
    return path
