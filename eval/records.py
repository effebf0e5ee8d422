"""The typed records of a run directory (`run.json`, `metrics.json`, the rows of `traces.jsonl`)
and the upgraders that read every layout written so far.

Format 2 holds each record's substance in named fields: an agent of the identity is an
`AgentRecord`, not a positional `[address, sample, settings]` list; the metrics name the
judge, the headline, the coverage and the failures, and keep the benchmark's own numbers apart
(`extras`). Format 1 (and a file with no `format`, which has the same layout) is upgraded when it
is read, so a run made before the bump still resumes, reports and browses; a newer format is
refused with a message, never misread.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moa.agents import ROLES
from moa.errors import ConfigError
from moa.trace import ConversationTrace, TraceError

FORMAT = 2


class RunFileError(ConfigError):
    """A run-directory file that is damaged, foreign or of a newer format."""


def version(path: Path, data: Mapping[str, Any], where: str = "") -> int:
    """The record's format (1 when it has none); a newer one than this code's is refused."""
    found = data.get("format", 1)
    if not isinstance(found, int) or found > FORMAT:
        raise RunFileError(
            f"{path}{where}: format {found!r} is newer than this moa-bench reads ({FORMAT}); "
            "upgrade moa-bench to read it"
        )
    return found


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples as lists), so a record built in memory equals the
    same record read from its file."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class AgentRecord:
    """One agent as the run identity records it: its model, sample and kind, and the settings
    that change what it sends (defaults: the kind's own)."""

    model: str  # endpoint/model address
    sample: int  # run 1's sample (a repeat is the identity's own field)
    kind: str  # `moa.agents.KINDS`
    system: str | None = None
    template: str | None = None
    strategy: str | None = None  # a strategy's dotted path
    source_sha256: str | None = None  # its module's fingerprint
    top_k: int = 1
    decoding: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoding", _plain(dict(self.decoding)))
        object.__setattr__(self, "options", _plain(dict(self.options)))

    @property
    def role(self) -> str:
        """The ledger's tag of the kind (`proposer`, `aggregator`, ...)."""
        return ROLES[self.kind]

    def settings(self) -> dict[str, Any]:
        """The settings that differ from the defaults, kind aside."""
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in _NAMED}
        return {k: v for k, v in out.items() if v != _DEFAULTS[k]}

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "sample": self.sample, "kind": self.kind, **self.settings()}

    @classmethod
    def from_json(cls, path: Path, data: Any) -> AgentRecord:
        if not isinstance(data, Mapping) or not {"model", "sample", "kind"} <= data.keys():
            raise RunFileError(f"{path}: an agent is not an object with model, sample and kind")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise RunFileError(f"{path}: an agent has unknown settings {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_v1(cls, path: Path, entry: Any, default_kind: str) -> AgentRecord:
        """A format-1 `[address, sample]` or `[address, sample, settings]`, whose settings
        name the kind only when it is not `default_kind`."""
        ok = isinstance(entry, list) and len(entry) in (2, 3)
        settings = entry[2] if ok and len(entry) == 3 else {}
        if not ok or not isinstance(settings, Mapping):
            raise RunFileError(f"{path}: an agent is not [address, sample, settings]")
        kind = settings.get("kind", default_kind)
        rest = {k: v for k, v in settings.items() if k != "kind"}
        return cls.from_json(path, {"model": entry[0], "sample": entry[1], "kind": kind, **rest})


_NAMED = ("model", "sample", "kind")
_DEFAULTS = {
    f.name: f.default if f.default is not dataclasses.MISSING else {}
    for f in dataclasses.fields(AgentRecord)
    if f.name not in _NAMED
}


@dataclass(frozen=True)
class RunIdentity:
    """What must match for a run directory to be resumed: the variant and how it decodes.

    `layers` are the proposer layers and `aggregator` the final agent
    (`eval.mixture_config.identity_layers`); `mode` is the final agent's kind. The report reads
    its sweep axes (layers, n, mode, aggregator) from these fields.
    """

    benchmark: str
    variant: str
    layers: list[list[AgentRecord]]
    aggregator: AgentRecord
    mode: str
    generation: dict[str, Any]
    # The instances chosen (`limit`, `ids`, `categories`); None: the whole benchmark.
    selection: dict[str, Any] | None = None
    # Which run of a repeated variant (`repeats`); its samples are shifted by the mixture
    # (`moa.mixture.REPEAT_STRIDE`), `layers` keeps run 1's.
    repeat: int = 1
    # The judge of the run's `metrics.json` (set when it is judged); not part of what must
    # match, as a generated run may be judged again by another judge.
    judge: str | None = field(default=None, compare=False)
    # The benchmark's own prompt where it has one (`template`, and `system` if sent): a record
    # of what was asked; the requests themselves, and so resuming, are keyed by the cache.
    prompt: dict[str, str] | None = field(default=None, compare=False)

    @property
    def n_layers(self) -> int:
        """Layers as the paper counts them: the aggregator's layer included."""
        return len(self.layers) + 1

    @property
    def proposers(self) -> list[str]:
        """The first layer's model addresses, one per agent (repeated for samples)."""
        return [agent.model for agent in self.layers[0]] if self.layers else []

    @property
    def agents(self) -> list[AgentRecord]:
        """Every agent, layer by layer, the final one last."""
        return [a for layer in self.layers for a in layer] + [self.aggregator]

    @property
    def customized(self) -> bool:
        """Whether any agent has settings of its own (a kind, a prompt, its decoding)."""
        layered = any(a.kind != "propose" or a.settings() for layer in self.layers for a in layer)
        return layered or bool(self.aggregator.settings())

    @property
    def aggregator_model(self) -> str:
        return self.aggregator.model

    def differences(self, other: RunIdentity) -> str:
        """What differs from `other`, field by field, as `field: ours -> theirs`."""
        mine, theirs = self.to_json(), other.to_json()
        changed = [
            k
            for k in mine.keys() | theirs.keys()
            if k not in ("judge", "prompt") and mine.get(k) != theirs.get(k)
        ]
        return "; ".join(
            f"{k}: {_short(mine.get(k))} -> {_short(theirs.get(k))}" for k in sorted(changed)
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "benchmark": self.benchmark,
            "variant": self.variant,
            "layers": [[a.to_json() for a in layer] for layer in self.layers],
            "aggregator": self.aggregator.to_json(),
            "mode": self.mode,
            "generation": self.generation,
        }
        if self.selection is not None:  # the whole benchmark: no selection
            data["selection"] = self.selection
        if self.repeat != 1:
            data["repeat"] = self.repeat
        if self.judge is not None:
            data["judge"] = self.judge
        if self.prompt is not None:
            data["prompt"] = self.prompt
        return {**data, "format": FORMAT}

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> RunIdentity:
        found = version(path, data)
        names = [f.name for f in dataclasses.fields(cls)]
        optional = ("selection", "repeat", "judge", "prompt")
        missing = [n for n in names if n not in data and n not in optional]
        if missing:
            raise RunFileError(f"{path}: not a moa-bench run identity (lacks {', '.join(missing)})")
        layers, final = data["layers"], data["aggregator"]
        if not isinstance(layers, list) or not all(isinstance(x, list) for x in layers):
            raise RunFileError(f"{path}: layers is not a list of layers")
        if found == 1:
            agents = [[AgentRecord.from_v1(path, a, "propose") for a in x] for x in layers]
            aggregator = AgentRecord.from_v1(path, final, str(data["mode"]))
        else:
            agents = [[AgentRecord.from_json(path, a) for a in x] for x in layers]
            aggregator = AgentRecord.from_json(path, final)
        rest = {n: data[n] for n in names if n in data and n not in ("layers", "aggregator")}
        return cls(layers=agents, aggregator=aggregator, **rest)


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
        version(path, data, where)
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
class Coverage:
    """How much of the set was judged: a run's metrics hold a result only when all of it was."""

    n_expected: int
    n_judged: int
    complete: bool


# The metrics every judge writes (besides judge and judge_calls), named in `RunMetrics`.
_SHARED = ("failures", "judge_error", "avg_length", "judge_usd", "judge_nominal_usd")
_COVERAGE = ("n_expected", "n_judged", "complete")
# Format-2 fields written only when there is something to say
_OPTIONAL = ("judge_repeats", "bias", "precision")


@dataclass(frozen=True)
class RunMetrics:
    """`metrics.json`: the judge, what judging cost and covered, the headline, and the
    benchmark's own numbers (`extras`: win rates, scores, skills, the `partial` of an
    incomplete set)."""

    judge: str
    judge_calls: int
    extras: dict[str, Any]
    headline: float | None = None  # None: not wholly judged, or written before format 2
    coverage: Coverage | None = None  # None: written before coverage was recorded
    failures: dict[str, int] | None = None  # judge failures by `moa.failures.FailureKind`
    judge_error: str | None = None  # the commonest reason a judge call failed
    avg_length: float | None = None  # the answers' mean length, in characters
    judge_usd: float | None = None
    judge_nominal_usd: float | None = None
    # Optional: each judge repeat after the first (`eval.judge_repeats`): repeat, headline, values
    judge_repeats: list[dict[str, Any]] | None = None
    # Optional: the judge's biases in this run (`eval.judge_bias`), each with its method
    bias: dict[str, Any] | None = None
    # Optional: the run's mean score with its standard error split into instances and judge
    # repeats (`eval.report.precision.parts`), each with its method
    precision: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, judge: str, judge_calls: int, values: Mapping[str, Any], headline: float | None = None
    ) -> RunMetrics:
        """The metrics of a judge's flat `values` (its benchmark's keys and the shared ones)."""
        extras = {k: v for k, v in values.items() if k not in (*_SHARED, *_COVERAGE)}
        shared = {k: values[k] for k in _SHARED if values.get(k) is not None}
        coverage = None
        if all(k in values for k in _COVERAGE):
            coverage = Coverage(*(values[k] for k in _COVERAGE))
        if headline is not None and math.isnan(headline):
            headline = None
        return cls(judge, judge_calls, extras, headline, coverage, **shared)

    @property
    def values(self) -> dict[str, Any]:
        """Every metric but the judge and its call count, by the keys the judges write."""
        shared = {k: v for k in _SHARED if (v := getattr(self, k)) is not None}
        covered = dataclasses.asdict(self.coverage) if self.coverage else {}
        return {**self.extras, **covered, **shared}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def to_json(self) -> dict[str, Any]:
        named = dataclasses.asdict(self)
        optional = [k for k in _OPTIONAL if named[k] is None]  # absent: files stay as they were
        return {**{k: v for k, v in named.items() if k not in optional}, "format": FORMAT}

    @classmethod
    def from_json(cls, path: Path, data: Mapping[str, Any]) -> RunMetrics:
        if "judge" not in data:
            raise RunFileError(f"{path}: not a moa-bench metrics file (no 'judge')")
        if version(path, data) == 1:  # every metric at the top level
            values = {k: v for k, v in data.items() if k not in ("judge", "judge_calls", "format")}
            return cls.of(str(data["judge"]), int(data.get("judge_calls", 0)), values)
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        if not isinstance(fields.get("extras"), Mapping):
            raise RunFileError(f"{path}: a format-2 metrics file without its extras")
        if isinstance(covered := fields.get("coverage"), Mapping):
            fields["coverage"] = Coverage(**covered)
        return cls(**fields)
