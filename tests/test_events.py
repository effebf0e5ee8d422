"""Trace events are tagged records: written as objects, read back as the same types, and the
sentences format 1 stored read back as those types too."""

from __future__ import annotations

import json

import pytest

from moa.events import (
    ContextOverflow,
    CritiqueFailed,
    DroppedProposals,
    EventError,
    Note,
    RankerFallback,
    TraceEvent,
    from_json,
)
from moa.trace import ConversationTrace, TraceError, TurnTrace

EVENTS: list[TraceEvent] = [
    ContextOverflow("drop_last", "aggregator t/agg#0", "dropped the last 2 of 6 references", 2),
    ContextOverflow("trim", "proposer t/a#1 (layer 2)", "trimmed 6 references to 40% (~9 -> 5)"),
    DroppedProposals(1, 3),
    RankerFallback(0, 1),
    RankerFallback(1, 2),
    CritiqueFailed(2, "t/critic#0"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_an_event_round_trips_as_its_type(event: TraceEvent) -> None:
    trace = ConversationTrace([TurnTrace(events=[event])])
    stored = json.loads(json.dumps(trace.to_json()))
    assert stored["turns"][0]["events"][0]["kind"] == event.kind
    assert ConversationTrace.from_json(stored) == trace


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_a_format_1_sentence_reads_back_as_its_type(event: TraceEvent) -> None:
    assert from_json(str(event)) == event


def test_an_unknown_sentence_is_kept_and_an_unknown_kind_refused() -> None:
    assert from_json("something else happened") == Note("something else happened")
    with pytest.raises(EventError, match="kind of overflow"):
        from_json({"kind": "mystery"})
    with pytest.raises(TraceError, match="a dropped_proposals event"):
        TurnTrace.from_json({"layers": [], "events": [{"kind": "dropped_proposals"}]})
