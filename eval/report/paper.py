"""The paper's published numbers and its rows as configurations.

The numbers are the paper's tables as data (`results/paper/*.csv`), each cell read where a table
of ours sets it beside our value. A run is reported as a row of the paper's Table 2 (or Figure 3)
only when its layers are the paper's configuration of that row, not because its variant carries
the row's name: a preset whose aggregator, proposers, layers, kind or agent settings were changed
on the command line is another configuration (`departure` says how), reported with the other
runs. Nothing here reads a run directory, so the runs' read-model (`eval.runs`) can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.rundir import RunIdentity

if TYPE_CHECKING:
    import pandas as pd

    from eval.report.metric import Metric

PAPER_DIR = Path(__file__).resolve().parents[2] / "results" / "paper"

# Our variant names -> the paper's row labels (Table 2a and 2b), in the paper's order.
TABLE2_ROWS = {
    "moa_gpt4o": "MoA w/ GPT-4o",
    "moa": "MoA",
    "moa_lite": "MoA-Lite",
    "single_gpt-4o": "GPT-4 Omni (05/13)",
    "single_wizardlm-2-8x22b": "WizardLM 8x22B",
    "single_qwen1.5-110b": "Qwen1.5 110B Chat",
    "single_qwen1.5-72b": "Qwen1.5 72B Chat",
    "single_llama-3-70b": "Llama 3 70B Instruct",
    "single_mixtral-8x22b": "Mixtral 8x22B v0.1",
    "single_dbrx": "dbrx-instruct",
}
# Figure 3 (FLASK): MoA against Qwen1.5-110B-Chat and GPT-4o alone (`conf/experiment/figure3`).
FIGURE3 = {"moa": "MoA", "single_qwen1.5-110b": "Qwen1.5-110B-Chat", "single_gpt-4o": "GPT-4o"}

# The paper's six proposers as catalogue names, in the order of its MoA (`conf/moa/moa.yaml`):
# Table 3's "multiple proposers" are the first n of them.
PAPER_PROPOSERS = (
    "qwen1.5-110b", "qwen1.5-72b", "wizardlm-2-8x22b", "llama-3-70b", "mixtral-8x22b", "dbrx",
)  # fmt: skip
PAPER_AGGREGATOR = "qwen1.5-110b"  # the aggregator of every ablation

# The paper's mixtures: proposer layers of the six proposers, then the aggregator.
_MIXTURES = {
    "moa": (2, PAPER_AGGREGATOR),
    "moa_gpt4o": (2, "gpt-4o"),
    "moa_lite": (1, "qwen1.5-72b"),
}


def configuration(variant: str) -> tuple[list[list[str]], str] | None:
    """The paper's configuration of a variant it reports (proposer layers and aggregator, as
    catalogue names); none for a variant that is no row of the paper's."""
    if variant in _MIXTURES:
        depth, aggregator = _MIXTURES[variant]
        return [list(PAPER_PROPOSERS) for _ in range(depth)], aggregator
    if variant.startswith("single_") and (variant in TABLE2_ROWS or variant in FIGURE3):
        return [], variant.removeprefix("single_")
    return None


def departure(
    variant: str, layers: Sequence[Sequence[str]], aggregator: str, mode: str, customized: bool
) -> str:
    """How a run of one of the paper's variants differs from the paper's configuration of it, in
    words; empty when it is that configuration (or when the variant is none of the paper's)."""
    paper = configuration(variant)
    if paper is None:
        return ""
    theirs, their_aggregator = paper
    label = TABLE2_ROWS.get(variant) or FIGURE3[variant]
    changes = []
    if [list(layer) for layer in layers] != theirs:
        changes.append("its proposer layers differ")
    if aggregator != their_aggregator:
        changes.append(f"its aggregator is {aggregator}, not {their_aggregator}")
    if mode != "aggregate":
        changes.append(f"its last agent does {mode}")
    if customized:
        changes.append("agents have settings of their own")
    return f"not the paper's {label}: {'; '.join(changes)}" if changes else ""


def identity_departure(identity: RunIdentity, name: Callable[[str], str]) -> str:
    """`departure` of a run identity, its addresses named by `name` (address -> catalogue
    name)."""
    layers = [[name(agent.model) for agent in layer] for layer in identity.layers]
    return departure(identity.variant, layers, name(identity.aggregator_model), identity.mode,
                     identity.customized)  # fmt: skip


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
