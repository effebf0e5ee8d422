"""The paper's published numbers.

The numbers are the paper's tables as data (`results/paper/*.csv`), each cell read where a table
of ours sets it beside our value; which runs are the paper's rows is `eval.paper_rows`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.paper_rows import PAPER_PROPOSERS, TABLE2_ROWS

if TYPE_CHECKING:
    import pandas as pd

    from eval.report.metric import Metric

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"

TABLE4_ROWS = {
    "qwen1.5-110b": "Qwen1.5-110B-Chat",
    "qwen1.5-72b": "Qwen1.5-72B-Chat",
    "llama-3-70b": "LLaMA-3-70B-Instruct",
    "wizardlm-2-8x22b": "WizardLM-8x22B",
    "mixtral-8x22b": "Mixtral-8x22B",
    "dbrx": "dbrx-instruct",
}


def paper_csv(name: str) -> pd.DataFrame:
    """One of the paper's tables (`results/paper/<name>`)."""
    import pandas as pd  # for the report and the browser only: not on a run's start-up path

    return pd.read_csv(PAPER_DIR / name)


def paper_value(frame: pd.DataFrame, row: Any, column: str) -> float | None:
    """A paper cell, none where the paper (or the leaderboard) has no number."""
    if row is None or row not in frame.index or column not in frame.columns:
        return None
    import pandas as pd

    value: Any = frame.at[row, column]
    return None if pd.isna(value) else float(value)


def paper_aggregator_curve(metric: Metric) -> dict[int, float]:
    """Figure 4(a)'s aggregator curve where the paper's tables give the same configuration: one
    layer is Qwen1.5-110B-Chat alone (Table 2a), two layers are the six proposers and the
    Qwen1.5-110B-Chat aggregator (Table 3, n = 6: LC only), three layers are MoA (Table 2a).
    Figure 4 itself is not tabulated, and the LLM-ranker curve is in none of the tables."""
    table2a = paper_csv("table2a_alpaca_eval.csv").set_index("model")
    column = "lc_win_rate" if metric.lc else "win_rate"
    points = {
        1: paper_value(table2a, "Qwen1.5 110B Chat", column),
        3: paper_value(table2a, "MoA", column),
    }
    if metric.lc:
        table3 = paper_csv("table3_num_proposers.csv").set_index("n_proposers")
        points[2] = paper_value(table3, len(PAPER_PROPOSERS), "multiple_proposers_lc")
    return {layers: v for layers, v in sorted(points.items()) if v is not None}


def paper_table2a(variant: str, metric: Metric) -> tuple[float | None, str]:
    """The paper's Table 2a value of a variant in `metric`'s kind, else the AlpacaEval
    leaderboard's (for a model the paper leaves out), and which it is: for Figure 5."""
    table = paper_csv("table2a_alpaca_eval.csv").set_index("model")
    label = TABLE2_ROWS.get(variant)
    kind = "lc" if metric.lc else "win_rate"
    paper = paper_value(table, label, "lc_win_rate" if metric.lc else "win_rate")
    if paper is not None:
        return paper, "paper"
    return paper_value(table, label, f"leaderboard_{kind}"), "leaderboard"


def paper_table2b(variant: str, column: str) -> float | None:
    """The paper's Table 2b cell (`avg`, `turn_1`, `turn_2`) of a variant, if it has one."""
    table = paper_csv("table2b_mt_bench.csv").set_index("model")
    return paper_value(table, TABLE2_ROWS.get(variant), column)
