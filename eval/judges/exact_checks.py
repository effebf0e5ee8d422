"""The checks the `exact` judge kind runs, by the name a spec's `check` gives.

A check scores one answer against one instance (its reference is the gold; `meta` holds what
else the check needs, CRUXEval's code) and holds the processes it scores in (MATH's sympy
workers, CRUXEval's sandbox) until `aclose`. `extract` reads the final answer alone, with no
process, for the `vote` agent kind and the browser.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from eval.benchmarks.base import Instance
from eval.verify import gsm8k, math
from eval.verify.cruxeval import CruxEvalScorer, Mode
from eval.verify.cruxeval import extract as crux_extract
from eval.verify.verdict import Verdict


class Check(Protocol):
    async def score(self, answer: str, instance: Instance) -> Verdict: ...

    async def aclose(self) -> None: ...


def gold(instance: Instance) -> str:
    return (instance.references or ("",))[0]


class Gsm8kCheck:
    async def score(self, answer: str, instance: Instance) -> Verdict:
        return gsm8k.score(answer, gold(instance))

    async def aclose(self) -> None:
        return None


class MathCheck:
    def __init__(self) -> None:
        self._grader = math.MathGrader()

    async def score(self, answer: str, instance: Instance) -> Verdict:
        return await self._grader.score(answer, gold(instance))

    async def aclose(self) -> None:
        await self._grader.aclose()


class CruxEvalCheck:
    def __init__(self, mode: Mode, *, cot: bool) -> None:
        self._scorer = CruxEvalScorer(mode, cot=cot)

    async def score(self, answer: str, instance: Instance) -> Verdict:
        meta = instance.meta
        return await self._scorer.score(
            answer, code=meta["code"], input=meta["input"], output=meta["output"]
        )

    async def aclose(self) -> None:
        return None


# Each made from the benchmark's config section (CRUXEval's `cot` picks how to read answers).
CHECKS: Mapping[str, Callable[[Mapping[str, Any]], Check]] = {
    "gsm8k": lambda settings: Gsm8kCheck(),
    "math": lambda settings: MathCheck(),
    "cruxeval_output": lambda settings: CruxEvalCheck("output", cot=bool(settings.get("cot"))),
    "cruxeval_input": lambda settings: CruxEvalCheck("input", cot=bool(settings.get("cot"))),
}


def extractor(check: str, settings: Mapping[str, Any]) -> Callable[[str], str | None]:
    """The final answer of a text as `check` reads it, or None where it finds none."""
    if check == "gsm8k":
        return lambda answer: gsm8k.final_number(answer)[0]
    if check == "math":
        return lambda answer: math.boxed_answer(answer)[0]
    mode: Mode = "output" if check == "cruxeval_output" else "input"
    cot = bool(settings.get("cot"))
    return lambda answer: crux_extract(answer, mode, cot=cot) or None
