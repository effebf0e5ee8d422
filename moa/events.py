"""What a turn's trace records besides its calls: tagged events, each a dataclass whose fields
readers use directly (the browser counts dropped references, a run's summary counts policies).

An event is stored as an object with its `kind` tag (`TurnTrace.events` in `traces.jsonl`);
`str(event)` is the sentence shown to a person. Format 1 stored the sentences alone; `from_json`
reads those back into the same types (`legacy`), so no reader parses text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ContextOverflow:
    """The context policy changed (or refused) what an agent was sent (`moa.context`)."""

    policy: str  # trim, drop_last or error
    at: str  # the agent, as `role model#sample (layer n)`
    detail: str  # what the policy did, or why nothing could be sent
    dropped: int = 0  # drop_last: how many references, the last ones, were left out
    kind: str = field(default="overflow", init=False)

    def __str__(self) -> str:
        return f"context overflow ({self.policy}) at {self.at}: {self.detail}"


@dataclass(frozen=True)
class DroppedProposals:
    """Failed proposals left out of the next layer's references (`on_proposer_error=drop`)."""

    layer: int
    count: int
    kind: str = field(default="dropped_proposals", init=False)

    def __str__(self) -> str:
        return f"layer {self.layer}: dropped {self.count} failed proposal(s) from the references"


@dataclass(frozen=True)
class RankerFallback:
    """A ranker named fewer valid picks than it passes on: the rest filled in order."""

    named: int
    wanted: int
    kind: str = field(default="ranker_fallback", init=False)

    def __str__(self) -> str:
        if self.wanted == 1:
            return "ranker pick unparseable: fell back to response 1"
        return f"ranker named {self.named} of {self.wanted} valid picks: filled in order"


@dataclass(frozen=True)
class CritiqueFailed:
    """A critique call failed: its answer was passed on without one."""

    answer: int  # 1-based, as the references are numbered
    critic: str  # the critic's `model#sample`
    kind: str = field(default="critique_failed", init=False)

    def __str__(self) -> str:
        return f"critique of answer {self.answer} by {self.critic} failed: the answer went on alone"


@dataclass(frozen=True)
class Voted:
    """What a `vote` agent passed on: answer `chosen` (1-based) of `answers`, with `votes` of
    the `voters` whose answer could be read, chosen by `rule`."""

    chosen: int
    votes: int
    voters: int
    answers: int
    rule: str  # majority, tie (earliest), or none readable (first)
    kind: str = field(default="voted", init=False)

    def __str__(self) -> str:
        return (
            f"vote: answer {self.chosen} of {self.answers} passed on, {self.votes} of "
            f"{self.voters} readable votes ({self.rule})"
        )


@dataclass(frozen=True)
class Verified:
    """What a `verify` agent passed on: candidate `chosen` (1-based) of `answers`, of which
    `verified` were judged correct (`rule`: first verified, or none verified: first)."""

    chosen: int
    verified: int
    answers: int
    rule: str
    kind: str = field(default="verified", init=False)

    def __str__(self) -> str:
        return (
            f"verify: candidate {self.chosen} of {self.answers} passed on, {self.verified} "
            f"verified ({self.rule})"
        )


@dataclass(frozen=True)
class Note:
    """A format-1 event of no kind above, kept as its sentence."""

    text: str
    kind: str = field(default="note", init=False)

    def __str__(self) -> str:
        return self.text


TraceEvent = (
    ContextOverflow | DroppedProposals | RankerFallback | CritiqueFailed | Voted | Verified | Note
)
KINDS: dict[str, type[TraceEvent]] = {
    "overflow": ContextOverflow,
    "dropped_proposals": DroppedProposals,
    "ranker_fallback": RankerFallback,
    "critique_failed": CritiqueFailed,
    "voted": Voted,
    "verified": Verified,
    "note": Note,
}


class EventError(ValueError):
    """A stored event that is not one of `KINDS`."""


def from_json(data: Any) -> TraceEvent:
    """A stored event: a tagged object, or a format-1 sentence."""
    if isinstance(data, str):
        return legacy(data)
    if not isinstance(data, Mapping) or data.get("kind") not in KINDS:
        raise EventError(f"an event is not an object with a kind of {', '.join(KINDS)}")
    cls = KINDS[data["kind"]]
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise EventError(f"a {data['kind']} event: {exc}") from None


def legacy(text: str) -> TraceEvent:
    """A format-1 event sentence as its type (sentences `str(event)` wrote then)."""
    overflow = "context overflow ("
    if text.startswith(overflow) and ") at " in text and ": " in text:
        policy, rest = text[len(overflow) :].split(") at ", 1)
        at, detail = rest.split(": ", 1)
        return ContextOverflow(policy, at, detail, _count_after(detail, "dropped the last "))
    words = text.split()
    if text.startswith("layer ") and text.endswith("failed proposal(s) from the references"):
        return DroppedProposals(int(words[1].rstrip(":")), int(words[3]))
    if text == str(RankerFallback(0, 1)):
        return RankerFallback(0, 1)
    if text.startswith("ranker named ") and text.endswith("valid picks: filled in order"):
        return RankerFallback(int(words[2]), int(words[4]))
    if text.startswith("critique of answer ") and text.endswith(": the answer went on alone"):
        return CritiqueFailed(int(words[3]), words[5])
    return Note(text)


def _count_after(text: str, prefix: str) -> int:
    """The whole number that follows `prefix` in `text` (0: none)."""
    _, found, tail = text.partition(prefix)
    number = tail.split(" ", 1)[0] if found else ""
    return int(number) if number.isdigit() else 0
