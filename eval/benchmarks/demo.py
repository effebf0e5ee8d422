"""The built-in demo set: eight short instructions written for this project, one of them two-turn.

Small enough for the embedded 135M model to answer on two CPU cores in a couple of minutes.
Native file: `outputs.json`; its judge (`conf/judge_spec/demo.yaml`) compares the mixture with
its final model alone, pairwise the AlpacaEval way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.rundir import InstanceResult, RunDir, write_atomic

OUTPUTS = "outputs.json"

DEMO_INSTRUCTIONS: tuple[tuple[str, ...], ...] = (
    ("Give three tips for keeping a houseplant alive.",),
    ("Explain in two sentences why the sky looks blue.",),
    ("Write a haiku about a train arriving at dawn.",),
    ("What is the difference between weather and climate?",),
    ("Suggest a name for a bakery that only sells bread made with rye.",),
    ("List four fruits that are high in vitamin C.",),
    ("A shop sells pens at 3 for 2 dollars. How much do 12 pens cost?",),
    (
        "Plan a short weekend trip to the seaside for two friends.",
        "Now shorten that plan to three bullet points.",
    ),
)


def load_demo(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> list[Instance]:
    """The demo set as instances; it ships with the code, so there is nothing to fetch."""
    return [
        Instance(id=str(i), turns=turns, category=None, references=None, meta={})
        for i, turns in enumerate(DEMO_INSTRUCTIONS, start=1)
    ]


class Demo(Benchmark):
    name = "demo"
    table_per_instance = True

    def load(self) -> list[Instance]:
        return load_demo()

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
            {"id": inst.id, "turns": list(inst.turns), "outputs": r.outputs}
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_atomic(path, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return path


BENCHMARK = Demo
