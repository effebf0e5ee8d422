"""The Mixture-of-Agents itself: layers of agents, the last one of a single agent.

Layer 1 answers the conversation as is. Each later layer gets the same conversation with the
previous layer's answers injected under a template (the paper's aggregate-and-synthesize prompt
by default). What an agent does with them is its kind:

- `propose` and `aggregate`: one answer (the same call; `aggregate` names the paper's final
  aggregator, so its ledger role is "aggregator");
- `rank`: picks the best `top_k` answers and passes them on (the paper's LLM-ranker is a final
  `rank` with k = 1);
- `critique`: one call per answer, writing a critique that travels on beside it (Archon's critic);
- `vote` and `verify`: the answer most given (no call), or the first its model verifies (one
  call per answer), for answers that can be checked (`moa.voting`);
- `strategy`: a user's Python callable (`moa.strategy`), whose calls go through the same door.

All agents of a layer run concurrently; draws of one request by one model (samples) go as one
batched call where the generator offers it (`moa.client.ModelClient.generate_batch`). Every call
is kept in the trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, cast

from moa.agents import AGENT_KINDS, REPEAT_STRIDE, Agent, Layer, Sent
from moa.context import Policy, fit, prompt_limit, tightened
from moa.events import ContextOverflow, CritiqueFailed, DroppedProposals, RankerFallback, TraceEvent
from moa.failures import describe_exception
from moa.prompts import (
    CRITIQUED,
    inject_references,
    parse_picks,
)
from moa.scheduling import settle_all
from moa.strategy import Strategy, StrategyContext, load_strategy
from moa.tokens import estimate_prompt
from moa.trace import CallTrace, ConversationTrace, TurnTrace
from moa.types import CallOutcome, ChatMessage, ErrorKind, GenerateConfig, Generator
from moa.voting import Extractor, best_verified, majority, verdict_of

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class MixtureSpec:
    """`layers` run first to last; the last holds the one agent whose answer is the output.
    A single layer is the final agent alone (a single-model baseline)."""

    name: str
    layers: tuple[Layer, ...]
    # What a failed call does: "drop" its answer from the next layer's references (recorded in
    # the trace) or "fail" the whole turn. A turn whose layer has no answer left always fails.
    on_proposer_error: Literal["drop", "fail"] = "drop"
    # What injected references that would overflow an agent's window do (`moa.context`).
    context_overflow: Policy = "trim"
    repeat: int = 1  # which run of a repeated variant (`repeated`)

    def __post_init__(self) -> None:
        if not self.layers or len(self.layers[-1]) != 1:
            raise ValueError(f"mixture {self.name!r}: the last layer must be one agent")

    @classmethod
    def paper(
        cls,
        name: str,
        proposer_layers: Sequence[Layer],
        aggregator: Agent,
        mode: Literal["aggregate", "rank"] = "aggregate",
        **settings: Any,
    ) -> MixtureSpec:
        """The paper's shape: proposer layers, then one aggregator (or the LLM-ranker)."""
        final = dataclasses.replace(aggregator, kind=mode)
        return cls(name, (*proposer_layers, (final,)), **settings)

    @property
    def final(self) -> Agent:
        return self.layers[-1][0]

    @property
    def proposer_layers(self) -> tuple[Layer, ...]:
        return self.layers[:-1]

    @property
    def mode(self) -> str:
        """What the final agent does: "aggregate" (or "propose"), "rank" or "strategy"."""
        return self.final.kind

    @property
    def calls_per_turn(self) -> int | None:
        """Calls of one turn when all succeed; None when a strategy decides it."""
        calls, answers = 0, 0
        for layer in self.layers:
            passed = 0
            for agent in layer:
                if agent.kind == "strategy":
                    return None
                made = {"critique": answers, "verify": answers, "vote": 0}.get(agent.kind, 1)
                calls += made
                if agent.kind == "rank":
                    passed += min(agent.top_k, answers)
                else:
                    passed += 1 if agent.kind in ("vote", "verify") else made
            answers = passed
        return calls

    def agents(self) -> list[Agent]:
        return [a for layer in self.layers for a in layer]

    def models(self) -> list[str]:
        return list(dict.fromkeys(a.model for a in self.agents()))

    def repeated(self, repeat: int) -> MixtureSpec:
        """Run `repeat` of this variant: every sample shifted by (repeat - 1) * REPEAT_STRIDE
        from run 1's (whichever run this spec is)."""
        by = (repeat - self.repeat) * REPEAT_STRIDE
        layers = tuple(tuple(a.shifted(by) for a in layer) for layer in self.layers)
        return dataclasses.replace(self, layers=layers, repeat=repeat)


