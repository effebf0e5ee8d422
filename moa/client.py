"""`ModelClient`: the single door every model call goes through.

It owns what providers should not each reimplement: the cache, in-flight de-duplication,
per-endpoint and per-model concurrency, request and token rate limits, bounded retries with
jittered exponential backoff that honours `Retry-After`, and the ledger record of every call.

Concurrency (`moa.scheduling`): a call first waits for a slot of its model, whose limit is
learned from the server's rate-limit refusals (HTTP 429, or 503 with Retry-After) between 1 and
the configured cap (the endpoint's `max_concurrency`, and the catalogue's per-model one), then
for one of its endpoint's `max_concurrency`. Both serve waiters in `moa.scheduling.PRIORITY`
order, and the budget is held only once both are taken; a call the caps have no room for yet gives
them back and waits in the budget's line, in the same order (`moa.budget.NoRoom`). So calls of
instances started earlier go first, and a call waiting for money never holds a slot.

Retries: `max_attempts` counts every failed attempt but a refusal the model's limiter learned from
(it lowered the limit, or answered a request sent before the limit was last lowered): that
attempt only found the limit, and the call waits for a slot again, after its Retry-After if the
server sent one (or the first backoff step). So a run against a limit lower than configured
finishes without failures once the limiter has converged; a refusal at a learned limit of 1
teaches nothing more and counts, and so does every one past `FREE_REFUSALS` for one call (a
request refused for itself, not for the load, must still end). A Retry-After longer than
`retry_after_max_s` ends the call at once, with an error that says so.

A refused key (HTTP 401 or 403) stops the endpoint: from the first, every later call to it fails
at once, without a request, with an error that says so (`CallRecord.unsent` when none of its
attempts reached a server); calls already in flight end as the server answers them. So does an
unreachable endpoint: one that has not answered once in this run, whose last `UNREACHABLE_AFTER`
attempts reached no server (`NotSent`: a refused connection, every replica drained), which
would otherwise cost each call minutes of backoff. One that has answered and then refuses (a
restart) is retried as any transient failure. `stopped` names such endpoints and why. A model
its endpoint says it does not serve (a 404 `model_not_found`: `moa.failures.model_gone`) is
stopped alone the same way, from the first such answer: `gone` names it. Retries
are counted in the ledger's totals as they happen (`Ledger.retrying`), for the progress bar.

Answers are marked in their record: cut off at max_tokens (`truncated`), empty, tokens estimated
for want of usage. An endpoint's `on_truncated` and `on_empty` (`moa.limits.ANSWER_POLICIES`)
say what else happens: "keep" (the default) keeps the answer; "fail" ends the call as a recorded
error (the answer stays cached, as every answer the endpoint gave: a re-run fails it again
without paying, and a policy set back to "keep" gets it for free); "retry" (empty answers only)
sends the same request again, within `max_attempts`, before the last empty answer is cached and
fails as under "fail" (an empty answer already cached is not asked again). The tokens of an
answer retried away are in the call's record and cost: they were paid. The policies never apply
to calls of `flag_only_roles` (judges and the LLM ranker, by default), which ask for a tiny
budget by design (AlpacaEval's judge: max_tokens=1 with logprobs) and parse what comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from aiolimiter import AsyncLimiter

from moa.budget import Budget, Hold, NoRoom
from moa.cache import CallCache, call_key
from moa.catalogue import BILLS, Catalogue, ModelEntry, split_address, unbilled_endpoints
from moa.claims import Claims
from moa.errors import ConfigError
from moa.failures import as_model_error, model_gone, record_failure
from moa.ledger import Ledger
from moa.limits import LIMIT_KEYS, EndpointLimits
from moa.providers.base import BatchingAPI, ModelAPI, create_provider
from moa.redact import Redacting, redacting
from moa.scheduling import AdaptiveSlots, Slots, opening, settle_all
from moa.tokens import estimate_prompt
from moa.types import (
    CallOutcome,
    CallRecord,
    ChatMessage,
    Completion,
    ErrorKind,
    GenerateConfig,
    ModelError,
    NotSent,
)

log = logging.getLogger(__name__)

SUPPORTS_N = "supports_n"  # an endpoint setting: it takes `n` choices per request
LISTS_MODELS = "lists_models"  # false: it has no model list to check a run's models against
# read here (or by `eval.preflight`); the rest: the provider's
_CLIENT_KEYS = ("provider", BILLS, SUPPORTS_N, LISTS_MODELS, *LIMIT_KEYS)
# Roles (the `role` tag) whose answers are marked but never failed or retried by a policy: a
# judge or the LLM ranker asks for a few tokens (a cut answer is expected) and parses them.
FLAG_ONLY_ROLES = frozenset({"judge", "ranker"})
KEY_REFUSED = (401, 403)  # statuses that stop an endpoint: its key is not (or no longer) good
# Attempts in a row that reach no server (`NotSent`: a refused connection, every replica
# drained) that stop an endpoint which has not answered once in this run: it is unreachable.
UNREACHABLE_AFTER = 5
# Refusals a call may get that the limiter learns from, not counted against max_attempts.
# Converging takes a few per call at most (about log2 of the cap for the unluckiest).
FREE_REFUSALS = 20


@dataclass
class RetryPolicy:
    """Jittered exponential backoff, unless the server said when to come back (`Retry-After`)."""

    max_attempts: int = EndpointLimits.max_attempts
    backoff_initial_s: float = EndpointLimits.backoff_initial_s
    backoff_max_s: float = EndpointLimits.backoff_max_s
    retry_after_max_s: float = EndpointLimits.retry_after_max_s

    def wait(self, attempt: int, exc: ModelError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.retry_after_max_s)
        backoff = self.backoff_initial_s * 2.0 ** (attempt - 1)
        return min(backoff + random.uniform(0, self.backoff_initial_s), self.backoff_max_s)


def _rate_limited(exc: ModelError) -> bool:
    """A refusal that says "too many at once": what the model's limiter learns from."""
    return exc.transient and (
        exc.status == 429 or (exc.status == 503 and exc.retry_after is not None)
    )


