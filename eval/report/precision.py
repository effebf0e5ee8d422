"""Each configuration's standard error and where it comes from: the instances, its generation
repeats (`repeats`) and its judge repeats (`judge.repeats`), by `eval.stats.repeats`.

The runs of one configuration (its generation repeats) are one row; each run's judge repeats
are read from its files. MT-Bench's two turns of a question are one cluster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from eval.report.frames import frame_of, repeats_of
from eval.runs import Run
from eval.stats.repeats import Estimate, Scores, estimate, mt_bench_question

CAPTION = (
    "The mean of the per-instance scores over each configuration's generation repeats and judge "
    "repeats; `se`: its standard error, cluster-robust (linearised) over the clusters "
    "(instances; MT-Bench: questions, both turns), which holds whatever the repeats' "
    "correlation; `ci_low`/`ci_high`: percentile cluster bootstrap, 95%. Its parts, "
    "`se_instances`, `se_generation`, `se_judge`, are square roots of the variance's shares "
    "(their squares add up to `se` squared), from a nested random-effects model estimated by "
    "method-of-moments (nested ANOVA mean squares: closed form and unbiased, no fit to "
    "converge); a part left empty cannot be told apart and is inside the part above it. "
    "`repeats`: generation repeats per instance; `judgments`: judge repeats per answer."
)


def cluster_of(benchmark: str) -> Any:
    """What an instance is resampled with: MT-Bench's turns (its pairwise variant's too) with
    their question."""
    return mt_bench_question if benchmark in ("mt_bench", "mt_bench_pair") else None


def scores_of(runs: Sequence[Run]) -> Scores:
    """The scores of one configuration's generation repeats, each with its judge repeats."""
    judged = [[run.scores, *(run.judgment.repeat_scores() if run.judgment else [])] for run in runs]
    return Scores.from_runs(judged, cluster_of(runs[0].benchmark))


def groups(runs: Sequence[Run]) -> list[list[Run]]:
    """The wholly judged runs, a list per configuration (its generation repeats)."""
    found: list[list[Run]] = []
    seen: set[int] = set()
    for run in runs:
        if id(run) in seen or not run.complete or not run.scores:
            continue
        group = [r for r in repeats_of(run, runs) if r.complete and r.scores]
        seen.update(id(r) for r in group)
        found.append(group)
    return found


def _root(variance: float | None) -> float | None:
    return None if variance is None or math.isnan(variance) else math.sqrt(variance)


def parts(found: Estimate) -> dict[str, Any]:
    """An estimate as cells: mean, interval, standard error and its parts."""
    split = found.split
    return {
        "mean": found.mean,
        "ci_low": found.low,
        "ci_high": found.high,
        "se": None if math.isnan(found.se) else found.se,
        "se_instances": _root(split.instances),
        "se_generation": _root(split.generation),
        "se_judge": _root(split.judge),
        "clusters": split.clusters,
        "repeats": split.repeats,
        "judgments": split.judgments,
    }


def precision_table(runs: Sequence[Run]) -> pd.DataFrame:
    """A row per configuration: its mean score, standard error and the error's parts."""
    rows = []
    for group in groups(runs):
        first = group[0]
        rows.append({"run": ", ".join(r.name for r in group), "judge": first.judge_shown,
                     "subset": first.subset, "n": first.n,
                     **parts(estimate(scores_of(group)))})  # fmt: skip
    return frame_of(rows) if rows else pd.DataFrame()
