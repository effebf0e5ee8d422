"""MATH-500: the 500 MATH test problems of prm800k, the answer in `\\boxed{}` (no judge).

The reference is the dataset's `answer`; subject and level are kept in `meta` (the subject is
also the category, so `benchmark.categories=[Algebra]` selects by it) for the per-subject and
per-level accuracies.
"""

from __future__ import annotations

from types import MappingProxyType

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.verifiable import Verifiable

FILE = "math500/test.jsonl"
SIZE = 500


class Math500(Verifiable):
    name = "math500"
    PROMPT = (
        "Solve the following math problem step by step. Put your final answer within "
        "\\boxed{{}}.\n\n{question}"
    )

    def load(self) -> list[Instance]:
        """The 500 problems in file order, id = `unique_id` (e.g. `test/algebra/1265.json`)."""
        path = self.data.path(FILE)
        rows = _read.read_jsonl(path)
        _read.check_count(path, len(rows), SIZE, "problems")
        template = self.prompt()
        instances = []
        for n, row in enumerate(rows, 1):
            where = f"record {n}"
            problem = _read.text(path, row, "problem", where)
            subject = _read.text(path, row, "subject", where)
            instances.append(
                Instance(
                    id=_read.text(path, row, "unique_id", where),
                    turns=(template.format(question=problem),),
                    category=subject,
                    references=(_read.text(path, row, "answer", where),),
                    meta=MappingProxyType(
                        {
                            "subject": subject,
                            "level": str(_read.integer(path, row, "level", where)),
                            "solution": _read.text(path, row, "solution", where),
                        }
                    ),
                )
            )
        _read.check_unique(path, (i.id for i in instances), "unique_id")
        return instances


BENCHMARK = Math500