def _too_long_to_wait(exc: ModelError, most: float) -> ModelError:
    return ModelError(
        exc.kind,
        f"the server asked to retry after {exc.retry_after:g} s, more than "
        f"retry_after_max_s={most:g} (it said: {exc})",
        status=exc.status,
        retry_after=exc.retry_after,
    )


_EMPTY = ModelError(ErrorKind.TRANSIENT, "the answer was empty")  # for its backoff only


def _mark(record: CallRecord, completion: Completion) -> None:
    """Adds an answer's tokens to its call's record, and its marks (those of the last answer)."""
    record.input_tokens += completion.input_tokens
    record.output_tokens += completion.output_tokens
    record.finish_reason = completion.finish_reason
    record.truncated = completion.truncated
    record.empty = completion.empty
    record.tokens_estimated = record.tokens_estimated or completion.tokens_estimated
    record.repaired = completion.repaired


def _paid(record: CallRecord, completion: Completion | None) -> Completion | None:
    """What a call cost, for the budget: its answer and any answers retried away before it."""
    if not record.input_tokens and not record.output_tokens:
        return completion
    kept_in = completion.input_tokens if completion is not None else 0
    kept_out = completion.output_tokens if completion is not None else 0
    return Completion("", record.input_tokens + kept_in, record.output_tokens + kept_out)


def batches_draws(supports_n: bool, on_empty: str) -> bool:
    """Whether an endpoint sends the draws of one request as one request with `n` choices
    (`ModelClient.generate_batch`): it `supports_n` and does not retry empty answers, which
    goes one answer at a time (`on_empty=retry`)."""
    return supports_n and on_empty != "retry"


def endpoint_batches(name: str, spec: Mapping[str, Any]) -> bool:
    """`batches_draws` of an endpoint's settings, for a caller that builds no client (a plan)."""
    return batches_draws(
        bool(spec.get(SUPPORTS_N, False)), EndpointLimits.from_spec(name, spec).on_empty
    )


async def endpoint_identity(name: str, spec: Mapping[str, Any]) -> str:
    """The identity `ModelClient` puts into the cache keys of an endpoint's calls, for a caller
    that sends nothing (a plan): its provider's own `identity`, from a provider built as the
    client builds it but needing no API key (the key is in no cache key). The `local` provider
    is not built, which would load the weights or start a server: its identity names the
    weights file only."""
    kind = str(spec.get("provider", "openai"))
    if kind == "local":
        from moa.providers import local

        return local.IDENTITY
    skip = {*_CLIENT_KEYS, "api_key_env"}
    api = create_provider(kind, name, {k: v for k, v in spec.items() if k not in skip})
    try:
        return api.identity
    finally:
        await api.aclose()