@dataclass
class AgentOutput:
    """What one agent of a layer made: its calls (in order) and the answers it passes on."""

    sent: list[Sent]
    outputs: list[str]
    events: list[TraceEvent] = field(default_factory=list)
    error: str | None = None  # the agent failed (its calls say why, unless `fatal`)
    fatal: bool = False  # a strategy's own failure (`moa.strategy`): the turn fails with `error`
    dropped: int = 0  # answers lost to failed calls (a proposer's; not a critic's)


class LayerWatcher(Protocol):
    """Told when each layer of a turn starts and ends (the final agent is the last layer), so
    that an interactive caller can show a mixture's progress."""

    def started(self, depth: int, agents: Sequence[Agent]) -> None: ...
    def finished(self, depth: int, calls: Sequence[CallTrace]) -> None: ...


def with_system(messages: Sequence[ChatMessage], system: str | None) -> Sequence[ChatMessage]:
    """The conversation with an agent's own system prompt first (before the benchmark's own,
    joined by a blank line); the conversation itself when the agent has none."""
    if system is None:
        return messages
    out: list[ChatMessage] = [{"role": m["role"], "content": m["content"]} for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] = system + "\n\n" + out[0]["content"]
    else:
        out.insert(0, {"role": "system", "content": system})
    return out


class Picks(Protocol):
    """What a ranker passes on: `picked`, the answers its `call` chose, in its order. A run
    passes them as they are (`passed_as_picked`); a plan, which sends no model, names picks
    that only the model knows (`eval.plan`)."""

    def __call__(
        self, call: CallTrace, picked: list[str], tags: Mapping[str, str]
    ) -> list[str]: ...


def passed_as_picked(call: CallTrace, picked: list[str], tags: Mapping[str, str]) -> list[str]:
    """A run's ranker: the picked answers themselves."""
    return picked


