"""Replicas of one endpoint (`base_urls`): calls spread over them, a dead one is drained and
re-admitted later, and the cache key is the endpoint's, whichever replica answered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from eval.settings import CONF_DIR, build_client, resolve
from moa.errors import ConfigError
from moa.limits import EndpointLimits
from moa.providers.base import create_provider
from moa.providers.replicas import Replicas
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError, NotSent
from tests.kit.cli import ENDPOINTS, command, environment, ledger, run, run_dir
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, request_id, serve_in_thread

from .conftest import make_client
from .test_rate_limits import closed_port

CONFIG = GenerateConfig(max_tokens=16)
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serve_vllm.sh"
HELLO: list[ChatMessage] = [{"role": "user", "content": "hello"}]


class Fake:
    """A replica that answers, or raises what it is told to."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.fail: ModelError | None = None
        self.hang = False  # takes the request and never answers
        self.calls = 0

    async def generate(
        self, model: str, messages: Sequence[ChatMessage], config: GenerateConfig, sample: int
    ) -> Completion:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        return Completion(self.identity, 1, 1)

    async def aclose(self) -> None:
        pass


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def replicas(
    n: int, clock: Clock, *, max_failures: int = 3, cooldown_s: float = 30.0
) -> tuple[Replicas, list[Fake]]:
    fakes = [Fake(f"r{i}") for i in range(n)]
    pairs = [(f.identity, f) for f in fakes]
    api = Replicas("vllm", "openai:x", pairs, max_concurrency=4, max_failures=max_failures,
                   cooldown_s=cooldown_s, clock=clock, check_s=0.01)  # fmt: skip
    return api, fakes


async def test_a_refused_replica_is_drained_then_readmitted() -> None:
    clock = Clock()
    api, (a, b) = replicas(2, clock, cooldown_s=30)
    a.fail = NotSent(ErrorKind.TRANSIENT, "connection refused by r0")
    answer = await api.generate("m", HELLO, GenerateConfig(), 0)
    assert answer.text == "r1" and a.calls == 1  # sent on at once, no attempt used up
    await api.generate("m", HELLO, GenerateConfig(), 0)
    assert a.calls == 1  # drained: not tried again within its cool-down
    b.fail = NotSent(ErrorKind.TRANSIENT, "connection refused by r1")
    with pytest.raises(ModelError, match="every replica of endpoint vllm is drained") as caught:
        await api.generate("m", HELLO, GenerateConfig(), 0)
    assert isinstance(caught.value, NotSent)  # this attempt reached no server
    assert caught.value.transient and caught.value.retry_after == 30.0
    clock.now = 31.0
    a.fail = None
    assert (await api.generate("m", HELLO, GenerateConfig(), 0)).text == "r0"  # re-admitted


async def test_repeated_failures_drain_a_replica() -> None:
    api, (a, b) = replicas(2, Clock(), max_failures=2)
    a.fail = ModelError(ErrorKind.TRANSIENT, "injected 500", status=500)
    with pytest.raises(ModelError, match="500"):  # the first of equals; the client retries it
        await api.generate("m", HELLO, GenerateConfig(), 0)
    b.hang = True  # of equals in room, the one without a failure: r1, busy from now on
    busy = asyncio.create_task(api.generate("m", HELLO, GenerateConfig(), 0))
    while not b.calls:
        await asyncio.sleep(0.01)
    with pytest.raises(ModelError, match="500"):  # r0 has the most room: its second failure
        await api.generate("m", HELLO, GenerateConfig(), 0)
    b.hang = False
    texts = [(await api.generate("m", HELLO, GenerateConfig(), 0)).text for _ in range(3)]
    assert texts == ["r1"] * 3 and a.calls == 2  # drained
    busy.cancel()


async def test_a_rate_limited_replica_learns_alone() -> None:
    api, (a, _) = replicas(2, Clock())
    a.fail = ModelError(ErrorKind.TRANSIENT, "rate limited", status=429)
    assert (await api.generate("m", HELLO, GenerateConfig(), 0)).text == "r1"
    assert api.replicas[0].slots.limit == 2.0 and api.replicas[1].slots.limit == 4.0


async def test_a_hung_replica_is_drained_and_its_calls_go_elsewhere() -> None:
    clock = Clock()
    api, (a, b, _) = replicas(3, clock)
    a.hang = True
    stuck = asyncio.create_task(api.generate("m", HELLO, GenerateConfig(), 0))
    while not a.calls:
        await asyncio.sleep(0.01)
    clock.now = 1.0  # the others answer at once, while r0 says nothing
    assert {(await api.generate("m", HELLO, GenerateConfig(), 0)).text for _ in range(3)} == {"r1"}
    clock.now = 9.0  # silent, but not yet for SILENCE_FLOOR_S
    await asyncio.sleep(0.05)
    assert not stuck.done() and api.replicas[0].drained_until is None
    clock.now = 11.0
    async with asyncio.timeout(10):
        assert (await stuck).text == "r1" and b.calls == 4  # moved, at no attempt's cost
    assert api.replicas[0].drained_until == 41.0
    assert api.replicas[0].why.startswith("no answer for 11 s while the other replicas answered")


