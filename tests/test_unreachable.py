"""An endpoint that refuses every connection from the start is stopped within seconds, in one
line; one that answered before and then refuses (a restart) is retried as patiently as ever;
and the progress bar counts retries while their calls are still under way."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from eval.progress import counts
from moa.client import UNREACHABLE_AFTER
from moa.types import ChatMessage, GenerateConfig
from tests.kit.cli import MOA_BENCH, SHARED_DATA, ledger, point_endpoints, run
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread

from .conftest import make_client
from .test_rate_limits import closed_port

CONFIG = GenerateConfig(temperature=0.7, max_tokens=16)


def questions(n: int) -> list[list[ChatMessage]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(n)]


async def test_an_endpoint_that_never_answered_is_stopped_after_a_few_refusals(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    # the default backoffs (1 s, doubling): each call alone would take minutes to give up
    client = make_client(url, tmp_path / "c.sqlite", backoff_initial_s=1, backoff_max_s=60)
    async with asyncio.timeout(60):
        outcomes = await asyncio.gather(
            *(client.generate("fake/m", m, CONFIG) for m in questions(12))
        )
    await client.aclose()
    why = client.stopped()["fake"]
    assert why == (
        f"is unreachable: it never answered and its last {UNREACHABLE_AFTER} attempts reached "
        f"no server (connection refused by {url})"
    )
    expected = f"permanent: endpoint fake {why}: no more calls are sent to it"
    assert all(o.record.error == expected for o in outcomes)
    # nothing reached a server, so nothing is billed, and no call was sent after the stop
    assert all(o.record.unsent and not o.record.billed for o in outcomes)
    assert sum(o.record.attempts for o in outcomes) < UNREACHABLE_AFTER + 16  # + those in flight
    assert client.ledger.totals.requests == 0


async def test_an_endpoint_that_answered_then_refuses_is_retried_patiently(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=8))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_attempts=UNREACHABLE_AFTER + 3)
        first, second = questions(2)
        assert (await client.generate("fake/m", first, CONFIG)).ok
    # the server is gone (a restart): its port refuses connections now
    outcome = await client.generate("fake/m", second, CONFIG)
    await client.aclose()
    assert outcome.record.error == f"transient: connection refused by {url}"
    assert outcome.record.attempts == UNREACHABLE_AFTER + 3 and not outcome.record.unsent
    assert client.stopped() == {}


async def test_the_bar_counts_retries_as_they_happen(tmp_path: Path) -> None:
    server = FakeServer(faults=FaultPlan(script=["500", "500", "ok"]))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", backoff_initial_s=0.3, backoff_max_s=1)
        call = asyncio.create_task(client.generate("fake/m", questions(1)[0], CONFIG))
        seen = []
        while not call.done():
            seen.append(counts(client.ledger))
            await asyncio.sleep(0.02)
        outcome = await call
        await client.aclose()
    assert outcome.ok and outcome.record.attempts == 3
    assert any("0 calls" in line and "2 retries" in line for line in seen)  # before it ended
    assert "1 calls" in counts(client.ledger) and "2 retries" in counts(client.ledger)
    assert client.ledger.totals.retrying == 0


def test_a_run_on_an_unreachable_endpoint_ends_in_seconds_saying_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    args = [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'c.sqlite'}",
        "benchmark=alpaca_eval",
        "moa=moa",
        "task=generate",
        "benchmark.limit=5",
        *point_endpoints(url),  # the default backoffs and attempts: four minutes a call before
    ]
    started = time.monotonic()
    done = run(args, timeout=120)
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stderr[-2000:]
    line = (
        f"endpoint together is unreachable: it never answered and its last {UNREACHABLE_AFTER} "
        f"attempts reached no server (connection refused by {url}): no more calls were sent to it"
    )
    assert done.stdout.count(line) == 1 and "Traceback" not in done.stderr
    records = ledger(tmp_path)
    assert records and all(r["unsent"] and r["error"] for r in records)
