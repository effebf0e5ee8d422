"""Money is honest: only endpoints that bill are paid; free calls are priced apart; unpriced
models are named with how to price them; ledgers written before `billed` read as before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from eval.settings import CONF_DIR, resolve, to_dict
from moa.budget import Budget
from moa.catalogue import Catalogue, unbilled_endpoints
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.ledger import Ledger, price_hint, read_ledger, usd
from moa.types import ChatMessage, GenerateConfig
from tests.conftest import make_client
from tests.kit.fakeserver import FakeServer

CONFIG = GenerateConfig(temperature=0.7, max_tokens=50)
PRICE = {"price_in": 2.0, "price_out": 8.0}
PRICES = Catalogue(
    {
        "paid": {"address": "fake/m", **PRICE},
        "fake": {"address": "scripted/m", **PRICE},
        "published": {"address": "replay/pub", **PRICE},
    },
    ["fake", "scripted", "replay"],
)


def ask(n: int) -> list[ChatMessage]:
    return [{"role": "user", "content": f"Question {n}: name a colour."}]


def client_on(url: str, tmp_path: Path, bills: bool | None = None) -> ModelClient:
    """`make_client` over the fake server, with the prices above and a ledger file."""
    cache = tmp_path / "c.sqlite"
    client = make_client(url, cache) if bills is None else make_client(url, cache, bills=bills)
    client.catalogue = PRICES
    client.ledger = Ledger(tmp_path / "calls.jsonl")
    return client


async def test_scripted_calls_are_free_and_priced_free(tmp_path: Path) -> None:
    """A free endpoint is priced free everywhere: its calls at a catalogue price that is not
    theirs (a stand-in's, a fake's) was money nobody would pay."""
    client = client_on("http://127.0.0.1:9/v1", tmp_path)  # the fake server is never called
    sent = [await client.generate("scripted/m", ask(n), CONFIG) for n in range(2)]
    again = await client.generate("scripted/m", ask(0), CONFIG)
    await client.aclose()
    t = client.ledger.totals
    assert again.record.cached and all(o.ok for o in sent)
    assert [o.record.cost_usd for o in [*sent, again]] == [0.0, 0.0, 0.0]
    assert not any(o.record.billed for o in [*sent, again])
    assert t.cost_usd == 0.0 and t.nominal_usd == 0.0
    assert t.unbilled_endpoints == {"scripted"} and not t.unpriced_models
    assert t.money() == "$0.00 paid; free endpoints (scripted) cost nothing"
    assert [row["billed"] for row in read_ledger(tmp_path / "calls.jsonl")] == [False] * 3


async def test_replayed_calls_are_free(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    rows = [{"instruction": ask(0)[0]["content"], "output": "Blue."}]
    (outputs / "pub.json").write_text(json.dumps(rows), encoding="utf-8")
    client = client_on("http://127.0.0.1:9/v1", tmp_path)
    client.endpoint_specs = {"replay": {"provider": "replay", "outputs_dir": str(outputs)}}
    client.__post_init__()  # the endpoints changed: which of them bill, again
    outcome = await client.generate("replay/pub", ask(0), CONFIG)
    await client.aclose()
    t = client.ledger.totals
    assert outcome.text == "Blue." and not outcome.record.billed and not outcome.record.cached
    assert (t.cost_usd, t.nominal_usd, t.unbilled_endpoints) == (0.0, 0.0, {"replay"})
    assert t.money() == "$0.00 paid; free endpoints (replay) cost nothing"


async def test_a_billing_endpoint_is_paid(
    fake_server: FakeServer, fake_url: str, tmp_path: Path
) -> None:
    client = client_on(fake_url, tmp_path)  # the real `openai` SDK over the loopback server
    sent = [await client.generate("fake/m", ask(n), CONFIG) for n in range(3)]
    again = await client.generate("fake/m", ask(1), CONFIG)
    await client.aclose()
    t = client.ledger.totals
    paid = sum(o.record.cost_usd for o in sent)
    assert len(fake_server.log) == 3 and paid > 0
    assert all(o.record.billed for o in sent)
    assert again.record.cached and not again.record.billed
    assert t.cost_usd == pytest.approx(paid)
    assert t.nominal_usd == pytest.approx(paid + again.record.cost_usd)
    assert not t.unbilled_endpoints
    assert t.money() == (
        f"{usd(paid)} paid; cache hits worth {usd(again.record.cost_usd)} at catalogue prices"
    )
    lines = list(read_ledger(tmp_path / "calls.jsonl"))
    assert [row["billed"] for row in lines] == [True, True, True, False]


async def test_a_self_hosted_endpoint_says_it_does_not_bill(
    fake_server: FakeServer, fake_url: str, tmp_path: Path
) -> None:
    billing = client_on(fake_url, tmp_path / "a")
    free = client_on(fake_url, tmp_path / "b", bills=False)
    paid = await billing.generate("fake/m", ask(0), CONFIG)
    unpaid = await free.generate("fake/m", ask(0), CONFIG)
    await billing.aclose()
    await free.aclose()
    assert len(fake_server.log) == 2 and paid.record.billed and not unpaid.record.billed
    assert unpaid.record.key == paid.record.key  # `bills` is no part of a cache key
    assert free.ledger.totals.cost_usd == 0.0 and paid.record.cost_usd > 0
    assert unpaid.record.cost_usd == 0.0  # priced free
    assert free.ledger.totals.unbilled_endpoints == {"fake"}
    assert free.ledger.totals.money() == "$0.00 paid; free endpoints (fake) cost nothing"


def test_a_bills_setting_must_be_true_or_false(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"endpoints.fake.bills='no' must be true or false"):
        make_client("http://127.0.0.1:9/v1", tmp_path / "c.sqlite", bills="no")


def test_which_configured_endpoints_bill() -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config")
    free = {"vllm", "ollama", "llamacpp", "local", "scripted", "replay"}
    assert unbilled_endpoints(to_dict(cfg.endpoints)) == free
    assert {"together", "openai"} <= set(cfg.endpoints) - free


def test_an_old_ledger_line_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    old = [
        {"key": "a", "model": "scripted/m", "cached": False, "cost_usd": 0.5},
        {"key": "b", "model": "scripted/m", "cached": True, "cost_usd": 0.5},
    ]
    new = [{"key": "c", "model": "scripted/m", "cached": False, "cost_usd": 0.5, "billed": False}]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*old, *new]), encoding="utf-8")
    budget = Budget.from_ledgers(1.0, 10, [path])
    assert (budget.calls, budget.spent_usd) == (2, 0.5)  # the old sent line was paid, as then


async def test_unpriced_models_are_named(fake_url: str, tmp_path: Path) -> None:
    client = client_on(fake_url, tmp_path)
    for address in ("scripted/nameless", "fake/nameless", "scripted/m"):
        await client.generate(address, ask(0), CONFIG)
    await client.aclose()
    t = client.ledger.totals
    # a free endpoint's model needs no price: only the billing endpoint's is named
    assert t.unpriced == 1 and t.unpriced_models == {"fake/nameless"}
    assert t.money().endswith("; no price for fake/nameless: " + price_hint("fake/nameless"))
    assert "conf/catalogue/*.yaml: price_in, price_out per million tokens" in t.money()


def test_the_price_hint_is_an_override_that_works() -> None:
    (override,) = re.findall(r"'(\+catalogue\..*)'", price_hint("ollama/llama3:8b"))
    override = override.replace("<name>", "mine").replace("...", "0.5", 2)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [override])
    entry = resolve(cfg).catalogue.by_address("ollama/llama3:8b")
    assert (entry.name, entry.price_in, entry.price_out) == ("mine", 0.5, 0.5)


def test_dollars_read_at_their_size() -> None:
    assert [usd(x) for x in (0.0, 0.00123, 0.5, 1.234, 12345.6)] == [
        "$0.00",
        "$0.0012",
        "$0.5000",
        "$1.23",
        "$12,345.60",
    ]
