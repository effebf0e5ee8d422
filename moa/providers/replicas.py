"""One endpoint served by several replicas: the same model behind several base URLs (vLLM
servers of one model on several nodes). `ModelClient` keeps its cache, retries, limits and
ledger per endpoint; only the choice of server is made here, per call.

Routing. A call goes to the healthy replica with the most room: its learned concurrency minus
the calls it has in flight or waiting (of equals, the one with fewer failures in a row, so that
a retry goes elsewhere). Each replica's concurrency is its own `AdaptiveSlots`,
capped at `replica_max_concurrency` and learned from its own refusals (429, or 503 with
Retry-After), so one busy replica does not lower the others'. A refusal it learned from, with no
Retry-After, is retried here at once, wherever there is room; any other refusal goes to the
client as from a single server (it honours and bounds the Retry-After).

Health. A refused connection means nothing was sent: the replica is drained at once and the call
goes to another one, at no attempt's cost. `max_failures` other transient failures in a row (5xx,
a dropped connection, a bad body, an attempt the client timed out while the replica answered
nothing) drain it too; those calls are the client's to retry, as the server may have answered
them. A drained replica is re-admitted after `cooldown_s` and drained again if it still fails.
With every replica drained, a call fails as `NotSent` with a Retry-After of the wait until the
first re-admission, so the client's backoff waits that long (and an endpoint none of whose
replicas ever answered is soon stopped as unreachable: `moa.client`).

A hung replica (it takes requests and never answers) is found long before the client's
`timeout_s` (600 s by default, sized for the longest answer a model may give): a replica with
calls in flight that has sent nothing back for `SILENCE_FACTOR` times the slowest of the
endpoint's last `LATENCIES_KEPT` answers (at least `SILENCE_FLOOR_S`), while the other replicas
answered at least `PEER_ANSWERS` calls, is drained, and every call it holds goes to another
replica at once, at no attempt's cost. Answers are not streamed, so no first byte comes sooner
than the whole answer: a replica is judged by its peers' answers, and a replica that is merely
slow still answers some calls in that time. Until some replica has answered, only `timeout_s`
bounds a call.

Identity. The cache key names the endpoint, never the replica that answered (see `_build` in
`moa.providers.openai_compat` for which URL it is).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from moa.providers.base import BatchingAPI, ModelAPI
from moa.scheduling import AdaptiveSlots
from moa.served import ServedModel
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError, NotSent

T = TypeVar("T")

log = logging.getLogger(__name__)

# Learned refusals one call may have retried here before the next one goes to the client.
_FREE_REFUSALS = 20
# A replica silent this many times the slowest recent answer is hung (see the module docstring).
SILENCE_FACTOR = 5.0
SILENCE_FLOOR_S = 10.0
PEER_ANSWERS = 3
LATENCIES_KEPT = 100


def _rate_limited(exc: ModelError) -> bool:
    return exc.transient and (
        exc.status == 429 or (exc.status == 503 and exc.retry_after is not None)
    )


def _retrieved(task: asyncio.Task[T]) -> None:
    """Marks an attempt given up on as looked at, so that asyncio does not warn of its error."""
    if not task.cancelled():
        task.exception()


class _Abandoned(Exception):
    """An attempt given up on because its replica was found hung: the call goes elsewhere."""


@dataclass
class Replica:
    url: str
    api: ModelAPI
    slots: AdaptiveSlots
    failures: int = 0  # transient failures in a row
    drained_until: float | None = None  # when it is re-admitted, while it is drained
    why: str = ""  # what drained it last
    heard: float = float("-inf")  # when it last sent anything back (an answer or an error)
    pending: dict[int, float] = field(default_factory=dict)  # its attempts under way: started
    hung: bool = False  # drained for its silence: its attempts under way are abandoned

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
        check_s: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self._identity = identity
        self.replicas = [Replica(url, api, AdaptiveSlots(max_concurrency)) for url, api in replicas]
        self.max_failures = max(1, max_failures)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._check_s = check_s  # how often an attempt under way looks at its replica's silence
        self._latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)  # of answers, any replica
        self._answered: deque[float] = deque(maxlen=PEER_ANSWERS)  # when the last ones came

    @property
    def identity(self) -> str:
        return self._identity

    def _healthy(self, replica: Replica, now: float) -> bool:
        if replica.drained_until is None:
            return True
        if replica.drained_until > now:
            return False
        replica.drained_until, replica.failures, replica.hung = None, 0, False
        replica.heard = now  # its silence counts from its re-admission
        log.warning("endpoint %s: replica %s re-admitted", self.endpoint, replica.url)
        return True

    def _pick(self) -> Replica:
        now = self._clock()
        healthy = [r for r in self.replicas if self._healthy(r, now)]
        if healthy:
            # of equals, the one with fewer failures in a row, then the first: stable order
            return max(healthy, key=lambda r: (r.room, -r.failures))
        first = min(self.replicas, key=lambda r: r.drained_until or now)
        wait = max((first.drained_until or now) - now, 0.0)
        raise NotSent(
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

    def _silence(self, replica: Replica, now: float) -> ModelError | None:
        """Why `replica` is hung, if it is: silent far longer than its peers take to answer."""
        if not replica.pending or not self._latencies:
            return None
        since = max(replica.heard, min(replica.pending.values()))
        slowest = max(self._latencies)
        bound = max(SILENCE_FLOOR_S, SILENCE_FACTOR * slowest)
        if now - since <= bound:
            return None
        # answers since it went quiet are its peers': one of its own would have been heard
        if len(self._answered) < PEER_ANSWERS or self._answered[0] <= since:
            return None
        return ModelError(
            ErrorKind.TRANSIENT,
            f"no answer for {now - since:.0f} s while the other replicas answered (the slowest "
            f"of the last {len(self._latencies)} answers took {slowest:.1f} s)",
        )

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
            started = replica.pending[ticket] = self._clock()
            try:
                answer = await self._watch(replica, send(replica.api))
            except _Abandoned:
                replica.slots.give_back(ticket)
                continue
            except NotSent as exc:
                replica.slots.give_back(ticket)
                self._drain(replica, exc)
                continue
            except ModelError as exc:
                replica.heard = self._clock()
                limited = _rate_limited(exc)
                learned = replica.slots.give_back(ticket, refused=limited)
                if learned and exc.retry_after is None and free > 0:
                    free -= 1
                    continue
                if exc.transient and not limited:
                    self._failed(replica, exc)
                raise
            except BaseException:  # cancelled: the client timed the attempt out, or gave up
                replica.slots.give_back(ticket)
                if replica.heard < started and not replica.hung:  # and it sent nothing since
                    waited = f"no answer in {self._clock() - started:.0f} s"
                    self._failed(replica, ModelError(ErrorKind.TRANSIENT, waited))
                raise
            finally:
                del replica.pending[ticket]
            now = replica.heard = self._clock()
            replica.slots.give_back(ticket, ok=True)
            replica.failures = 0
            self._latencies.append(now - started)
            self._answered.append(now)
            return answer

    def _failed(self, replica: Replica, exc: ModelError) -> None:
        replica.failures += 1
        if replica.failures >= self.max_failures:
            self._drain(replica, exc)

    async def _watch(self, replica: Replica, attempt: Awaitable[T]) -> T:
        """`attempt`'s outcome, unless its replica is found hung first (`_Abandoned`)."""
        task = asyncio.ensure_future(attempt)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._check_s)
                if done:
                    return task.result()
                if not replica.hung and (silence := self._silence(replica, self._clock())):
                    self._drain(replica, silence)
                    replica.hung = True
                if replica.hung:
                    raise _Abandoned
        finally:
            if not task.done():
                task.cancel()
            task.add_done_callback(_retrieved)

    async def list_models(self) -> list[ServedModel]:
        """The model list of the first healthy replica (they serve the same models)."""
        api = self._pick().api
        lister = getattr(api, "list_models", None)
        if lister is None:
            raise AttributeError("list_models")
        models: list[ServedModel] = await lister()
        return models

    async def aclose(self) -> None:
        for replica in self.replicas:
            await replica.api.aclose()
