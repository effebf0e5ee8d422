"""The Mixture-of-Agents itself: proposer layers, then one aggregator (or the LLM-ranker baseline).

Layer 1 answers the conversation as is. Each later layer, and the aggregator, gets the same
conversation with the previous layer's answers injected under the aggregate-and-synthesize
prompt. All agents of a layer run concurrently. Every call of every layer is kept in the trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, cast

from moa.context import Policy, event, fit, prompt_limit, tightened
from moa.prompts import AGGREGATE_AND_SYNTHESIZE, RANK_AND_SELECT, inject_references, parse_pick
from moa.tokens import estimate_prompt
from moa.trace import CallTrace, ConversationTrace, TurnTrace
from moa.types import CallOutcome, ChatMessage, ErrorKind, GenerateConfig, Generator

T = TypeVar("T")


@dataclass(frozen=True)
class Agent:
    model: str  # endpoint/model address
    sample: int = 0  # tells apart n draws of one model in single-proposer mode
    context_length: int | None = None  # tokens, from the catalogue; None: never fitted

    @property
    def label(self) -> str:
        return f"{self.model}#{self.sample}"


@dataclass(frozen=True)
class MixtureSpec:
    """`proposer_layers` may be empty: then the "mixture" is the aggregator model alone."""

    name: str
    proposer_layers: tuple[tuple[Agent, ...], ...]
    aggregator: Agent
    mode: Literal["aggregate", "rank"] = "aggregate"
    # What a failed proposal does: "drop" it from the next layer's references (recorded in
    # the trace) or "fail" the whole turn. A turn whose layer has no answer left always fails.
    on_proposer_error: Literal["drop", "fail"] = "drop"
    ranker_max_tokens: int = 16
    # What injected references that would overflow an agent's window do (`moa.context`).
    context_overflow: Policy = "trim"

    @property
    def calls_per_turn(self) -> int:
        return sum(len(layer) for layer in self.proposer_layers) + 1

    def models(self) -> list[str]:
        seen = {a.model: None for layer in self.proposer_layers for a in layer}
        seen[self.aggregator.model] = None
        return list(seen)


@dataclass
class _Sent:
    """One agent's call, with the references it saw and the context events it caused."""

    call: CallTrace
    references: tuple[str, ...] = ()
    events: list[str] = field(default_factory=list)
    refusal: str | None = None  # the context policy failed the turn


async def _all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Every result; an exception is raised only once all siblings have ended, so that no call
    is left running unowned (a budget stop lets the calls already in flight finish)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


class LayerWatcher(Protocol):
    """Told when each layer of a turn starts and ends (the final agent is the last layer), so
    that an interactive caller can show a mixture's progress."""

    def started(self, depth: int, agents: Sequence[Agent]) -> None: ...
    def finished(self, depth: int, calls: Sequence[CallTrace]) -> None: ...


