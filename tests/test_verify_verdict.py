"""The verifiable track's per-instance verdict (one JSON line) and accuracy with its interval."""

from __future__ import annotations

import json
import math

import pytest
from statsmodels.stats.proportion import proportion_confint

from eval.verify.verdict import Verdict, accuracy, accuracy_by


def verdicts(correct: int, wrong: int, errors: int = 0) -> list[Verdict]:
    return (
        [Verdict("\\boxed{1}", "1", "1", "correct", "equal")] * correct
        + [Verdict("\\boxed{2}", "2", "1", "wrong", "not equal")] * wrong
        + [Verdict("\\boxed{1}", "1", "1", "error", "a worker process died")] * errors
    )


def test_a_verdict_is_one_json_line_and_back() -> None:
    verdict = Verdict("no box here", None, "\\frac{1}{2}", "wrong", "no \\boxed{}")
    line = json.dumps(verdict.to_json())
    assert Verdict.from_json(json.loads(line)) == verdict
    assert json.loads(line) == {
        "answer": "no box here",
        "extracted": None,
        "gold": "\\frac{1}{2}",
        "verdict": "wrong",
        "why": "no \\boxed{}",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "maybe"}, "`verdict` must be one of"),
        ({"gold": 3}, "`gold` must be a string"),
        ({"extracted": 3}, "`extracted` must be a string or null"),
    ],
)
def test_a_malformed_verdict_line_is_refused_naming_the_field(
    change: dict[str, object], message: str
) -> None:
    line = {**Verdict("a", "a", "a", "correct", "equal").to_json(), **change}
    with pytest.raises(ValueError, match=message):
        Verdict.from_json(line)


def test_accuracy_has_a_wilson_interval_and_leaves_scorer_errors_out() -> None:
    result = accuracy(verdicts(correct=61, wrong=39, errors=3))
    assert (result.correct, result.scored, result.errors, result.rate) == (61, 100, 3, 0.61)
    low, high = proportion_confint(61, 100, alpha=0.05, method="wilson")  # another library
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert str(result) == "61.0% [51.2, 70.0] (61/100, Wilson 95%, 3 scorer errors left out)"
    at_zero = accuracy(verdicts(correct=0, wrong=40))
    assert at_zero.low == 0 and at_zero.high > 0.08  # an honest width where all fail
    assert math.isnan(accuracy(verdicts(0, 0, errors=2)).rate)


def test_accuracy_by_label() -> None:
    labelled = [("Level 2", v) for v in verdicts(3, 1)] + [("Level 1", v) for v in verdicts(0, 2)]
    result = accuracy_by(labelled)
    assert list(result) == ["Level 1", "Level 2"]
    assert (result["Level 1"].rate, result["Level 2"].rate) == (0.0, 0.75)
