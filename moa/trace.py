"""What a mixture records of one conversation: every call of every layer, per turn.

These are the records the run directory keeps (`traces.jsonl`) and reads back: `from_json`
rebuilds the very dataclasses the mixture produced, and says what is wrong with a row that is
not one, instead of handing readers a dict to walk by string key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from moa.events import EventError, TraceEvent
from moa.events import from_json as event_from_json
from moa.types import CallOutcome


class TraceError(ValueError):
    """A stored trace that is not one this version of moa-bench writes."""


@dataclass
class CallTrace:
    model: str  # endpoint/model address
    sample: int
    key: str  # the call's cache key ("" for a call the context policy never sent)
    text: str | None
    error: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float
    cached: bool
    attempts: int
    # Added later, so optional in a stored trace (`from_json`); as `moa.types.CallRecord` has them.
    finish_reason: str | None = None
    truncated: bool = False  # the answer was cut off at max_tokens
    empty: bool = False  # the answer had no text
    tokens_estimated: bool = False  # the endpoint sent no usage: the tokens are estimates
    repaired: bool = False  # lone surrogates in the answer were replaced by U+FFFD
    # What the call costs at catalogue prices, and whether an endpoint billed it (not cached,
    # an endpoint that bills): the ledger's figures, kept with the call for readers of traces.
    cost_usd: float = 0.0
    billed: bool = False

    @property
    def label(self) -> str:
        return f"{self.model}#{self.sample}"

    @classmethod
    def of(cls, model: str, sample: int, outcome: CallOutcome) -> CallTrace:
        r = outcome.record
        return cls(
            model=model,
            sample=sample,
            key=r.key,
            text=None if outcome.completion is None else outcome.completion.text,
            error=r.error,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            latency_s=r.latency_s,
            cached=r.cached,
            attempts=r.attempts,
            finish_reason=r.finish_reason,
            truncated=r.truncated,
            empty=r.empty,
            tokens_estimated=r.tokens_estimated,
            repaired=r.repaired,
            cost_usd=r.cost_usd,
            billed=r.billed,
        )

    @classmethod
    def unsent(cls, model: str, sample: int, reason: str) -> CallTrace:
        """A call the context policy refused to send."""
        return cls(model, sample, "", None, reason, 0, 0, 0.0, False, 0)

    def to_json(self) -> dict[str, Any]:
        # Every field is flat: a copy of the attributes, in field order as `__init__` set them.
        return dict(vars(self))

    @classmethod
    def from_json(cls, data: Any) -> CallTrace:
        if not isinstance(data, Mapping):
            raise TraceError(f"a call is {type(data).__name__}, not an object")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.name not in data and _required(f)]
        if missing:
            raise TraceError(f"a call lacks {', '.join(missing)}")
        return cls(**{f.name: data[f.name] for f in fields if f.name in data})


def _required(f: dataclasses.Field[Any]) -> bool:
    """A field every stored trace has: one without a default (the later ones have defaults)."""
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _flat(event: TraceEvent) -> dict[str, Any]:
    """An event's fields, all plain values, without `asdict`'s deep copy (its `kind` is a
    class default, so not in `vars`)."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}


@dataclass
class TurnTrace:
    layers: list[list[CallTrace]] = field(default_factory=list)
    final: CallTrace | None = None
    output: str | None = None
    error: str | None = None
    events: list[TraceEvent] = field(default_factory=list)  # what changed what was sent

    def calls(self) -> list[CallTrace]:
        out = [c for layer in self.layers for c in layer]
        return out + ([self.final] if self.final else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "layers": [[c.to_json() for c in layer] for layer in self.layers],
            "final": None if self.final is None else self.final.to_json(),
            "output": self.output,
            "error": self.error,
            "events": [_flat(e) for e in self.events],
        }

    @classmethod
    def from_json(cls, data: Any) -> TurnTrace:
        if not isinstance(data, Mapping) or not isinstance(data.get("layers"), list):
            raise TraceError("a turn is not an object with a list of layers")
        final = data.get("final")
        try:
            events = [event_from_json(e) for e in data.get("events") or []]
        except EventError as exc:
            raise TraceError(str(exc)) from None
        return cls(
            layers=[[CallTrace.from_json(c) for c in layer] for layer in data["layers"]],
            final=None if final is None else CallTrace.from_json(final),
            output=data.get("output"),
            error=data.get("error"),
            events=events,
        )


@dataclass
class ConversationTrace:
    turns: list[TurnTrace] = field(default_factory=list)

    @property
    def outputs(self) -> list[str] | None:
        """One answer per turn, or None if any turn failed."""
        if any(t.output is None for t in self.turns):
            return None
        return [t.output for t in self.turns if t.output is not None]

    @property
    def error(self) -> str | None:
        return next((t.error for t in self.turns if t.error), None)

    def calls(self) -> list[CallTrace]:
        return [c for turn in self.turns for c in turn.calls()]

    def to_json(self) -> dict[str, Any]:
        """What `dataclasses.asdict` gives, key for key, built per class: `asdict` deep-copies
        every value of every call, once per instance written, for a dict that is only dumped."""
        return {"turns": [t.to_json() for t in self.turns]}

    @classmethod
    def from_json(cls, data: Any) -> ConversationTrace:
        if not isinstance(data, Mapping) or not isinstance(data.get("turns", []), list):
            raise TraceError("a trace is not an object with a list of turns")
        return cls(turns=[TurnTrace.from_json(t) for t in data.get("turns", [])])
