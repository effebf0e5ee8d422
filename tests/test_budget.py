"""Budget caps: no call is sent past a cap, a capped run stops cleanly and carries on for free."""

from __future__ import annotations

import asyncio
import json
import math
import re
from pathlib import Path

import pytest

from eval.errors import reported
from moa.budget import Budget, BudgetExceeded, NoRoom, check_plan, estimate_usd
from moa.cache import CallCache
from moa.catalogue import Catalogue, ModelEntry
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.jsonl import JsonLinesError, open_append, read_lines
from moa.scheduling import PRIORITY
from moa.tokens import estimate_prompt
from moa.types import ChatMessage, Completion, GenerateConfig
from tests.kit.cli import command, ledger, outputs, run
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

CONFIG = GenerateConfig(temperature=0.7, max_tokens=100)
PRICED = ModelEntry("m", "fake/m", price_in=10.0, price_out=20.0)
SCRIPTED = {"scripted": {"provider": "scripted"}}


def ask(n: int) -> list[ChatMessage]:
    return [{"role": "user", "content": f"Question {n}: name a colour."}]


async def test_calls_in_flight_count_against_the_cap() -> None:
    """A call that does not fit waits for the calls in flight; the cap is reached only when
    none is left to end, and then every later call is refused too."""
    budget = Budget(max_calls=2)
    first, second = budget.hold(PRICED, ask(1), CONFIG), budget.hold(PRICED, ask(2), CONFIG)
    with pytest.raises(NoRoom) as full:
        budget.hold(PRICED, ask(3), CONFIG)
    third = asyncio.create_task(full.value.admitted())
    budget.settle(first, PRICED, Completion("x", 10, 5))
    await asyncio.sleep(0)
    assert not third.done()  # the call in flight will count: still no room
    budget.settle(second, PRICED, Completion("x", 10, 5))
    reached = (
        "budget.max_calls=2 reached: 2 calls made, 0 reserved by calls in flight, 0 left; "
        "the next call needs 1"
    )
    with pytest.raises(BudgetExceeded) as refused:
        await third
    assert str(refused.value) == reached
    with pytest.raises(BudgetExceeded, match="max_calls=2 reached"):  # the run is stopping
        budget.hold(PRICED, ask(4), CONFIG)
    assert (budget.calls, budget.held_calls) == (2, 0)
    assert budget.spent_usd == pytest.approx(2 * PRICED.cost(10, 5))


async def test_a_call_waits_while_calls_in_flight_hold_their_worst() -> None:
    """Issue 20, item 9: a call that did not fit beside the calls in flight, held at their
    whole max_tokens, was refused, and so was every later call: runs stopped at 8% of the cap.
    Now it waits: calls that end at their real cost make room for it."""
    worst = estimate_usd(PRICED, ask(1), CONFIG)
    assert worst > PRICED.cost(0, 100)  # the prompt is priced too
    budget = Budget(max_usd=worst * 2.5)
    first = budget.hold(PRICED, ask(1), CONFIG)
    budget.hold(PRICED, ask(2), CONFIG)
    with pytest.raises(NoRoom) as full:
        budget.hold(PRICED, ask(3), CONFIG)
    third = asyncio.create_task(full.value.admitted())
    await asyncio.sleep(0)
    assert not third.done() and budget.refused is None
    budget.settle(first, PRICED, Completion("x", 10, 5))  # far less than its worst
    assert (await third).most == pytest.approx(worst)
    assert budget.held_usd == pytest.approx(2 * worst)


async def test_the_first_in_line_gets_the_room() -> None:
    """Room freed goes to the call of the instance started earliest (`PRIORITY`), not to the
    one that asked first: an aggregator of a started instance goes before new proposers."""
    worst = estimate_usd(PRICED, ask(1), CONFIG)
    budget = Budget(max_usd=worst * 1.5)
    running = budget.hold(PRICED, ask(1), CONFIG)
    waiting = {}
    for place in (5, 1):
        token = PRIORITY.set(place)
        with pytest.raises(NoRoom) as full:
            budget.hold(PRICED, ask(place), CONFIG)
        PRIORITY.reset(token)
        waiting[place] = asyncio.create_task(full.value.admitted())
    budget.settle(running, PRICED, Completion("x", 10, 5))
    await asyncio.sleep(0)
    assert waiting[1].done() and not waiting[5].done()
    budget.settle(waiting[1].result(), PRICED, Completion("x", 10, 5))
    assert (await waiting[5]).most == pytest.approx(worst)


