"""AlpacaEval 2.0: 805 single-turn instructions judged against GPT-4 Turbo's reference outputs.

Native file: `model_outputs.json` (usable as `alpaca_eval --model_outputs`); its judge is
`conf/judge_spec/alpaca_eval.yaml`. The paper's ablations (Tables 3 and 4, Figures 4 and 5) are
AlpacaEval numbers, so this benchmark's report writes them too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from eval.benchmarks import _read
from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark, Figure
from eval.benchmarks.fetch import fetch
from eval.judges.common import is_complete
from eval.rundir import InstanceResult, RunDir, write_atomic

if TYPE_CHECKING:
    from eval.report_section import Section
    from eval.tables import Run

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

    def figures(
        self, variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]
    ) -> list[Figure]:
        """LC win rate (interval: alpaca-eval's standard error, times 1.96) and win rate
        (bootstrap over instructions), each beside the paper's Table 2a; a partial set's win
        rate is its judged part's."""
        from eval import tables

        if not is_complete(metrics):
            partial = metrics.get("partial") or {}
            rate = partial.get("win_rate")
            return [Figure("win rate", rate, note="partial")] if rate is not None else []
        figures = []
        lc, se = metrics.get("length_controlled_winrate"), metrics.get("lc_standard_error")
        if lc is not None:
            low, high = (lc - 1.96 * se, lc + 1.96 * se) if se is not None else (None, None)
            paper = tables.paper_table2a(variant, tables.Metric(tables.LC_KEY, "LC"))
            figures.append(Figure("LC win rate", float(lc), low, high, paper[0], _source(paper)))
        paper = tables.paper_table2a(variant, tables.Metric("win_rate", "win rate"))
        rate = Figure.over("win rate", metrics.get("win_rate"), scores.values(), paper[0])
        return [*figures, dataclasses.replace(rate, note=_source(paper))]

    def report(self, runs: list[Run], section: Section) -> list[str]:
        """Table 2a (the paper's variants and single models), Tables 3 and 4 and Figure 4's
        ranker comparison (the ablations, by their identities' sweep axes), the aggregators on
        the published proposals, paired differences, the runs no table takes, and Figures 4
        and 5: LC where every judged run has it, else the raw win rate throughout, said so."""
        from eval import plots, tables

        metric = tables.alpaca_metric(runs)
        about = f"{plots.describe('AlpacaEval 2.0', runs)}. "
        cells: dict[str, Mapping[Any, Run]] = {
            "table3": tables.table3_cells(runs),
            "table4": tables.table4_cells(runs),
            "ranker": tables.ranker_cells(runs),
        }
        in_cells = {
            name: list({id(r): r for r in c.values()}.values()) for name, c in cells.items()
        }
        reference = section.reference
        placed = {r.name for r in runs if r.row or r.published}
        placed |= tables.in_ablations(runs)
        published = [r for r in runs if r.published]
        base = tables.published_reference(published, reference)
        ours = [r for r in runs if not r.published]
        ranker = tables.ranker_table(runs, metric)
        cell_note = (
            "`<cell>_n`, `<cell> 95% CI`, `<cell>_avg_length`: the instances that cell's run "
            "scored, the bootstrap interval of its win rate over them, its mean output length; "
            "the paper's columns: LC. "
        )
        parts = [
            section.table(
                tables.table2a(runs), "table2a_alpaca_eval",
                about + metric.note.strip() + " `ci_low`/`ci_high`: bootstrap 95% interval of "
                "the win rate over instructions; `avg_length`: alpaca-eval's mean output length "
                "in characters; `paper_*`: the paper's Table 2(a) (its MoA rows: mean ± std of 3 "
                "runs); `leaderboard_*`: the AlpacaEval 2.0 leaderboard, the only reference for a "
                "model the paper leaves out (dbrx-instruct).\n\n",
                "Table 2(a): AlpacaEval 2.0",
            ),
            section.table(
                tables.table3(runs, metric), "table3_num_proposers",
                f"{plots.describe('AlpacaEval 2.0', in_cells['table3'])}. {metric.note.strip()} "
                f"{cell_note}\n\n",
                "Table 3: number of proposers (2 layers, Qwen1.5-110B-Chat aggregating)",
            ),
            section.table(
                tables.table4(runs, metric), "table4_roles",
                f"{plots.describe('AlpacaEval 2.0', in_cells['table4'])}. {metric.note.strip()} "
                f"{cell_note}\n\n",
                "Table 4: each model as the aggregator and as the only proposer (2 layers)",
            ),
            section.table(
                ranker, "figure4_ranker",
                f"{plots.describe('AlpacaEval 2.0', in_cells['ranker'])}. {metric.note.strip()} "
                "`<cell>_n`: the instances that cell's run scored. `paper_aggregate`: the paper's "
                "tables' value, of our scores' kind, for the same configuration (1 layer: Table "
                "2a Qwen1.5 110B Chat; 2: Table 3, six proposers, LC only; 3: Table 2a MoA); the "
                "paper tabulates no Figure 4 value, and no ranker value at all.\n\n",
                "Figure 4(a): aggregating vs ranking, by layers",
            ),
            section.table(
                tables.published_table(published, reference, metric), "published_aggregators",
                f"{plots.describe('AlpacaEval 2.0', published)}. {metric.note.strip()} The "
                "proposals are the published outputs, replayed, so only the aggregator differs. "
                f"`difference`: this run minus `{base.name if base else ''}` per instruction (win "
                "100, tie 50, loss 0), with its bootstrap 95% interval over `n_paired` "
                "instructions.\n\n",
                "Aggregators on the published proposals",
            ),
            section.table(
                tables.comparisons(ours, reference, section.everyone), "paired_alpaca_eval",
                "Each run minus a run of the reference variant by the same judge on the same "
                "instructions, per instruction (win 100, tie 50, loss 0), with a bootstrap 95% "
                "interval over the `n_paired` instructions both were judged on; `complete`: both "
                f"wholly judged; `refused`: why not. {tables.PAIRING}\n\n",
                f"Paired differences against {reference} (AlpacaEval 2.0)",
            ),
            section.table(
                tables.other_runs(runs, placed, "lc_win_rate" if metric.lc else "win_rate",
                                  metric.of),
                "other_alpaca_eval",
                "Runs no table of the paper takes (another variant or sweep).\n\n",
                "Other AlpacaEval 2.0 runs",
            ),
        ]  # fmt: skip
        for name, attribute, label in (
            ("figure5_cost", "cost_per_instance", "USD per instance"),
            ("figure5_tflops", "tflops_per_instance", "TFLOPs per instance"),
        ):
            title = f"Figure 5: {metric.name} vs {label}\n{plots.describe('AlpacaEval 2.0', runs)}"
            parts.append(plots.pareto(runs, section.path(name), attribute, label, metric,
                                      title=title))  # fmt: skip
        if len(ranker):
            title = "Figure 4(a): aggregating vs ranking, by layers\n" + plots.describe(
                "AlpacaEval 2.0", in_cells["ranker"]
            )
            missing = tables.ranker_gaps(ranker)
            notes = [
                "The paper's LLM-ranker curve is not tabulated in the paper: not drawn. Its "
                "aggregator points are its tables' values for the same configurations "
                "(1 layer: Table 2a Qwen1.5 110B Chat; 2: Table 3, n = 6, LC only; 3: Table 2a "
                "MoA).",
                *([f"Not drawn: {'; '.join(missing)}."] if missing else []),
            ]
            parts.append(plots.ranker(ranker, section.path("figure4_ranker"),
                                      ylabel=plots.win_rate_label(metric), title=title,
                                      notes=notes))  # fmt: skip
        return parts


BENCHMARK = AlpacaEval
