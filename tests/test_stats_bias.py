"""`eval.stats.bias`: a simulated judge with an injected position bias and length bias, and a
grader whose scores follow length; the estimators recover what was injected."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from eval.report.plots import save
from eval.stats.bias import (
    PairVerdict,
    Position,
    length_curve,
    longer_share,
    position,
    score_length,
)
from eval.stats.plots import length_figure

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
INTERCEPT, LENGTH, FIRST = 0.2, 0.8, 0.6  # log-odds: a's edge, per doubling, for first place


def _judge(rng: np.random.Generator, pairs: int) -> tuple[list[PairVerdict], dict[str, float]]:
    """Each pair judged in both orders by a judge preferring a with log-odds INTERCEPT + LENGTH
    x + FIRST s (x the log2 length ratio, s +1/2 when a is shown first, -1/2 when second); with
    the truths of what the estimators estimate, given these lengths."""
    a_length = np.round(2 ** rng.normal(9, 1, pairs)).astype(int)
    b_length = np.round(2 ** rng.normal(9, 1, pairs)).astype(int)
    x = np.log2((a_length + 1) / (b_length + 1))
    first = expit(INTERCEPT + LENGTH * x + FIRST / 2)  # P(a wins | a shown first)
    second = expit(INTERCEPT + LENGTH * x - FIRST / 2)  # P(a wins | a shown second)
    wins_first, wins_second = rng.random(pairs) < first, rng.random(pairs) < second
    verdicts = [
        PairVerdict(f"p{i}", float(won), shown, int(a_length[i]), int(b_length[i]))
        for i in range(pairs)
        for won, shown in ((wins_first[i], True), (wins_second[i], False))
    ]
    longer = a_length > b_length
    truths = {
        "first": float(np.mean([first, 1 - second])),
        "consistency": float(np.mean(first * second + (1 - first) * (1 - second))),
        "longer": float(np.mean(np.where(longer, [first, second], [1 - first, 1 - second]))),
    }
    return verdicts, truths


def test_a_judge_with_position_and_length_bias_is_caught_within_the_intervals() -> None:
    verdicts, truth = _judge(np.random.default_rng(30), 800)
    curve = length_curve(verdicts)
    assert curve.slope.low <= LENGTH <= curve.slope.high and curve.slope.low > 0.4
    assert curve.position is not None
    assert curve.position.low <= FIRST <= curve.position.high and curve.position.low > 0
    assert curve.intercept.low <= INTERCEPT <= curve.intercept.high
    biases = position(verdicts)
    assert biases.first is not None
    assert biases.first.low <= truth["first"] <= biases.first.high and biases.first.low > 0.5
    assert biases.consistency is not None and biases.consistency.n == 800
    assert biases.consistency.low <= truth["consistency"] <= biases.consistency.high
    longer = longer_share(verdicts)
    assert longer.low <= truth["longer"] <= longer.high and longer.low > 0.5
    # the fitted curve rises through its band, the observed bins beside it
    assert [p.p for p in curve.curve] == sorted(p.p for p in curve.curve)
    assert all(p.low < p.p < p.high for p in curve.curve)
    assert sum(b.n for b in curve.bins) == 1600


def test_the_bias_intervals_cover_in_95_of_100_judges() -> None:
    """Not one lucky judge: 100 simulated judges of 300 pairs each; each interval covers its
    truth about 95 times, or more where it is conservative: Wilson's on pairs of unequal
    chances, and the shares' bootstrap, which resamples the pairs' lengths too while the truth
    holds them fixed."""
    rng = np.random.default_rng(31)
    hits = dict.fromkeys(("slope", "position", "first", "consistency", "longer"), 0)
    for _ in range(100):
        verdicts, truth = _judge(rng, 300)
        curve = length_curve(verdicts)
        biases = position(verdicts, resamples=1000)
        longer = longer_share(verdicts, resamples=1000)
        assert curve.position and biases.first and biases.consistency
        hits["slope"] += curve.slope.low <= LENGTH <= curve.slope.high
        hits["position"] += curve.position.low <= FIRST <= curve.position.high
        hits["first"] += biases.first.low <= truth["first"] <= biases.first.high
        hits["consistency"] += (
            biases.consistency.low <= truth["consistency"] <= biases.consistency.high
        )
        hits["longer"] += longer.low <= truth["longer"] <= longer.high
    assert all(90 <= hit <= 100 for hit in hits.values()), hits


def test_one_order_only_fits_no_position_and_no_consistency() -> None:
    verdicts, _ = _judge(np.random.default_rng(32), 200)
    shown_first = [v for v in verdicts if v.a_first]
    assert length_curve(shown_first).position is None
    assert position(shown_first) == Position(None, None)
    one_pair = position(verdicts[:2]).first  # both orders of one pair: a share, no interval
    assert one_pair is not None and np.isnan(one_pair.low) and np.isnan(one_pair.high)


def test_the_first_place_edge_holds_whatever_the_share_of_each_order() -> None:
    """No position bias, a loses 95% of the time, a shown first 70% of the time: the plain
    share of wins for the first answer is 0.5 + (1 - 2 * 0.7) (0.5 - 0.05) = 0.32; weighing
    the two orders alike gives back 0.5."""
    rng = np.random.default_rng(36)
    pairs = 1000
    shown = rng.random(pairs) < 0.7
    won = (rng.random(pairs) < 0.05).astype(float)
    verdicts = [PairVerdict(f"p{i}", won[i], bool(shown[i]), 100, 100) for i in range(pairs)]
    first = position(verdicts).first
    assert first is not None and first.low <= 0.5 <= first.high
    plain = np.mean(np.where(shown, won, 1 - won))
    assert plain < 0.36


def test_a_graders_score_against_length_is_a_correlation_with_its_interval() -> None:
    """Score = 4 + 0.5 log2(length) + noise (sd 1.5), log2 length ~ N(8, 1.2): r is
    0.6 / sqrt(0.36 + 2.25), about 0.37."""
    rng = np.random.default_rng(33)
    hits, n = 0, 300
    truth = 0.5 * 1.2 / np.sqrt((0.5 * 1.2) ** 2 + 1.5**2)
    for _ in range(100):
        log_length = rng.normal(8, 1.2, n)
        lengths = {str(i): round(2**v) - 1 for i, v in enumerate(log_length)}
        scores = {str(i): 4 + 0.5 * v + rng.normal(0, 1.5) for i, v in enumerate(log_length)}
        found = score_length(scores, lengths)
        hits += found.low <= truth <= found.high
    assert found.n == n and found.method.startswith("Pearson")
    assert 90 <= hits <= 100


def test_the_length_curve_is_drawn_as_fitted(tmp_path: Path) -> None:
    verdicts, _ = _judge(np.random.default_rng(34), 200)
    curve = length_curve(verdicts)
    figure = length_figure(curve, "alpaca_eval, judge gpt-4-turbo, moa")
    ax = figure.axes[0]
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [p.x for p in curve.curve]
    assert list(line.get_ydata()) == [p.p for p in curve.curve]
    assert "moa" in ax.get_title() and "per doubling" in ax.get_title()
    save(figure, tmp_path / "length.png")
    assert (tmp_path / "length.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_published_verdicts_are_read_in_the_order_the_judge_saw(shared_data: Path) -> None:
    """scripts/judge_bias.py on alpaca-eval's published GPT-4 Turbo annotations: the chance it
    gives the answer shown first is the judge's own chance of its first token "m" (the first
    output's name in the prompt, whichever output that was), read from the raw logprobs."""
    spec = importlib.util.spec_from_file_location("judge_bias", SCRIPTS / "judge_bias.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    path = shared_data / "alpaca_eval/annotations/claude-2.weighted_alpaca_eval_gpt4_turbo.json"
    found = script.verdicts(path)
    raw = {row["instruction"]: row["raw_completion"] for row in json.loads(path.read_text())}
    assert len(found) == 805 and 300 < sum(v.a_first for v in found) < 505
    checked = [v for v in found if raw[v.pair]]  # a few were published without it
    assert len(checked) > 700
    for v in checked:
        tokens = raw[v.pair]["logprobs"]["content"][0]["top_logprobs"]
        p = {t["token"]: math.exp(t["logprob"]) for t in tokens if t["token"] in ("m", "M")}
        shown_first_wins = v.a_wins if v.a_first else 1 - v.a_wins
        assert shown_first_wins == pytest.approx(p.get("m", 0) / sum(p.values()), abs=1e-6)
