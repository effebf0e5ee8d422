"""Rate limits are learned, not fatal; a server's wait too long to honour, and a connection
that failed, end a call with an error that says what happened. All through the real `openai`
SDK against the loopback fake server."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import moa.client
from moa.errors import ConfigError
from moa.limits import EndpointLimits
from moa.providers.openai_compat import classify, connection_error
from moa.types import ChatMessage, ErrorKind, GenerateConfig
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=8)


def questions(n: int) -> list[list[ChatMessage]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


async def test_a_model_limit_lower_than_configured_is_learned(tmp_path: Path) -> None:
    """64 instances' worth of calls (4 each) against a model that takes 4 at once and refuses
    more with a 429, configured for 16: every call ends well, and after the first refusals the
    server sees about its limit at once."""
    server = FakeServer(
        profiles={"m": ModelProfile(ttft_s=0.02, min_tokens=1, max_tokens=4, reject_above=4)}
    )
    with serve_in_thread(server) as url:
        # max_attempts=1: the refusals the limiter learns from are retried all the same
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=16, max_attempts=1)
        highest_in_use: list[int] = []

        async def ask(messages: list[ChatMessage]) -> Any:
            outcome = await client.generate("fake/m", messages, CONFIG)
            limiter = client.limiter("fake/m")
            assert limiter is not None and limiter.limit <= limiter.cap == 16
            highest_in_use.append(limiter.in_use)
            return outcome

        outcomes = await asyncio.gather(*(ask(m) for m in questions(256)))
        await client.aclose()
    assert all(o.ok for o in outcomes), [o.record.error for o in outcomes if not o.ok][:3]
    limiter = client.limiter("fake/m")
    assert limiter is not None and limiter.lowest <= 4 and limiter.decreases >= 2
    assert max(highest_in_use) <= 16
    refused = [r for r in server.log if r.fault == "over_limit"]
    served = [r for r in server.log if r.fault is None]
    assert len(served) == 256 and server.peak_active["m"] == 4
    assert max(o.record.attempts for o in outcomes) > 1  # refused, retried past max_attempts=1
    # the opening burst was the configured 16; after it, the limit plus a probe, or about
    steady = server.log[64:]
    assert max(r.seen_in_flight for r in steady) <= 4 + 2
    assert len(refused) < len(served) / 2


async def test_refusals_with_retry_after_teach_the_limit_too(tmp_path: Path) -> None:
    server = FakeServer(
        profiles={
            "m": ModelProfile(
                ttft_s=0.02, min_tokens=1, max_tokens=4, reject_above=2, reject_retry_after_s=0.01
            )
        }
    )
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=8, max_attempts=1)
        outcomes = await asyncio.gather(
            *(client.generate("fake/m", m, CONFIG) for m in questions(32))
        )
        await client.aclose()
    assert all(o.ok for o in outcomes)
    limiter = client.limiter("fake/m")
    assert limiter is not None and limiter.lowest <= 2


async def test_a_refusal_at_a_limit_of_one_counts(tmp_path: Path) -> None:
    """A server that refuses every request: the limit falls 4 -> 2 -> 1 without counting those
    attempts, then each refusal counts, and max_attempts ends the call."""
    server = FakeServer(profiles={"m": ModelProfile(reject_above=0)})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=4, max_attempts=3)
        (messages,) = questions(1)
        outcome = await client.generate("fake/m", messages, CONFIG)
        await client.aclose()
    assert not outcome.ok and outcome.record.attempts == 2 + 3 and len(server.log) == 5
    assert outcome.record.error == (
        "transient 429: rate limited: more than 0 concurrent requests for this model "
        "(rate_limit_exceeded)"
    )


async def test_only_so_many_refusals_of_one_call_are_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request refused for itself, not for the load, must still end: past `FREE_REFUSALS`,
    even refusals the limiter learns from count."""
    monkeypatch.setattr(moa.client, "FREE_REFUSALS", 2)
    server = FakeServer(profiles={"m": ModelProfile(reject_above=0)})
    with serve_in_thread(server) as url:
        client = make_client(
            url, tmp_path / "c.sqlite", max_concurrency=16, max_attempts=3, start_concurrency=16
        )
        (messages,) = questions(1)
        outcome = await client.generate("fake/m", messages, CONFIG)
        await client.aclose()
    # 16 -> 8 -> 4 -> 2 -> 1 would be four free refusals; two are, then three count
    assert not outcome.ok and outcome.record.attempts == 2 + 3


