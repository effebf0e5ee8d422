"""Waiting for a slot: calls of instances started earlier go first (`moa.scheduling.PRIORITY`),
first come first served within one priority, a cancelled waiter never keeps a slot, and a call
waiting for budget room holds none."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from moa.budget import Budget, BudgetExceeded, estimate_usd
from moa.cache import CallCache
from moa.catalogue import Catalogue, ModelEntry
from moa.client import ModelClient
from moa.scheduling import PRIORITY, AdaptiveSlots, Slots
from moa.types import ChatMessage, GenerateConfig
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=8)
PRICED = ModelEntry("m", "fake/m", price_in=10.0, price_out=20.0)
ASK: ChatMessage = {"role": "user", "content": "Name a colour."}


async def settle() -> None:
    """Lets every ready task run until it blocks."""
    for _ in range(20):
        await asyncio.sleep(0)


async def served_order(priorities: Sequence[int | None]) -> list[int]:
    """The arrival indexes of waiters with these priorities, in the order one slot served them."""
    slots = Slots(1)
    await slots.acquire()  # held, so every waiter below queues
    order: list[int] = []

    async def waiter(index: int, priority: int | None) -> None:
        PRIORITY.set(priority)
        async with slots:
            order.append(index)

    tasks = []
    for index, priority in enumerate(priorities):
        tasks.append(asyncio.create_task(waiter(index, priority)))
        await settle()  # it has arrived before the next one does
    slots.release()
    await asyncio.gather(*tasks)
    assert slots.in_use == 0
    return order


async def test_waiters_are_served_by_priority_then_arrival() -> None:
    # lower first; equal priorities in arrival order; no priority after every set one
    order = await served_order([5, None, 2, 2, 0, None, 7])
    assert order == [4, 2, 3, 0, 6, 1, 5]
    assert await served_order([None, None, None]) == [0, 1, 2]


async def test_a_cancelled_waiter_keeps_no_slot() -> None:
    slots = Slots(1)
    await slots.acquire()
    served: list[str] = []

    async def waiter(name: str) -> None:
        async with slots:
            served.append(name)
            await asyncio.sleep(0)

    early, handed, last = (asyncio.create_task(waiter(n)) for n in ("early", "handed", "last"))
    await settle()
    early.cancel()  # cancelled while waiting
    await settle()
    slots.release()  # goes to `handed`, which is cancelled before it can run
    handed.cancel()
    await asyncio.gather(early, handed, last, return_exceptions=True)
    assert early.cancelled() and handed.cancelled()
    assert served == ["last"]  # `handed` gave its slot on
    assert slots.in_use == 0 and slots.waiting == 0
    await asyncio.wait_for(slots.acquire(), 1)  # free: no slot leaked


async def test_the_learned_limit_halves_then_probes_and_never_passes_its_cap() -> None:
    limiter = AdaptiveSlots(8)
    tickets = [await limiter.take() for _ in range(8)]
    assert limiter.give_back(tickets[0], refused=True)  # the limiter learned: not counted
    assert (limiter.limit, limiter.decreases) == (4.0, 1)
    assert limiter.give_back(tickets[1], refused=True)  # sent before the decrease: no new one
    assert (limiter.limit, limiter.decreases) == (4.0, 1)
    for ticket in tickets[2:]:
        assert not limiter.give_back(ticket)  # other endings change nothing
    assert limiter.limit == 4.0 and limiter.in_use == 0
    limits: list[float] = []

    async def worker() -> None:  # 16 callers on 4 slots: successes while slots are wanted
        for _ in range(10):
            ticket = await limiter.take()
            await asyncio.sleep(0)
            limiter.give_back(ticket, ok=True)
            limits.append(limiter.limit)

    await asyncio.gather(*(worker() for _ in range(16)))
    assert limits == sorted(limits) and max(limits) == 8.0  # up by 1/limit each, to the cap
    assert limiter.in_use == 0 and limiter.waiting == 0
    assert limiter.give_back(await limiter.take(), refused=True)  # the probe above what worked:
    assert limiter.limit == 7.0  # it had grown since the last decrease, so one slot back
    assert limiter.give_back(await limiter.take(), refused=True)  # no growth since: halves
    assert limiter.capacity == 3 and limiter.lowest == 3 and limiter.decreases == 3
    floor = AdaptiveSlots(1)
    assert not floor.give_back(await floor.take(), refused=True)  # at 1: nothing learned
    assert floor.limit == 1.0 and floor.lowest == 1


async def test_the_client_serves_waiting_calls_by_priority(tmp_path: Path) -> None:
    """Through the real SDK: the endpoint's one slot busy, calls queued out of order (each for
    its own model, so each waits for the endpoint's slot), then served lowest first."""
    server = FakeServer(
        default=ModelProfile(min_tokens=1, max_tokens=2),
        profiles={"slow": ModelProfile(ttft_s=0.3, min_tokens=1, max_tokens=2)},
    )
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=1)

        async def ask(model: str, priority: int | None) -> None:
            PRIORITY.set(priority)
            message: list[ChatMessage] = [{"role": "user", "content": model}]
            assert (await client.generate(f"fake/{model}", message, CONFIG)).ok

        first = asyncio.create_task(ask("slow", None))
        while not server.log:
            await asyncio.sleep(0.01)  # the slow call is in flight: the rest queue behind it
        queued = [("p3", 3), ("none", None), ("p1", 1), ("p0", 0), ("p1-later", 1)]
        tasks = [asyncio.create_task(ask(name, priority)) for name, priority in queued]
        await asyncio.gather(first, *tasks)
        await client.aclose()
    order = [r.messages[0]["content"] for r in server.log]
    assert order == ["slow", "p0", "p1", "p1-later", "p3", "none"]


