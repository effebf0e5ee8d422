"""The judge's biases per run in the report (`eval.judge_bias`): a table, and for a pairwise
judge the preference by length ratio drawn per run."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from eval.judge_bias import _pairwise, bias_of, pair_verdicts
from eval.report.frames import frame_of
from eval.report.plots import save
from eval.report.section import Section
from eval.runs import Run
from eval.stats.bias import length_curve
from eval.stats.plots import length_figure

CAPTION = (
    "The judge's own biases, per run (lengths in characters). Pairwise judges: `first`, the "
    "chance the answer shown first wins, both orders weighed alike (0.5: none; interval: "
    "expanded percentile bootstrap over pairs); `consistency`, the share of the pairs judged "
    "in both orders (`judge.swap_share`; `pairs_swapped`) whose winner survives the swap "
    "(interval: Wilson); `longer`, the share of verdicts for the longer answer (bootstrap "
    "over pairs); `length_slope`, the log-odds of preferring the run's answer per doubling of "
    "its length ratio (logistic GLM, cluster-robust by pair). Graders: `score_length_r`, "
    "Pearson's r of score and log2 length (interval: Fisher's z). Descriptive: a longer "
    "answer may also be the better one; only the position edge is a bias by construction."
)


def bias(run: Run) -> dict[str, Any] | None:
    """The run's biases: as its metrics.json recorded them, else read from its files."""
    if run.judgment is None or not run.complete:
        return None
    if run.judgment.metrics.bias is not None:
        return run.judgment.metrics.bias
    judgment = run.judgment
    return bias_of(judgment.task, judgment.rundir, run.scores, judgment.finished)


def _share(name: str, found: Mapping[str, Any] | None) -> dict[str, Any]:
    if not found:
        return {}
    return {name: found["value"], f"{name}_ci_low": found["low"], f"{name}_ci_high": found["high"]}


def row(run: Run, found: Mapping[str, Any]) -> dict[str, Any]:
    head = {"run": run.name, "judge": run.judge_shown, "subset": run.subset, "n": run.n}
    if found["kind"] == "grader":
        r = found["score_length"]
        return {**head, "score_length_r": r["r"], "score_length_r_ci_low": r["low"],
                "score_length_r_ci_high": r["high"]}  # fmt: skip
    slope = found["length_curve"]["slope"]
    consistency = found.get("consistency")
    return {
        **head,
        **_share("first", found.get("first")),
        **_share("consistency", consistency),
        "pairs_swapped": consistency["n"] if consistency else 0,
        **_share("longer", found.get("longer")),
        "length_slope": slope["value"],
        "length_slope_ci_low": slope["low"],
        "length_slope_ci_high": slope["high"],
    }


def bias_table(runs: Sequence[Run]) -> pd.DataFrame:
    rows = [row(run, found) for run in runs if (found := bias(run))]
    return frame_of(rows) if rows else pd.DataFrame()


def length_plots(runs: Sequence[Run], section: Section, benchmark: str) -> list[str]:
    """Per run of a pairwise judge, its preference by length ratio as a PNG; their Markdown."""
    parts = []
    for run in runs:
        kind = _pairwise(run.judgment.task) if run.judgment and run.complete else None
        if kind is None or run.judgment is None:
            continue
        verdicts = pair_verdicts(kind, run.judgment.rundir)
        if len({v.pair for v in verdicts}) < 3:
            continue
        stem = f"length_bias_{benchmark}_" + re.sub(r"[^A-Za-z0-9._]+", "-", run.name).strip("-")
        path = section.path(stem)
        title = f"{run.name}, judged by {run.judge_shown}"
        curve = length_curve(verdicts)
        save(length_figure(curve, title), path)
        parts.append(f"### Preference by length: {run.name}\n\n{curve.method}.\n\n"
                     f"![{run.name}]({path.name})\n")  # fmt: skip
    return parts
