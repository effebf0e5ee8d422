"""The OpenAI client path against a real loopback HTTP server: overlap, cache, retries, errors."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path

from openai._models import FinalRequestOptions
from openai._utils._json import openapi_dumps

from moa.agents import Agent
from moa.cache import CacheMode
from moa.client import ModelClient
from moa.mixture import Mixture, MixtureSpec
from moa.prompts import AGGREGATE_AND_SYNTHESIZE
from moa.providers.openai_compat import (
    _REQUEST_OPTIONS,
    OpenAICompatible,
    _json_body,
    tls_context,
)
from moa.types import ChatMessage, GenerateConfig
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=64)
USER: list[ChatMessage] = [{"role": "user", "content": "Name a colour."}]


def six_proposer_spec(layers: int = 2) -> MixtureSpec:
    layer = tuple(Agent(f"fake/p{i}") for i in range(6))
    return MixtureSpec.paper("t", tuple(layer for _ in range(layers - 1)), Agent("fake/agg"))


async def test_proposers_in_a_layer_overlap(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=0.3, min_tokens=5, max_tokens=5))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(six_proposer_spec(), client).run_turn(USER, CONFIG)
        await client.aclose()
    assert trace.output is not None
    proposals = [r for r in server.log if r.model.startswith("p")]
    assert len(proposals) == 6
    # every proposal was in flight at once: the last to start began before the first ended
    assert max(r.started for r in proposals) < min(r.ended for r in proposals)
    # so the layer spans about its slowest call, not the sum of six
    span = max(r.ended for r in proposals) - min(r.started for r in proposals)
    assert span < 2 * max(r.ended - r.started for r in proposals)


async def test_cached_call_sends_no_request(client: ModelClient, fake_server: FakeServer) -> None:
    first = await client.generate("fake/m", USER, CONFIG)
    second = await client.generate("fake/m", USER, CONFIG)
    assert len(fake_server.log) == 1
    assert not first.record.cached and second.record.cached
    assert second.text == first.text
    third = await client.generate("fake/m", USER, CONFIG, sample=1)
    assert len(fake_server.log) == 2 and not third.record.cached


async def test_identical_calls_in_flight_share_one_request(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=0.2))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        outcomes = await asyncio.gather(
            *(client.generate("fake/m", USER, CONFIG) for _ in range(5))
        )
        await client.aclose()
    assert len(server.log) == 1
    assert len({o.text for o in outcomes}) == 1
    assert sum(o.record.cached for o in outcomes) == 4


async def test_cache_modes(fake_url: str, fake_server: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    writer = make_client(fake_url, path, CacheMode.WRITE)
    await writer.generate("fake/m", USER, CONFIG)
    await writer.generate("fake/m", USER, CONFIG)  # write-only never reads
    await writer.aclose()
    assert len(fake_server.log) == 2
    reader = make_client(fake_url, path, CacheMode.READ)
    hit = await reader.generate("fake/m", USER, CONFIG)
    await reader.generate("fake/other", USER, CONFIG)
    assert len(reader.cache) == 1  # read-only stored nothing new
    await reader.aclose()
    assert hit.record.cached and len(fake_server.log) == 3
    off = make_client(fake_url, path, CacheMode.OFF)
    miss = await off.generate("fake/m", USER, CONFIG)
    await off.aclose()
    assert not miss.record.cached and len(fake_server.log) == 4


async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(script=["429_retry_after"], retry_after_s=0.6))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        outcome = await client.generate("fake/m", USER, CONFIG)
        await client.aclose()
    assert outcome.ok and outcome.record.attempts == 2
    first, second = server.log
    assert first.status == 429
    # the backoff alone (0.01 s here) would retry at once; Retry-After said 0.6 s
    assert second.started - first.ended >= 0.55
    assert client.ledger.totals.retries == 1


async def test_transient_errors_are_retried(tmp_path: Path) -> None:
    faults = ["429", "500", "503", "drop", "malformed", "empty"]
    server = FakeServer(faults=FaultPlan(script=list(faults)))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_attempts=7)
        outcome = await client.generate("fake/m", USER, CONFIG)
        await client.aclose()
    assert outcome.ok and outcome.text.startswith("answer ")
    assert outcome.record.attempts == len(faults) + 1


async def test_timeout_is_retried(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(script=["timeout"], hang_s=3))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", timeout_s=0.3)
        outcome = await client.generate("fake/m", USER, CONFIG)
        await client.aclose()
    assert outcome.ok and outcome.record.attempts == 2


async def test_a_400_is_not_retried(tmp_path: Path) -> None:
    for fault, kind in (("400", "permanent"), ("context", "context_overflow")):
        server = FakeServer(faults=FaultPlan(script=[fault]))
        with serve_in_thread(server) as url:
            client = make_client(url, tmp_path / f"{fault}.sqlite")
            outcome = await client.generate("fake/m", USER, CONFIG)
            await client.aclose()
        assert len(server.log) == 1
        assert not outcome.ok and outcome.record.attempts == 1
        assert outcome.record.error_kind == kind
        assert outcome.completion is None


async def test_exhausted_retries_end_as_an_error(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(rates={"503": 1.0}))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_attempts=3)
        outcome = await client.generate("fake/m", USER, CONFIG)
        assert len(client.cache) == 0  # failures are never cached
        await client.aclose()
    assert not outcome.ok and outcome.record.attempts == 3 and len(server.log) == 3
    assert outcome.record.error is not None and "503" in outcome.record.error


async def test_no_error_text_lands_in_an_answer(tmp_path: Path) -> None:
    server = FakeServer(
        profiles={"broken": ModelProfile(fail_status=400), "flaky": ModelProfile(fail_status=503)}
    )
    layer = (Agent("fake/good"), Agent("fake/broken"), Agent("fake/flaky"))
    spec = MixtureSpec.paper("t", (layer, layer), Agent("fake/agg"))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_attempts=2)
        trace = await Mixture(spec, client).run_turn(USER, CONFIG)
        await client.aclose()
    assert trace.output is not None and trace.output.startswith("answer ")
    assert len(trace.events) == 2  # one drop recorded per layer
    failed = [c for layer in trace.layers for c in layer if c.error]
    assert len(failed) == 4 and all(c.text is None for c in failed)
    for request in server.log:
        for message in request.messages:
            assert "injected" not in message["content"] and "503" not in message["content"]
    aggregator_request = server.log[-1]
    system = aggregator_request.messages[0]["content"]
    assert system.count("\n1. answer ") == 1 and "\n2. " not in system


async def test_failing_aggregator_fails_the_turn(tmp_path: Path) -> None:
    server = FakeServer(profiles={"agg": ModelProfile(fail_status=401)})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(six_proposer_spec(), client).run_turn(USER, CONFIG)
        await client.aclose()
    assert trace.output is None
    assert trace.error is not None and "aggregator failed" in trace.error


async def test_aggregator_request_is_the_paper_format(tmp_path: Path) -> None:
    server = FakeServer()
    spec = MixtureSpec.paper("t", ((Agent("fake/a"), Agent("fake/b")),), Agent("fake/agg"))
    conversation: list[ChatMessage] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name a colour."},
    ]
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite")
        trace = await Mixture(spec, client).run_turn(conversation, CONFIG)
        await client.aclose()
    a, b = (c.text for c in trace.layers[0])
    assert a is not None and b is not None
    expected = [
        {
            "role": "system",
            "content": f"Be brief.\n\n{AGGREGATE_AND_SYNTHESIZE}\n1. {a.strip()}\n2. {b.strip()}",
        },
        *conversation[1:],
    ]
    assert server.log[-1].model == "agg"
    assert server.log[-1].messages == expected
    assert server.log[-1].params["temperature"] == 0.7
    assert server.log[-1].params["max_tokens"] == 64


async def test_logprobs_round_trip(client: ModelClient) -> None:
    config = GenerateConfig(temperature=1.0, max_tokens=1, logprobs=True, top_logprobs=5)
    outcome = await client.generate("fake/judge", USER, config)
    assert outcome.completion is not None and outcome.completion.logprobs is not None
    top = dict(outcome.completion.logprobs[0].top)
    assert set(top) == {"m", "M"}


async def test_a_call_takes_no_path_the_sdk_deprecates(client: ModelClient) -> None:
    """The prepared body goes as `content` (raw bytes as `body` are deprecated in the SDK)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        outcome = await client.generate("fake/p0", USER, CONFIG)
    assert outcome.ok


