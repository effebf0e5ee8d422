"""AlpacaEval 2.0: 805 single-turn instructions judged against GPT-4 Turbo's reference outputs.

Native file: `model_outputs.json` (usable as `alpaca_eval --model_outputs`); its judge is
`conf/judge_spec/alpaca_eval.yaml`. The paper's ablations (Tables 3 and 4, Figures 4 and 5) are
AlpacaEval numbers: the report writes them for this benchmark's runs (`eval.report.benchmarks`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.benchmarks.fetch import fetch
from eval.rundir import InstanceResult, RunDir, write_atomic

FILE = "alpaca_eval/alpaca_eval_gpt4_baseline.json"
SIZE = 805
OUTPUTS = "model_outputs.json"


def load_alpaca_eval(
    *, data_dir: Path | str | None = None, cache_dir: Path | str | None = None
) -> list[Instance]:
    """The 805 instructions in file order, id = row index, so ids match AlpacaEval's own order."""
    path = fetch(FILE, data_dir=data_dir, cache_dir=cache_dir)
    rows = _read.read_json_records(path)
    _read.check_count(path, len(rows), SIZE, "instructions")
    instances = []
    for n, row in enumerate(rows):
        where = f"record {n + 1}"
        instances.append(
            Instance(
                id=str(n),
                turns=(_read.text(path, row, "instruction", where),),
                category=None,
                references=None,
                meta=MappingProxyType(
                    {
                        "dataset": _read.text(path, row, "dataset", where),
                        "reference_output": _read.text(path, row, "output", where),
                        "reference_generator": _read.text(path, row, "generator", where),
                    }
                ),
            )
        )
    _read.check_unique(path, (i.turns[0] for i in instances), "instruction")
    return instances


def _source(paper: tuple[float | None, str]) -> str:
    """Says so where the paper has no number and the AlpacaEval leaderboard's is shown."""
    return "the leaderboard's" if paper[0] is not None and paper[1] != "paper" else ""


class AlpacaEval(Benchmark):
    name = "alpaca_eval"

    def load(self) -> list[Instance]:
        return load_alpaca_eval(data_dir=self.data.data_dir, cache_dir=self.data.cache_dir)

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
            {
                "instruction": inst.turns[0],
                "output": r.outputs[0],
                "generator": variant,
                "dataset": inst.meta.get("dataset"),
            }
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_atomic(path, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return path


BENCHMARK = AlpacaEval
