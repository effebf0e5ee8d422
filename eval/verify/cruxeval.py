"""CRUXEval: a predicted output or input, checked by running the assertion it completes.

Scored as the reference scores (facebookresearch/cruxeval @ 190faf1): the prediction is read out
of the answer as its chat script reads it (`openai/openai_prompt.py`, after the `[/ANSWER]` its
requests stop at); `evaluation/utils_general.evaluate_score` then refuses, without running it, an
output prediction that contains the call `f(<input>)` itself and an input prediction with no
`f(`, and otherwise runs `<code>\\nassert <output> == <prediction>` (for input prediction the
prediction is the call `f(...)`), which passes when it raises nothing within 3 s
(`utils_execute.check_correctness`). The run happens in `sandbox.py`, never in this process.
"""

from __future__ import annotations

from typing import Literal

from eval.verify.cruxeval_prompts import STOP
from eval.verify.sandbox import Sandbox
from eval.verify.verdict import Decision, Verdict

Mode = Literal["output", "input"]
ANSWER_TAG = "[ANSWER]"


def extract(answer: str, mode: Mode, *, cot: bool) -> str:
    """The prediction in an answer to the direct (`cot=False`) or chain-of-thought prompt."""
    text = answer.split(STOP)[0]
    if cot:
        if ANSWER_TAG not in text:
            return text.split("\n")[-1].strip()
        text = text.split(ANSWER_TAG)[1].strip()
    if mode == "output":
        return (text.split("==")[1] if "==" in text else text).strip()
    if "==" in text:
        text = text.split("==")[0].strip()
    if "assert f" in text:
        text = "f" + text.split("assert f")[1].strip()
    return text.strip()


def check_program(code: str, given: str, output: str, prediction: str, mode: Mode) -> str | None:
    """The program the reference runs, or None where it refuses the prediction unrun."""
    if mode == "input" and "f(" not in prediction:
        return None
    if mode == "output" and f"f({given})" in prediction:
        return None
    return f"{code}\nassert {output} == {prediction}"


class CruxEvalScorer:
    """Scores one task's answers (`mode`: output or input prediction) in a sandbox."""

    def __init__(self, mode: Mode, *, cot: bool = False, sandbox: Sandbox | None = None) -> None:
        self.mode = mode
        self.cot = cot
        self._sandbox = sandbox or Sandbox()

    async def score(self, answer: str, *, code: str, input: str, output: str) -> Verdict:
        """`code`, `input` and `output` as the dataset has them; the gold is the side asked for."""
        gold = output if self.mode == "output" else input
        prediction = extract(answer, self.mode, cot=self.cot)
        decision, why = await self.check(prediction, code=code, input=input, output=output)
        return Verdict(answer, prediction, gold, decision, why)

    async def check(
        self, prediction: str, *, code: str, input: str, output: str
    ) -> tuple[Decision, str]:
        program = check_program(code, input, output, prediction, self.mode)
        if program is None:
            refused = f"calls f({input}) itself" if self.mode == "output" else "has no call f(...)"
            return "wrong", f"not run: the prediction {refused}"
        outcome = await self._sandbox.run(program)
        if outcome.status == "error":
            return "error", outcome.reason
        if outcome.passed:
            return "correct", "the assertion holds"
        return "wrong", f"{outcome.status}: {outcome.reason}" if outcome.reason else outcome.status
