"""Judges of today (`conf/judge/`): only the model changes; a judge without logprobs is refused
at its first call, and alpaca-eval's own ranking annotator runs it faithfully instead."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from eval.judges import alpaca_eval as ae
from eval.judges import alpaca_upstream
from eval.settings import CONF_DIR
from moa.errors import ConfigError
from tests.fakes import FakeJudge

PAIRS = [
    ae.Pair(f"instruction {n}", f"baseline {n}", "gpt4_1106_preview", f"ours {n}", "moa")
    for n in range(6)
]


def test_the_presets_change_only_the_model() -> None:
    paper = OmegaConf.load(CONF_DIR / "judge" / "paper.yaml")
    catalogue = OmegaConf.load(CONF_DIR / "catalogue" / "paper.yaml")
    for preset in ("gpt41", "open_weights", "local"):
        judge = OmegaConf.load(CONF_DIR / "judge" / f"{preset}.yaml")
        assert set(judge) == set(paper), preset  # no template, parser or metric setting
        for benchmark in ("alpaca_eval", "mt_bench", "flask", "flask_hard"):
            assert judge[benchmark] in catalogue  # priced, with its address
    assert catalogue["gpt-4.1"]["address"].startswith("openai/")
    assert catalogue["llama-3.3-70b"]["address"].startswith("together/")


async def test_a_judge_without_logprobs_is_refused_after_its_first_call() -> None:
    judge = FakeJudge({"instruction": "m"})  # a text answer, no logprobs
    with pytest.raises(ConfigError) as refused:
        await ae.annotate(judge, PAIRS, judge="openai/gpt-5")
    assert len(judge.calls) == 1
    said = str(refused.value)
    assert "openai/gpt-5 answered without logprobs" in said
    assert f"judge.alpaca_eval_annotator={ae.RANKING_ANNOTATOR}" in said


async def test_the_ranking_annotator_runs_as_alpaca_eval_does() -> None:
    annotator = ae.load_annotator(ae.RANKING_ANNOTATOR)
    first = "[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]"
    judge = FakeJudge({"instruction": first})  # always prefers the output shown first
    annotations = await ae.annotate(judge, PAIRS, judge="openai/gpt-5", annotator=annotator)
    config = annotator.config
    assert config.logprobs is None and config.max_tokens == 100 and config.temperature == 0
    sent = judge.calls[0].messages
    assert sent[0]["role"] == "system" and "ranks models" in sent[0]["content"]
    for a in annotations:  # shown first is output_2 when alpaca-eval switched the pair
        switched = ae.is_switched(a.pair.instruction)
        assert a.preference == (2.0 if switched else 1.0) and a.annotator == ae.RANKING_ANNOTATOR
    assert {a.preference for a in annotations} == {1.0, 2.0}  # both orders occur in six pairs
    assert alpaca_upstream.ranking_parser(first) == [1.0]


async def test_an_unreadable_ranking_is_a_parse_failure() -> None:
    annotator = ae.load_annotator(ae.RANKING_ANNOTATOR)
    judge = FakeJudge({"instruction": "model_2 is better"})
    (annotation,) = await ae.annotate(judge, PAIRS[:1], judge="x/y", annotator=annotator)
    assert annotation.preference is None and annotation.failure is not None
