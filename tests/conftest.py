"""Shared fixtures: the loopback OpenAI-compatible server, clients over it, the shared data."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from moa.cache import CacheMode, CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from tests.kit.cli import SHARED_DATA
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

pytest_plugins = ["tests.kit.ci"]  # under CI=true a skip is a failure

# Tests never touch the network: the Hugging Face client fails at once instead of retrying.
# (It reads this when imported, so it is set here, before any test module imports it.)
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA} (../shared/data)")
    return SHARED_DATA


@pytest.fixture
def fake_server() -> FakeServer:
    return FakeServer(default=ModelProfile(min_tokens=5, max_tokens=30))


@pytest.fixture
def fake_url(fake_server: FakeServer) -> Iterator[str]:
    with serve_in_thread(fake_server) as url:
        yield url


def make_client(
    base_url: str,
    cache_path: Path,
    mode: CacheMode = CacheMode.READ_WRITE,
    **limits: object,
) -> ModelClient:
    spec = {
        "provider": "openai",
        "base_url": base_url,
        "max_concurrency": 16,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "timeout_s": 5,
        **limits,
    }
    return ModelClient(
        endpoint_specs={"fake": spec, "scripted": {"provider": "scripted"}},
        catalogue=Catalogue({}, ["fake", "scripted"]),
        cache=CallCache(cache_path, mode),
    )


@pytest.fixture
async def client(fake_url: str, tmp_path: Path) -> AsyncIterator[ModelClient]:
    client = make_client(fake_url, tmp_path / "calls.sqlite")
    yield client
    await client.aclose()
