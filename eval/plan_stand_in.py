"""The plan's stand-in for the models: a `moa.types.Generator` that calls none, and the real
mixture run over it (`eval.plan` says what a plan counts and why).

Each call is answered with a placeholder that names its request by its cache key (or with the
answer the call cache holds for that key), so later requests are built from exactly what they
would be built from, and two requests are one call exactly when they would be byte-identical.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar, cast

from moa.agents import Agent
from moa.cache import CallCache, call_key
from moa.catalogue import split_address
from moa.mixture import AgentOutput, Mixture, MixtureSpec
from moa.tokens import ASCII_CHARS_PER_TOKEN, MESSAGE_OVERHEAD, estimate_tokens
from moa.trace import CallTrace, TurnTrace
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig

# What a planned call "answers": the name of its request. `pick` stands for the proposal a ranker
# picks, which only the model knows (see `PlanningMixture`).
_PLACEHOLDER = re.compile("⟦(?:call|pick):[0-9a-f]{64}(?::[0-9]+)?⟧")
# What a planned ranker answers: a valid pick, so the mixture records no fallback.
_RANKER_ANSWER = "1"
_JUDGE_ROLE = "judge"  # `eval.judges.common.JUDGE_TAGS`

T = TypeVar("T")


def _plan_key(
    endpoint: str, model: str, messages: Sequence[ChatMessage], config: str, sample: int
) -> str:
    """A plan's own key of a request: equal exactly when `moa.cache.call_key`'s would be (each
    field length-prefixed, `config` as `StandIn._config` gives it), without its JSON."""
    chunks = []
    for part in (
        endpoint,
        model,
        config,
        str(sample),
        *[p for m in messages for p in (m["role"], m["content"])],
    ):
        data = part.encode("utf-8", "surrogatepass")
        chunks.append(b"%d:%b" % (len(data), data))
    return hashlib.sha256(b"".join(chunks)).hexdigest()  # hashed at once: a third faster


class StandIn:
    """A `moa.types.Generator` that calls no model.

    Each call gets the key `moa.client.ModelClient` would give it, with `identities[endpoint]`
    for the endpoint's identity, else its name, and answers what `cache` holds for that key,
    else a placeholder naming the key: a ranker answers a valid pick instead. With neither
    `cache` nor `identities` only equality matters, and keys are `_plan_key`s. A call is shared
    when an earlier call of the sweep, or `already_cached`, had its key. Tokens are `moa.tokens`
    estimates of the request, each placeholder counting as the answer it stands for, and
    `output_tokens(model)` for the answer, capped by `max_tokens`; a cached answer counts the
    tokens it was billed.
    """

    def __init__(
        self,
        output_tokens: Callable[[str], int],
        already_cached: frozenset[str],
        cache: CallCache | None = None,
        identities: Mapping[str, str] | None = None,
        batches: Callable[[str], bool] | None = None,
    ) -> None:
        self.output_tokens = output_tokens
        self.batches = batches or (lambda _endpoint: False)
        self.already_cached = already_cached
        self.cache = cache
        self.identities = dict(identities or {})
        self.seen: set[str] = set()
        self.stored: set[str] = set()  # keys the cache answered
        self.unclaimed: set[str] = set()  # keys first sent, until a tally counts them
        self.recording: list[CallRecord] | None = None  # every call's record, while set
        self.stands_for: dict[str, int] = {}  # placeholder -> the tokens of the answer it names
        self._estimates: dict[str, int] = {}
        self._batching: dict[str, bool] = {}  # `batches`, asked once per endpoint
        # A message's estimate by its text: a layer's agents and the sweep's variants send the
        # same instruction and references many times (a judge's prompt, once: not kept).
        self._estimated: dict[str, int] = {}
        # Identical requests get one key and one answer, computed once. The requests are kept
        # as tuples of strings and numbers, which the garbage collector does not need to follow.
        self._configs: dict[int, tuple[GenerateConfig, int, str]] = {}  # by id(); keeps them
        self._canonical: dict[str, int] = {}
        # The cache's own keys only where they are looked up or asked for (they cost a JSON
        # encoding of the request, a third of a planned call's time): else `_plan_key`.
        self.real_keys = cache is not None or bool(self.identities)
        self._answers: dict[tuple[str | int, ...], tuple[str, Completion]] = {}
        # What agents made, by what they were given (`PlanningMixture._agents`).
        self.made: dict[tuple[object, ...], list[AgentOutput]] = {}

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        role = None if tags is None else tags.get("role")
        # A judge's request is one of a kind (it holds the output judged): not worth keeping.
        request: tuple[str | int, ...] | None = None
        if role != _JUDGE_ROLE:
            request = (
                model,
                sample,
                self._config(config)[0],
                *[p for m in messages for p in (m["role"], m["content"])],
            )
        known = None if request is None else self._answers.get(request)
        if known is not None:  # the very same request: the sweep has made it already
            key, completion = known
            record = CallRecord(
                key, model, sample, completion.input_tokens, completion.output_tokens, cached=True
            )
            return self._outcome(completion, record)
        endpoint, model_id = split_address(model)
        if self.real_keys:
            identity = self.identities.get(endpoint, endpoint)
            key = call_key(identity, model_id, messages, config, sample)
        else:
            key = _plan_key(endpoint, model_id, messages, self._config(config)[1], sample)
        found = None if self.cache is None else self.cache.get(key)
        if found is not None:
            self.stored.add(key)
            completion = found
        else:
            estimate = self._estimates.get(model)
            if estimate is None:
                estimate = self._estimates[model] = self.output_tokens(model)
            out = estimate if config.max_tokens is None else min(estimate, config.max_tokens)
            if role == "ranker":
                text = _RANKER_ANSWER
            else:
                text = f"⟦call:{key}⟧"
                self.stands_for[text] = out
            if request is None:
                prompt = sum(self._estimate(m["content"]) for m in messages)
            else:
                prompt = sum(self._estimate_kept(m["content"]) for m in messages)
            completion = Completion(text, prompt, out)
        if request is not None:
            self._answers[request] = key, completion
        first = key not in self.seen and key not in self.already_cached
        if first:
            self.unclaimed.add(key)
        self.seen.add(key)
        record = CallRecord(
            key,
            model,
            sample,
            completion.input_tokens,
            completion.output_tokens,
            cached=found is not None or not first,
        )
        return self._outcome(completion, record)

    async def generate_batch(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
        tags: Mapping[str, str] | None = None,
    ) -> list[CallOutcome]:
        """Draws of one request, as `ModelClient.generate_batch` makes them: on an endpoint that
        `batches`, the draws still to make go as one request, whose prompt is billed once."""
        outcomes = [
            await self.generate(model, messages, config, sample=s, tags=tags) for s in samples
        ]
        endpoint = split_address(model)[0]
        batching = self._batching.get(endpoint)
        if batching is None:
            batching = self._batching[endpoint] = self.batches(endpoint)
        if not batching:
            return outcomes
        fresh = [i for i, o in enumerate(outcomes) if not o.record.cached]
        for i in fresh[1:] if len(fresh) > 1 else ():
            outcome = outcomes[i]
            outcome.record.input_tokens = 0
            outcomes[i] = CallOutcome(
                dataclasses.replace(cast(Completion, outcome.completion), input_tokens=0),
                outcome.record,
            )
        return outcomes

    def _outcome(self, completion: Completion, record: CallRecord) -> CallOutcome:
        if self.recording is not None:
            self.recording.append(record)
        return CallOutcome(completion, record)

    def _config(self, config: GenerateConfig) -> tuple[int, str]:
        """A number per config as the cache key sees it (0 and 0.0, equal in Python, are not),
        and that view of it, as JSON."""
        known = self._configs.get(id(config))
        if known is not None:
            return known[1], known[2]
        canonical = json.dumps(config.as_dict(), sort_keys=True)
        number = self._canonical.setdefault(canonical, len(self._canonical))
        self._configs[id(config)] = config, number, canonical
        return number, canonical

    def name_picks(self, call: CallTrace, picked: list[str], tags: Mapping[str, str]) -> list[str]:
        """A ranker within the mixture passes on picks only the model knows: each gets a name
        of its own (standing for the answer in its place), so that two variants whose rankers
        differ never share the next layer's requests in the plan unless they would in a run
        (`moa.mixture.Picks`). The final ranker's pick is `PlanningMixture`'s."""
        if tags.get("layer") == "0" or not picked or call.key in self.stored:
            return picked
        names = [f"⟦pick:{call.key}:{i}⟧" for i in range(len(picked))]
        for name, answer in zip(names, picked, strict=True):
            self.stands_for[name] = self.tokens_of(answer)
        return names

    def tokens_of(self, text: str) -> int:
        """An answer's estimated tokens, each placeholder in it counted as what it names."""
        return self._estimate(text) - MESSAGE_OVERHEAD

    def _estimate_kept(self, content: str) -> int:
        """`_estimate`, kept by text: a placeholder's tokens are set before any text holds it
        and never change, so a text's estimate never does either."""
        known = self._estimated.get(content)
        if known is None:
            known = self._estimated[content] = self._estimate(content)
        return known

    def _estimate(self, content: str) -> int:
        """One message's share of `moa.tokens.estimate_prompt`, each placeholder counted as the
        answer it names."""
        names = _PLACEHOLDER.findall(content) if "⟦" in content else []
        if not names:
            return estimate_tokens(content) + MESSAGE_OVERHEAD
        # The text without its placeholders, counted without making it: a placeholder is ASCII
        # but for its two brackets.
        named = sum(map(len, names))
        ascii_chars = len(content.encode("ascii", "ignore")) - named + 2 * len(names)
        others = len(content) - named - ascii_chars
        text = -(-ascii_chars // ASCII_CHARS_PER_TOKEN) + others
        return text + MESSAGE_OVERHEAD + sum(map(self.stands_for.__getitem__, names))


class PlanningMixture(Mixture):
    """The real mixture, but for a ranker's output. The real output is the proposal the ranker
    picks, which only the model knows: the plan gives it a name of its own, so that a later turn
    never shares with a variant whose output happens to be that very proposal (the plan may
    overcount then, never undercount). It stands for the mean length of the proposals. A pick
    the cache holds is known: then the output is the real one."""

    generator: StandIn

    def __init__(self, spec: MixtureSpec, stand_in: StandIn) -> None:
        super().__init__(spec, stand_in, picks=stand_in.name_picks)

    async def _agents(
        self,
        agents: list[Agent],
        messages: Sequence[ChatMessage],
        references: list[str],
        config: GenerateConfig,
        tags: dict[str, str],
    ) -> list[AgentOutput]:
        """Agents the sweep has run on the very same input (an earlier variant's, or this one's
        under another name) make what they made: the same requests, whose answers are the same
        placeholders, already counted. So they run once and their outputs are passed on again;
        a user's strategy, which may keep state, always runs."""
        stand_in = self.generator
        if stand_in.recording is not None or agents[0].strategy:
            return await super()._agents(agents, messages, references, config, tags)
        given = (
            tuple(agents),
            self.spec.context_overflow,
            stand_in._config(config)[0],
            tuple(sorted(tags.items())),
            tuple((m["role"], m["content"]) for m in messages),
            tuple(references),
        )
        done = stand_in.made.get(given)
        if done is None:
            done = await super()._agents(agents, messages, references, config, tags)
            stand_in.made[given] = done
        return done

    async def _settle(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """`moa.scheduling.settle_all` without its tasks, most of a plan's time: the stand-in
        never waits, so a gather runs each call through in the order given, as this does, and
        as it does an error is raised once every call has ended."""
        results: list[T] = []
        raised: Exception | None = None
        for call in calls:
            try:
                results.append(await call)
            except Exception as exc:
                raised = raised or exc
        if raised is not None:
            raise raised
        return results

    async def run_turn(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        tags: Mapping[str, str] | None = None,
    ) -> TurnTrace:
        trace = await super().run_turn(messages, config, tags)
        final = trace.final
        if self.spec.mode == "rank" and trace.output is not None and final is not None:
            if final.key in self.generator.stored:
                return trace
            lengths = [c.output_tokens for c in trace.layers[-1] if c.text is not None]
            trace.output = f"⟦pick:{final.key}⟧"
            self.generator.stands_for[trace.output] = sum(lengths) // max(len(lengths), 1)
        return trace