def test_what_a_call_likely_costs_is_learned_from_the_answers_so_far() -> None:
    budget = Budget(max_usd=1.0)
    first = budget.hold(PRICED, ask(1), CONFIG)
    assert first.likely == first.most  # nothing learned yet: its worst
    budget.settle(first, PRICED, Completion("x", 10, 5))
    second = budget.hold(PRICED, ask(2), CONFIG)
    assert second.likely == pytest.approx(PRICED.cost(estimate_prompt(ask(2)), 5))
    assert budget.room_usd() == pytest.approx(1.0 - PRICED.cost(10, 5) - second.likely)
    assert budget.headroom(CONFIG) == pytest.approx(first.most - PRICED.cost(10, 5))


async def test_a_capped_client_sends_nothing_past_the_cap(tmp_path: Path) -> None:
    """Room for 7 calls at their worst: never more than 7 in flight, the calls that find no
    room wait for others to end, and the cap is reached only when the next call's worst no
    longer fits beside what was paid."""
    server = FakeServer(default=ModelProfile(ttft_s=0.05, min_tokens=5, max_tokens=30))
    worst = estimate_usd(PRICED, ask(10), CONFIG)
    cap = worst * 7.5
    with serve_in_thread(server) as url:
        client = ModelClient(
            {"fake": {"provider": "openai", "base_url": url}},
            Catalogue({"m": {"address": "fake/m", "price_in": 10.0, "price_out": 20.0}}, ["fake"]),
            CallCache(tmp_path / "c.sqlite"),
            budget=Budget(max_usd=cap),
        )
        outcomes = await asyncio.gather(
            *(client.generate("fake/m", ask(n), CONFIG) for n in range(10, 70)),
            return_exceptions=True,
        )
        again = await client.generate("fake/m", ask(10), CONFIG)  # cached calls stay free
        await client.aclose()
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    sent = len(server.log)
    assert 7 < sent < 60 and len(refused) == 60 - sent
    assert max(r.seen_in_flight for r in server.log) <= 7
    paid = client.ledger.totals.cost_usd
    assert paid <= cap and cap - paid < worst  # stopped only when the next could not fit
    assert client.ledger.totals.requests == sent and again.record.cached


def test_a_dollar_cap_needs_every_billed_model_priced(tmp_path: Path) -> None:
    client = ModelClient(
        {"fake": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}, **SCRIPTED},
        Catalogue({}, ["fake", "scripted"]),
        CallCache(tmp_path / "c.sqlite"),
        budget=Budget(max_usd=1.0),
    )
    client.preflight(["scripted/m"])  # free: its price does not matter to the cap
    with pytest.raises(ConfigError, match="fake/m has no price"):
        client.preflight(["fake/m"])
    client.cache.close()


async def test_free_calls_never_count_against_the_dollar_cap(tmp_path: Path) -> None:
    priced = {"m": {"address": "scripted/m", "price_in": 1e6, "price_out": 1e6}}  # $1 a token
    client = ModelClient(
        SCRIPTED,
        Catalogue(priced, ["scripted"]),
        CallCache(tmp_path / "c.sqlite"),
        budget=Budget(max_usd=0.01, max_calls=3),
    )
    outcomes = [await client.generate("scripted/m", ask(n), CONFIG) for n in range(3)]
    with pytest.raises(BudgetExceeded, match="max_calls=3"):  # the call cap still holds
        await client.generate("scripted/m", ask(3), CONFIG)
    await client.aclose()
    assert all(o.ok for o in outcomes) and client.budget.spent_usd == 0.0
    assert client.ledger.totals.cost_usd == 0.0  # at $1 a token, had it billed
    assert [o.record.cost_usd for o in outcomes] == [0.0] * 3  # a free endpoint is priced free


