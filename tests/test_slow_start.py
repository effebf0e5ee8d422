"""A model's concurrency starts below its cap and grows on success (slow start), so a run under
an unknown, lower limit meets far fewer 429s than a full-width start; behaviour, not timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from moa.scheduling import SLOW_START, AdaptiveSlots, opening
from moa.types import ChatMessage, GenerateConfig
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=8)


async def test_slow_start_grows_two_slots_a_success_until_a_refusal_ends_it() -> None:
    limiter = AdaptiveSlots(32, SLOW_START)
    assert (limiter.limit, limiter.capacity, limiter.slow_start) == (4.0, 4, True)
    limits: list[float] = []

    async def worker() -> None:  # 64 callers: successes while slots are wanted
        for _ in range(2):
            ticket = await limiter.take()
            await asyncio.sleep(0)
            limiter.give_back(ticket, ok=True)
            limits.append(limiter.limit)

    await asyncio.gather(*(worker() for _ in range(64)))
    assert limits[:4] == [6.0, 8.0, 10.0, 12.0]  # two slots each: the first round triples it
    assert max(limits) == 32.0 and limiter.in_use == 0
    assert limiter.give_back(await limiter.take(), refused=True)  # learned, not counted
    assert (limiter.limit, limiter.slow_start, limiter.decreases) == (8.0, False, 1)  # none held
    assert AdaptiveSlots(4, SLOW_START).slow_start is False  # the cap is where it starts
    assert AdaptiveSlots(8).limit == 8.0  # no start given: the cap, as before


def test_a_model_opens_at_half_its_cap_never_below_the_least_start_nor_above_the_cap() -> None:
    assert [opening(cap) for cap in (1, 3, 4, 8, 9, 32, 256)] == [1, 3, 4, 4, 4, 16, 128]


async def test_the_default_start_is_half_the_cap_and_one_round_of_successes_reaches_it(
    tmp_path: Path,
) -> None:
    server = FakeServer(profiles={"m": ModelProfile(ttft_s=0.0, min_tokens=1, max_tokens=2)})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", max_concurrency=32)
        messages: list[ChatMessage] = [{"role": "user", "content": "q"}]
        await client.generate("fake/m", messages, CONFIG)
        limiter = client.limiter("fake/m")
        assert limiter is not None and limiter.slow_start and limiter.limit == 16.0
        await asyncio.gather(
            *(client.generate("fake/m", [{"role": "user", "content": f"q{n}"}], CONFIG)
              for n in range(48))
        )  # fmt: skip
        assert limiter.limit == 32.0
        await client.aclose()


async def refusals(tmp_path: Path, start: int | None) -> tuple[int, int, int, AdaptiveSlots]:
    """96 calls, 64 at once, to a model that takes 8 and refuses more (429), configured for
    32: the refusals of the opening (requests that came before the first answer), all
    refusals, the answers, and the model's limiter. A call is held 0.2 s, long beside sending
    a burst even on a loaded machine, so the opening is the burst the start sends."""
    server = FakeServer(
        profiles={"m": ModelProfile(ttft_s=0.2, min_tokens=1, max_tokens=4, reject_above=8)}
    )
    limits = {"max_concurrency": 32} | ({"start_concurrency": start} if start else {})
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / f"c{start}.sqlite", max_attempts=1, **limits)
        gate = asyncio.Semaphore(64)

        async def ask(n: int) -> bool:
            messages: list[ChatMessage] = [{"role": "user", "content": f"question {n}"}]
            async with gate:
                return (await client.generate("fake/m", messages, CONFIG)).ok

        done = await asyncio.gather(*(ask(n) for n in range(96)))
        await client.aclose()
    assert all(done)
    limiter = client.limiter("fake/m")
    assert limiter is not None
    first_answer = min(r.ended for r in server.log if r.fault is None)
    refused = [r for r in server.log if r.fault == "over_limit"]
    opening = sum(r.started < first_answer for r in refused)
    return opening, len(refused), sum(r.fault is None for r in server.log), limiter


async def test_a_slow_start_meets_far_fewer_refusals_than_a_full_width_one(
    tmp_path: Path,
) -> None:
    opening, slow, served, limiter = await refusals(tmp_path, None)  # opens at 16, half the cap
    opening_full, full, served_full, _ = await refusals(tmp_path, 32)
    assert served == served_full == 96
    assert limiter.cap == 32 and limiter.lowest <= 8 and not limiter.slow_start
    assert opening_full >= 24  # the full-width burst: 32 sent, 8 taken (then halving: 16 more)
    assert opening <= 8  # half the cap sent, 8 taken: at most a third of the full burst
    assert slow < full, (slow, full)  # later probes above the limit are the same for both


async def test_the_slow_start_ends_at_what_the_server_held_not_at_half() -> None:
    """A server that holds 12 refuses the calls sent past them; the refusals may come back out
    of order, and the earliest refused call's count of calls still in flight before it wins."""
    limiter = AdaptiveSlots(32, 20)
    tickets = [await limiter.take() for _ in range(20)]  # 0..19 in flight; 12..19 refused
    assert limiter.give_back(tickets[16], refused=True)  # 16 sent before it still in flight
    assert (limiter.limit, limiter.slow_start, limiter.decreases) == (16.0, False, 1)
    assert limiter.give_back(tickets[12], refused=True)  # the same window: not another decrease
    assert (limiter.limit, limiter.decreases, limiter.lowest) == (12.0, 1, 12)
    for ticket in (13, 14, 15, 17, 18, 19):  # later ones held more: the fewest stands
        assert limiter.give_back(tickets[ticket], refused=True)
    assert limiter.limit == 12.0
    for ticket in tickets[:12]:  # ended some other way: the limit stays
        limiter.give_back(ticket)
    # sent after the decrease and refused at that level: the limit is still too high, halve
    late = await limiter.take()
    assert limiter.give_back(late, refused=True)
    assert (limiter.limit, limiter.decreases) == (6.0, 2)
    # never below a quarter of where the slow start ended, however few were in flight
    alone = AdaptiveSlots(32, 20)
    assert alone.give_back(await alone.take(), refused=True)
    assert alone.limit == 5.0
