"""The context-overflow policy: fitted before sending, retried once on the endpoint's own 400."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from eval.generate import run_notes
from eval.rundir import InstanceResult
from eval.settings import CONF_DIR, resolve
from moa.agents import Agent
from moa.context import Policy, count_events, fit, prompt_limit
from moa.events import ContextOverflow, DroppedProposals, TraceEvent
from moa.mixture import Mixture, MixtureSpec
from moa.prompts import AGGREGATE_AND_SYNTHESIZE, inject_references
from moa.tokens import estimate_prompt, estimate_tokens
from moa.trace import ConversationTrace, TurnTrace
from moa.types import ChatMessage, GenerateConfig
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

from .conftest import make_client

USER: list[ChatMessage] = [{"role": "user", "content": "Summarise the debate."}]
REFERENCES = ["alpha " * 300, "beta " * 100, "gamma " * 200]
CONFIG = GenerateConfig(temperature=0.0, max_tokens=100)


def size(references: tuple[str, ...] | list[str]) -> int:
    return estimate_prompt(inject_references(USER, references, AGGREGATE_AND_SYNTHESIZE))


def test_the_estimate_errs_high() -> None:
    assert estimate_tokens("word " * 100) == 167  # ~125 real tokens in English prose
    assert estimate_tokens("日本語") == 3  # every non-ASCII character counts as a token
    assert prompt_limit(8192, 2048) == 6144 and prompt_limit(None, 2048) is None


@pytest.mark.parametrize("policy", ["trim", "drop_last", "error"])
def test_references_that_fit_are_left_alone(policy: Policy) -> None:
    fitted = fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, 10_000, policy)
    assert fitted.references == tuple(REFERENCES) and fitted.change is fitted.error is None


def test_trim_cuts_every_reference_by_the_same_fraction() -> None:
    limit = size(REFERENCES) // 2
    fitted = fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, limit, "trim")
    assert fitted.error is None and fitted.change is not None and "trimmed 3" in fitted.change
    assert size(fitted.references) <= limit
    fractions = [
        len(cut) / len(ref) for cut, ref in zip(fitted.references, REFERENCES, strict=True)
    ]
    assert max(fractions) - min(fractions) < 0.02 and 0.3 < fractions[0] < 0.5
    assert all(ref.startswith(cut) for cut, ref in zip(fitted.references, REFERENCES, strict=True))


def test_drop_last_keeps_the_first_references_whole() -> None:
    limit = size(REFERENCES[:2])
    fitted = fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, limit, "drop_last")
    assert fitted.references == tuple(REFERENCES[:2])
    assert fitted.change is not None and "dropped the last 1 of 3" in fitted.change


def test_error_and_hopeless_cases_send_nothing() -> None:
    limit = size(REFERENCES) - 1
    refused = fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, limit, "error")
    assert refused.references == () and refused.error is not None and "exceeds" in refused.error
    tiny = size([""] * 3)
    assert fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, tiny, "trim").error is not None
    assert fit(USER, REFERENCES, AGGREGATE_AND_SYNTHESIZE, 10, "drop_last").error is not None


def _spec(policy: Policy, context_length: int | None, mode: str = "aggregate") -> MixtureSpec:
    layer = tuple(Agent(f"fake/p{i}") for i in range(3))
    return MixtureSpec.paper(
        "t",
        (layer,),
        Agent(
            "fake/agg",
            context_length=context_length,
            decoding=(("max_tokens", 4),) if mode == "rank" else (),
        ),
        mode="rank" if mode == "rank" else "aggregate",
        context_overflow=policy,
    )


# Proposals of 100 tokens (CONFIG's max_tokens): the aggregator prompt with all three is ~726
# tokens by our estimate (539 by the fake server's), and this window leaves it 700.
PROFILE = ModelProfile(min_tokens=150, max_tokens=200)
WINDOW = 800


@pytest.mark.parametrize("policy", ["trim", "drop_last"])
async def test_the_aggregator_prompt_is_fitted_and_recorded(tmp_path: Path, policy: Policy) -> None:
    server = FakeServer(default=PROFILE)
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(_spec(policy, WINDOW), client).run_turn(USER, CONFIG)
        await client.aclose()
    assert trace.output is not None and trace.error is None
    (note,) = trace.events
    assert isinstance(note, ContextOverflow) and (note.policy, note.at) == (
        policy,
        "aggregator fake/agg#0",
    )
    assert str(note).startswith(f"context overflow ({policy}) at aggregator fake/agg#0")
    sent = server.log[-1].messages
    assert estimate_prompt(sent) <= WINDOW - 100  # room left for max_tokens
    assert count_events(trace.events) == {policy: 1}


async def test_the_error_policy_fails_the_turn_without_a_call(tmp_path: Path) -> None:
    server = FakeServer(default=PROFILE)
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(_spec("error", WINDOW), client).run_turn(USER, CONFIG)
        await client.aclose()
    assert trace.output is None and trace.error is not None
    assert (
        trace.error.startswith("context overflow (error) at aggregator")
        and "exceeds" in trace.error
    )
    assert [str(e) for e in trace.events] == [trace.error]
    assert [r.model for r in server.log] == ["p0", "p1", "p2"]  # the aggregator was never called
    assert trace.final is not None and trace.final.text is None and trace.final.key == ""


async def test_an_endpoint_overflow_is_retried_once_tighter(tmp_path: Path) -> None:
    # The catalogue does not know this window: only the endpoint's own 400 reveals it.
    server = FakeServer(default=PROFILE, profiles={"agg": ModelProfile(context_tokens=450)})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(_spec("trim", None), client).run_turn(USER, CONFIG)
        await client.aclose()
    first, second = [r for r in server.log if r.model == "agg"]
    assert first.status == 400 and second.status == 200
    assert estimate_prompt(second.messages) <= 0.75 * estimate_prompt(first.messages)
    assert trace.output is not None and trace.final is not None and trace.final.error is None
    (note,) = trace.events
    assert isinstance(note, ContextOverflow) and note.policy == "trim"
    assert "the endpoint refused" in note.detail and "trimmed 3 references" in note.detail
    assert client.ledger.totals.errors == 1  # the refused call stays in the ledger


async def test_an_endpoint_overflow_under_the_error_policy_fails_the_turn(tmp_path: Path) -> None:
    server = FakeServer(default=PROFILE, profiles={"agg": ModelProfile(context_tokens=450)})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(_spec("error", None), client).run_turn(USER, CONFIG)
        await client.aclose()
    assert len([r for r in server.log if r.model == "agg"]) == 1
    assert trace.output is None and trace.error is not None
    assert "the endpoint refused" in trace.error and "context_length_exceeded" in trace.error


async def test_a_ranker_shown_fewer_references_picks_among_them(tmp_path: Path) -> None:
    server = FakeServer(default=PROFILE)
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(_spec("drop_last", 500, "rank"), client).run_turn(USER, CONFIG)
        await client.aclose()
    system = server.log[-1].messages[0]["content"]
    shown = system.count("\n1. ") + system.count("\n2. ") + system.count("\n3. ")
    note = trace.events[0]
    assert isinstance(note, ContextOverflow) and note.dropped == 3 - shown
    assert 0 < shown < 3 and "dropped the last" in str(note)
    proposals = [c.text.strip() for c in trace.layers[0] if c.text]
    assert trace.output in proposals[:shown]


def test_the_run_summary_counts_each_policy() -> None:
    def result(events: list[TraceEvent]) -> InstanceResult:
        trace = ConversationTrace([TurnTrace(events=events)])
        return InstanceResult("1", ["x"], None, 0, 0, 0, 0.0, trace=trace)

    events: list[TraceEvent] = [
        ContextOverflow("trim", "aggregator a#0", "trimmed"),
        DroppedProposals(1, 1),
    ]
    notes = run_notes([result(events), result(events[:1])])
    assert notes == ["context overflow policy applied: trim x2 (events in traces.jsonl)"]


def test_the_spec_carries_each_models_window_and_the_policy() -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["moa=moa", "context_overflow=drop_last"])
    spec = resolve(cfg).spec
    windows = {a.model.split("/", 1)[1]: a.context_length for a in spec.proposer_layers[0]}
    assert windows["meta-llama/Llama-3-70b-chat-hf"] == 8192
    assert spec.final.context_length == 32768 and spec.context_overflow == "drop_last"