def _supports_n(name: str, spec: Mapping[str, Any], api: ModelAPI) -> bool:
    """An endpoint's `supports_n`, refused for a provider that cannot send `n`."""
    if not spec.get(SUPPORTS_N, False):
        return False
    inner = api.inner if isinstance(api, Redacting) else api
    if not hasattr(inner, "generate_n"):
        raise ConfigError(
            f"endpoints.{name}.supports_n: its provider ({spec.get('provider', 'openai')}) "
            "cannot draw several samples in one request"
        )
    return True


def _total(completions: Sequence[Completion] | None) -> Completion | None:
    """A batch's answers as one, for the budget: what the request cost."""
    if completions is None:
        return None
    if len(completions) == 1:
        return completions[0]
    return Completion(
        "",
        sum(c.input_tokens for c in completions),
        sum(c.output_tokens for c in completions),
    )


@dataclass
class _Drawn:
    """One batched request for the draws of one request (`ModelClient.generate_batch`), sent
    once every draw has either claimed its key and found no answer (`share`: it takes part) or
    left (`leave`: answered by the cache, by an identical call under way, or ended), so that no
    draw another call or process is making is asked for again. Each taker gets its own answer,
    records the request's attempts, and is cached under its own key by its call; a taker left
    without one (the server ignored `n`) gets None, and draws alone."""

    expected: set[int]  # draws that may still take part
    send: Callable[[list[int]], Awaitable[list[Completion]]]
    record: CallRecord  # the request's attempts, learned by `_call`
    takers: list[int] = field(default_factory=list)
    request: asyncio.Future[list[Completion]] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def leave(self, sample: int) -> None:
        self.expected.discard(sample)
        self._start_if_complete()

    async def share(self, sample: int, record: CallRecord) -> Completion | None:
        self.takers.append(sample)
        self._start_if_complete()
        await self._ready.wait()
        assert self.request is not None  # set with `_ready`
        try:
            completions = await asyncio.shield(self.request)
        except BaseException:
            record.attempts = self.record.attempts
            raise
        place = self.takers.index(sample)
        if place >= len(completions):
            return None  # not answered by the request: its attempts are its takers'
        record.attempts = self.record.attempts
        return completions[place]

    def _start_if_complete(self) -> None:
        if self.request is None and self.takers and set(self.takers) >= self.expected:
            self.request = asyncio.ensure_future(self.send(list(self.takers)))
            self._ready.set()

    def close(self) -> None:
        """Once every draw has ended: the request's outcome is its takers' (each recorded it)."""
        if self.request is None:
            return
        if not self.request.done():
            self.request.cancel()
        elif not self.request.cancelled():
            self.request.exception()  # retrieved: each taker has recorded it


