"""MT-Bench against a baseline in the report: each run's win, loss and tie against the baseline,
and the rates `show_result.py --mode pairwise-baseline` prints (the paper tabulates none)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.report import plots
from eval.report.frames import as_float, ci, collapse_repeats, coverage, frame_of
from eval.report.section import Section
from eval.runs import Run

_COUNTS = ("win", "loss", "tie")
_RATES = ("win_rate", "loss_rate", "win_rate_adjusted")


def table(runs: list[Run]) -> pd.DataFrame:
    """One row per run (repeats as one), best adjusted win rate first; a partly judged run's
    numbers are its judged part's, marked by `complete`."""

    def row(run: Run) -> dict[str, Any]:
        shown = run.metrics if run.complete else run.metrics.get("partial") or {}
        return {
            "run": run.name,
            "variant": run.variant,
            "baseline": run.metrics.get("baseline"),
            **coverage(run),
            **{k: shown.get(k) for k in _COUNTS},
            **{k: as_float(shown.get(k)) for k in _RATES},
            **ci(run),
        }

    ordered = sorted(runs, key=lambda r: (-(as_float(r.headline) or 0.0), r.name))
    return frame_of(collapse_repeats(ordered, row)) if ordered else pd.DataFrame()


def sections(runs: list[Run], section: Section) -> list[str]:
    return [
        section.table(
            table(runs), "mt_bench_pair",
            f"{plots.describe('MT-Bench against a baseline', runs)}. Each turn judged in two "
            "games, the answers' positions swapped (FastChat's `--mode pairwise-baseline`); "
            "games that disagree are a tie, a turn with a game in error is left out. "
            "`win_rate`, `loss_rate`: of the turns counted; `win_rate_adjusted`: a tie half a "
            "win (what `show_result.py` sorts by); `ci_low`/`ci_high`: bootstrap 95% interval "
            "of it over the turns; `n`: the turns counted.\n\n",
            "MT-Bench against a baseline",
        ),
    ]  # fmt: skip