async def test_a_retry_after_past_the_maximum_ends_the_call_at_once(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(script=["429_retry_after"], retry_after_s=5400))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", retry_after_max_s=300)
        (messages,) = questions(1)
        outcome = await client.generate("fake/m", messages, CONFIG)
        await client.aclose()
    assert not outcome.ok and outcome.record.attempts == 1 and len(server.log) == 1
    assert outcome.record.error == (
        "transient 429: the server asked to retry after 5400 s, more than retry_after_max_s=300 "
        "(it said: rate limited (rate_limit))"
    )


def test_retry_after_max_s_is_an_endpoint_limit() -> None:
    assert EndpointLimits().retry_after_max_s == 300.0
    assert EndpointLimits.from_spec("x", {"retry_after_max_s": 30}).retry_after_max_s == 30.0
    with pytest.raises(ConfigError) as caught:
        EndpointLimits.from_spec("x", {"retry_after_max_s": -1})
    assert str(caught.value) == "endpoints.x.retry_after_max_s=-1 must be a number >= 0 or null"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: a connection to it is refused


async def test_a_refused_connection_says_so_and_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    client = make_client(url, tmp_path / "c.sqlite", max_attempts=2)
    (messages,) = questions(1)
    outcome = await client.generate("fake/m", messages, CONFIG)
    await client.aclose()
    # still transient (the server may be starting), so retried, but not called a timeout
    assert outcome.record.error == f"transient: connection refused by {url}"
    assert outcome.record.attempts == 2


async def test_an_unresolvable_host_is_a_dns_failure_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "no-such-host.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)  # no lookup leaves the machine
    client = make_client("http://no-such-host.invalid:8000/v1", tmp_path / "c.sqlite")
    (messages,) = questions(1)
    outcome = await client.generate("fake/m", messages, CONFIG)
    await client.aclose()
    assert outcome.record.error == "permanent: cannot resolve host no-such-host.invalid (DNS)"
    assert outcome.record.attempts == 1  # a name that does not exist will not come to exist


def test_connection_errors_are_told_apart_by_what_they_wrap() -> None:
    """The SDK's `APIConnectionError` built as the SDK builds it: with the request that failed,
    raised from the transport's error."""
    request = httpx2.Request("POST", "http://h/v1/chat/completions")

    def wrapped(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise openai.APIConnectionError(request=request) from inner
        except openai.APIConnectionError as outer:
            return outer

    again = connection_error(wrapped(socket.gaierror(socket.EAI_AGAIN, "try again")), "http://h/v1")
    assert (again.kind, str(again)) == (ErrorKind.TRANSIENT, "cannot resolve host h (DNS)")
    refused = connection_error(wrapped(ConnectionRefusedError(111, "no")), "http://u:pw@h:1/v1")
    assert str(refused) == "connection refused by http://h:1/v1"  # no credentials shown
    reset = connection_error(wrapped(ConnectionResetError(104, "reset")), "http://h/v1")
    assert str(reset) == "connection failed: APIConnectionError (ConnectionResetError)"


def test_a_429_no_wait_will_cure_is_not_retried() -> None:
    body = b'{"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}'
    assert classify(429, body, {}).kind is ErrorKind.PERMANENT
    too_large = b'{"error": {"message": "Request too large for gpt-4 on tokens per min (TPM)"}}'
    assert classify(429, too_large, {}).kind is ErrorKind.PERMANENT
    assert classify(429, b'{"error": {"message": "slow down"}}', {}).kind is ErrorKind.TRANSIENT
