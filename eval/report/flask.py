"""FLASK's (and FLASK-Hard's) part of the report: each skill's average, paired differences, and
Figure 3's radar."""

from __future__ import annotations

from eval.report import plots
from eval.report.pairing import RULE, comparisons
from eval.report.paper_tables import figure3_skills, flask_table
from eval.report.section import Section
from eval.runs import Run


def sections(benchmark: str, label: str, runs: list[Run], section: Section) -> list[str]:
    """The skills table, paired differences and the radar of `benchmark`'s runs (`label`: its
    name as the report prints it, `FLASK-Hard`)."""
    about = plots.describe(label, runs)
    reference = section.reference
    parts = [
        section.table(
            flask_table(runs), f"{benchmark}_skills",
            f"{about}. Each skill's average score (1-5) over the instances that assess it; "
            "empty: no score for it, or the run not wholly judged.\n\n",
            f"{label}: skills",
        ),
        section.table(
            comparisons(runs, reference, section.everyone), f"paired_{benchmark}",
            "Each run minus a run of the reference variant by the same judge on the same "
            "instances, per instance (its mean skill score), with a bootstrap 95% interval "
            f"over the `n_paired` instances both were judged on; `refused`: why not. "
            f"{RULE}\n\n",
            f"Paired differences against {reference} ({label})",
        ),
    ]  # fmt: skip
    skills, drawn, notes = figure3_skills(runs)
    if len(skills):  # an incomplete run has no skills to draw
        title = f"Figure 3: {label} skills (1-5)\n{plots.describe(label, drawn)}"
        parts.append(plots.radar(skills, section.path(f"{benchmark}_radar"), title=title,
                                 notes=notes))  # fmt: skip
    return parts
