"""The client keeps as many calls in flight as its limits allow: no HTTP pool caps them lower
(aiohttp's default of 100 connections once did, silently); a run's first call is not held back
by the start of all its instances."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.base import Instance
from eval.rundir import RunDir
from eval.runner import Runner
from moa.agents import Agent
from moa.cache import CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.limits import EndpointLimits
from moa.mixture import Mixture, MixtureSpec
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


async def test_a_runs_first_call_leaves_before_its_last_instance_starts(tmp_path: Path) -> None:
    """Instances start a wave per turn of the event loop (`eval.runner._WAVE`): hundreds
    starting at once would each prepare their calls before the first one could be sent."""
    events: list[str] = []

    class Recorded(Mixture):
        async def converse(self, turns: Sequence[str], *args: Any, **kwargs: Any) -> Any:
            events.append(f"start {turns[0]}")
            return await super().converse(turns, *args, **kwargs)

    client = ModelClient(
        {"scripted": {"provider": "scripted"}},
        Catalogue({}, ["scripted"]),
        CallCache(tmp_path / "c.sqlite"),
    )
    generate = client.generate

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        events.append("call")
        return await generate(*args, **kwargs)

    client.generate = recorded  # type: ignore[method-assign]
    spec = MixtureSpec(name="single", layers=((Agent("scripted/m"),),))
    items = [Instance(str(i), (f"q{i}",), None, None, {}) for i in range(64)]
    runner: Runner[Instance] = Runner(
        Recorded(spec, client), client.ledger, RunDir(tmp_path / "run"), concurrency=64,
        show_progress=False,
    )  # fmt: skip
    results = await runner.run(items, lambda _: CONFIG)
    await client.aclose()
    assert all(r.outputs for r in results) and events.count("call") == 64
    assert events.index("call") < events.index("start q63")
