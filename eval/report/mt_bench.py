"""MT-Bench's part of the report: Table 2(b), paired differences, and the runs it does not take."""

from __future__ import annotations

from eval.report import plots
from eval.report.pairing import RULE, comparisons
from eval.report.paper_tables import other_runs, table2b
from eval.report.section import Section
from eval.runs import Run


def sections(runs: list[Run], section: Section) -> list[str]:
    """Table 2(b), paired differences against the reference variant, and the other runs."""
    placed = {r.name for r in runs if r.row}
    reference = section.reference
    return [
        section.table(
            table2b(runs), "table2b_mt_bench",
            f"{plots.describe('MT-Bench', runs)}. `n`: the turns scored (two per question); "
            "`ci_low`/`ci_high`: bootstrap 95% interval of the average over them; `paper_*`: "
            "the paper's Table 2(b) (its MoA rows: mean ± std of 3 runs).\n\n",
            "Table 2(b): MT-Bench",
        ),
        section.table(
            comparisons(runs, reference, section.everyone), "paired_mt_bench",
            "Each run minus a run of the reference variant by the same judge on the same "
            "questions, per question and turn, with a bootstrap 95% interval over the "
            f"`n_paired` turns both were judged on; `refused`: why not. {RULE}\n\n",
            f"Paired differences against {reference} (MT-Bench)",
        ),
        section.table(
            other_runs(runs, placed, "average"), "other_mt_bench",
            "Runs Table 2(b) does not take (another variant).\n\n",
            "Other MT-Bench runs",
        ),
    ]  # fmt: skip
