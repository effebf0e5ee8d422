"""AlpacaEval 2.0's part of the report: Table 2(a), the paper's ablations (Tables 3 and 4, Figure
4's ranker comparison, found by the sweep axes in the runs' identities), the aggregators on the
published proposals, paired differences, the runs no table takes, and Figures 4 and 5."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eval.report import plots
from eval.report.ablations import (
    in_ablations,
    ranker_cells,
    ranker_gaps,
    ranker_table,
    table3,
    table3_cells,
    table4,
    table4_cells,
)
from eval.report.metric import alpaca_metric
from eval.report.pairing import RULE, comparisons, published_reference, published_table
from eval.report.paper_tables import other_runs, table2a
from eval.report.section import Section
from eval.runs import Run


def sections(runs: list[Run], section: Section) -> list[str]:
    """Table 2a (the paper's variants and single models), Tables 3 and 4 and Figure 4's
    ranker comparison (the ablations, by their identities' sweep axes), the aggregators on
    the published proposals, paired differences, the runs no table takes, and Figures 4
    and 5: LC where every judged run has it, else the raw win rate throughout, said so."""
    metric = alpaca_metric(runs)
    about = f"{plots.describe('AlpacaEval 2.0', runs)}. "
    cells: dict[str, Mapping[Any, Run]] = {
        "table3": table3_cells(runs),
        "table4": table4_cells(runs),
        "ranker": ranker_cells(runs),
    }
    in_cells = {name: list({id(r): r for r in c.values()}.values()) for name, c in cells.items()}
    reference = section.reference
    placed = {r.name for r in runs if r.row or r.published}
    placed |= in_ablations(runs)
    published = [r for r in runs if r.published]
    base = published_reference(published, reference)
    ours = [r for r in runs if not r.published]
    ranker = ranker_table(runs, metric)
    cell_note = (
        "`<cell>_n`, `<cell> 95% CI`, `<cell>_avg_length`: the instances that cell's run "
        "scored, the bootstrap interval of its win rate over them, its mean output length; "
        "the paper's columns: LC. "
    )
    parts = [
        section.table(
            table2a(runs), "table2a_alpaca_eval",
            about + metric.note.strip() + " `ci_low`/`ci_high`: bootstrap 95% interval of "
            "the win rate over instructions; `avg_length`: alpaca-eval's mean output length "
            "in characters; `paper_*`: the paper's Table 2(a) (its MoA rows: mean ± std of 3 "
            "runs); `leaderboard_*`: the AlpacaEval 2.0 leaderboard, the only reference for a "
            "model the paper leaves out (dbrx-instruct).\n\n",
            "Table 2(a): AlpacaEval 2.0",
        ),
        section.table(
            table3(runs, metric), "table3_num_proposers",
            f"{plots.describe('AlpacaEval 2.0', in_cells['table3'])}. {metric.note.strip()} "
            f"{cell_note}\n\n",
            "Table 3: number of proposers (2 layers, Qwen1.5-110B-Chat aggregating)",
        ),
        section.table(
            table4(runs, metric), "table4_roles",
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
            published_table(published, reference, metric), "published_aggregators",
            f"{plots.describe('AlpacaEval 2.0', published)}. {metric.note.strip()} The "
            "proposals are the published outputs, replayed, so only the aggregator differs. "
            f"`difference`: this run minus `{base.name if base else ''}` per instruction (win "
            "100, tie 50, loss 0), with its bootstrap 95% interval over `n_paired` "
            "instructions.\n\n",
            "Aggregators on the published proposals",
        ),
        section.table(
            comparisons(ours, reference, section.everyone), "paired_alpaca_eval",
            "Each run minus a run of the reference variant by the same judge on the same "
            "instructions, per instruction (win 100, tie 50, loss 0), with a bootstrap 95% "
            "interval over the `n_paired` instructions both were judged on; `complete`: both "
            f"wholly judged; `refused`: why not. {RULE}\n\n",
            f"Paired differences against {reference} (AlpacaEval 2.0)",
        ),
        section.table(
            other_runs(runs, placed, "lc_win_rate" if metric.lc else "win_rate",
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
        missing = ranker_gaps(ranker)
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
