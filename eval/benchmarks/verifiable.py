"""What the verifiable track's benchmarks share: a prompt template, and a plain outputs file.

GSM8K, MATH-500 and CRUXEval are scored by the `exact` judge kind (no model): each instance's
reference is its gold answer and `meta` holds what the check needs besides (CRUXEval's code).
The prompt template is the module's `PROMPT`, or the YAML's `prompt` where set; `run.json`
records the one used (`prompt`), and every request sent is in the run's traces. Native file:
`outputs.jsonl`, one `{id, output}` line per answered instance; the verdicts are the judge's file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.rundir import InstanceResult, RunDir, write_jsonl
from moa.errors import ConfigError

OUTPUTS = "outputs.jsonl"


class Verifiable(Benchmark):
    # The user message around a question (its `{question}` field), for benchmarks that have one.
    PROMPT: ClassVar[str] = "{question}"

    def prompt(self) -> str:
        """The YAML's `prompt` (else `PROMPT`), holding `{question}`: checked before any call."""
        template = self.settings.get("prompt") or self.PROMPT
        if not isinstance(template, str) or "{question}" not in template:
            raise ConfigError(
                f"benchmark {self.name}: `prompt` must be a text holding {{question}}, "
                f"got {template!r}"
            )
        return template

    def recorded_prompt(self) -> dict[str, str] | None:
        return {"template": self.prompt()}

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native(OUTPUTS)

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {"id": inst.id, "output": r.outputs[-1]}
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path
