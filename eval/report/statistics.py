"""The statistics part of every benchmark's report (README, "Statistics"): each configuration's
standard error split by source (`eval.report.precision`), and each configuration tested against
the reference's with Holm's correction (`eval.report.paired_tests`), and the judge's biases per
run (`eval.report.judge_biases`)."""

from __future__ import annotations

from eval.report import judge_biases, paired_tests, precision
from eval.report.section import Section
from eval.runs import Run


def sections(benchmark: str, runs: list[Run], section: Section) -> list[str]:
    """Writes the statistics tables of one judge's runs of `benchmark`; returns their Markdown."""
    return [
        section.table(
            precision.precision_table(runs), f"precision_{benchmark}",
            precision.CAPTION + "\n\n", f"Standard errors and their sources ({benchmark})",
        ),
        section.table(
            paired_tests.paired_tests(runs, section.reference), f"tests_{benchmark}",
            paired_tests.CAPTION + "\n\n",
            f"Paired tests against {section.reference}, Holm-corrected ({benchmark})",
        ),
        section.table(
            judge_biases.bias_table(runs), f"judge_bias_{benchmark}",
            judge_biases.CAPTION + "\n\n", f"The judge's biases ({benchmark})",
        ),
        *judge_biases.length_plots(runs, section, benchmark),
    ]  # fmt: skip