@dataclass
class _Endpoint:
    api: ModelAPI
    slots: Slots  # its max_concurrency
    # where each model's learned concurrency starts (slow start); None: `opening` of its cap
    start_concurrency: int | None
    retry: RetryPolicy
    timeout_s: float
    rpm: AsyncLimiter | None
    tpm: AsyncLimiter | None
    tpm_capacity: float = 0.0
    name: str = ""
    on_truncated: str = "keep"
    on_empty: str = "keep"
    supports_n: bool = False  # draws of one request go as one call with `n` (`generate_batch`)
    # Why no call is sent to it any more, as the end of "endpoint <name> ...": it refused the
    # key (its first 401/403), or it is unreachable (`UNREACHABLE_AFTER`).
    stop: str | None = None
    answered: bool = False  # an attempt got an answer in this run
    unsent_in_a_row: int = 0  # attempts since the last other ending that reached no server
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set with `stop`

    def stop_if_stopped(self, record: CallRecord, *, counted: bool, unreached: int) -> None:
        """Fails a call at once when the endpoint is stopped (`counted`: the attempt under way
        was counted, but is not sent; `unreached`: its attempts that reached no server)."""
        if self.stop is None:
            return
        if counted:
            record.attempts -= 1
        record.unsent = record.attempts == unreached
        raise ModelError(
            ErrorKind.PERMANENT, f"endpoint {self.name} {self.stop}: no more calls are sent to it"
        )

    def failed(self, exc: ModelError) -> str | None:
        """Learns from a failed attempt; returns why the endpoint stops, when it now does."""
        if self.stop is not None:
            return None
        if exc.status in KEY_REFUSED:
            self.stop = f"refused the key ({exc.status}: {exc})"  # scrubbed (`moa.redact`)
        else:
            self.unsent_in_a_row = self.unsent_in_a_row + 1 if isinstance(exc, NotSent) else 0
            if self.answered or self.unsent_in_a_row < UNREACHABLE_AFTER:
                return None
            self.stop = (
                f"is unreachable: it never answered and its last {self.unsent_in_a_row} "
                f"attempts reached no server ({exc})"
            )
        self.stopping.set()
        return self.stop

    async def back_off(self, seconds: float) -> None:
        """Waits before a retry: `seconds`, or until the endpoint stops (the retry is then
        refused at once, as every queued call is)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()

    async def throttle(self, estimated_tokens: int) -> None:
        if self.rpm is not None:
            await self.rpm.acquire()
        if self.tpm is not None:
            await self.tpm.acquire(min(float(estimated_tokens), self.tpm_capacity))


@dataclass
class ModelClient:
    """Implements `moa.types.Generator` over the endpoints named in the config."""

    endpoint_specs: Mapping[str, Mapping[str, Any]]
    catalogue: Catalogue
    cache: CallCache
    ledger: Ledger = field(default_factory=Ledger)
    budget: Budget = field(default_factory=Budget)
    flag_only_roles: frozenset[str] = FLAG_ONLY_ROLES  # see the module's docstring
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict, init=False)
    _limiters: dict[str, AdaptiveSlots] = field(default_factory=dict, init=False)
    _inflight: dict[str, asyncio.Future[Completion]] = field(default_factory=dict, init=False)
    _claims: Claims = field(init=False)
    _stopped: dict[str, str] = field(default_factory=dict, init=False)  # endpoint: why (`stop`)
    _ignoring_n: dict[str, str] = field(default_factory=dict, init=False)  # `ignoring_n`
    _gone: dict[str, str] = field(default_factory=dict, init=False)  # model address: `gone`

    def __post_init__(self) -> None:
        self._claims = Claims(self.cache)
        self.budget.unbilled = unbilled_endpoints(self.endpoint_specs)  # which calls are paid

    def endpoint(self, name: str) -> _Endpoint:
        """Builds the endpoint's provider on first use; a missing key is a ConfigError."""
        ep = self._endpoints.get(name)
        if ep is not None:
            return ep
        spec = self.endpoint_specs.get(name)
        if spec is None:
            raise ConfigError(
                f"unknown endpoint {name!r} (known: {', '.join(sorted(self.endpoint_specs))})"
            )
        limits = EndpointLimits.from_spec(name, spec)
        options = {k: v for k, v in spec.items() if k not in _CLIENT_KEYS}
        api = redacting(create_provider(str(spec.get("provider", "openai")), name, options), spec)
        rpm, tpm = limits.rpm, limits.tpm
        ep = _Endpoint(
            api=api,
            slots=Slots(limits.max_concurrency),
            start_concurrency=limits.start_concurrency,
            retry=RetryPolicy(
                max_attempts=limits.max_attempts,
                backoff_initial_s=limits.backoff_initial_s,
                backoff_max_s=limits.backoff_max_s,
                retry_after_max_s=limits.retry_after_max_s,
            ),
            timeout_s=limits.timeout_s,
            rpm=AsyncLimiter(float(rpm), 60.0) if rpm else None,
            tpm=AsyncLimiter(float(tpm), 60.0) if tpm else None,
            tpm_capacity=float(tpm or 0),
            name=name,
            on_truncated=limits.on_truncated,
            on_empty=limits.on_empty,
            supports_n=_supports_n(name, spec, api),
        )
        self._endpoints[name] = ep
        return ep

    def preflight(self, addresses: Sequence[str]) -> None:
        """Builds every provider the run will use, so bad endpoints or keys fail before any call."""
        for address in addresses:
            self.endpoint(split_address(address)[0])
            self.budget.expect(self.catalogue.by_address(address))

    def stopped(self) -> dict[str, str]:
        """The endpoints the client sends nothing more, each with why, as the end of a sentence
        that starts "endpoint <name> " (still known once the client is closed)."""
        return dict(self._stopped)

    def gone(self) -> dict[str, str]:
        """The models the client sends nothing more, each with what its endpoint answered."""
        return dict(self._gone)

    def _refuse_if_gone(self, model: str, record: CallRecord, *, counted: bool) -> None:
        """Fails a call at once, without a request, when its model is known not to be served."""
        if model not in self._gone:
            return
        if counted:
            record.attempts -= 1
        record.unsent = record.attempts == 0
        raise ModelError(
            ErrorKind.PERMANENT, f"model {model} is not served: no more calls are sent to it"
        )

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
        drawn: _Drawn | None = None,
    ) -> CallOutcome:
        endpoint_name, model_id = split_address(model)
        ep = self.endpoint(endpoint_name)
        key = call_key(ep.api.identity, model_id, messages, config, sample)
        record = CallRecord(key=key, model=model, sample=sample, tags=dict(tags or {}))
        entry = self.catalogue.by_address(model)
        started = time.perf_counter()
        completion: Completion | None = None
        try:
            completion = await self._answer(
                key, ep, entry, model, model_id, messages, config, sample, record, drawn
            )
        except ModelError as exc:
            record_failure(record, exc)
        finally:
            if drawn is not None:
                drawn.leave(sample)  # answered, failed or cancelled: the batch need not wait
        record.latency_s = time.perf_counter() - started
        record.billed = (
            not record.cached and not record.unsent and endpoint_name not in self.budget.unbilled
        )
        if completion is not None:
            _mark(record, completion)
            refusal = self._refusal(ep, record, completion, config)
            if refusal is not None:
                record_failure(record, refusal)
                completion = None
        free = endpoint_name in self.budget.unbilled  # priced free, whatever the catalogue says
        if not free and (completion is not None or record.input_tokens or record.output_tokens):
            record.cost_usd = entry.cost(record.input_tokens, record.output_tokens)
        self.ledger.add(record)
        return CallOutcome(completion=completion, record=record)

    async def generate_batch(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
        tags: Mapping[str, str] | None = None,
    ) -> list[CallOutcome]:
        """Draws of one request, one per sample: where the endpoint `supports_n`, the samples
        not in the cache go as one request with `n` choices (the prompt sent and billed once),
        each answer cached under its own sample's key, so a later single draw is a hit and a
        partly cached batch asks only for the rest. Elsewhere (or under `on_empty=retry`,
        which retries one answer at a time, or once the endpoint has shown it ignores `n`:
        `ignoring_n`), one call per sample."""
        endpoint_name, model_id = split_address(model)
        ep = self.endpoint(endpoint_name)
        if not batches_draws(ep.supports_n, ep.on_empty) or len(samples) < 2:
            return await settle_all(
                self.generate(model, messages, config, sample=s, tags=tags) for s in samples
            )
        entry = self.catalogue.by_address(model)
        carrier = CallRecord(key="", model=model, sample=samples[0], tags=dict(tags or {}))

        async def send(takers: list[int]) -> list[Completion]:
            return await self._call(ep, entry, model, model_id, messages, config, takers, carrier)

        drawn = _Drawn(set(samples), send, carrier)
        try:
            return await settle_all(
                self.generate(model, messages, config, sample=s, tags=tags, drawn=drawn)
                for s in samples
            )
        finally:
            drawn.close()

    def _applies(self, record: CallRecord) -> bool:
        """Whether the answer policies apply to this call (not to `flag_only_roles`)."""
        return record.tags.get("role") not in self.flag_only_roles

    def _refusal(
        self, ep: _Endpoint, record: CallRecord, completion: Completion, config: GenerateConfig
    ) -> ModelError | None:
        """The error an answer ends its call with under the endpoint's policies, if any."""
        if not self._applies(record):
            return None
        if completion.truncated and ep.on_truncated == "fail":
            at = f"max_tokens={config.max_tokens}" if config.max_tokens else "the server's limit"
            return ModelError(
                ErrorKind.PERMANENT,
                f'the answer was cut off at {at} (finish_reason "length") and on_truncated=fail',
            )
        if completion.empty and ep.on_empty == "fail":
            return ModelError(ErrorKind.PERMANENT, "the answer was empty and on_empty=fail")
        if completion.empty and ep.on_empty == "retry":
            how = (
                f"after {record.attempts} attempt(s)"
                if record.attempts
                else "(an answer from the cache: it is not asked again)"
            )
            return ModelError(ErrorKind.PERMANENT, f"the answer was empty {how} and on_empty=retry")
        return None

    async def _answer(
        self,
        key: str,
        ep: _Endpoint,
        entry: ModelEntry,
        model: str,
        model_id: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
        record: CallRecord,
        drawn: _Drawn | None = None,
    ) -> Completion:
        """From the cache, from an identical call under way (here or in another process), or
        else from a new call (its own, or its share of a batch: `drawn`): the only path that
        pays."""
        while True:
            completion = self.cache.get(key)
            if completion is not None:
                record.cached = True
                return completion
            shared = self._inflight.get(key)
            if shared is None:
                break
            record.cached = True  # an identical call is under way here: share its answer
            try:
                return await asyncio.shield(shared)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not shared.cancelled() or (task is not None and task.cancelling()):
                    raise
                record.cached = False  # its owner was cancelled or refused: start over
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            completion = await self._claims.claim(key)  # waits out another process's call
            if completion is not None:
                record.cached = True
            else:
                if drawn is not None:
                    completion = await drawn.share(sample, record)
                if completion is None:  # no batch, or one whose server ignored `n`
                    (completion,) = await self._call(
                        ep, entry, model, model_id, messages, config, [sample], record
                    )
                completion = completion.mended()  # stored and passed on only with a UTF-8 form
                self._claims.store(key, model, completion)
                if self.cache.found_corrupt(key):  # its stored answer was bad: now replaced
                    record.tags["cache"] = "corrupt entry, called again"
            future.set_result(completion)
            return completion
        except ModelError as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._inflight[key]
            self._claims.release(key)  # still held: the call failed or was cancelled
            if not future.done():  # cancelled or refused: let any sharers start over
                future.cancel()
            elif future.exception() is not None:
                future.exception()  # mark retrieved so asyncio does not warn

    async def _call(
        self,
        ep: _Endpoint,
        entry: ModelEntry,
        model: str,
        model_id: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
        record: CallRecord,
    ) -> list[Completion]:
        """Attempts until an answer (one per sample: more than one is one batched request),
        an error not worth retrying, or `max_attempts` counted failures (see the module's
        docstring). The budget holds the call's cost from when it has its slots (`NoRoom`: it
        waits for room without them; `BudgetExceeded`: nothing was sent) until it ends."""
        n = len(samples)
        # What the endpoint counts against its tokens-per-minute: the prompt and every answer
        # (estimated only where a limit counts it).
        estimate = 0 if ep.tpm is None else estimate_prompt(messages) + (config.max_tokens or 0) * n
        limiter = self._limiter(model, ep, entry.max_concurrency)
        hold: Hold | None = None
        completions: list[Completion] | None = None
        failures = 0  # the failed attempts that count against max_attempts
        retries = 0  # shown live by the ledger's totals until the call's record counts them
        unreached = 0  # attempts that reached no server (`NotSent`)
        free = FREE_REFUSALS  # refusals left that do not
        retry_empty = ep.on_empty == "retry" and self._applies(record) and n == 1
        try:
            # A plain loop, not tenacity: its per-attempt machinery cost more CPU than the request.
            while True:
                ep.stop_if_stopped(record, counted=False, unreached=unreached)
                self._refuse_if_gone(model, record, counted=False)
                record.attempts += 1
                # The model's slot first: a call queued for a busy model holds no endpoint slot.
                ticket = await limiter.take()
                try:
                    async with ep.slots:
                        # stopped while this one waited
                        ep.stop_if_stopped(record, counted=True, unreached=unreached)
                        self._refuse_if_gone(model, record, counted=True)
                        self.cache.refuse_if_broken()  # the cache failed while it waited
                        if hold is None:
                            hold = self.budget.hold(entry, messages, config, n)
                        completions = await self._attempt(
                            ep, model_id, messages, config, samples, estimate
                        )
                except ModelError as exc:
                    if limiter.give_back(ticket, refused=_rate_limited(exc)) and free > 0:
                        free -= 1
                    else:
                        failures += 1
                    if (stop := ep.failed(exc)) is not None:
                        self._stopped[ep.name] = stop
                        log.warning("endpoint %s %s: no more calls are sent to it", ep.name, stop)
                    unreached += isinstance(exc, NotSent)
                    if model_gone(exc) and model not in self._gone:
                        self._gone[model] = str(exc)
                        log.warning("model %s is not served (%s): no more calls to it", model, exc)
                    if not exc.transient or failures >= ep.retry.max_attempts:
                        raise
                    # unreachable now: no more waiting
                    ep.stop_if_stopped(record, counted=False, unreached=unreached)
                    if exc.retry_after is not None and exc.retry_after > ep.retry.retry_after_max_s:
                        raise _too_long_to_wait(exc, ep.retry.retry_after_max_s) from None
                    retries += 1
                    self.ledger.retrying(1)
                    await ep.back_off(ep.retry.wait(max(failures, 1), exc))
                except NoRoom as full:  # wait for room without the slots, keeping its place
                    limiter.give_back(ticket)
                    record.attempts -= 1
                    hold = await full.admitted()
                except BaseException:  # cancelled, or refused by the budget
                    limiter.give_back(ticket)
                    raise
                else:
                    limiter.give_back(ticket, ok=True)
                    ep.answered, ep.unsent_in_a_row = True, 0
                    if not (retry_empty and completions[0].empty):
                        return completions
                    failures += 1
                    if failures >= ep.retry.max_attempts:
                        return completions  # cached, then failed by `_refusal`
                    _mark(record, completions[0])  # paid for, not kept
                    completions = None
                    retries += 1
                    self.ledger.retrying(1)
                    await ep.back_off(ep.retry.wait(failures, _EMPTY))
        finally:
            self.ledger.retrying(-retries)  # the call's record counts them from here
            if hold is not None:
                paid = _paid(record, _total(completions))
                self.budget.settle(hold, entry, paid, sent=record.attempts > 0)

    async def _attempt(
        self,
        ep: _Endpoint,
        model_id: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
        estimate: int,
    ) -> list[Completion]:
        await ep.throttle(estimate)
        try:
            async with asyncio.timeout(ep.timeout_s):
                if len(samples) == 1:
                    return [await ep.api.generate(model_id, messages, config, samples[0])]
                batching = cast(BatchingAPI, ep.api)
                drawn = await batching.generate_n(model_id, messages, config, samples)
                if not drawn or len(drawn) > len(samples):
                    raise ModelError(
                        ErrorKind.TRANSIENT, f"asked for {len(samples)} choices, got {len(drawn)}"
                    )
                if len(drawn) < len(samples):
                    self._ignores_n(ep, f"asked for {len(samples)} choices, got {len(drawn)}")
                return drawn
        except TimeoutError:
            raise ModelError(ErrorKind.TRANSIENT, f"timed out after {ep.timeout_s:g}s") from None
        except ModelError:
            raise
        except Exception as exc:  # a provider bug must still end as a recorded error
            raise as_model_error(exc) from exc

    def _ignores_n(self, ep: _Endpoint, evidence: str) -> None:
        """An endpoint that answered a batch with fewer choices than `n` asked ignores `n` (a
        server that does not implement it answers one): that will not change, so its draws go
        one per request from now on. The choices it sent were paid for and are kept."""
        ep.supports_n = False
        if ep.name not in self._ignoring_n:
            self._ignoring_n[ep.name] = evidence
            log.warning(
                "endpoint %s ignores n (%s): its draws go one per request from now on; "
                "set supports_n: false for it",
                ep.name, evidence,
            )  # fmt: skip

    def ignoring_n(self) -> dict[str, str]:
        """The endpoints set to `supports_n` that ignored `n`, each with what showed it."""
        return dict(self._ignoring_n)

    def _limiter(self, model: str, ep: _Endpoint, model_cap: int | None) -> AdaptiveSlots:
        limiter = self._limiters.get(model)
        if limiter is None:
            cap = ep.slots.capacity if model_cap is None else min(model_cap, ep.slots.capacity)
            start = ep.start_concurrency or opening(cap)
            limiter = self._limiters[model] = AdaptiveSlots(cap, start)
        return limiter

    def limiter(self, model: str) -> AdaptiveSlots | None:
        """A model's learned concurrency (`limit`, `lowest`, `decreases`), once it was called."""
        return self._limiters.get(model)

    async def aclose(self) -> None:
        """Closes the providers, the cache and the ledger file; then raises the cache's
        `CacheWriteError`, if a commit of it ever failed."""
        for ep in self._endpoints.values():
            await ep.api.aclose()
        self._endpoints.clear()
        await self._claims.aclose()
        try:
            self.cache.close()
        finally:
            self.ledger.close()
