"""The run directory: every file name in it, atomic writes, and its typed, versioned records.

A run directory (`results/runs/<benchmark>/<variant>[@<provider>]/`) holds:

- `run.json`: the run's identity (`RunIdentity`), what must match for the directory to be resumed;
- `config.yaml`: the resolved config, secrets blanked;
- `traces.jsonl`: one `InstanceResult` per finished instance, with its full typed trace;
- `calls.jsonl` and `judge_calls.jsonl`: the ledgers of generation and judging;
- `metrics.json`: the judge's summary (`RunMetrics`);
- the benchmark's native files, named by its benchmark (`eval.benchmarks`) under `RunDir.native`.

Every record carries `format`. A file without it was written before versions were recorded and
has the same layout as version 1, so it is read as version 1; a newer version is refused with a
message, never misread. Readers say which file is damaged and how, in one line.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from moa.errors import ConfigError
from moa.jsonl import JsonLinesError, numbered_lines
from moa.trace import ConversationTrace, TraceError

FORMAT = 1
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


class RunFileError(ConfigError):
    """A run-directory file that is damaged, foreign or of a newer format."""


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


def _version(path: Path, data: Mapping[str, Any], where: str = "") -> None:
    version = data.get("format", FORMAT)
    if not isinstance(version, int) or version > FORMAT:
        raise RunFileError(
            f"{path}{where}: format {version!r} is newer than this moa-bench reads ({FORMAT}); "
            "upgrade moa-bench to read it"
        )


def _object(path: Path, text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc.msg}); is it {what}?") from None
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: holds {type(data).__name__}, not {what}")
    _version(path, data)
    return data


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class RunIdentity:
    """What must match for a run directory to be resumed: the variant and how it decodes.

    `layers` are the proposer layers as `[address, sample]` pairs and `aggregator` the final
    agent, each with a third item, its settings (kind, prompts, decoding), when it has any
    (`eval.mixture_config.identity_layers`); `mode` is the final agent's kind. The report reads
    its sweep axes (layers, n, mode, aggregator) from these fields.
    """

    benchmark: str
    variant: str
    layers: list[list[list[Any]]]
    aggregator: list[Any]
    mode: str
    generation: dict[str, Any]
    # The instances chosen (`limit`, `ids`, `categories`); None: the whole benchmark.
    selection: dict[str, Any] | None = None
    # Which run of a repeated variant (`repeats`); its samples are shifted by the mixture
    # (`moa.mixture.REPEAT_STRIDE`), `layers` keeps run 1's.
    repeat: int = 1

    @property
    def n_layers(self) -> int:
        """Layers as the paper counts them: the aggregator's layer included."""
        return len(self.layers) + 1

    @property
    def proposers(self) -> list[str]:
        """The first layer's model addresses, one per agent (repeated for samples)."""
        return [str(agent[0]) for agent in self.layers[0]] if self.layers else []

    @property
    def customized(self) -> bool:
        """Whether any agent has settings of its own (a kind, a prompt, its decoding)."""
        return any(len(a) > 2 for layer in self.layers for a in layer) or len(self.aggregator) > 2

    @property
    def aggregator_model(self) -> str:
        return str(self.aggregator[0])

    def differences(self, other: RunIdentity) -> str:
        """What differs from `other`, field by field, as `field: ours -> theirs`."""
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        changed = [k for k in mine if mine[k] != theirs[k]]
        return "; ".join(f"{k}: {_short(mine[k])} -> {_short(theirs[k])}" for k in changed)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.selection is None:  # the whole benchmark: run.json as before selections
            del data["selection"]
        if self.repeat == 1:  # run 1: run.json as before repeats
            del data["repeat"]
        return {**data, "format": FORMAT}

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> RunIdentity:
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data and n not in ("selection", "repeat")]
        if missing:
            raise RunFileError(f"{path}: not a moa-bench run identity (lacks {', '.join(missing)})")
        return cls(**{n: data[n] for n in names if n in data})


@dataclass
class InstanceResult:
    """One finished (or failed) instance: its outputs per turn, totals, and its full trace."""

    id: str
    outputs: list[str] | None
    error: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    seconds: float
    finished_at: float = 0.0
    trace: ConversationTrace = field(default_factory=ConversationTrace)
    # The instance's own text (its user turns, and the references its judge uses), so that a
    # reader of the traces needs no join with the benchmark's files; empty in older traces.
    turns: list[str] = field(default_factory=list)
    references: list[str] | None = None

    @property
    def degraded(self) -> bool:
        """Answered, but without a proposal that failed (dropped from the references)."""
        return any(c.error for turn in self.trace.turns for layer in turn.layers for c in layer)

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "trace": self.trace.to_json(), "format": FORMAT}

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any], where: str) -> InstanceResult:
        _version(path, data, where)
        names = [f.name for f in dataclasses.fields(cls)]
        required = [n for n in names if n not in ("finished_at", "trace", "turns", "references")]
        missing = [n for n in required if n not in data]
        if missing:
            raise RunFileError(
                f"{path}{where}: not an instance result (lacks {', '.join(missing)})"
            )
        try:
            trace = ConversationTrace.from_json(data.get("trace", {}))
        except TraceError as exc:
            raise RunFileError(f"{path}{where}: {exc}") from None
        fields = {n: data[n] for n in names if n in data and n != "trace"}
        return cls(**fields, trace=trace)


@dataclass(frozen=True)
class RunMetrics:
    """`metrics.json`: the judge, how many judge calls it took, and the task's own metrics."""

    judge: str
    judge_calls: int
    values: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def to_json(self) -> dict[str, Any]:
        return {"judge": self.judge, **self.values, "judge_calls": self.judge_calls,
                "format": FORMAT}  # fmt: skip

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> RunMetrics:
        if "judge" not in data:
            raise RunFileError(f"{path}: not a moa-bench metrics file (no 'judge')")
        values = {k: v for k, v in data.items() if k not in ("judge", "judge_calls", "format")}
        return cls(str(data["judge"]), int(data.get("judge_calls", 0)), values)


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
            text = json.dumps(identity.to_json(), indent=2, sort_keys=True) + "\n"
            write_atomic(self.run_file, text)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run directory {self.path}: {exc.strerror}"
            ) from None

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