async def test_a_replica_is_silent_from_its_last_answer_on() -> None:
    clock = Clock()
    api, (a, _) = replicas(2, clock)
    a.hang = True
    stuck = asyncio.create_task(api.generate("m", HELLO, GenerateConfig(), 0))
    while not a.calls:
        await asyncio.sleep(0.01)
    a.hang = False
    api.replicas[1].drained_until = 1e9  # only r0 takes the next call
    clock.now = 50.0
    assert (await api.generate("m", HELLO, GenerateConfig(), 0)).text == "r0"
    api.replicas[1].drained_until = None
    clock.now = 51.0
    for _ in range(3):
        assert (await api.generate("m", HELLO, GenerateConfig(), 0)).text == "r1"
    clock.now = 59.0  # 59 s since its stuck call began, but only 9 s since it last answered
    await asyncio.sleep(0.05)
    assert not stuck.done() and api.replicas[0].drained_until is None
    clock.now = 61.0
    async with asyncio.timeout(10):
        assert (await stuck).text == "r1"
    assert api.replicas[0].why.startswith("no answer for 11 s")


async def test_attempts_timed_out_count_against_their_replica() -> None:
    api, (a, b) = replicas(2, Clock(), max_failures=2)
    a.hang = b.hang = True
    for _ in range(4):  # the client's timeout cancels each attempt; the retry goes elsewhere
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await api.generate("m", HELLO, GenerateConfig(), 0)
    assert (a.calls, b.calls) == (2, 2)
    assert [r.why for r in api.replicas] == ["no answer in 0 s"] * 2
    with pytest.raises(NotSent, match="every replica of endpoint vllm is drained"):
        await api.generate("m", HELLO, GenerateConfig(), 0)


async def test_an_endpoint_whose_replicas_never_answered_is_stopped_in_seconds(
    tmp_path: Path,
) -> None:
    failing = [FakeServer(default=ModelProfile(fail_status=500)) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(s)) for s in failing]
        urls.append(f"http://127.0.0.1:{closed_port()}/v1")
        client = make_client(urls[0], tmp_path / "c.sqlite", base_urls=urls,
                             backoff_initial_s=1, backoff_max_s=60)  # fmt: skip
        async with asyncio.timeout(60):  # each call alone: minutes of backoff
            outcomes = await asyncio.gather(
                *(client.generate("fake/m", [{"role": "user", "content": f"q{i}"}], CONFIG)
                  for i in range(12))
            )  # fmt: skip
        await client.aclose()
    why = client.stopped()["fake"]
    assert why.startswith(
        "is unreachable: it never answered and its last 5 attempts reached no server "
        "(every replica of endpoint fake is drained"
    )
    assert all(o.record.error == f"permanent: endpoint fake {why}: no more calls are sent to it"
               for o in outcomes)  # fmt: skip
    assert sum(len(s.log) for s in failing) <= 2 * 3 + 12  # drained after 3, and those in flight


def build(options: dict[str, object]) -> object:
    return create_provider("openai", "vllm", {"provider": "openai", **options})


async def test_the_cache_names_the_endpoint_not_the_replica() -> None:
    single = build({"base_url": "http://a:8000/v1/"})
    first = build({"base_urls": ["http://a:8000/v1", "http://b:8000/v1"]})
    named = build({"base_url": "http://a:8000/v1", "base_urls": ["http://c:8000/v1"]})
    apis = [single, first, named]
    try:
        assert {getattr(api, "identity", None) for api in apis} == {"openai:http://a:8000/v1"}
    finally:
        for api in apis:
            await getattr(api, "aclose")()  # noqa: B009


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base_urls": "http://a/v1"}, "base_urls must be a list of URLs"),
        ({"base_urls": ["http://a/v1", "http://a/v1"]}, "lists a URL twice"),
        ({"base_urls": ["http://a/v1"], "replica_cooldown_s": -1}, "replica_cooldown_s=-1"),
    ],
)
def test_bad_replica_settings_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(options)


def test_the_endpoint_takes_what_its_replicas_take() -> None:
    spec = {"base_urls": ["a", "b", "c"], "replica_max_concurrency": 8}
    assert EndpointLimits.from_spec("vllm", spec).max_concurrency == 24
    assert EndpointLimits.from_spec("vllm", {**spec, "max_concurrency": 10}).max_concurrency == 10


