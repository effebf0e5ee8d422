"""GSM8K scoring: the gold after `####`, the answer's final number, compared as numbers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eval.verify.gsm8k import final_number, gold_answer, score
from eval.verify.verdict import accuracy


def gsm8k(shared_data: Path) -> list[dict[str, str]]:
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_the_gold_is_the_number_after_the_marker_without_its_commas() -> None:
    assert gold_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert gold_answer("... = 1,450,000\n#### 1,450,000") == "1450000"
    assert gold_answer("#### -3") == "-3"
    with pytest.raises(ValueError, match="without `####`"):
        gold_answer("the answer is 18")


def test_the_final_number_is_on_the_last_marker_line_else_the_last_number() -> None:
    assert final_number("#### 3\nno, wait\n#### 5") == ("5", "the last `####` line")
    assert final_number("So she earns $1,200.\n####  $1,200") == ("1200", "the last `####` line")
    assert final_number("It takes 2 + 1 = 3 bolts.") == ("3", "no `####` line: the last number")
    assert final_number("counts 1,2,3 then 4.5.") == ("4.5", "no `####` line: the last number")
    assert final_number("no idea") == (None, "no number in the answer")
    assert final_number("#### unknown") == (None, "no number on the last `####` line")


def test_numbers_are_compared_as_numbers() -> None:
    assert score("#### 18.00", "18").correct
    assert score("The answer is $18.", "18").correct
    assert not score("#### 19", "18").correct
    verdict = score("I think 7 and then\n#### 1,000", "1000")
    assert (verdict.verdict, verdict.extracted, verdict.gold) == ("correct", "1000", "1000")
    assert verdict.why == "the last `####` line, equal to the gold"
    assert score("nothing", "4").to_json() == {
        "answer": "nothing",
        "extracted": None,
        "gold": "4",
        "verdict": "wrong",
        "why": "no number in the answer",
    }


def test_gold_solutions_score_100_and_off_by_one_answers_0(shared_data: Path) -> None:
    rows = gsm8k(shared_data)
    golds = [gold_answer(row["answer"]) for row in rows]
    assert len(golds) == 1319 and sum("," in row["answer"].split("####")[-1] for row in rows) > 0
    right = [score(row["answer"], gold) for row, gold in zip(rows, golds, strict=True)]
    assert (accuracy(right).correct, accuracy(right).scored) == (1319, 1319)

    def off_by_one(solution: str) -> str:
        body, number = solution.rsplit("#### ", 1)
        return f"{body}#### {int(number.replace(',', '')) + 1:,}"

    wrong = [score(off_by_one(row["answer"]), gold) for row, gold in zip(rows, golds, strict=True)]
    assert accuracy(wrong).correct == 0
    # without the marker, the last number of the solution: the gold's own calculation
    unmarked = [
        score(re.sub(r"#### .*$", "", row["answer"]), gold)
        for row, gold in zip(rows, golds, strict=True)
    ]
    assert accuracy(unmarked).correct > 0.9 * len(rows)
