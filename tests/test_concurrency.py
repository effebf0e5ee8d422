"""The client keeps as many calls in flight as its limits allow: no HTTP pool caps them lower
(aiohttp's default of 100 connections once did, silently)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from moa.errors import ConfigError
from moa.limits import EndpointLimits
from moa.types import ChatMessage, GenerateConfig
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=8)


async def test_hundreds_of_calls_are_in_flight_at_once(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=1.0, min_tokens=1, max_tokens=1))
    with serve_in_thread(server) as url:
        # a full-width start (no slow start): the harness itself can hold them all at once
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=300, start_concurrency=300)
        messages: list[list[ChatMessage]] = [
            [{"role": "user", "content": f"question {i}"}] for i in range(250)
        ]
        outcomes = await asyncio.gather(*(client.generate("fake/m", m, CONFIG) for m in messages))
        await client.aclose()
    assert all(o.ok for o in outcomes)
    # every request had started before the first one ended
    assert max(r.started for r in server.log) < min(r.ended for r in server.log)


def test_endpoint_limits_default_and_refuse_bad_values() -> None:
    assert EndpointLimits.from_spec("x", {"provider": "openai"}) == EndpointLimits()
    # null or 0 takes the default; for rpm and tpm that is no limit
    zeros = {"max_concurrency": 0, "rpm": 0, "tpm": None, "timeout_s": 0, "backoff_max_s": None}
    assert EndpointLimits.from_spec("x", zeros) == EndpointLimits()
    limits = EndpointLimits.from_spec("x", {"max_concurrency": 4, "rpm": 60, "timeout_s": 5})
    assert (limits.max_concurrency, limits.rpm, limits.timeout_s) == (4, 60, 5.0)
    for key, value, message in [
        ("max_concurrency", -1, "endpoints.x.max_concurrency=-1 must be an integer >= 0 or null"),
        ("rpm", 1.5, "endpoints.x.rpm=1.5 must be an integer >= 0 or null"),
        ("max_attempts", True, "endpoints.x.max_attempts=True must be an integer >= 0 or null"),
        ("timeout_s", "10", "endpoints.x.timeout_s='10' must be a number >= 0 or null"),
    ]:
        with pytest.raises(ConfigError) as caught:
            EndpointLimits.from_spec("x", {key: value})
        assert str(caught.value) == message