def test_a_run_over_three_replicas_survives_one_dying(tmp_path: Path) -> None:
    servers = [FakeServer(default=ModelProfile(ttft_s=0.03, min_tokens=5, max_tokens=30))
               for _ in range(3)]  # fmt: skip
    with contextlib.ExitStack() as stack:
        dying = contextlib.ExitStack()
        urls = [stack.enter_context(serve_in_thread(s)) for s in servers[:2]]
        urls.append(dying.enter_context(serve_in_thread(servers[2])))
        listed = "[" + ",".join(f"'{u}'" for u in urls) + "]"
        settings = {"base_urls": listed, "replica_max_concurrency": 4, "replica_cooldown_s": 600}
        overrides = [f"++endpoints.{e}.{k}={v}" for e in ENDPOINTS for k, v in settings.items()]
        args = command(tmp_path, urls[0], "benchmark.limit=12", *overrides)
        with subprocess.Popen(
            args, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            deadline = time.monotonic() + 60
            while len(servers[2].log) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            dying.close()  # mid-run: its port now refuses connections
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:] + err[-2000:]
        records = ledger(tmp_path)
        assert records and not [r for r in records if r["error"]]
        answered = [[request_id(e) for e in s.log if e.status == 200] for s in servers]
        assert all(answered)  # every replica answered, the dead one before it died
        paid = [call for calls in answered for call in calls]
        assert len(paid) == len(set(paid)) == len({r["key"] for r in records})  # none twice
        assert (run_dir(tmp_path) / "cli.log").read_text().count(f"replica {urls[2]} drained") == 1
        # the keys are the endpoint's: the same run on its first server alone is all cached
        requests = sum(len(s.log) for s in servers)
        again = run(command(tmp_path, urls[0], "benchmark.limit=12"))
        assert again.returncode == 0, again.stderr[-2000:]
        assert sum(len(s.log) for s in servers) == requests
        assert all(r["cached"] for r in ledger(tmp_path)[len(records) :])


@pytest.mark.parametrize("timeout_s", [600, 5], ids=["default timeout", "timeout_s=5"])
def test_a_run_over_a_hung_a_failing_and_a_healthy_replica_ends_well(
    tmp_path: Path, timeout_s: int
) -> None:
    hung = FakeServer(faults=FaultPlan(rates={"timeout": 1.0}, hang_s=600))
    failing = FakeServer(default=ModelProfile(fail_status=500))
    healthy = FakeServer(default=ModelProfile(ttft_s=0.03, min_tokens=5, max_tokens=30))
    servers = (hung, failing, healthy)
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(s)) for s in servers]
        listed = "[" + ",".join(f"'{u}'" for u in urls) + "]"
        overrides = [f"++endpoints.{e}.base_urls={listed}" for e in ENDPOINTS]
        args = command(tmp_path, urls[0], "benchmark.limit=5", *overrides, timeout_s=timeout_s)
        started = time.monotonic()
        done = run(args, timeout=120)
        took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert took < 60
    records = ledger(tmp_path)
    assert len(records) == 65 and not [r for r in records if r["error"]]
    assert hung.log and not [e for e in hung.log if e.status == 200]  # tried, never answered
    paid = [request_id(e) for s in servers for e in s.log if e.status == 200]
    assert len(paid) == len(set(paid)) == len({r["key"] for r in records})  # none twice
    assert (run_dir(tmp_path) / "cli.log").read_text().count(f"replica {urls[0]} drained") == 1


async def test_the_scripts_replicas_are_one_endpoint() -> None:
    env = {**os.environ, "DRY_RUN": "1", "REPLICAS": "2", "FP8": "1", "URL_HOST": "gpu01"}
    out = subprocess.run(
        ["bash", str(SCRIPT), "qwen110b"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert re.findall(r"CUDA_VISIBLE_DEVICES=(\S+) .*--port (\d+)", out) == [
        ("0,1,2,3", "8001"),
        ("4,5,6,7", "8011"),
    ]
    spec = yaml.safe_load(out[out.index("vllm_qwen110b:") :])["vllm_qwen110b"]
    api = create_provider("openai", "vllm_qwen110b", spec)
    assert isinstance(api, Replicas)
    assert [r.url for r in api.replicas] == ["http://gpu01:8001/v1", "http://gpu01:8011/v1"]
    assert EndpointLimits.from_spec("vllm_qwen110b", spec).max_concurrency == 256
    await api.aclose()


def test_the_replicas_config_keeps_the_single_servers_keys(tmp_path: Path) -> None:
    def endpoint(endpoints: str) -> object:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", [f"endpoints={endpoints}", f"cache.path={tmp_path / 'c'}"])
        client = build_client(resolve(cfg), ledger_path=None)
        client.cache.close()
        return client.endpoint("vllm_qwen110b").api

    replicated, single = endpoint("vllm_replicas"), endpoint("vllm_paper")
    assert isinstance(replicated, Replicas) and len(replicated.replicas) == 4
    assert replicated.identity == getattr(single, "identity", None)