class Mixture:
    # The method by which each kind of agent (`moa.agents.AGENT_KINDS`) makes its part of a
    # layer, by name: bound methods kept on the mixture would make it a reference cycle, which
    # only the garbage collector frees, with all it holds (a plan's whole stand-in).
    _runners: ClassVar[dict[str, str]] = {
        "propose": "_answer",
        "aggregate": "_answer",
        "rank": "_rank",
        "critique": "_critique",
        "vote": "_vote",
        "verify": "_verify",
        "strategy": "_strategy",
    }

    def __init__(
        self,
        spec: MixtureSpec,
        generator: Generator,
        watcher: LayerWatcher | None = None,
        picks: Picks = passed_as_picked,
        extract: Extractor | None = None,
    ) -> None:
        self.spec = spec
        self.generator = generator
        self.watcher = watcher
        self.picks = picks
        self.extract = extract  # the benchmark's final-answer reader, for `vote`
        self._strategies = {
            a.strategy: load_strategy(a.strategy) for a in spec.agents() if a.strategy
        }
        self._groups = [_groups(layer) for layer in spec.layers]  # once, not at every turn

    async def _settle(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """The calls of one layer (or one agent's several), run concurrently
        (`moa.scheduling.settle_all`); a plan's, which never wait, need no tasks
        (`eval.plan_stand_in`)."""
        return await settle_all(calls)

    async def run_turn(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
    ) -> TurnTrace:
        trace = TurnTrace()
        references: list[str] = []
        last = len(self.spec.layers)
        for depth, layer in enumerate(self.spec.layers, start=1):
            final = depth == last
            if self.watcher:
                self.watcher.started(depth, layer)
            done = await self._layer(layer, messages, references, config, tags, depth, final)
            calls = [s.call for d in done for s in d.sent]
            if self.watcher and calls:
                self.watcher.finished(depth, calls)
            trace.events.extend(e for d in done for s in d.sent for e in s.events)
            trace.events.extend(e for d in done for e in d.events)
            if final:
                self._finish(trace, done[0], calls)
                return trace
            trace.layers.append(calls)
            if refusal := next((s.refusal for d in done for s in d.sent if s.refusal), None):
                trace.error = refusal
                return trace
            if fatal := next((d.error for d in done if d.fatal), None):
                trace.error = f"layer {depth}: {fatal}"
                return trace
            failed = [c for c in calls if c.text is None]
            references = [o for d in done for o in d.outputs]
            what = "proposals" if all(a.kind == "propose" for a in layer) else "calls"
            if failed and (self.spec.on_proposer_error == "fail" or not references):
                trace.error = f"layer {depth}: {len(failed)} of {len(calls)} {what} failed"
                return trace
            if not references:  # a strategy (or a ranker) that passed nothing on
                trace.error = f"layer {depth}: no answer was passed on to layer {depth + 1}"
                return trace
            if dropped := sum(d.dropped for d in done):
                trace.events.append(DroppedProposals(depth, dropped))
        return trace

    def _finish(self, trace: TurnTrace, done: AgentOutput, calls: list[CallTrace]) -> None:
        """The final agent's answer is the turn's output; its earlier calls (a strategy's) are
        kept as a layer of their own."""
        if len(calls) > 1:
            trace.layers.append(calls[:-1])
        trace.final = calls[-1] if calls else None
        if refusal := next((s.refusal for s in done.sent if s.refusal), None):
            trace.error = refusal
        elif done.fatal:
            trace.error = done.error
        elif done.error is not None or not done.outputs:
            agent = self.spec.final
            why = done.error or (calls[-1].error if calls else "no answer")
            trace.error = f"{agent.role} failed: {why}"
        else:
            trace.output = done.outputs[0]

    async def _layer(
        self,
        layer: Layer,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None,
        depth: int,
        final: bool,
    ) -> list[AgentOutput]:
        """Every agent of a layer, concurrently; draws of one request (same model, settings but
        the sample) as one batch."""
        groups, order = self._groups[depth - 1]
        tagged = {**(tags or {}), "layer": "0" if final else str(depth)}
        done = await self._settle(
            self._agents(group, messages, references, config, tagged) for group in groups
        )
        made = [d for ds in done for d in ds]
        return [made[i] for i in order]

    async def _agents(
        self,
        agents: list[Agent],
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> list[AgentOutput]:
        agent = agents[0]
        tags = {**tags, "role": agent.role}
        run = getattr(self, self._runners[agent.kind])
        if AGENT_KINDS[agent.kind].batched:  # draws of one request, as one
            done: list[AgentOutput] = await run(agents, messages, references, config, tags)
            return done
        return [await run(agent, messages, references, config, tags)]

    async def _answer(
        self,
        agents: list[Agent],
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> list[AgentOutput]:
        """Proposers and aggregators: draws of one request, each answer passed on."""
        sent = await self.send(agents, messages, references, agents[0].configured(config), tags)
        return [_answered(s) for s in sent]

    async def _strategy(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        strategy = self._strategies[str(agent.strategy)]
        return await _run_strategy(strategy, self, agent, messages, references, config, tags)

    async def _rank(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        (sent,) = await self.send([agent], messages, references, agent.configured(config), tags)
        done = AgentOutput([sent], [])
        if sent.call.text is None or sent.refusal:
            done.error = sent.call.error
            return done
        # drop_last may have shown the ranker only the first few references
        shown = len(sent.references) or len(references)
        k = min(agent.top_k, shown)
        picks = parse_picks(sent.call.text, shown, k)
        if len(picks) < k:
            missing = k - len(picks)
            picks += [i for i in range(shown) if i not in picks][:missing]
            done.events.append(RankerFallback(k - missing, k))
        done.outputs = self.picks(sent.call, [references[i] for i in picks], tags)
        return done

    async def _critique(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        """One critique per answer, each answer passed on with its critique; an answer whose
        critique failed is passed on without one (the failure is in the trace)."""
        decoding = agent.configured(config)
        sent = await self._settle(
            self.send([agent], messages, [ref], decoding, {**tags, "answer": str(i)})
            for i, ref in enumerate(references, start=1)
        )
        done = AgentOutput([s for (s,) in sent], [])
        for i, (ref, (s,)) in enumerate(zip(references, sent, strict=True), start=1):
            if s.call.text is None:
                done.outputs.append(ref)
                done.events.append(CritiqueFailed(i, agent.label))
            else:
                done.outputs.append(CRITIQUED.format(answer=ref, critique=s.call.text.strip()))
        return done

    async def _vote(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        """The answer most given passes on; no call is made."""
        voted = majority(references, self.extract)
        return AgentOutput([], [references[voted.chosen - 1]], [voted])

    async def _verify(
        self,
        agent: Agent,
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> AgentOutput:
        """One verification per candidate; the first verified passes on. A failed call leaves
        its candidate unverified (the failure is in the trace)."""
        decoding = agent.configured(config)
        sent = await self._settle(
            self.send([agent], messages, [ref], decoding, {**tags, "answer": str(i)})
            for i, ref in enumerate(references, start=1)
        )
        calls = [s for (s,) in sent]
        verified = best_verified([verdict_of(s.call.text) for s in calls])
        return AgentOutput(calls, [references[verified.chosen - 1]], [verified])

    async def send(
        self,
        agents: Sequence[Agent],
        messages: Sequence[ChatMessage],
        references: Sequence[str],
        config: GenerateConfig,
        tags: Mapping[str, str],
    ) -> list[Sent]:
        """One request per agent (agents differing only by sample: one batch), with the
        references fitted to the agents' window by the context policy; if the endpoint still
        finds the prompt too long, the policy is applied once more, tighter."""
        agent = agents[0]
        conversation = with_system(messages, agent.system)
        if not references:
            outcomes = await self._call(agents, conversation, config, tags)
            return [
                Sent(CallTrace.of(a.model, a.sample, o))
                for a, o in zip(agents, outcomes, strict=True)
            ]
        preamble = agent.preamble()
        policy = self.spec.context_overflow
        layer = tags.get("layer", "0")

        def where(a: Agent) -> str:
            return f"{a.role} {a.label}" + (f" (layer {layer})" if layer != "0" else "")

        limit = prompt_limit(agent.context_length, config.max_tokens)
        fitted = fit(conversation, references, preamble, limit, policy)
        said = ""  # set once the endpoint has refused a prompt as too long
        sent: list[Sent | None] = [None] * len(agents)
        pending = list(range(len(agents)))  # sent again only if its own prompt was refused
        while pending:
            what = fitted.error or fitted.change
            if fitted.error is not None:
                for i in pending:
                    a = agents[i]
                    refused_now = ContextOverflow(policy, where(a), said + fitted.error)
                    refusal = str(refused_now)
                    sent[i] = Sent(
                        CallTrace.unsent(a.model, a.sample, refusal), (), [refused_now], refusal
                    )
                break
            prompt = inject_references(conversation, fitted.references, preamble)
            outcomes = await self._call([agents[i] for i in pending], prompt, config, tags)
            refused = []
            for i, o in zip(pending, outcomes, strict=True):
                a = agents[i]
                events: list[TraceEvent] = (
                    [ContextOverflow(policy, where(a), said + what, fitted.dropped)] if what else []
                )
                sent[i] = Sent(CallTrace.of(a.model, a.sample, o), fitted.references, events)
                if o.record.error_kind == ErrorKind.CONTEXT_OVERFLOW:
                    refused.append(i)
            if said or not refused:
                break
            said = f"the endpoint refused ~{estimate_prompt(prompt)} tokens as too long; "
            if policy == "error":
                for i in refused:
                    s = cast(Sent, sent[i])
                    overflow = ContextOverflow(policy, where(agents[i]), said + str(s.call.error))
                    s.refusal, s.events = str(overflow), [overflow]
                break
            pending = refused
            limit = tightened(estimate_prompt(prompt), limit)
            fitted = fit(conversation, references, preamble, limit, policy)
        return cast(list[Sent], sent)

    async def _call(
        self,
        agents: Sequence[Agent],
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str],
    ) -> list[CallOutcome]:
        model = agents[0].model
        if len(agents) == 1:  # most calls: no task of their own (a gather would make one)
            one = agents[0].sample
            return [await self.generator.generate(model, messages, config, sample=one, tags=tags)]
        batch = getattr(self.generator, "generate_batch", None)
        if batch is not None:
            samples = [a.sample for a in agents]
            return cast(list[CallOutcome], await batch(model, messages, config, samples, tags))
        return await self._settle(
            self.generator.generate(model, messages, config, sample=a.sample, tags=tags)
            for a in agents
        )

    async def converse(
        self,
        turns: Sequence[str],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
        system: str | None = None,
        on_turn: Callable[[], None] | None = None,
    ) -> ConversationTrace:
        """Runs the mixture afresh at each user turn, with the earlier turns' outputs as history;
        `on_turn` is called as each turn ends (a progress bar of turns)."""
        messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        trace = ConversationTrace()
        for index, user in enumerate(turns, start=1):
            messages.append({"role": "user", "content": user})
            turn = await self.run_turn(messages, config, {**(tags or {}), "turn": str(index)})
            trace.turns.append(turn)
            if on_turn is not None:
                on_turn()
            if turn.output is None:
                break
            messages.append({"role": "assistant", "content": turn.output})
        return trace


def _groups(layer: Layer) -> tuple[list[list[Agent]], list[int]]:
    """A layer's agents grouped into draws of one request (proposers and aggregators that differ
    only by sample), and where each agent's output is in the groups' outputs, in layer order."""
    keyed: dict[Agent, list[int]] = {}
    for i, agent in enumerate(layer):
        plain = AGENT_KINDS[agent.kind].batched
        keyed.setdefault(dataclasses.replace(agent, sample=0) if plain else agent, []).append(i)
    flat = [i for members in keyed.values() for i in members]
    groups = [[layer[i] for i in members] for members in keyed.values()]
    return groups, [flat.index(i) for i in range(len(layer))]


def _answered(sent: Sent) -> AgentOutput:
    """A proposer's or aggregator's call: its answer, stripped as the official implementation
    strips every answer before reusing it."""
    text = sent.call.text
    if text is None or sent.refusal:
        return AgentOutput([sent], [], dropped=1)
    return AgentOutput([sent], [text.strip()])


async def _run_strategy(
    strategy: Strategy,
    mixture: Mixture,
    agent: Agent,
    messages: Sequence[ChatMessage],
    references: Sequence[str],
    config: GenerateConfig,
    tags: Mapping[str, str],
) -> AgentOutput:
    ctx = StrategyContext(
        messages,
        references,
        agent,
        agent.configured(config),
        dict(agent.options),
        mixture.send,
        tags,
    )
    bound = asyncio.timeout(agent.strategy_timeout_s)
    made: object = None
    raised: Exception | None = None
    try:
        async with bound:
            made = await strategy(ctx)
    except Exception as exc:
        raised = exc
    if ctx.stopped_by is not None:  # whatever the strategy made of it, the run stops
        raise ctx.stopped_by
    fault = None
    if bound.expired():
        fault = f"took longer than strategy_timeout_s={agent.strategy_timeout_s:g} s"
    elif raised is not None:
        fault = f"raised {describe_exception(raised)}"
        where = ", ".join(f"{k} {tags[k]}" for k in ("instance", "turn") if k in tags)
        log.warning(
            "strategy %s raised (%s); that turn failed", agent.strategy, where, exc_info=raised
        )
    outputs = None if fault else _passed_on(made)
    if outputs is None:
        fault = fault or f"returned {type(made).__name__}, not a str or a list of str"
        return AgentOutput(ctx.sent, [], error=f"strategy {agent.strategy} {fault}", fatal=True)
    failed = next((s.call.error for s in ctx.sent if s.call.text is None), None)
    error = None if outputs else (failed or f"strategy {agent.strategy} passed nothing on")
    return AgentOutput(ctx.sent, outputs, error=error)


def _passed_on(made: object) -> list[str] | None:
    """A strategy's answers: a str, or a list (or tuple) of str; None for anything else."""
    if isinstance(made, str):
        return [made]
    if isinstance(made, list | tuple) and all(isinstance(o, str) for o in made):
        return list(made)
    return None
