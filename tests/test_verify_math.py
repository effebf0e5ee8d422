"""MATH-500 scoring: the last `\\boxed{}` read as the Hendrycks release reads it, graded with the
semantics of prm800k's grader, which is the oracle here (imported from the shared data)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from eval.verify.math import MathGrader, boxed_answer
from eval.verify.verdict import accuracy, accuracy_by
from moa.errors import ConfigError

# the hard cases the issue names, each a rewriting of a gold answer that some kinds keep equal
# and others make wrong; every pair is graded by both graders
HARD_KINDS = {"frac", "dfrac", "a/b", "text", "unit", "circ", "degrees", "thousands", "braces"}


def math500(shared_data: Path) -> list[dict[str, object]]:
    lines = (shared_data / "math500" / "test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture
def prm800k(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """prm800k's `grading.grader`, imported where it lies, writing nothing there."""
    monkeypatch.syspath_prepend(str(shared_data / "math500"))  # its `from grading import ...`
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # its regexes' invalid escapes
        from grading import grader  # type: ignore[import-not-found]

    assert isinstance(grader, ModuleType)
    return grader


def off_by_one(gold: str) -> str:
    """A wrong answer: the first digit changed, or `+1` where there is no digit."""
    digit = re.search(r"\d", gold)
    if digit is None:
        return gold + "+1"
    i = digit.start()
    return gold[:i] + str((int(gold[i]) + 1) % 10) + gold[i + 1 :]


