"""MATH-500: the answer in a solution's last `\\boxed{}`, graded as prm800k grades it.

Extraction follows the Hendrycks MATH release (`last_boxed_only_string` + `remove_boxed`): the
last `\\boxed`, else the last `\\fbox`, its braces matched however deeply they nest, and its
content taken only when the brace follows the command at once (`\\boxed 5` is not read). The
one departure: the release's `remove_boxed` only strips `\\boxed{`, so an `\\fbox{}` it has
found yields nothing; here it yields its content. Grading (`math_grader.py`) runs in worker
processes, so that a comparison sympy cannot finish costs `timeout_s` and a wrong verdict, never
the event loop.
"""

from __future__ import annotations

from eval.verify.verdict import Decision, Verdict
from eval.verify.workers import Overran, WorkerError, WorkerPool
from moa.errors import ConfigError

COMMANDS = ("\\boxed", "\\fbox")
TIMEOUT_S = 5.0
MEMORY_BYTES = 2 * 2**30


def boxed_answer(text: str) -> tuple[str | None, str]:
    """(the content of the last `\\boxed{}`, "") or (None, why there is none)."""
    for command in COMMANDS:
        start = text.rfind(command)
        if start >= 0:
            break
    else:
        return None, "no \\boxed{}"
    brace = start + len(command)
    if text[brace : brace + 1] != "{":
        return None, f"{command} without a brace after it"
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i], ""
    return None, f"{command}{{ never closed"


class MathGrader:
    """Grades MATH answers in up to `workers` processes, each comparison within `timeout_s`."""

    def __init__(
        self, *, workers: int = 2, timeout_s: float = TIMEOUT_S, memory_bytes: int = MEMORY_BYTES
    ) -> None:
        if workers < 1 or not timeout_s > 0:
            raise ConfigError(
                f"MATH grader: `workers` must be 1 or more and `timeout_s` above 0, "
                f"got {workers} and {timeout_s}"
            )
        self.timeout_s = timeout_s
        self._pool = WorkerPool("eval.verify.math_grader", [str(memory_bytes)], workers)

    async def __aenter__(self) -> MathGrader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def grade(self, given: str, gold: str) -> tuple[Decision, str]:
        """The decision on an extracted answer, and why."""
        try:
            correct, why = await self._pool.ask([given, gold], self.timeout_s)
        except Overran:
            return "wrong", f"the grader gave no answer within {self.timeout_s:g} s"
        except WorkerError as exc:
            return "error", str(exc)
        return ("correct" if correct else "wrong"), why

    async def score(self, answer: str, gold: str) -> Verdict:
        extracted, why = boxed_answer(answer)
        if extracted is None:
            return Verdict(answer, None, gold, "wrong", why)
        decision, why = await self.grade(extracted, gold)
        return Verdict(answer, extracted, gold, decision, why)
