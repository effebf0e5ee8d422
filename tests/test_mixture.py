"""Mixture logic on the scripted fake: layers, sharing, sampling, ranking, turns, policies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from eval.mixture_config import build_mixture
from eval.settings import CONF_DIR, resolve, to_dict
from moa.agents import AGENT_KINDS, KINDS, Agent
from moa.cache import CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.events import RankerFallback
from moa.mixture import Mixture, MixtureSpec
from moa.prompts import RANK_AND_SELECT
from moa.types import ChatMessage, GenerateConfig

CONFIG = GenerateConfig(temperature=0.7, max_tokens=2048)
USER: list[ChatMessage] = [{"role": "user", "content": "Write a limerick about tea."}]


def preset(name: str, *overrides: str) -> MixtureSpec:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"moa={name}", "provider_override=scripted", *overrides])
    return build_mixture(to_dict(cfg.moa), resolve(cfg).catalogue)


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[ModelClient]:
    client = ModelClient(
        {"scripted": {"provider": "scripted"}},
        Catalogue({}, ["scripted"]),
        CallCache(tmp_path / "c.sqlite"),
    )
    yield client
    await client.aclose()


def test_paper_presets_have_the_papers_shape() -> None:
    moa, lite, gpt4o = preset("moa"), preset("moa_lite"), preset("moa_gpt4o")
    assert moa.calls_per_turn == 13 and lite.calls_per_turn == 7
    assert [len(layer) for layer in moa.proposer_layers] == [6, 6]
    assert moa.final.model == "scripted/Qwen/Qwen1.5-110B-Chat"
    assert lite.final.model == "scripted/Qwen/Qwen1.5-72B-Chat"
    assert gpt4o.final.model == "scripted/gpt-4o-2024-05-13"
    single = preset("single_proposer", "moa.n=3")
    assert [(a.model, a.sample) for a in single.proposer_layers[0]] == [
        ("scripted/Qwen/Qwen1.5-110B-Chat", s) for s in range(3)
    ]
    assert single.name == "single_proposer_qwen1.5-110b_n3"
    alone = preset("single", "moa.aggregator=llama-3-70b")
    assert alone.proposer_layers == () and alone.calls_per_turn == 1


def test_bad_presets_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        preset("moa", "moa.aggregator=nope")
    with pytest.raises(ConfigError, match="ranker needs proposals"):
        preset("llm_ranker", "moa.layers=1")


async def test_moa_lite_layer_one_is_moas_layer_one(scripted: ModelClient) -> None:
    moa = await Mixture(preset("moa"), scripted).run_turn(USER, CONFIG)
    before = scripted.ledger.totals.requests
    lite = await Mixture(preset("moa_lite"), scripted).run_turn(USER, CONFIG)
    assert [c.key for c in lite.layers[0]] == [c.key for c in moa.layers[0]]
    assert all(c.cached for c in lite.layers[0])
    # Lite's aggregator (Qwen1.5-72B over layer 1) is the very request MoA's layer-2 Qwen1.5-72B
    # proposer made, so Lite costs nothing once MoA has run.
    assert lite.final is not None and lite.final.key == moa.layers[1][1].key
    assert scripted.ledger.totals.requests == before


async def test_samples_are_distinct_draws(scripted: ModelClient) -> None:
    trace = await Mixture(preset("single_proposer"), scripted).run_turn(USER, CONFIG)
    layer = trace.layers[0]
    assert len({c.key for c in layer}) == 6 and len({c.text for c in layer}) == 6


async def test_later_layers_see_the_previous_layer(scripted: ModelClient) -> None:
    trace = await Mixture(preset("moa"), scripted).run_turn(USER, CONFIG)
    assert len(trace.layers) == 2 and trace.final is not None and trace.output
    assert {c.key for c in trace.layers[0]}.isdisjoint({c.key for c in trace.layers[1]})
    assert scripted.ledger.totals.calls == 13


async def test_ranker_returns_one_proposal_verbatim(scripted: ModelClient) -> None:
    trace = await Mixture(preset("llm_ranker"), scripted).run_turn(USER, CONFIG)
    proposals = [c.text.strip() for c in trace.layers[0] if c.text]
    assert trace.output in proposals and not trace.events


class _Unparseable:
    """Answers every ranker prompt with no number; everything else like the scripted model."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner
        self.ranker_prompts: list[str] = []

    async def generate(self, model, messages, config, *, sample=0, tags=None):  # type: ignore[no-untyped-def]
        outcome = await self.inner.generate(model, messages, config, sample=sample, tags=tags)
        if messages[0]["content"].startswith(RANK_AND_SELECT):
            self.ranker_prompts.append(messages[0]["content"])
            from dataclasses import replace

            assert outcome.completion is not None
            return replace(outcome, completion=replace(outcome.completion, text="the best one"))
        return outcome


async def test_unparseable_pick_falls_back_and_is_recorded(scripted: ModelClient) -> None:
    generator = _Unparseable(scripted)
    trace = await Mixture(preset("llm_ranker"), generator).run_turn(USER, CONFIG)
    assert trace.layers[0][0].text is not None
    assert trace.output == trace.layers[0][0].text.strip()
    assert trace.events == [RankerFallback(0, 1)]
    assert str(trace.events[0]) == "ranker pick unparseable: fell back to response 1"
    assert len(generator.ranker_prompts) == 1


async def test_second_turn_carries_the_first_output(scripted: ModelClient) -> None:
    spec = preset("moa_lite")
    trace = await Mixture(spec, scripted).converse(["Q1", "Q2"], CONFIG)
    assert trace.outputs is not None and len(trace.outputs) == 2
    again = await Mixture(spec, scripted).run_turn(
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": trace.outputs[0]},
            {"role": "user", "content": "Q2"},
        ],
        CONFIG,
    )
    assert again.output == trace.outputs[1] and again.final is not None and again.final.cached


async def test_fail_policy_fails_the_turn(scripted: ModelClient) -> None:
    spec = MixtureSpec.paper(
        "t",
        ((Agent("scripted/a"), Agent("nowhere/b")),),
        Agent("scripted/agg"),
        on_proposer_error="fail",
    )
    with pytest.raises(ConfigError):  # an unknown endpoint is a config error, not a call error
        await Mixture(spec, scripted).run_turn(USER, CONFIG)


def test_every_agent_kind_is_registered_once_with_its_runner(
    scripted: ModelClient,
) -> None:
    """One registry (`moa.agents.AGENT_KINDS`) names the kinds, their roles and placement;
    the mixture runs each of them, and the config refuses a kind where the registry says."""
    mixture = Mixture(preset("moa_lite"), scripted)
    assert set(mixture._runners) == set(AGENT_KINDS) == set(KINDS)
    readers = {name for name, kind in AGENT_KINDS.items() if kind.reads_answers}
    assert readers == {"rank", "critique", "vote", "verify"}
    for name in readers:
        with pytest.raises(ConfigError, match="needs a previous layer's answers"):
            preset("moa_lite", f"moa.layers=[[{{model: dbrx, kind: {name}}}], [{{model: dbrx}}]]")
