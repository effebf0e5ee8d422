"""`task=plan` counts the requests of the annotator a judge runs: with
`judge.alpaca_eval_annotator` set to alpaca-eval's ranking annotator, its requests (its template,
one per pair as its `batch_size: 1` sends them, its `max_tokens: 100`), not the weighted one's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from eval.generate import judge_address, load_instances, task_of
from eval.judges import alpaca_eval as ae
from eval.settings import resolve
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig
from tests.kit.cli import SHARED_DATA
from tests.test_plan import config, sweep

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
OVERRIDES = ("benchmark=alpaca_eval", "benchmark.limit=4", "judge=open_weights")
RANKING = f"++judge.alpaca_eval_annotator={ae.RANKING_ANNOTATOR}"


class Recorder:
    """A generator that keeps every request (the plan reads no answer)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Sequence[ChatMessage], GenerateConfig]] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.requests.append((model, messages, config))
        completion = Completion("x", 1, 1, "stop")
        return CallOutcome(completion, CallRecord(key="", model=model, sample=sample))


async def test_the_ranking_annotators_requests_are_planned(tmp_path: Path) -> None:
    cfg = resolve(config(tmp_path, *OVERRIDES, RANKING, "moa=single"))
    task = task_of(cfg)
    address = judge_address(cfg, task)
    recorder = Recorder()
    instances = load_instances(cfg, task)
    outputs = [[f"an answer to {i.id}"] for i in instances]
    await task.plan_judge(recorder, address, cfg.spec, instances, outputs)
    ranking = ae.load_annotator(ae.RANKING_ANNOTATOR)
    assert [model for model, _, _ in recorder.requests] == [address] * 4  # one per pair
    assert all(config == ranking.config for _, _, config in recorder.requests)
    assert ranking.config.max_tokens == 100 and not ranking.config.logprobs
    sent = ["\n".join(m["content"] for m in messages) for _, messages, _ in recorder.requests]
    assert all(f"an answer to {i.id}" in text for i, text in zip(instances, sent, strict=True))


async def test_the_plan_prices_the_ranking_annotators_answers(tmp_path: Path) -> None:
    """The weighted annotator answers one token; the ranking one up to 100, so a longer
    estimate of each answer adds output tokens to its calls up to that cap."""
    cfg = resolve(config(tmp_path, *OVERRIDES))
    judge = cfg.catalogue.resolve(task_of(cfg).judge_model(cfg.judge.section))
    assert judge.price_in is not None and judge.price_out is not None
    usd = {}
    for annotator in ("weighted", "ranking"):
        extra = (RANKING,) if annotator == "ranking" else ()
        for tokens in (50, 500):
            (v,) = (await sweep(tmp_path, ["single"], *OVERRIDES, *extra,
                                f"plan.output_tokens={tokens}")).variants  # fmt: skip
            assert v.judge_calls == 4
            usd[annotator, tokens] = v.judge_usd
    more_in = 4 * 450 * judge.price_in / 1e6  # the judged answer, 450 tokens longer
    weighted = usd["weighted", 500] - usd["weighted", 50]
    ranking = usd["ranking", 500] - usd["ranking", 50]
    assert weighted == pytest.approx(more_in)
    assert ranking == pytest.approx(more_in + 4 * (100 - 50) * judge.price_out / 1e6)
