"""`task=calibrate`: a judge measured against the paper's on its published AlpacaEval judgments
(`../shared/data/alpaca_eval/annotations/`), re-judged through alpaca-eval's own annotator."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from eval.calibrate.judging import calibrate
from eval.calibrate.published import published
from eval.judges import alpaca_eval as ae
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig, TokenLogprob
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, run

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
MODELS = ("claude-2", "alpaca-7b", "gpt4_0613_concise")

# Given the two outputs in the order shown, the preference for the second (1 to 2).
Verdict = Callable[[str, str], float]


class ShownJudge:
    """A judge with logprobs whose preference is `verdict` of the outputs as shown to it."""

    def __init__(self, verdict: Verdict, pairs: Sequence[ae.Pair]) -> None:
        self.verdict = verdict
        self.outputs = [(p.output_1, p.output_2) for p in pairs]
        self.calls = 0

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.calls += 1
        prompt = messages[-1]["content"]
        a, b = next(o for o in self.outputs if o[0] in prompt and o[1] in prompt)
        shown = (a, b) if prompt.index(a) < prompt.index(b) else (b, a)
        p_m = min(max(2 - self.verdict(*shown), 1e-9), 1 - 1e-9)  # alpaca-eval: 2 - P(m)
        top = (("m", math.log(p_m)), ("M", math.log(1 - p_m)))
        completion = Completion("m", 10, 1, "length", (TokenLogprob("m", top[0][1], top),))
        return CallOutcome(completion, CallRecord(key="", model=model, sample=sample))


def _rows(limit: int) -> dict[str, list[ae.Annotation]]:
    return {m: published(m, limit, str(SHARED_DATA), None) for m in MODELS}


async def _calibrate(rows: dict[str, list[ae.Annotation]], verdict: Verdict) -> dict:
    pairs = [a.pair for r in rows.values() for a in r]
    judge = ShownJudge(verdict, pairs)
    return await calibrate(judge, "x/judge", ae.load_annotator(), rows, 0.25)


async def test_the_published_judgments_agree_with_themselves() -> None:
    rows = _rows(40)
    given = {(a.pair.output_1, a.pair.output_2): a.preference for r in rows.values() for a in r}

    def published_verdict(first: str, second: str) -> float:
        if (first, second) in given:
            return float(given[first, second] or 0)
        return 3 - float(given[second, first] or 0)

    result = await _calibrate(rows, published_verdict)
    overall = result["overall"]
    assert overall["n"] == 120 and overall["agreement"] == 1.0 and overall["kappa"] == 1.0
    assert abs(overall["mean_shift"]) < 1e-6
    assert overall["position_consistency"] == {"n": 30, "share": 1.0}
    assert overall["spearman"] == pytest.approx(1.0) and overall["pearson"] == pytest.approx(1.0)
    for model in MODELS:
        rates = result["models"][model]["win_rate"]
        assert rates["new"] == pytest.approx(rates["published"], abs=1e-6)


async def test_a_judge_that_prefers_the_longer_output() -> None:
    rows = _rows(40)
    pairs = [a.pair for r in rows.values() for a in r]
    assert all(len(p.output_1) != len(p.output_2) for p in pairs)  # every pair has a longer one
    assert all(a.preference != 1.5 for r in rows.values() for a in r)  # and a winner

    result = await _calibrate(rows, lambda first, second: 2.0 if len(second) > len(first) else 1.0)
    overall = result["overall"]
    assert overall["length_preference"]["new"] == 1.0
    published_share = overall["length_preference"]["published"]
    assert 0 < published_share < 1 and overall["agreement"] == pytest.approx(published_share)
    assert overall["position_consistency"]["share"] == 1.0  # length does not depend on order


def test_the_embedded_judge_calibrates_end_to_end_offline(tmp_path: Path) -> None:
    args = [
        MOA_BENCH, "task=calibrate", "benchmark=alpaca_eval", "judge=local",
        "calibrate.models=[alpaca-7b]", "calibrate.limit=1", "calibrate.swap_share=0",
        f"calibrate.out_dir={tmp_path / 'calibrate'}", f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'calls.sqlite'}",
    ]  # fmt: skip
    done = run(args, environment(), timeout=900)  # a 135M model: minutes on a loaded CPU
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "calibrate" / "local_smollm2-135m-instruct"
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["judge"] == "local/smollm2-135m-instruct"
    assert calibration["published_judge"] == "openai/gpt-4-1106-preview"
    assert calibration["overall"]["n"] + calibration["overall"]["failed"] == 1
    assert set(calibration["models"]) == {"alpaca-7b"}
    assert calibration["calls"] == 1 and calibration["cost_usd"] == 0.0
    assert "| overall |" in (out / "calibration.md").read_text()
    assert (out / "calibration.png").stat().st_size > 1000
    again = run(args, environment(), timeout=600)  # every call from the cache
    assert again.returncode == 0
    assert json.loads((out / "calibration.json").read_text())["cached"] == calibration["calls"]
