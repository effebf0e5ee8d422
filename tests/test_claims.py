"""Cross-process call claims: waiting on a live claim, taking over a dead or lapsed one, leases,
and the group-committed cache that holds them."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from moa.cache import COMMIT_DELAY_S, CacheMode, CallCache
from moa.catalogue import Catalogue
from moa.claims import Claims
from moa.client import ModelClient
from moa.ledger import Ledger, read_ledger
from moa.types import ChatMessage, Completion, GenerateConfig

ANSWER = Completion("answer", 3, 1, "stop")
CONFIG = GenerateConfig(temperature=0.7, max_tokens=10)
USER: ChatMessage = {"role": "user", "content": "Name a colour."}


def make_client(path: Path, latency_s: float, ledger: Path | None = None) -> ModelClient:
    spec = {"provider": "scripted", "latency_s": latency_s, "max_concurrency": 64}
    return ModelClient(
        {"scripted": spec}, Catalogue({}, ["scripted"]), CallCache(path), Ledger(ledger)
    )


def claim_row(path: Path, key: str, owner: str, expires: float) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?)", (key, owner, expires)
        )


def ended_pid() -> int:
    proc = multiprocessing.get_context("spawn").Process(target=int)
    proc.start()
    proc.join(30)
    assert proc.pid is not None
    return proc.pid


async def test_a_live_claim_is_waited_on_and_its_answer_used(tmp_path: Path) -> None:
    first, second = (
        Claims(CallCache(tmp_path / "c.sqlite")),
        Claims(CallCache(tmp_path / "c.sqlite")),
    )
    assert await first.claim("k") is None  # first to claim: the call is first's to make
    waiter = asyncio.create_task(second.claim("k"))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    first.store("k", "m", ANSWER)
    assert await asyncio.wait_for(waiter, 5) == ANSWER
    for claims in (first, second):
        await claims.aclose()
        claims.cache.close()


async def test_a_released_claim_passes_to_the_waiter(tmp_path: Path) -> None:
    first, second = (
        Claims(CallCache(tmp_path / "c.sqlite")),
        Claims(CallCache(tmp_path / "c.sqlite")),
    )
    assert await first.claim("k") is None
    waiter = asyncio.create_task(second.claim("k"))
    await asyncio.sleep(0.1)
    first.release("k")  # first's call failed: nothing stored
    assert await asyncio.wait_for(waiter, 5) is None  # now second's to make
    for claims in (first, second):
        await claims.aclose()
        claims.cache.close()


@pytest.mark.parametrize(
    ("owner", "expires", "stale"),
    [
        ("{host}:{dead}:gone", 1e12, True),  # a dead process of this host
        ("elsewhere:1:x", 0.0, True),  # a lease that ran out
        ("elsewhere:1:x", 1e12, False),  # another host's live lease: wait
    ],
)
async def test_stale_claims_are_taken_over(
    tmp_path: Path, owner: str, expires: float, stale: bool
) -> None:
    claims = Claims(CallCache(tmp_path / "c.sqlite"))
    owner = owner.format(host=socket.gethostname(), dead=ended_pid())
    claim_row(tmp_path / "c.sqlite", "k", owner, expires)
    attempt = asyncio.create_task(claims.claim("k"))
    done, _ = await asyncio.wait({attempt}, timeout=0.5)
    assert bool(done) is stale
    if stale:
        assert attempt.result() is None
    attempt.cancel()
    await claims.aclose()
    claims.cache.close()


async def test_leases_are_renewed_and_dropped_on_close(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    claims = Claims(CallCache(path), lease_s=0.3)
    assert await claims.claim("k") is None
    await asyncio.sleep(0.6)  # two leases' worth
    with sqlite3.connect(path) as db:
        (expires,) = db.execute("SELECT expires FROM claims").fetchone()
    assert expires > time.time()
    await claims.aclose()
    claims.cache.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)


async def test_writes_are_group_committed_but_read_at_once(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CallCache(path)
    for i in range(10):
        cache.put(f"k{i}", "m", ANSWER)
    assert cache.get("k3") == ANSWER  # pending, yet visible here
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone() == (0,)
    await asyncio.sleep(5 * COMMIT_DELAY_S)  # one commit for all ten
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone() == (10,)
    cache.put("last", "m", ANSWER)
    cache.close()  # closing commits what is pending
    assert CallCache(path, CacheMode.READ).get("last") == ANSWER


async def test_a_cancelled_call_leaves_no_claim(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    client = make_client(path, latency_s=5.0)
    call = asyncio.create_task(client.generate("scripted/m", [USER], CONFIG))
    await asyncio.sleep(0.2)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(5 * COMMIT_DELAY_S)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    await client.aclose()


def _worker(path: str, ledger: str, count: int) -> None:
    async def run() -> None:
        client = make_client(Path(path), latency_s=0.3, ledger=Path(ledger))
        messages: list[list[ChatMessage]] = [
            [{"role": "user", "content": f"question {i}"}] for i in range(count)
        ]
        await asyncio.gather(*(client.generate("scripted/m", m, CONFIG) for m in messages))
        await client.aclose()

    asyncio.run(run())


def test_two_processes_pay_once_per_call(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    CallCache(path).close()
    context = multiprocessing.get_context("spawn")
    ledgers = [tmp_path / f"calls{i}.jsonl" for i in range(3)]
    workers = [
        context.Process(target=_worker, args=(str(path), str(ledger), 40)) for ledger in ledgers
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    records = [row for ledger in ledgers for row in read_ledger(ledger)]
    assert len(records) == 3 * 40
    assert sum(not row["cached"] for row in records) == 40  # each call paid by one process
    assert len(CallCache(path, CacheMode.READ)) == 40
