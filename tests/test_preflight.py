"""Models that are shut down are found before money is spent (`eval.preflight`), and a model
refused as not served at run time is stopped at once (`moa.client`), through the real SDK."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import cast

import pytest

from eval.preflight import model_list
from moa.client import ModelClient
from moa.types import GenerateConfig, ModelError
from tests.conftest import make_client
from tests.kit.cli import MOA_BENCH, SHARED_DATA, endpoint_overrides, environment, run
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

PROPOSERS = (
    "Qwen/Qwen1.5-110B-Chat",
    "Qwen/Qwen1.5-72B-Chat",
    "microsoft/WizardLM-2-8x22B",
    "meta-llama/Llama-3-70b-chat-hf",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "databricks/dbrx-instruct",
)
JUDGE = "gpt-4-1106-preview"
CONFIG = GenerateConfig(temperature=0.0, max_tokens=8)
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def _retired() -> FakeServer:
    """Serves the paper's proposers; its judge is shut down: not listed, answered 404."""
    server = FakeServer(default=ModelProfile(min_tokens=3, max_tokens=8))
    server.serves = set(PROPOSERS)
    server.gone = {JUDGE}
    return server


def _paper_run(root: Path, url: str, *overrides: str) -> list[str]:
    return [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}",
        f"cache.path={root / 'calls.sqlite'}",
        "benchmark=alpaca_eval",
        "moa=moa_lite",
        "judge=paper",
        "benchmark.limit=5",
        *endpoint_overrides(url, lists_models=True),
        *overrides,
    ]


@needs_data
def test_a_shut_down_judge_is_refused_before_generation(tmp_path: Path) -> None:
    server = _retired()
    with serve_in_thread(server) as url:
        done = run(_paper_run(tmp_path, url))
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert JUDGE in line and "endpoint openai" in line
    assert "judge=gpt41" in line and "task=models" in line
    assert server.log == []  # nothing generated, nothing judged


@needs_data
def test_with_the_check_off_the_judge_stops_at_its_first_refusals(tmp_path: Path) -> None:
    server = _retired()
    with serve_in_thread(server) as url:
        done = run(
            _paper_run(
                tmp_path, url, "preflight.models=false", "++endpoints.openai.max_concurrency=2"
            )
        )
    assert done.returncode == 1, done.stdout + done.stderr
    sent = [r for r in server.log if r.model == JUDGE]
    assert 1 <= len(sent) <= 2  # its concurrency: the calls in flight when the first 404 came
    said = " ".join(done.stdout.split())
    assert said.count(f"model openai/{JUDGE} is not served (") == 1  # the line that says why
    assert "judge=gpt41" in said
    assert len([r for r in server.log if r.model != JUDGE]) == 5 * 7  # generation went through


def test_models_shows_shutdown_dates_and_a_ready_catalogue_entry(tmp_path: Path) -> None:
    server = FakeServer(profiles={"Qwen/Qwen1.5-72B-Chat": ModelProfile()})
    server.shutdown = {"Qwen/Qwen1.5-72B-Chat": "2027-01-14"}
    server.serves = {"gpt-4.1-2025-04-14"}
    with serve_in_thread(server) as url:
        done = run(
            [MOA_BENCH, "task=models", "models.endpoints=[together]",
             f"endpoints.together.base_url={url}"],
            environment(COLUMNS="200"),
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "qwen1.5-72b " in line)
    assert "shutdown_date 2027-01-14" in row
    assert "  together/gpt-4.1-2025-04-14\n" in done.stdout


@needs_data
def test_a_model_shutting_down_during_the_run_is_named(tmp_path: Path) -> None:
    server = _retired()
    server.gone = set()
    server.serves = {*PROPOSERS, JUDGE}
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    server.shutdown = {JUDGE: tomorrow.isoformat()}
    with serve_in_thread(server) as url:
        done = run(_paper_run(tmp_path, url, "benchmark.limit=1", "task=generate"))
        judged = run(_paper_run(tmp_path, url, "benchmark.limit=1"))
    assert done.returncode == 0, done.stderr
    assert "shuts down" not in done.stdout  # generation does not call the judge
    said = " ".join(judged.stdout.split())
    assert f"model {JUDGE} on endpoint openai shuts down on {tomorrow}" in said


async def test_a_model_refused_as_not_served_gets_no_more_requests(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=0.05, min_tokens=3, max_tokens=8))
    server.gone = {"old"}
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=3)
        asks = [
            client.generate(f"fake/{model}", [{"role": "user", "content": f"q{n}"}], CONFIG)
            for n in range(12)
            for model in ("old", "new")
        ]
        outcomes = await asyncio.gather(*asks)
        await client.aclose()
    old = [o.record for o in outcomes if o.record.model == "fake/old"]
    assert 1 <= len([r for r in server.log if r.model == "old"]) <= 3  # those in flight at once
    assert all(r.error and r.attempts <= 1 for r in old)  # none retried
    assert sum(r.unsent for r in old) >= 12 - 3
    assert all(o.completion is not None for o in outcomes if o.record.model == "fake/new")
    assert list(client.gone()) == ["fake/old"] and "model_not_found" in client.gone()["fake/old"]


class _Hanging:
    identity = "openai:http://hangs"

    async def list_models(self) -> list[object]:
        await asyncio.sleep(60)
        return []


class _Endpoint:
    api = _Hanging()
    timeout_s = 0.05


class _Client:
    def endpoint(self, name: str) -> _Endpoint:
        return _Endpoint()


async def test_a_model_list_that_never_comes_is_an_error_not_a_hang() -> None:
    with pytest.raises(ModelError, match=r"no model list after 0\.05s"):
        await model_list(cast(ModelClient, _Client()), "slow")