async def run_instances(
    tmp_path: Path, prioritised: bool, budget: Budget | None = None
) -> tuple[list[str], list[bool]]:
    """6 instances of 3 dependent calls each on one slot, all started at once, through the real
    SDK: the server's request order and which instances finished. (The server takes 50 ms a
    call, so an instance's next call comes well before the slot is free again.)"""
    server = FakeServer(default=ModelProfile(ttft_s=0.05, min_tokens=1, max_tokens=2))
    with serve_in_thread(server) as url:
        spec = {"provider": "openai", "base_url": url, "max_concurrency": 1}
        client = ModelClient(
            {"fake": spec},
            Catalogue({}, ["fake"]),
            CallCache(tmp_path / f"{prioritised}.sqlite"),
            budget=budget or Budget(),
        )

        async def instance(index: int) -> bool:
            if prioritised:
                PRIORITY.set(index)  # as the runner does
            for step in range(3):
                content = f"i{index}c{step}"
                message: list[ChatMessage] = [{"role": "user", "content": content}]
                try:
                    outcome = await client.generate("fake/m", message, CONFIG)
                except BudgetExceeded:
                    return False
                assert outcome.ok
            return True

        finished = await asyncio.gather(*(instance(i) for i in range(6)))
        await client.aclose()
    return [r.messages[0]["content"] for r in server.log], list(finished)


async def test_instances_started_earlier_finish_first(tmp_path: Path) -> None:
    order, finished = await run_instances(tmp_path, prioritised=True)
    # A freed slot goes to the best call waiting then: instance 1's first call, while instance
    # 0's next one is on its way. From then on the two started instances go before the rest,
    # and two more start only when they are done.
    assert order == [f"i{i}c{step}" for a in (0, 2, 4) for step in range(3) for i in (a, a + 1)]
    assert all(finished)


async def test_a_budget_cap_leaves_whole_instances(tmp_path: Path) -> None:
    """Two thirds of the plan's calls allowed: two thirds of the instances finish (the budget is
    held once a call has its slot, so calls waiting for one hold none)."""
    order, finished = await run_instances(tmp_path, True, Budget(max_calls=12))
    assert len(order) == 12
    assert finished == [True] * 4 + [False] * 2
    # without priorities, first come first served: every instance's first call, then each
    # one's second, and the cap leaves no instance whole
    fifo, fifo_finished = await run_instances(tmp_path, False, Budget(max_calls=12))
    assert fifo == [f"i{i}c{step}" for step in range(2) for i in range(6)]
    assert not any(fifo_finished)


async def test_a_call_waiting_for_money_holds_no_slot(tmp_path: Path) -> None:
    """One slot and room for one call at its worst: the first call fails once and must take the
    slot again for its retry, while the second waits for the money the first holds. The second
    gives the slot back while it waits (holding it, the two would wait for each other for good;
    before, it was refused and so was every later call)."""
    server = FakeServer(
        default=ModelProfile(ttft_s=0.05, min_tokens=2, max_tokens=4),
        faults=FaultPlan(script=["500"]),
    )
    worst = estimate_usd(PRICED, [ASK], CONFIG)
    with serve_in_thread(server) as url:
        spec = {"provider": "openai", "base_url": url, "max_concurrency": 1,
                "backoff_initial_s": 0.05, "backoff_max_s": 0.05}  # fmt: skip
        client = ModelClient(
            {"fake": spec},
            Catalogue({"m": {"address": "fake/m", "price_in": 10.0, "price_out": 20.0}}, ["fake"]),
            CallCache(tmp_path / "c.sqlite"),
            budget=Budget(max_usd=worst * 1.5),
        )
        first, second = await asyncio.wait_for(
            asyncio.gather(*(client.generate("fake/m", [ASK], CONFIG, sample=s) for s in (0, 1))),
            timeout=30,
        )
        await client.aclose()
    assert first.ok and second.ok and first.record.attempts == 2
    assert [r.status for r in server.log] == [500, 200, 200]
    assert client.budget.spent_usd <= worst * 1.5
