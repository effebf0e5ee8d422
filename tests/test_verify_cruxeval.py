"""CRUXEval scoring: the reference's prompts and answer reading, and agreement with its
`utils_execute.check_correctness` (the oracle, run from the shared data) on all 800 functions."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from multiprocessing import get_context
from pathlib import Path

import pytest

from eval.verify import cruxeval_prompts as prompts
from eval.verify.cruxeval import CruxEvalScorer, check_program, extract
from eval.verify.sandbox import Sandbox
from eval.verify.verdict import accuracy
from tests.kit.cruxeval_oracle import reference_check


def cruxeval(shared_data: Path) -> list[dict[str, str]]:
    lines = (shared_data / "cruxeval" / "cruxeval.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def perturbed(literal: str) -> str:
    """Another value of the same kind: a number off by one, a character more, an item more."""
    value = ast.literal_eval(literal)
    if isinstance(value, bool):
        return repr(not value)
    if isinstance(value, int | float):
        return repr(value + 1)
    if isinstance(value, str):
        return repr(value + "x")
    if isinstance(value, bytes):
        return repr(value + b"x")
    if isinstance(value, list | tuple):
        return repr(value + type(value)([0]))
    if isinstance(value, dict):
        return repr({**value, ("perturbed",): 0})
    raise AssertionError(f"no perturbation for {literal}")


# sha256 of prompts.py's make_{direct,cot}_{output,input}_prompt(("{code}", "{input}" or
# "{output}")) at facebookresearch/cruxeval@190faf1, and of openai_prompt.py's system prompt
PROMPT_SHA256 = {
    "OUTPUT_DIRECT": "a6d1853d8a720e81543bc910e95f3c8a24c1ade83439764968a1d89bc00ffb09",
    "OUTPUT_COT": "c4bd69547b35ab664e699bfc7b5a90eef06cf3b7b8ac5cb4ca211dd0c52c9fe6",
    "INPUT_DIRECT": "2c0eab4cbc13a94c0841af6002f08b037243aa45dcce39a01d6325b95c98c3e0",
    "INPUT_COT": "3d9813aec4d02ff870d65e6117395acba94ab8fed433b9e2bc998e179c23aada",
    "SYSTEM": "fe01db3bfe1094201ee3f29d7089accfa28d12b9567c15ef59a09e976b3cdb77",
}


def test_the_prompts_are_the_references_word_for_word() -> None:
    for name, digest in PROMPT_SHA256.items():
        assert hashlib.sha256(getattr(prompts, name).encode()).hexdigest() == digest, name
    shown = prompts.OUTPUT_DIRECT.format(code="def f(a):\n    return {a: 1}", input="'k'")
    assert shown.endswith(
        "[PYTHON]\ndef f(a):\n    return {a: 1}\nassert f('k') == ??\n[/PYTHON]\n[ANSWER]\n"
    )
    assert prompts.INPUT_COT.format(code="def f(x): ...", output="3").endswith(
        "assert f(??) == 3\n[/PYTHON]\n[THOUGHT]\n"
    )


def test_predictions_are_read_as_the_reference_chat_script_reads_them() -> None:
    assert extract("assert f(17) == 17\n[/ANSWER]", "output", cot=False) == "17"
    assert (
        extract("[ANSWER]\nassert f('a') == 'ab'\n[/ANSWER]\nmore", "output", cot=False) == "'ab'"
    )
    assert extract("'ab'", "output", cot=False) == "'ab'"  # no assertion: the whole answer
    assert extract("assert f(['a', 'b']) == 3", "input", cot=False) == "f(['a', 'b'])"
    assert extract("f(1, 2)", "input", cot=False) == "f(1, 2)"
    thought = "[THOUGHT]\nx becomes 2\n[/THOUGHT]\n[ANSWER]\nassert f(1) == 2\n[/ANSWER]"
    assert extract(thought, "output", cot=True) == "2"
    assert extract(thought, "input", cot=True) == "f(1)"
    assert extract("step one\nstep two\nso: 42", "output", cot=True) == "so: 42"  # its last line
    # only the text between the first `==` and the next one is the output, as the reference splits
    assert extract("assert f(1) == 2 == 2", "output", cot=False) == "2"


def test_the_reference_refuses_some_predictions_without_running_them() -> None:
    code, given, output = "def f(x):\n    return x", "[1]", "[1]"
    assert check_program(code, given, output, "f([1])", "output") is None  # the call itself
    assert check_program(code, given, output, "[1]", "input") is None  # no call to f
    assert check_program(code, given, output, "f([1])", "input") == f"{code}\nassert [1] == f([1])"
    assert check_program(code, given, output, "[1]", "output") == f"{code}\nassert [1] == [1]"


async def test_refused_predictions_are_wrong_and_say_why() -> None:
    code = "def f(x):\n    return x"
    outputs, inputs = CruxEvalScorer("output"), CruxEvalScorer("input")
    verdict = await outputs.score("assert f(3) == f(3)", code=code, input="3", output="3")
    assert (verdict.verdict, verdict.why) == ("wrong", "not run: the prediction calls f(3) itself")
    verdict = await inputs.score("3", code=code, input="3", output="3")
    assert (verdict.verdict, verdict.why) == ("wrong", "not run: the prediction has no call f(...)")


async def test_our_scorer_agrees_with_utils_execute_on_800_gold_and_800_perturbed_outputs(
    shared_data: Path,
) -> None:
    rows = cruxeval(shared_data)
    answers = [row["output"] for row in rows] + [perturbed(row["output"]) for row in rows]
    programs = [
        check_program(row["code"], row["input"], row["output"], answer, "output")
        for row, answer in zip(rows + rows, answers, strict=True)
    ]
    assert None not in programs  # none of these is refused unrun
    started = time.monotonic()
    evaluation = str(shared_data / "cruxeval" / "evaluation")
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        expected = list(pool.map(reference_check, programs, repeat(evaluation), chunksize=20))
    oracle_s = time.monotonic() - started
    scorer = CruxEvalScorer("output", sandbox=Sandbox(concurrency=2))
    verdicts = await asyncio.gather(
        *(
            scorer.score(f"assert f({row['input']}) == {answer}", **row_fields(row))
            for row, answer in zip(rows + rows, answers, strict=True)
        )
    )
    ours = [verdict.correct for verdict in verdicts]
    differ = [(rows[i % 800]["id"], answers[i]) for i in range(1600) if ours[i] != expected[i]]
    assert differ == [], f"{len(differ)} differ, e.g. {differ[:5]}"
    assert accuracy(verdicts[:800]).correct == 800  # gold outputs: 100%
    assert accuracy(verdicts[800:]).correct == 0  # perturbed: 0%
    assert all(v.why.startswith("failed: AssertionError") for v in verdicts[800:])
    print(f"oracle {oracle_s:.0f} s, ours {time.monotonic() - started - oracle_s:.0f} s")


async def test_gold_inputs_score_100(shared_data: Path) -> None:
    rows = cruxeval(shared_data)
    scorer = CruxEvalScorer("input", sandbox=Sandbox(concurrency=2))
    verdicts = await asyncio.gather(
        *(
            scorer.score(f"assert f({row['input']}) == {row['output']}", **row_fields(row))
            for row in rows
        )
    )
    wrong = [(row["id"], v.why) for row, v in zip(rows, verdicts, strict=True) if not v.correct]
    assert wrong == []
    assert verdicts[0].extracted == f"f({rows[0]['input']})"
    assert verdicts[0].gold == rows[0]["input"]


def row_fields(row: dict[str, str]) -> dict[str, str]:
    return {"code": row["code"], "input": row["input"], "output": row["output"]}


@pytest.mark.parametrize("literal", ["True", "3", "2.5", "'ab'", "b'x'", "[1]", "(1,)", "{1: 2}"])
def test_a_perturbed_literal_is_another_value(literal: str) -> None:
    assert ast.literal_eval(perturbed(literal)) != ast.literal_eval(literal)