def variants(gold: str, other: str) -> list[tuple[str, str]]:
    """(kind, answer) rewritings of one gold answer, deterministic; `other` is another gold."""
    found: dict[str, str] = {}

    def add(kind: str, answer: str) -> None:
        if answer != gold and answer not in found.values():
            found[kind] = answer

    add("dfrac", gold.replace("\\frac", "\\dfrac"))
    add("frac", gold.replace("\\dfrac", "\\frac"))
    add("a/b", re.sub(r"\\d?frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", gold))
    add("frac12", re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", gold))
    add("text", f"\\text{{{gold}}}")
    add("unit", gold + "\\text{ cm}")
    add("circ", gold + "^\\circ")
    add("degrees", gold + " degrees")
    add("no spaces", gold.replace(" ", ""))
    add("comma spaces", gold.replace(",", ", "))
    add("no left/right", gold.replace("\\left", "").replace("\\right", ""))
    add("x =", "x = " + gold)
    add("dollar", "\\$" + gold)
    add("percent", gold + "\\%")
    add("braces", "{" + gold + "}")
    add("negated", "-" + gold)
    add("another gold", other)
    add("off by one", off_by_one(gold))
    if re.fullmatch(r"-?\d+", gold):
        n = int(gold)
        add("thousands", f"{n:,}")
        add("thousands \\!", f"{n:,}".replace(",", ",\\!"))
        add(".0", f"{n}.0")
        add("+1", str(n + 1))
        add(".5", f"{n}.5")
    fraction = re.fullmatch(r"\\d?frac\{?(\d+)\}?\{?(\d+)\}?", gold)
    if fraction:
        a, b = int(fraction.group(1)), int(fraction.group(2))
        add("decimal", repr(a / b))
        add("unreduced", f"\\frac{{{2 * a}}}{{{2 * b}}}")
        add("inverted", f"\\frac{{{b}}}{{{a}}}")
    if gold[:1] in "([" and gold[-1:] in ")]":
        add("other bracket", {"(": "[", "[": "("}[gold[0]] + gold[1:])
        add("reversed", gold[0] + ",".join(reversed(gold[1:-1].split(","))) + gold[-1])
    if "pmatrix" in gold:
        add("bmatrix", gold.replace("pmatrix", "bmatrix"))
    return list(found.items())


def test_the_boxed_answer_is_the_last_with_its_braces_matched() -> None:
    assert boxed_answer("so $\\boxed{\\frac{1}{\\sqrt{2}}}$.") == ("\\frac{1}{\\sqrt{2}}", "")
    assert boxed_answer("\\boxed{1} then \\boxed{\\{2, 3\\}}") == ("\\{2, 3\\}", "")
    assert boxed_answer("\\boxed{\\boxed{4}}") == ("4", "")  # the last `\boxed` is the inner one
    assert boxed_answer("\\fbox{7} and no other box") == ("7", "")
    assert boxed_answer("\\fbox{7} \\boxed{8}") == ("8", "")  # `\boxed` before `\fbox`
    assert boxed_answer("the answer is 5") == (None, "no \\boxed{}")
    assert boxed_answer("\\boxed 5") == (None, "\\boxed without a brace after it")
    assert boxed_answer("\\boxed{\\frac{1}{2}") == (None, "\\boxed{ never closed")


def test_the_gold_solutions_box_the_gold_answers(shared_data: Path) -> None:
    for row in math500(shared_data):
        assert boxed_answer(str(row["solution"])) == (row["answer"], "")


async def test_our_grader_agrees_with_prm800ks_on_every_pair(
    shared_data: Path, prm800k: ModuleType
) -> None:
    golds = [str(row["answer"]) for row in math500(shared_data)]
    pairs = [("gold", gold, gold) for gold in golds]
    for i, gold in enumerate(golds):
        other = golds[(i + 1) % len(golds)]
        pairs += [(kind, answer, gold) for kind, answer in variants(gold, other)]
    kinds = Counter(kind for kind, _, _ in pairs)
    assert len(pairs) >= 1000 and kinds.keys() >= HARD_KINDS, kinds
    expected = [prm800k.grade_answer(answer, gold) for _, answer, gold in pairs]
    async with MathGrader(timeout_s=120) as grader:  # no timeout may decide here
        graded = await asyncio.gather(*(grader.grade(answer, gold) for _, answer, gold in pairs))
    ours = [decision == "correct" for decision, _ in graded]
    differ = [(p, e) for p, e, o in zip(pairs, expected, ours, strict=True) if e != o]
    assert differ == [], f"{len(differ)} of {len(pairs)} differ, e.g. {differ[:5]}"
    assert all(decision != "error" for decision, _ in graded)
    both = Counter((kind, e) for (kind, _, _), e in zip(pairs, expected, strict=True))
    assert both[("unreduced", False)] > 0 and both[("thousands", True)] > 0  # both sides occur
    assert both[("off by one", True)] == 0


async def test_gold_answers_score_100_and_off_by_one_answers_0(shared_data: Path) -> None:
    rows = math500(shared_data)
    async with MathGrader() as grader:
        gold = await asyncio.gather(
            *(grader.score(str(row["solution"]), str(row["answer"])) for row in rows)
        )
        wrong = await asyncio.gather(
            *(
                grader.score(f"So \\boxed{{{off_by_one(str(row['answer']))}}}.", str(row["answer"]))
                for row in rows
            )
        )
    assert (accuracy(gold).correct, accuracy(gold).scored) == (500, 500)
    assert str(accuracy(gold)) == "100.0% [99.2, 100.0] (500/500, Wilson 95%)"
    assert (accuracy(wrong).correct, accuracy(wrong).scored) == (0, 500)
    by_subject = accuracy_by((str(row["subject"]), v) for row, v in zip(rows, gold, strict=True))
    assert {subject: a.scored for subject, a in by_subject.items()} == {
        "Algebra": 124,
        "Counting & Probability": 38,
        "Geometry": 41,
        "Intermediate Algebra": 97,
        "Number Theory": 62,
        "Prealgebra": 82,
        "Precalculus": 56,
    }
    by_level = accuracy_by((f"Level {row['level']}", v) for row, v in zip(rows, wrong, strict=True))
    assert [(level, a.correct, a.scored) for level, a in by_level.items()] == [
        ("Level 1", 0, 43),
        ("Level 2", 0, 90),
        ("Level 3", 0, 105),
        ("Level 4", 0, 128),
        ("Level 5", 0, 134),
    ]


async def test_an_answer_without_a_box_is_wrong_and_says_so() -> None:
    async with MathGrader() as grader:
        verdict = await grader.score("The answer is 5.", "5")
    assert (verdict.verdict, verdict.extracted, verdict.why) == ("wrong", None, "no \\boxed{}")


async def test_sympy_that_would_run_for_ever_is_cut_off_and_the_grader_goes_on() -> None:
    # the reference has no time limit: 9**9**9 has 370 million digits, and sympy computes them
    async with MathGrader(timeout_s=1) as grader:
        started = time.monotonic()
        assert await grader.grade("9**9**9", "\\frac{1}{2}") == (
            "wrong",
            "the grader gave no answer within 1 s",
        )
        assert time.monotonic() - started < 60  # generous: 1 s, then the kill
        assert await grader.grade("\\frac{2}{4}", "\\frac12") == (
            "wrong",
            "fraction 2/4 is not 1/2",
        )
        assert await grader.grade("x+1", "1+x") == ("correct", "equal under sympy")


async def test_a_grader_process_that_dies_is_an_error_not_a_wrong_answer() -> None:
    async with MathGrader(timeout_s=120) as grader:
        grading = asyncio.create_task(grader.grade("9**9**9", "\\frac{1}{2}"))
        while not grader._pool._live:  # the worker this request starts
            await asyncio.sleep(0.05)
        (worker,) = grader._pool._live
        await asyncio.sleep(0.5)
        worker.kill()
        decision, why = await grading
        assert decision == "error" and why.startswith("a worker process (eval.verify.math_grader)")
        assert await grader.grade("1/2", "\\frac12") == (
            "correct",
            "equal after the MATH normalisation",
        )


def test_a_grader_without_workers_or_time_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="`workers` must be 1 or more and `timeout_s` above 0"):
        MathGrader(workers=0)
    with pytest.raises(ConfigError, match="got 2 and 0"):
        MathGrader(timeout_s=0)


async def test_a_grader_process_that_cannot_start_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def out_of_processes(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", out_of_processes)
    async with MathGrader() as grader:
        verdict = await grader.score("\\boxed{5}", "5")
    assert (verdict.verdict, verdict.why) == (
        "error",
        "a worker process (eval.verify.math_grader) could not start: "
        "[Errno 11] Resource temporarily unavailable",
    )
