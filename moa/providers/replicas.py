"""One endpoint served by several replicas: the same model behind several base URLs (vLLM
servers of one model on several nodes). `ModelClient` keeps its cache, retries, limits and
ledger per endpoint; only the choice of server is made here, per call.

Routing. A call goes to the healthy replica with the most room: its learned concurrency minus
the calls it has in flight or waiting. Each replica's concurrency is its own `AdaptiveSlots`,
capped at `replica_max_concurrency` and learned from its own refusals (429, or 503 with
Retry-After), so one busy replica does not lower the others'. A refusal it learned from, with no
Retry-After, is retried here at once, wherever there is room; any other refusal goes to the
client as from a single server (it honours and bounds the Retry-After).

Health. A refused connection means nothing was sent: the replica is drained at once and the call
goes to another one, at no attempt's cost. `max_failures` other transient failures in a row (5xx,
a dropped connection, a bad body) drain it too; those calls are the client's to retry, as the
server may have answered them. A drained replica is re-admitted after `cooldown_s` and drained
again if it still fails. (An attempt the client times out is cancelled here and counts for
nothing: a replica is judged by what it answers.) With every replica drained, a call fails as
transient with a Retry-After of the wait until the first re-admission, so the client's backoff
waits that long.

Identity. The cache key names the endpoint, never the replica that answered (see `_build` in
`moa.providers.openai_compat` for which URL it is).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from moa.providers.base import BatchingAPI, ModelAPI
from moa.scheduling import AdaptiveSlots
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError, NotSent

T = TypeVar("T")

log = logging.getLogger(__name__)

# Learned refusals one call may have retried here before the next one goes to the client.
_FREE_REFUSALS = 20


def _rate_limited(exc: ModelError) -> bool:
    return exc.transient and (
        exc.status == 429 or (exc.status == 503 and exc.retry_after is not None)
    )


@dataclass
class Replica:
    url: str
    api: ModelAPI
    slots: AdaptiveSlots
    failures: int = 0  # transient failures in a row
    drained_until: float | None = None  # when it is re-admitted, while it is drained
    why: str = ""  # what drained it last

    @property
    def room(self) -> int:
        return self.slots.capacity - self.slots.in_use - self.slots.waiting


class Replicas:
    """A `ModelAPI` over several replicas of one server (see the module's docstring)."""

    def __init__(
        self,
        endpoint: str,
        identity: str,
        replicas: Sequence[tuple[str, ModelAPI]],
        *,
        max_concurrency: int,
        max_failures: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._identity = identity
        self.replicas = [Replica(url, api, AdaptiveSlots(max_concurrency)) for url, api in replicas]
        self.max_failures = max(1, max_failures)
        self.cooldown_s = cooldown_s
        self._clock = clock

    @property
    def identity(self) -> str:
        return self._identity

    def _healthy(self, replica: Replica, now: float) -> bool:
        if replica.drained_until is None:
            return True
        if replica.drained_until > now:
            return False
        replica.drained_until, replica.failures = None, 0
        log.warning("endpoint %s: replica %s re-admitted", self.endpoint, replica.url)
        return True

    def _pick(self) -> Replica:
        now = self._clock()
        healthy = [r for r in self.replicas if self._healthy(r, now)]
        if healthy:
            return max(healthy, key=lambda r: r.room)  # the first of equals: stable order
        first = min(self.replicas, key=lambda r: r.drained_until or now)
        wait = max((first.drained_until or now) - now, 0.0)
        raise ModelError(
            ErrorKind.TRANSIENT,
            f"every replica of endpoint {self.endpoint} is drained (last: {first.why}); "
            f"{first.url} is re-admitted in {wait:.1f} s",
            retry_after=wait,
        )

    def _drain(self, replica: Replica, exc: ModelError) -> None:
        if replica.drained_until is None:
            log.warning(
                "endpoint %s: replica %s drained for %g s (%s)",
                self.endpoint, replica.url, self.cooldown_s, exc,
            )  # fmt: skip
        replica.drained_until = self._clock() + self.cooldown_s
        replica.why = str(exc)

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        return await self._route(lambda api: api.generate(model, messages, config, sample))

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """Batched draws (`moa.providers.base.BatchingAPI`), on one replica as any call."""
        return await self._route(
            lambda api: cast(BatchingAPI, api).generate_n(model, messages, config, samples)
        )

    async def _route(self, send: Callable[[ModelAPI], Awaitable[T]]) -> T:
        """`send` to the healthy replica with the most room, as the module's docstring says."""
        free = _FREE_REFUSALS
        while True:
            replica = self._pick()
            ticket = await replica.slots.take()
            if not self._healthy(replica, self._clock()):  # drained while this one waited
                replica.slots.give_back(ticket)
                continue
            try:
                answer = await send(replica.api)
            except NotSent as exc:
                replica.slots.give_back(ticket)
                self._drain(replica, exc)
                continue
            except ModelError as exc:
                limited = _rate_limited(exc)
                learned = replica.slots.give_back(ticket, refused=limited)
                if learned and exc.retry_after is None and free > 0:
                    free -= 1
                    continue
                if exc.transient and not limited:
                    replica.failures += 1
                    if replica.failures >= self.max_failures:
                        self._drain(replica, exc)
                raise
            except BaseException:
                replica.slots.give_back(ticket)
                raise
            replica.slots.give_back(ticket, ok=True)
            replica.failures = 0
            return answer

    async def list_models(self) -> list[str]:
        """The model list of the first healthy replica (they serve the same models)."""
        api = self._pick().api
        lister = getattr(api, "list_models", None)
        if lister is None:
            raise AttributeError("list_models")
        models: list[str] = await lister()
        return models

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.api.aclose()