class Mixture:
    def __init__(
        self, spec: MixtureSpec, generator: Generator, watcher: LayerWatcher | None = None
    ) -> None:
        self.spec = spec
        self.generator = generator
        self.watcher = watcher

    async def run_turn(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
    ) -> TurnTrace:
        trace = TurnTrace()
        references: list[str] = []
        for depth, layer in enumerate(self.spec.proposer_layers, start=1):
            if self.watcher:
                self.watcher.started(depth, layer)
            sent = await _all(
                self._send(a, messages, references, config, tags, "proposer", depth) for a in layer
            )
            calls = [s.call for s in sent]
            if self.watcher:
                self.watcher.finished(depth, calls)
            trace.layers.append(calls)
            trace.events.extend(e for s in sent for e in s.events)
            if refusal := next((s.refusal for s in sent if s.refusal), None):
                trace.error = refusal
                return trace
            failed = [c for c in calls if c.text is None]
            # The official implementation strips every answer before reusing it.
            references = [c.text.strip() for c in calls if c.text is not None]
            if failed and (self.spec.on_proposer_error == "fail" or not references):
                trace.error = f"layer {depth}: {len(failed)} of {len(calls)} proposals failed"
                return trace
            if failed:
                trace.events.append(
                    f"layer {depth}: dropped {len(failed)} failed proposal(s) from the references"
                )
        depth = len(self.spec.proposer_layers) + 1
        if self.watcher:
            self.watcher.started(depth, [self.spec.aggregator])
        if self.spec.mode == "rank":
            await self._rank(trace, messages, references, config, tags)
        else:
            await self._aggregate(trace, messages, references, config, tags)
        if self.watcher and trace.final is not None:
            self.watcher.finished(depth, [trace.final])
        return trace

    async def _aggregate(
        self,
        trace: TurnTrace,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
    ) -> None:
        agent = self.spec.aggregator
        sent = await self._send(agent, messages, references, config, tags, "aggregator")
        trace.final = sent.call
        trace.events.extend(sent.events)
        if sent.refusal:
            trace.error = sent.refusal
        elif sent.call.text is None:
            trace.error = f"aggregator failed: {sent.call.error}"
        else:
            trace.output = sent.call.text.strip()

    async def _rank(
        self,
        trace: TurnTrace,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
    ) -> None:
        agent = self.spec.aggregator
        config = config.merged(max_tokens=self.spec.ranker_max_tokens)
        sent = await self._send(agent, messages, references, config, tags, "ranker")
        trace.final = sent.call
        trace.events.extend(sent.events)
        if sent.refusal:
            trace.error = sent.refusal
            return
        if sent.call.text is None:
            trace.error = f"ranker failed: {sent.call.error}"
            return
        # drop_last may have shown the ranker only the first few references
        pick = parse_pick(sent.call.text, len(sent.references))
        if pick is None:
            pick = 0
            trace.events.append("ranker pick unparseable: fell back to response 1")
        trace.output = references[pick]

    async def _send(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: Sequence[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
        role: str,
        layer: int = 0,
    ) -> _Sent:
        """One call, with the references fitted to the agent's window by the context policy; if
        the endpoint still finds the prompt too long, the policy is applied once more, tighter."""
        if not references:
            outcome = await self._call(agent, messages, config, tags, role, layer)
            return _Sent(CallTrace.of(agent.model, agent.sample, outcome))
        preamble = RANK_AND_SELECT if role == "ranker" else AGGREGATE_AND_SYNTHESIZE
        policy = self.spec.context_overflow
        where = f"{role} {agent.label}" + (f" (layer {layer})" if layer else "")
        limit = prompt_limit(agent.context_length, config.max_tokens)
        fitted = fit(messages, references, preamble, limit, policy)
        said = ""  # set once the endpoint has refused a prompt as too long
        while True:
            what = fitted.error or fitted.change
            events = [event(policy, where, said + what)] if what else []
            if fitted.error is not None:
                return _Sent(
                    CallTrace.unsent(agent.model, agent.sample, events[0]), (), events, events[0]
                )
            prompt = inject_references(messages, fitted.references, preamble)
            outcome = await self._call(agent, prompt, config, tags, role, layer)
            sent = _Sent(
                CallTrace.of(agent.model, agent.sample, outcome), fitted.references, events
            )
            if said or outcome.record.error_kind != ErrorKind.CONTEXT_OVERFLOW:
                return sent
            said = f"the endpoint refused ~{estimate_prompt(prompt)} tokens as too long; "
            if policy == "error":
                sent.refusal = event(policy, where, said + str(outcome.record.error))
                sent.events = [sent.refusal]
                return sent
            limit = tightened(estimate_prompt(prompt), limit)
            fitted = fit(messages, references, preamble, limit, policy)

    async def _call(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
        role: str,
        layer: int,
    ) -> CallOutcome:
        call_tags = {**(tags or {}), "role": role, "layer": str(layer)}
        return await self.generator.generate(
            agent.model, messages, config, sample=agent.sample, tags=call_tags
        )

    async def converse(
        self,
        turns: Sequence[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
        system: str | None = None,
    ) -> ConversationTrace:
        """Runs the mixture afresh at each user turn, with the earlier turns' outputs as history."""
        messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        trace = ConversationTrace()
        for index, user in enumerate(turns, start=1):
            messages.append({"role": "user", "content": user})
            turn = await self.run_turn(messages, config, {**(tags or {}), "turn": str(index)})
            trace.turns.append(turn)
            if turn.output is None:
                break
            messages.append({"role": "assistant", "content": turn.output})
        return trace
