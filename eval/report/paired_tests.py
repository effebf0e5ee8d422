"""Each configuration against the reference's, tested: the paired difference with its interval,
the test its outcome calls for, and Holm's correction across the table (`eval.stats`).

A configuration is its generation repeats with their judge repeats (`eval.report.precision`);
pairs are taken as `eval.report.pairing` takes them (the same judge, the same instances), any
other pair refused with the reason and left out of the family. Only the Holm-adjusted p-value
is ever called significant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from eval.report.frames import frame_of
from eval.report.pairing import refusal
from eval.report.precision import groups, scores_of
from eval.runs import Run
from eval.stats.family import ALPHA, correct
from eval.stats.significance import PERMUTATIONS, Comparison, Outcome, compare

# the judge kind's outcome: a verdict right or wrong, a preference, or a score
OUTCOMES: dict[str, Outcome] = {"exact": "right_wrong", "pairwise": "preference"}

CAPTION = (
    "Each configuration (its generation and judge repeats) minus the reference variant's, by "
    "the same judge on the same instances. `difference`: the mean over the instances both "
    "scored of the difference of their instance means; `diff_ci_low`/`diff_ci_high`: "
    "percentile paired cluster bootstrap, 95%; `se`: cluster-robust; `n_paired`: the clusters "
    "(instances; MT-Bench: questions). `test`: McNemar's exact test for right/wrong outcomes "
    f"judged once, else a paired permutation test ({PERMUTATIONS} random sign flips of the "
    "clusters' differences); `p_value` is that test's, uncorrected; `p_holm` is "
    "Holm-adjusted over the table's tested comparisons, and `verdict` says significant only "
    f"from `p_holm` at {ALPHA:g}. `refused`: why a pair was not taken (not in the family)."
)


def outcome_of(run: Run) -> Outcome:
    """What the run's judge gives per instance (its judge kind's outcome)."""
    kind = run.judgment.task.judging.kind if run.judgment else ""
    return OUTCOMES.get(kind, "score")


def _cells(comparison: Comparison | None) -> dict[str, Any]:
    if comparison is None:
        return {"difference": None, "diff_ci_low": None, "diff_ci_high": None, "se": None,
                "n_paired": None, "test": None, "p_value": None}  # fmt: skip
    diff, test = comparison.difference, comparison.test
    tested = test.n > 0
    return {
        "difference": diff.mean if tested else None,
        "diff_ci_low": diff.low if tested else None,
        "diff_ci_high": diff.high if tested else None,
        "se": None if math.isnan(diff.se) else diff.se,
        "n_paired": diff.n,
        "test": test.method,
        "p_value": test.p_value if tested else None,
    }


def paired_tests(runs: Sequence[Run], reference: str) -> pd.DataFrame:
    """A row per configuration other than the reference's, tested against the reference's of
    its instance selection (or refused, with the reason), Holm-corrected across the table."""
    found = groups(runs)
    bases: dict[str, list[Run]] = {}
    for group in found:
        if group[0].variant == reference:
            bases.setdefault(group[0].subset, group)
    if not bases:
        return pd.DataFrame()
    rows, tested = [], []
    for group in found:
        first = group[0]
        if group is bases.get(first.subset):
            continue
        base = bases.get(first.subset) or next(iter(bases.values()))
        refused = refusal(first, base[0])
        comparison = None
        if not refused:
            outcome = outcome_of(first)
            comparison = compare(scores_of(group), scores_of(base), outcome, name=first.name)
            tested.append(comparison)
        rows.append((group, base, outcome_of(first), comparison, refused))
    verdicts = {id(c.comparison): c for c in correct(tested)}
    table = []
    for group, base, outcome, comparison, refused in rows:
        corrected = verdicts.get(id(comparison)) if comparison is not None else None
        table.append({
            "run": ", ".join(r.name for r in group), "minus": ", ".join(r.name for r in base),
            "judge": group[0].judge_shown, "subset": group[0].subset, "n": group[0].n,
            "outcome": outcome,
            **_cells(comparison),
            "p_holm": None if corrected is None or math.isnan(corrected.p_holm)
            else corrected.p_holm,
            "verdict": corrected.label if corrected is not None else "not tested",
            "refused": refused or None,
        })  # fmt: skip
    return frame_of(table)
