"""The paper's per-benchmark tables: Table 2(a) AlpacaEval, Table 2(b) MT-Bench, FLASK's skills
and Figure 3's radar data, and the runs none of the paper's tables takes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

from eval.paper_rows import FIGURE3, TABLE2_ROWS
from eval.report.frames import (
    as_float,
    as_int,
    ci,
    collapse_repeats,
    coverage,
    frame_of,
    mean_score,
    ordered,
)
from eval.report.metric import LC_KEY
from eval.report.paper import paper_csv, paper_value
from eval.report.paper_outputs import published_runs, translated
from eval.runs import Run, preferred


def table2a(runs: Iterable[Run]) -> pd.DataFrame:
    """Table 2(a): the paper's MoA variants and single models only, in its order. Ours: LC and
    raw win rate with their standard errors (alpaca-eval's), a bootstrap 95% interval of the
    win rate over instructions, alpaca-eval's `avg_length`, cost and TFLOPs per instance; then
    the paper's values (its MoA rows: mean and std of 3 runs) and the AlpacaEval leaderboard's,
    which are the only reference for a model the paper leaves out (dbrx-instruct). Where the
    paper's published outputs were judged by the same judge (`+experiment=paper_outputs`):
    their win rate and avg_length, and ours minus theirs, paired (`eval.report.paper_outputs`)."""
    runs = list(runs)
    paper = paper_csv("table2a_alpaca_eval.csv").set_index("model")
    chosen = ordered((r for r in runs if r.row), list(TABLE2_ROWS))
    published = published_runs(runs)  # the paper's outputs under this judge, if judged

    def row(run: Run) -> dict[str, Any]:
        label = TABLE2_ROWS[run.variant]
        judged = run.complete
        return {
            "run": run.name,
            "model": label,
            **coverage(run),
            "lc_win_rate": as_float(run.metrics.get(LC_KEY)) if judged else None,
            "lc_standard_error": as_float(run.metrics.get("lc_standard_error")) if judged else None,
            "win_rate": as_float(run.metrics.get("win_rate")) if judged else None,
            "standard_error": as_float(run.metrics.get("standard_error")) if judged else None,
            **ci(run),
            "avg_length": as_int(run.avg_length),
            "cost_per_instance_usd": as_float(run.cost_per_instance),
            "tflops_per_instance": as_float(run.tflops_per_instance),
            "paper_lc": paper_value(paper, label, "lc_win_rate"),
            "paper_lc_std": paper_value(paper, label, "lc_win_rate_std"),
            "paper_win_rate": paper_value(paper, label, "win_rate"),
            "paper_win_rate_std": paper_value(paper, label, "win_rate_std"),
            "leaderboard_lc": paper_value(paper, label, "leaderboard_lc"),
            "leaderboard_win_rate": paper_value(paper, label, "leaderboard_win_rate"),
            **(translated(run, published) if published else {}),
        }

    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


def table2b(runs: Iterable[Run]) -> pd.DataFrame:
    """Table 2(b), MT-Bench: the paper's variants and single models only. `n` counts scored
    turns (two per question); the interval is over them."""
    paper = paper_csv("table2b_mt_bench.csv").set_index("model")
    chosen = ordered((r for r in runs if r.row), list(TABLE2_ROWS))

    def row(run: Run) -> dict[str, Any]:
        label = TABLE2_ROWS[run.variant]
        judged = run.complete
        return {
            "run": run.name,
            "model": label,
            **coverage(run),
            **{
                k: as_float(run.metrics.get(k)) if judged else None
                for k in ("average", "turn_1", "turn_2")
            },
            **ci(run),
            "avg_length": as_int(run.avg_length),
            "paper_average": paper_value(paper, label, "avg"),
            "paper_average_std": paper_value(paper, label, "avg_std"),
            "paper_turn_1": paper_value(paper, label, "turn_1"),
            "paper_turn_2": paper_value(paper, label, "turn_2"),
        }

    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


def flask_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Per run: the paper's label where it has one, coverage, then the average of each of
    FLASK's 12 skills in FLASK's order (empty: no score for that skill, or not wholly judged)."""
    from eval.judges.flask import SKILL_ORDER

    chosen = ordered(runs, [*FIGURE3, *TABLE2_ROWS])

    def row(run: Run) -> dict[str, Any]:
        skills = run.metrics.get("skills", {}) if run.complete else {}
        return {
            "run": run.name,
            "model": FIGURE3.get(run.variant, "") if not run.departure else "",
            **coverage(run),
            **{s: as_float(skills.get(s)) for s in SKILL_ORDER},
            "mean_skill_score": mean_score(run),
            **ci(run),
            "avg_length": as_int(run.avg_length),
        }

    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


def figure3_skills(runs: Sequence[Run]) -> tuple[pd.DataFrame, list[Run], list[str]]:
    """Figure 3's radar: FLASK's 12 skills (columns, FLASK's order; a gap where a run has no
    score) of MoA, Qwen1.5-110B-Chat alone and GPT-4o alone (one wholly judged run each, the
    index their labels), or, when none of those is here, of every wholly judged run; the runs
    drawn; and the lines to print under it (runs not drawn, skills without a score)."""
    from eval.judges.flask import SKILL_ORDER

    judged = [r for r in runs if r.complete and r.metrics.get("skills")]
    figure3 = [
        preferred(mine)[0]
        for variant in FIGURE3
        if (mine := [r for r in judged if r.variant == variant and not r.departure])
    ]
    drawn = figure3 or preferred(judged)
    notes = []
    if not figure3 and drawn:
        notes.append(
            "None of Figure 3's runs (MoA, Qwen1.5-110B-Chat alone, GPT-4o alone: "
            "`+experiment=figure3`) is here, so every wholly judged run is drawn."
        )
    left = [f"{r.name} (not wholly judged)" for r in runs if r not in judged]
    left += [f"{r.name} (not in Figure 3's comparison)" for r in judged if r not in drawn]
    if left:
        notes.append(f"Not drawn: {'; '.join(left)}.")
    rows = {
        (f"{FIGURE3[r.variant]} ({r.name})" if r in figure3 else r.name): [
            as_float(r.metrics["skills"].get(skill)) for skill in SKILL_ORDER
        ]
        for r in drawn
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(SKILL_ORDER), dtype=float)
    empty = [s for s in SKILL_ORDER if frame.empty or frame[s].isna().all()]
    if empty and drawn:
        notes.append(f"No score for {', '.join(empty)} in these runs (drawn as gaps).")
    notes.append("The paper gives FLASK only as this plot (no table), so no paper value is drawn.")
    return frame, drawn, notes


def other_runs(
    runs: Iterable[Run],
    placed: set[str],
    value: str,
    score: Callable[[Run], float | None] | None = None,
) -> pd.DataFrame:
    """The runs no table of the paper takes (another variant or sweep, or a paper's variant
    whose configuration was changed: `note` says how), with their sweep axes and their score
    (`value` names it; by default the task's headline), so that none is left out of the
    report."""

    def row(run: Run) -> dict[str, Any]:
        return {
            "run": run.name,
            "variant": run.variant,
            "layers": run.layers,
            "proposers": ", ".join(run.shown(a) for a in run.identity.proposers),
            "aggregator": run.shown(run.identity.aggregator_model),
            "mode": run.mode,
            **coverage(run),
            value: score(run) if score else as_float(run.headline),
            **(
                {
                    "standard_error": as_float(run.metrics.get("standard_error"))
                    if run.complete
                    else None
                }
                if "standard_error" in run.metrics
                else {}
            ),
            **ci(run),
            "avg_length": as_int(run.avg_length),
            "note": run.departure or None,
        }

    chosen = sorted((r for r in runs if r.name not in placed), key=lambda r: r.name)
    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()
