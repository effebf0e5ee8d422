"""Issue 26's acceptance: a scripted AlpacaEval judge with a known position bias and length bias
judges a real (scripted) run in both orders; the run's metrics.json `bias` and the report's
judge_bias_alpaca_eval.csv recover both, within their intervals and away from none, and the
first place's share, the consistency and the longer answer's share match what the injected
model implies. Offline: the judge is the scripted fake's, swapped for one with the biases."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eval.judges import alpaca_eval as ae
from eval.judges.pairwise import Pairwise
from eval.report.build import write_report
from moa.types import ChatMessage, Completion, GenerateConfig, TokenLogprob
from tests.kit.cli import SHARED_DATA, scripted_runs

# The injected judge, in `eval.stats.bias.LengthCurve`'s parametrisation: P(ours wins) =
# logistic(INTERCEPT + LENGTH * x + FIRST * s), x = log2((ours + 1) / (reference's + 1)) in
# characters, s = +1/2 when ours is shown first and -1/2 when second.
INTERCEPT, LENGTH, FIRST = 1.0, 0.8, 1.2
LIMIT = 240
RUN = ("benchmark=alpaca_eval", f"benchmark.limit={LIMIT}", "moa=single", "judge.swap_share=1.0")
SHOWN = re.compile(r'"output": """(.*?)"""\n    \}', re.DOTALL)  # the annotator's two outputs
OURS = re.compile(r"\[\S+ #\d+\] On '")  # how the scripted generator's answers begin


def p_ours(ours: int, theirs: int, ours_first: bool) -> float:
    x = math.log2((ours + 1) / (theirs + 1))
    return 1 / (1 + math.exp(-(INTERCEPT + LENGTH * x + FIRST * (0.5 if ours_first else -0.5))))


def biased_judge(
    self: Pairwise,
    messages: Sequence[ChatMessage],
    config: GenerateConfig,
    rng: random.Random,
    tokens: int,
) -> Completion | None:
    """A verdict drawn from the injected model with the call's seeded generator (one per pair
    and order), given as the weighted annotator's first token: "m" the output shown first."""
    shown = SHOWN.findall(messages[-1]["content"]) if config.logprobs else []
    if len(shown) != 2:
        return None
    ours_first = OURS.match(shown[0]) is not None
    ours, theirs = shown if ours_first else shown[::-1]
    assert OURS.match(ours) and not OURS.match(theirs)
    ours_wins = rng.random() < p_ours(len(ours), len(theirs), ours_first)
    token = "m" if ours_wins == ours_first else "M"
    top = ((token, 0.0), ("M" if token == "m" else "m", -40.0))
    return Completion(token, tokens, 1, "length", (TokenLogprob(token, 0.0, top),))


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("needs ../shared/data")
    root = tmp_path_factory.mktemp("injected")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Pairwise, "scripted_answer", biased_judge)
        scripted_runs(root, [RUN])
    write_report(root / "runs", root / "report", reference="moa")
    return root


def implied(annotations: Sequence[ae.Annotation]) -> dict[str, float]:
    """What the injected model implies, in expectation, for the pairs judged: the first place's
    share (the two orders weighed alike), the consistency and the longer answer's share."""
    first, consistent, longer = [], [], []
    for a in annotations:
        ours, theirs = len(a.pair.output_2), len(a.pair.output_1)
        shown_first, shown_second = p_ours(ours, theirs, True), p_ours(ours, theirs, False)
        first.append((shown_first + 1 - shown_second) / 2)
        consistent.append(shown_first * shown_second + (1 - shown_first) * (1 - shown_second))
        if ours != theirs:
            longer += [p if ours > theirs else 1 - p for p in (shown_first, shown_second)]
    return {
        "first": sum(first) / len(first),
        "consistency": sum(consistent) / len(consistent),
        "longer": sum(longer) / len(longer),
    }


def within(found: Mapping[str, Any], value: float) -> bool:
    return bool(found["low"] <= value <= found["high"])


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_the_injected_biases_are_recovered_within_their_intervals(judged: Path) -> None:
    (folder,) = (judged / "runs" / "alpaca_eval").iterdir()
    own = ae.read_annotations(folder / "annotations.json")
    assert len(own) == LIMIT and all(a.pair.output_1 != a.pair.output_2 for a in own)
    bias = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["bias"]
    assert bias["consistency"]["n"] == LIMIT  # every pair judged in both orders
    curve = bias["length_curve"]
    assert within(curve["slope"], LENGTH) and curve["slope"]["low"] > 0
    assert within(curve["position"], FIRST) and curve["position"]["low"] > 0
    assert within(curve["intercept"], INTERCEPT)
    expected = implied(own)
    for share in ("first", "consistency", "longer"):
        assert within(bias[share], expected[share]), (share, bias[share], expected[share])
    assert bias["first"]["low"] > 0.5  # the first place's edge is seen, not only allowed
    (row,) = pd.read_csv(judged / "report" / "judge_bias_alpaca_eval.csv").to_dict("records")
    assert row["length_slope_ci_low"] <= LENGTH <= row["length_slope_ci_high"]
    assert row["length_slope_ci_low"] > 0
    assert row["pairs_swapped"] == LIMIT
    for share in ("first", "consistency", "longer"):
        assert row[f"{share}_ci_low"] <= expected[share] <= row[f"{share}_ci_high"], share
        assert row[share] == pytest.approx(bias[share]["value"])
