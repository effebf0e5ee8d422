"""GSM8K: 1,319 grade-school word problems, each scored by its final number (no judge).

The reference is the number after the solution's `####` (`eval.verify.gsm8k.gold_answer`); the
whole solution stays in `meta`, so the browser can show it and the gold-answer tests can send it.
"""

from __future__ import annotations

from types import MappingProxyType

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.verifiable import Verifiable
from eval.verify.gsm8k import gold_answer

FILE = "gsm8k/test.jsonl"
SIZE = 1319


class Gsm8k(Verifiable):
    name = "gsm8k"
    # GSM8K's own answer format: the final line `#### <number>`.
    PROMPT = (
        "Solve the following math problem step by step. Write the final answer, a number "
        "alone, on the last line in the form `#### <number>`.\n\n{question}"
    )

    def load(self) -> list[Instance]:
        """The test split in file order, id = its 0-based line number."""
        path = self.data.path(FILE)
        rows = _read.read_jsonl(path)
        _read.check_count(path, len(rows), SIZE, "problems")
        template = self.prompt()
        instances = []
        for n, row in enumerate(rows):
            where = f"record {n + 1}"
            question = _read.text(path, row, "question", where)
            solution = _read.text(path, row, "answer", where)
            try:
                gold = gold_answer(solution)
            except ValueError as exc:
                raise _read.bad(path, f"{where}: {exc}") from None
            instances.append(
                Instance(
                    id=str(n),
                    turns=(template.format(question=question),),
                    category=None,
                    references=(gold,),
                    meta=MappingProxyType({"question": question, "solution": solution}),
                )
            )
        return instances


BENCHMARK = Gsm8k