def test_earlier_runs_of_the_run_directory_count(tmp_path: Path) -> None:
    rows = [
        {"cached": False, "cost_usd": 0.25},  # before `billed`: paid when not cached
        {"cached": True, "cost_usd": 0.5},
        {"cached": False, "cost_usd": math.nan},
        {"cached": False, "cost_usd": 0.125, "billed": True},
        {"cached": False, "cost_usd": 4.0, "billed": False},  # sent, but to a free endpoint
        {"cached": True, "cost_usd": 8.0, "billed": False},
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn', encoding="utf-8")
    budget = Budget.from_ledgers(1.0, None, [path])
    assert budget.calls == 4 and budget.spent_usd == pytest.approx(0.375)


def test_plan_mode_warns_past_a_cap() -> None:
    assert check_plan(None, None, 1e6, 10**9) is None
    assert check_plan(10.0, 1000, 9.5, 1000) is None
    warning = check_plan(10.0, 1000, 12.0, 2000)
    assert warning is not None and "$12.00 exceeds budget.max_usd=10" in warning
    assert "2,000 calls exceed budget.max_calls=1000" in warning


def test_a_cap_reached_while_judging_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop, reported():
        raise BudgetExceeded("budget.max_calls=5 reached: 5 calls made")
    assert stop.value.code == 3
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("moa-bench: stopped: budget.max_calls=5 reached") and "raise" in line


def test_a_capped_run_stops_saves_and_carries_on_for_free(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=30))
    args = ["benchmark.limit=10", "concurrency=2"]  # 10 instances x 13 calls, 2 at a time
    with serve_in_thread(server) as url:
        stopped = run(command(tmp_path, url, *args, "budget.max_calls=40"))
        after_stop = len(server.log)
        again = run(command(tmp_path, url, *args, "budget.max_calls=40"))
        after_again = len(server.log)
        done = run(command(tmp_path, url, *args, "budget.max_calls=200"))
    assert stopped.returncode == 3 and again.returncode == 3, stopped.stderr
    (line,) = stopped.stderr.splitlines()
    # Three whole instances are 39 calls: a fourth could not finish in the one call left.
    assert line.startswith(
        "moa-bench: stopped: budget.max_calls=40 reached: 39 calls made, 0 reserved by calls in "
        "flight, 1 left; the next instance would likely need 13; 3/10 instances are saved"
    )
    assert "raise the cap and run the same command" in line
    assert line.endswith("budget.max_calls=40")  # the command to run again
    assert after_stop == 39  # nothing past the cap, nothing for an instance it cannot finish
    assert after_again == 39  # the cap covers the run directory: a re-run spends nothing more
    assert "3/10 instances are saved" in again.stderr
    assert done.returncode == 0, done.stderr
    assert len(server.log) == 130  # every call made once across the three runs
    assert len(outputs(tmp_path)) == 10
    paid = [r for r in ledger(tmp_path) if not r["cached"]]
    assert len(paid) == 130 and len({r["key"] for r in paid}) == 130


def test_a_small_dollar_cap_leaves_whole_instances(tmp_path: Path) -> None:
    """Issue 20, item 9: `budget.max_usd=0.05` on 40 MoA-Lite instances stopped each run at
    about 8% of the cap, four runs saving none of the instances their calls paid for. Now a
    run spends most of the cap on whole instances, and its re-run spends nothing it cannot
    finish an instance with."""
    server = FakeServer(default=ModelProfile(min_tokens=100, max_tokens=400))
    args = ["moa=moa_lite", "benchmark.limit=40", "budget.max_usd=0.05"]
    with serve_in_thread(server) as url:
        first = run(command(tmp_path, url, *args))
        after_first = len(server.log)
        again = run(command(tmp_path, url, *args))
    assert first.returncode == 3 and again.returncode == 3, first.stderr
    paid = [r for r in ledger(tmp_path, "moa_lite") if not r["cached"]]
    whole = len(outputs(tmp_path, "moa_lite"))
    assert len(paid) == len(server.log) == after_first  # the re-run sent nothing
    assert whole >= (len(paid) // 7) / 2  # the acceptance: half the instances paid for
    spent = sum(r["cost_usd"] for r in paid)
    assert 0.6 * 0.05 < spent <= 0.05
    (line,) = first.stderr.splitlines()
    assert re.match(
        r"moa-bench: stopped: budget\.max_usd=0\.05 reached: \$0\.0\d{3} paid, \$0\.0000 "
        r"reserved by calls in flight, \$0\.0\d{3} left; the next (instance would likely cost|"
        r"call could cost up to) \$0\.0\d{3}",
        line,
    ), line
    assert f"; {whole}/40 instances are saved" in line


def test_earlier_ledgers_count_but_not_their_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    row = {"cached": False, "cost_usd": 0.25}
    path.write_text(f"{json.dumps(row)}\n\n{json.dumps(row)}\n" + '{"cached": fa', "utf-8")
    budget = Budget.from_ledgers(1.0, None, [path])
    assert (budget.calls, budget.spent_usd) == (2, 0.5)  # the blank line is skipped
    with open_append(path) as f:  # cuts the torn tail before appending
        f.write(json.dumps(row) + "\n")
    assert list(read_lines(path)) == [row, row, row]
    whole = tmp_path / "data.jsonl"
    whole.write_text(json.dumps(row) + "\n[1]", "utf-8")
    assert list(read_lines(whole)) == [row]
    with pytest.raises(JsonLinesError, match=r"data.jsonl line 2: not a JSON object"):
        list(read_lines(whole, torn_tail_ok=False))