async def test_the_prepared_url_and_body_are_the_ones_the_sdk_would_build() -> None:
    """The chat URL merged once and the body serialised by us are what the SDK builds from a
    relative path and a dict (its own encoder and merge are the oracle), so requests stay
    byte-identical."""
    params = {"model": "m", "messages": [{"role": "user", "content": 'Grüß dich ✓ "q"'}]}
    for base in ("http://127.0.0.1:9/v1", "https://api.example.com/v1/", "http://h:8000"):
        provider = OpenAICompatible("e", base, "k")
        sdk = provider._client
        assert provider._chat_url == str(sdk._prepare_url("/chat/completions"))
        await provider.aclose()
    assert _json_body({**params, "temperature": 0.7}) == openapi_dumps(
        {**params, "temperature": 0.7}
    )


async def test_the_request_options_change_nothing_the_sdk_sends() -> None:
    """The options given with each request are the client's own settings: the request the SDK
    builds with them (URL, headers, body, timeout, retries) is the one it builds without."""
    provider = OpenAICompatible("e", "http://127.0.0.1:9/v1", "k")
    sdk = provider._client
    built = []
    for options in ({}, _REQUEST_OPTIONS):
        prepared = await sdk._prepare_options(
            FinalRequestOptions.construct(
                method="post", url=provider._chat_url, content=b"{}", idempotency_key="i",
                **options,
            )
        )  # fmt: skip
        request = sdk._build_request(prepared)
        built.append(
            (
                str(request.url),
                request.headers.raw,
                request.content,
                request.extensions,
                prepared.get_max_retries(sdk.max_retries),
            )
        )
    assert built[0] == built[1]
    await provider.aclose()


async def test_every_https_endpoint_shares_one_tls_context() -> None:
    first, second = (
        OpenAICompatible("a", "https://a.example/v1", "k"),
        OpenAICompatible("b", "https://b.example/v1", "k"),
    )
    contexts = {id(p._client._client._transport.ssl_context) for p in (first, second)}  # type: ignore[attr-defined]
    assert contexts == {id(tls_context(True))}
    assert tls_context(True).verify_mode == ssl.CERT_REQUIRED  # still verifies, as the default does
    await first.aclose()
    await second.aclose()


async def test_a_plain_http_endpoint_loads_no_certificate_and_trusts_none() -> None:
    local = OpenAICompatible("local", "http://127.0.0.1:8000/v1", "k")
    context = local._client._client._transport.ssl_context  # type: ignore[attr-defined]
    assert context is tls_context(False) and context is not tls_context(True)
    # Never used for http://; were it used (a redirect to https://), it verifies and trusts
    # nothing, so the connection fails rather than going unverified.
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    await local.aclose()
