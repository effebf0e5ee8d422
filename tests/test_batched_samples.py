"""Draws of one request in one call (`supports_n`): each choice cached under its own sample,
so one-by-one draws find them, and the prompt billed once; on the loopback server and the
scripted fake, and in the plan."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eval.plan import plan_points
from eval.settings import resolve
from moa.agents import Agent
from moa.budget import Budget, BudgetExceeded
from moa.catalogue import Catalogue
from moa.mixture import Mixture, MixtureSpec
from moa.types import ChatMessage, GenerateConfig
from tests.kit.cli import command, ledger, run, run_dir
from tests.kit.cli import scripted_config as config
from tests.kit.fakeserver import FakeServer, ModelProfile, prompt_tokens, serve_in_thread

from .conftest import make_client

CONFIG = GenerateConfig(temperature=0.7, max_tokens=64)
USER: list[ChatMessage] = [{"role": "user", "content": "Name a colour."}]
PRICED = Catalogue({"p": {"address": "fake/p", "price_in": 1.0, "price_out": 2.0}}, ["fake"])
SIX = MixtureSpec.paper("self", (tuple(Agent("fake/p", s) for s in range(6)),), Agent("fake/agg"))


async def test_six_draws_go_as_one_request_and_are_cached_one_by_one(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=5))
    cache = tmp_path / "c.sqlite"
    with serve_in_thread(server) as url:
        client = make_client(url, cache, supports_n=True)
        batched = await Mixture(SIX, client).run_turn(USER, CONFIG)
        await client.aclose()
        (draws,) = [r for r in server.log if r.model == "p"]
        assert draws.params.get("n") == 6 and len(server.log) == 2
        texts = [c.text for c in batched.layers[0]]
        assert len(set(texts)) == 6  # six choices, one per sample
        records = batched.layers[0]
        assert records[0].input_tokens > 0 and all(c.input_tokens == 0 for c in records[1:])
        assert all(c.output_tokens == 5 for c in records) and not any(c.cached for c in records)
        # One by one (no `n`), every draw is found: the same answers, nothing sent.
        client = make_client(url, cache)
        single = await Mixture(SIX, client).run_turn(USER, CONFIG)
        await client.aclose()
        assert len(server.log) == 2
        assert [c.text for c in single.layers[0]] == texts and single.output == batched.output
        assert all(c.cached for c in single.calls())


async def test_a_partly_cached_batch_asks_only_for_the_rest(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=5))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", supports_n=True)
        for sample in (0, 3):
            await client.generate("fake/p", USER, CONFIG, sample=sample)
        outcomes = await client.generate_batch("fake/p", USER, CONFIG, list(range(6)))
        await client.aclose()
    assert [r.params.get("n") for r in server.log] == [None, None, 4]
    assert [o.record.cached for o in outcomes] == [True, False, False, True, False, False]
    assert all(o.ok for o in outcomes)


def test_the_plan_bills_a_batched_prompt_once(tmp_path: Path) -> None:
    """`single_proposer` (Table 3) and `self_moa` on an endpoint that takes `n`: the draws of
    each proposer request pay their prompt once; the calls are the same."""
    for preset in ("single_proposer", "self_moa"):
        plans = []
        for batching in ("false", "true"):
            cfg = config(
                tmp_path,
                "benchmark=alpaca_eval",
                "benchmark.limit=5",
                f"moa={preset}",
                f"++endpoints.scripted.supports_n={batching}",
            )
            ((_, result),) = asyncio.run(plan_points(resolve(cfg), [resolve(cfg)]))
            plans.append(result.variants[0])
        one_by_one, batched = plans
        assert batched.calls == one_by_one.calls
        assert batched.input_tokens < one_by_one.input_tokens
        assert batched.output_tokens == one_by_one.output_tokens


async def test_a_draw_another_process_is_making_is_not_asked_for_again(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=0.5, min_tokens=5, max_tokens=5))
    with serve_in_thread(server) as url:
        other = make_client(url, tmp_path / "c.sqlite")
        me = make_client(url, tmp_path / "c.sqlite", supports_n=True)
        first = asyncio.ensure_future(other.generate("fake/p", USER, CONFIG, sample=1))
        await asyncio.sleep(0.1)  # its claim taken, its request in flight
        outcomes = await me.generate_batch("fake/p", USER, CONFIG, [0, 1, 2])
        theirs = await first
        await other.aclose()
        await me.aclose()
    assert [r.params.get("n") for r in server.log] == [None, 2]
    assert [o.record.cached for o in outcomes] == [False, True, False]
    assert outcomes[1].text == theirs.text


async def test_two_batches_of_the_same_draws_at_once_send_one_request(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(ttft_s=0.2, min_tokens=5, max_tokens=5))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", supports_n=True)
        a, b = await asyncio.gather(
            *(client.generate_batch("fake/p", USER, CONFIG, [0, 1, 2]) for _ in range(2))
        )
        await client.aclose()
    assert [r.params.get("n") for r in server.log] == [3]
    assert [o.text for o in a] == [o.text for o in b] and all(o.record.cached for o in b)


async def test_a_batch_counts_as_its_draws_against_max_calls(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=5))
    with serve_in_thread(server) as url:
        client = make_client(url, tmp_path / "c.sqlite", supports_n=True)
        client.budget = Budget(max_calls=2)
        with pytest.raises(BudgetExceeded, match="max_calls=2"):
            await client.generate_batch("fake/p", USER, CONFIG, list(range(6)))
        client.budget = Budget(max_calls=6)
        await client.generate_batch("fake/p", USER, CONFIG, list(range(6)))
        await client.aclose()
    assert client.budget.calls == 6 and [r.params.get("n") for r in server.log] == [6]


async def test_an_endpoint_that_ignores_n_keeps_what_it_sent_and_draws_the_rest_alone(
    tmp_path: Path,
) -> None:
    """`supports_n` on a server that answers one choice whatever `n` asks: the choice is kept
    and paid for in the ledger, the other draws go one per request, and so does every later
    batch; nothing is retried or fails."""
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=5, ignores_n=True))
    cache = tmp_path / "c.sqlite"
    other: list[ChatMessage] = [{"role": "user", "content": "Name a fruit."}]
    with serve_in_thread(server) as url:
        client = make_client(url, cache, supports_n=True)
        client.catalogue = PRICED
        first = await client.generate_batch("fake/p", USER, CONFIG, list(range(6)))
        later = await client.generate_batch("fake/p", other, CONFIG, list(range(3)))
        await client.aclose()
        assert [r.params.get("n") for r in server.log] == [6] + [None] * 8
        assert all(o.ok for o in first + later)
        assert client.ignoring_n() == {"fake": "asked for 6 choices, got 1"}
        records = [o.record for o in first + later]
        assert all(r.attempts == 1 and r.billed and not r.cached for r in records)
        # every request the server billed is in the ledger, with its tokens, at its price
        billed = sum(prompt_tokens(e.messages) + e.tokens * 2 for e in server.log) / 1e6
        assert client.ledger.totals.cost_usd == pytest.approx(billed)
        assert client.ledger.totals.retries == 0
        # each draw is cached under its own sample's key: one by one, nothing is sent
        again = make_client(url, cache)
        found = await again.generate_batch("fake/p", USER, CONFIG, list(range(6)))
        await again.aclose()
    assert [o.text for o in found] == [o.text for o in first] and all(
        o.record.cached for o in found
    )
    assert len(server.log) == 9


def test_a_run_on_an_endpoint_that_ignores_n_says_so_once_and_pays_no_retries(
    tmp_path: Path,
) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=20, ignores_n=True))
    with serve_in_thread(server) as url:
        args = command(
            tmp_path,
            url,
            "moa=self_moa",
            "benchmark.limit=3",
            "++endpoints.together.supports_n=true",
        )
        done = run(args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("endpoint together ignores n (asked for 6 choices, got 1)") == 1
    log = (run_dir(tmp_path, "self_moa") / "cli.log").read_text(encoding="utf-8")
    assert log.count("endpoint together ignores n") == 2  # the warning, then the summary
    records = ledger(tmp_path, "self_moa")
    assert not [r for r in records if r["error"]] and sum(r["attempts"] for r in records) == len(
        server.log
    )
    # every request the server billed is one record with its tokens and a price
    paying = [r for r in records if r["input_tokens"] and not r["cached"]]
    assert len(paying) == len(server.log) and all(r["cost_usd"] > 0 for r in paying)
