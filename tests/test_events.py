"""Trace events are tagged records: written as objects, read back as the same types, and the
sentences format 1 stored read back as those types too."""

from __future__ import annotations

import dataclasses
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
    Verified,
    Voted,
    from_json,
)
from moa.trace import CallTrace, ConversationTrace, TraceError, TurnTrace

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


def test_a_trace_is_written_as_asdict_writes_it() -> None:
    """`to_json` walks the trace per class rather than through `dataclasses.asdict`: the line
    written to `traces.jsonl` stays the same, byte for byte."""
    call = CallTrace("t/a", 1, "k1", "an answer", None, 12, 34, 0.5, False, 2, "stop")
    failed = CallTrace(
        "t/b", 0, "k2", None, "timed out", 3, 0, 9.0, False, 3, tokens_estimated=True
    )
    final = CallTrace(
        "t/agg",
        0,
        "k3",
        "é ☃",
        None,
        40,
        5,
        1.25,
        True,
        1,
        "length",
        True,
        cost_usd=0.01,
        billed=True,
    )
    events = [*EVENTS, Voted(2, 3, 4, 5, "majority"), Verified(1, 2, 3, "first"), Note("n")]
    trace = ConversationTrace(
        [
            TurnTrace(
                [[call, failed], [CallTrace.unsent("t/c", 0, "too long")]],
                final,
                "out",
                None,
                events,
            ),
            TurnTrace([[call]], None, None, "failed", []),
        ]
    )
    assert json.dumps(trace.to_json(), ensure_ascii=False) == json.dumps(
        dataclasses.asdict(trace), ensure_ascii=False
    )
