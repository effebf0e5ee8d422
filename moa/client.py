"""`ModelClient`: the single door every model call goes through.

It owns what providers should not each reimplement: the cache, in-flight de-duplication,
per-endpoint and per-model concurrency, request and token rate limits, bounded retries with
jittered exponential backoff that honours `Retry-After`, and the ledger record of every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiolimiter import AsyncLimiter

from moa.budget import Budget
from moa.cache import CallCache, call_key
from moa.catalogue import Catalogue, ModelEntry, split_address
from moa.claims import Claims
from moa.errors import ConfigError
from moa.failures import as_model_error, record_failure
from moa.ledger import Ledger
from moa.limits import LIMIT_KEYS, EndpointLimits
from moa.providers.base import ModelAPI, create_provider
from moa.redact import redacting
from moa.tokens import estimate_prompt
from moa.types import (
    CallOutcome,
    CallRecord,
    ChatMessage,
    Completion,
    ErrorKind,
    GenerateConfig,
    ModelError,
)

_CLIENT_KEYS = ("provider", *LIMIT_KEYS)  # read here; the rest of a spec is provider options


@dataclass
class RetryPolicy:
    """Jittered exponential backoff, unless the server said when to come back (`Retry-After`)."""

    max_attempts: int = EndpointLimits.max_attempts
    backoff_initial_s: float = EndpointLimits.backoff_initial_s
    backoff_max_s: float = EndpointLimits.backoff_max_s
    retry_after_max_s: float = 600.0

    def wait(self, attempt: int, exc: ModelError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.retry_after_max_s)
        backoff = self.backoff_initial_s * 2.0 ** (attempt - 1)
        return min(backoff + random.uniform(0, self.backoff_initial_s), self.backoff_max_s)


@dataclass
class _Endpoint:
    api: ModelAPI
    semaphore: asyncio.Semaphore
    retry: RetryPolicy
    timeout_s: float
    rpm: AsyncLimiter | None
    tpm: AsyncLimiter | None
    tpm_capacity: float = 0.0

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
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict, init=False)
    _model_sems: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False)
    _inflight: dict[str, asyncio.Future[Completion]] = field(default_factory=dict, init=False)
    _claims: Claims = field(init=False)

    def __post_init__(self) -> None:
        self._claims = Claims(self.cache)

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
            semaphore=asyncio.Semaphore(limits.max_concurrency),
            retry=RetryPolicy(
                max_attempts=limits.max_attempts,
                backoff_initial_s=limits.backoff_initial_s,
                backoff_max_s=limits.backoff_max_s,
            ),
            timeout_s=limits.timeout_s,
            rpm=AsyncLimiter(float(rpm), 60.0) if rpm else None,
            tpm=AsyncLimiter(float(tpm), 60.0) if tpm else None,
            tpm_capacity=float(tpm or 0),
        )
        self._endpoints[name] = ep
        return ep

    def preflight(self, addresses: Sequence[str]) -> None:
        """Builds every provider the run will use, so bad endpoints or keys fail before any call."""
        for address in addresses:
            self.endpoint(split_address(address)[0])
            self.budget.require_price(self.catalogue.by_address(address))

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
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
                key, ep, entry, model, model_id, messages, config, sample, record
            )
        except ModelError as exc:
            record_failure(record, exc)
        record.latency_s = time.perf_counter() - started
        if completion is not None:
            record.input_tokens = completion.input_tokens
            record.output_tokens = completion.output_tokens
            record.cost_usd = entry.cost(completion.input_tokens, completion.output_tokens)
        self.ledger.add(record)
        return CallOutcome(completion=completion, record=record)

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
    ) -> Completion:
        """From the cache, from an identical call under way (here or in another process), or
        else from a new call: the only path that pays."""
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
                hold = self.budget.hold(entry, messages, config)  # BudgetExceeded: nothing sent
                try:
                    completion = await self._call(
                        ep, entry.max_concurrency, model, model_id, messages, config, sample, record
                    )
                finally:
                    self.budget.settle(hold, entry, completion)
                self._claims.store(key, model, completion)
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
        model_cap: int | None,
        model: str,
        model_id: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
        record: CallRecord,
    ) -> Completion:
        # What the endpoint counts against its tokens-per-minute: the prompt and the whole answer.
        estimate = estimate_prompt(messages) + (config.max_tokens or 0)
        model_sem = self._model_semaphore(model, model_cap)
        # A plain loop, not tenacity: its per-attempt machinery cost more CPU than the request.
        while True:
            record.attempts += 1
            try:
                # The model's slot first: a call queued for a busy model holds no endpoint slot.
                async with model_sem or contextlib.nullcontext(), ep.semaphore:
                    return await self._attempt(ep, model_id, messages, config, sample, estimate)
            except ModelError as exc:
                if not exc.transient or record.attempts >= ep.retry.max_attempts:
                    raise
                await asyncio.sleep(ep.retry.wait(record.attempts, exc))

    async def _attempt(
        self,
        ep: _Endpoint,
        model_id: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
        estimate: int,
    ) -> Completion:
        await ep.throttle(estimate)
        try:
            async with asyncio.timeout(ep.timeout_s):
                return await ep.api.generate(model_id, messages, config, sample)
        except TimeoutError:
            raise ModelError(ErrorKind.TRANSIENT, f"timed out after {ep.timeout_s:g}s") from None
        except ModelError:
            raise
        except Exception as exc:  # a provider bug must still end as a recorded error
            raise as_model_error(exc) from exc

    def _model_semaphore(self, model: str, cap: int | None) -> asyncio.Semaphore | None:
        if cap is None:
            return None
        sem = self._model_sems.get(model)
        if sem is None:
            sem = self._model_sems[model] = asyncio.Semaphore(cap)
        return sem

    async def aclose(self) -> None:
        """Closes the providers, the cache and the ledger file."""
        for ep in self._endpoints.values():
            await ep.api.aclose()
        self._endpoints.clear()
        await self._claims.aclose()
        self.cache.close()
        self.ledger.close()
