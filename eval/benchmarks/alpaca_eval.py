"""AlpacaEval 2.0: 805 single-turn instructions judged against GPT-4 Turbo's reference outputs."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.fetch import fetch

FILE = "alpaca_eval/alpaca_eval_gpt4_baseline.json"
SIZE = 805


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
