"""The verifiable track's table in Self-MoA's shape: a row per method (variant), a column per
benchmark, each cell the accuracy with its 95% interval; then every pair of rows compared on
each benchmark, paired by instance, with Holm's correction over the table's comparisons.

Repeats of a variant (`repeats=k`) are one row: the accuracy is the mean over instances of each
instance's mean over repeats, its interval and the paired tests `eval.stats` gives for repeats
(McNemar's exact test for single runs, the paired permutation test across repeats).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd

from eval.report.section import Section
from eval.runs import Run
from eval.stats.family import correct
from eval.stats.repeats import Scores, estimate
from eval.stats.significance import compare

# The track's benchmarks, in the columns' order, as Self-MoA's tables name them.
TRACK = {"math500": "MATH-500", "cruxeval_o": "CRUX-O", "cruxeval_i": "CRUX-I", "gsm8k": "GSM8K"}
STEM = "self_moa_table"
NOTE = (
    "Accuracy in % with its 95% interval (exact checks, no judge model); `n` instances, "
    "`k` repeats. The pairs table tests each pair of rows on each benchmark, paired by "
    "instance, Holm-adjusted over all its comparisons.\n\n"
)


def scores_of(runs: Sequence[Run]) -> Scores:
    """One variant's repeats on one benchmark as `eval.stats` scores (instance x repeat)."""
    ordered = sorted(runs, key=lambda r: r.repeat)
    return Scores.from_runs([[r.scores] for r in ordered])


def grouped(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """The track's complete runs by variant, then benchmark (in `TRACK`'s order)."""
    table: dict[str, dict[str, list[Run]]] = {}
    ours = [r for r in runs if r.benchmark in TRACK and r.complete and r.scores]
    for run in sorted(ours, key=lambda r: (r.variant, list(TRACK).index(r.benchmark))):
        table.setdefault(run.variant, {}).setdefault(run.benchmark, []).append(run)
    return table


def accuracy_table(table: dict[str, dict[str, list[Run]]]) -> pd.DataFrame:
    rows = []
    for variant, by_bench in table.items():
        row: dict[str, object] = {"method": variant}
        for bench, name in TRACK.items():
            if bench in by_bench:
                est = estimate(scores_of(by_bench[bench]))
                row[name] = f"{100 * est.mean:.1f} [{100 * est.low:.1f}, {100 * est.high:.1f}]"
                row[f"{name} n, k"] = f"{est.instances}, {len(by_bench[bench])}"
        rows.append(row)
    return pd.DataFrame(rows)


def pairs_table(table: dict[str, dict[str, list[Run]]]) -> pd.DataFrame:
    compared = []
    for (a, runs_a), (b, runs_b) in itertools.combinations(table.items(), 2):
        for bench, name in TRACK.items():
            if bench in runs_a and bench in runs_b:
                comparison = compare(
                    scores_of(runs_a[bench]), scores_of(runs_b[bench]), "right_wrong",
                    name=f"{a} - {b}",
                )  # fmt: skip
                compared.append((a, b, name, comparison))
    corrected = correct([c for *_, c in compared])
    return pd.DataFrame(
        [
            {
                "a": a,
                "b": b,
                "benchmark": name,
                "a - b (points)": round(100 * c.difference.mean, 1),
                "test": c.test.method,
                "n": c.test.n,
                "p": c.test.p_value,
                "p (Holm)": k.p_holm,
                "significant": k.significant,
            }
            for (a, b, name, c), k in zip(compared, corrected, strict=True)
        ]
    )


def track(runs: Sequence[Run], section: Section) -> list[str]:
    """The track's two tables from every complete run of its benchmarks; none without runs."""
    table = grouped(runs)
    if not table:
        return []
    title = "Self-MoA's comparison on the verifiable track"
    return [
        section.table(accuracy_table(table), STEM, NOTE, title),
        section.table(pairs_table(table), STEM + "_pairs", "", title + ": each pair of rows"),
    ]
