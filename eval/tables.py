"""The paper's tables, built from judged runs with the paper's numbers beside ours.

Each task (`eval.tasks`) picks the tables of its benchmark: Table 2a or 2b, FLASK's skills, and
for AlpacaEval the ablations (Tables 3 and 4, the ranker comparison of Figure 4) and paired
comparisons. The ablations find their runs by the sweep axes in each run's identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.judges.common import is_complete
from eval.rundir import RunIdentity, write_atomic
from eval.stats import Interval, bootstrap, paired

PAPER_DIR = Path(__file__).resolve().parents[1] / "results" / "paper"

# Our variant names -> the paper's row labels.
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
TABLE4_ROWS = {
    "qwen1.5-110b": "Qwen1.5-110B-Chat",
    "qwen1.5-72b": "Qwen1.5-72B-Chat",
    "llama-3-70b": "LLaMA-3-70B-Instruct",
    "wizardlm-2-8x22b": "WizardLM-8x22B",
    "mixtral-8x22b": "Mixtral-8x22B",
    "dbrx": "dbrx-instruct",
}


# The paper's six proposers as catalogue names, in the order of its MoA (`conf/moa/moa.yaml`):
# Table 3's "multiple proposers" are the first n of them.
PAPER_PROPOSERS = (
    "qwen1.5-110b", "qwen1.5-72b", "wizardlm-2-8x22b", "llama-3-70b", "mixtral-8x22b", "dbrx",
)  # fmt: skip
PAPER_AGGREGATOR = "qwen1.5-110b"  # the aggregator of every ablation


@dataclass
class Run:
    """One judged run directory and what the report needs from it."""

    benchmark: str
    name: str  # the directory, e.g. `moa` or `moa@scripted`
    identity: RunIdentity
    path: Path
    metrics: dict[str, Any]
    headline: float = math.nan  # the task's headline metric
    # The sweep axes, from the identity: catalogue names of each proposer layer's agents and of
    # the aggregator.
    layer_models: list[list[str]] = field(default_factory=list)
    aggregator: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # per instance, for intervals
    cost_per_instance: float = math.nan
    tflops_per_instance: float = math.nan

    @property
    def variant(self) -> str:
        return self.identity.variant

    @property
    def complete(self) -> bool:
        """Whether the judge judged every instance (`eval.judges.common.is_complete`)."""
        return is_complete(self.metrics)

    @property
    def layers(self) -> int:
        """As the paper counts them, the aggregator's layer included."""
        return self.identity.n_layers

    @property
    def mode(self) -> str:
        return self.identity.mode

    @property
    def proposers(self) -> list[str]:
        return self.layer_models[0] if self.layer_models else []


def _paper(name: str) -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / name)


def _beside_paper(
    runs: Iterable[Run],
    paper_file: str,
    ours: Mapping[str, str],
    theirs: Mapping[str, str],
    interval_column: str,
    extra: Callable[[Run], dict[str, Any]] = lambda run: {},
) -> pd.DataFrame:
    """One row per run: how many instances were scored (`n`) and whether every instance was
    judged (`complete`), our metrics (column -> metrics.json key) and a bootstrap interval over
    the instances (left empty for an incomplete run: a part is not the run's result), and the
    paper's values (column -> paper CSV column) for the matching row."""
    paper = _paper(paper_file).set_index("model")
    rows = []
    for run in runs:
        label = TABLE2_ROWS.get(run.variant)
        mine: dict[str, Any] = {column: None for column in [*ours, interval_column]}
        if run.complete:
            interval = bootstrap(np.array(list(run.scores.values())))
            mine = {column: run.metrics.get(key) for column, key in ours.items()}
            mine[interval_column] = f"[{interval.low:.2f}, {interval.high:.2f}]"
        rows.append(
            {
                "run": run.name,
                **_coverage_columns(run),
                **mine,
                **{c: paper[src].get(label) if label else None for c, src in theirs.items()},
                **extra(run),
            }
        )
    return pd.DataFrame(rows)


def _coverage_columns(run: Run) -> dict[str, Any]:
    """`n`: the scores the run's interval is over (instances; MT-Bench: questions' turns);
    `complete`: whether every instance was judged."""
    return {"n": len(run.scores), "complete": run.complete}


def table2a(runs: Iterable[Run]) -> pd.DataFrame:
    return _beside_paper(
        runs,
        "table2a_alpaca_eval.csv",
        {
            "lc_win_rate": "length_controlled_winrate",
            "win_rate": "win_rate",
            "standard_error": "standard_error",
        },
        {"paper_lc": "lc_win_rate", "paper_win_rate": "win_rate"},
        "win_rate_95ci",
        lambda run: {
            "cost_per_instance_usd": f"{run.cost_per_instance:.5f}",
            "tflops_per_instance": run.tflops_per_instance,
        },
    )


def table2b(runs: Iterable[Run]) -> pd.DataFrame:
    return _beside_paper(
        runs,
        "table2b_mt_bench.csv",
        {"average": "average", "turn_1": "turn_1", "turn_2": "turn_2"},
        {"paper_average": "avg", "paper_turn_1": "turn_1", "paper_turn_2": "turn_2"},
        "average_95ci",
    )


def flask_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Per run (the index): `n`, `complete`, then the skills' averages (none if incomplete)."""
    return pd.DataFrame(
        [
            {
                "run": run.name,
                **_coverage_columns(run),
                **(run.metrics.get("skills", {}) if run.complete else {}),
            }
            for run in runs
        ]
    ).set_index("run")


FLASK_COVERAGE = ("n", "complete")  # `flask_table`'s columns that are not skills


def table3(runs: Iterable[Run]) -> pd.DataFrame:
    """Two layers aggregated by Qwen1.5-110B-Chat: the first n of the paper's proposers
    ("multiple"), or Qwen1.5-110B-Chat sampled n times ("single"); n = 1 is both."""
    paper = _paper("table3_num_proposers.csv").set_index("n_proposers")
    ours: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.layers != 2 or run.mode != "aggregate" or run.aggregator != PAPER_AGGREGATOR:
            continue
        names, n = run.proposers, len(run.proposers)
        if names == list(PAPER_PROPOSERS[:n]):
            ours.setdefault(n, {}).setdefault("multiple", run.headline)
        if names == [PAPER_AGGREGATOR] * n:
            ours.setdefault(n, {}).setdefault("single", run.headline)
    return pd.DataFrame(
        [
            {
                "n_proposers": n,
                "multiple": ours[n].get("multiple"),
                "single": ours[n].get("single"),
                "paper_multiple": paper.multiple_proposers_lc.get(n),
                "paper_single": paper.single_proposer_lc.get(n),
            }
            for n in sorted(ours)
        ]
    )


def table4(runs: Iterable[Run]) -> pd.DataFrame:
    """Two layers: a model aggregating the paper's six proposers, or a model sampled six
    times as the only proposer with Qwen1.5-110B-Chat aggregating."""
    paper = _paper("table4_roles.csv").set_index("model")
    ours: dict[str, dict[str, float]] = {}
    six = len(PAPER_PROPOSERS)
    for run in runs:
        if run.layers != 2 or run.mode != "aggregate":
            continue
        if run.proposers == list(PAPER_PROPOSERS) and run.aggregator in PAPER_PROPOSERS:
            ours.setdefault(run.aggregator, {}).setdefault("as_aggregator", run.headline)
        model = run.proposers[0] if run.proposers else ""
        if (
            run.proposers == [model] * six
            and model in PAPER_PROPOSERS
            and (run.aggregator == PAPER_AGGREGATOR)
        ):
            ours.setdefault(model, {}).setdefault("as_proposer", run.headline)
    return pd.DataFrame(
        [
            {
                "model": model,
                "as_aggregator": ours[model].get("as_aggregator"),
                "as_proposer": ours[model].get("as_proposer"),
                "paper_as_aggregator": paper.as_aggregator_lc.get(TABLE4_ROWS.get(model)),
                "paper_as_proposer": paper.as_proposer_lc.get(TABLE4_ROWS.get(model)),
            }
            for model in sorted(ours)
        ]
    )


def ranker_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Figure 4: the paper's six proposers in every layer, then Qwen1.5-110B-Chat aggregating
    or picking, by number of layers; one layer is Qwen1.5-110B-Chat alone (both modes)."""
    cells: dict[tuple[str, int], float] = {}
    for run in runs:
        if run.aggregator != PAPER_AGGREGATOR:
            continue
        if not run.layer_models:
            for mode in ("aggregate", "rank"):
                cells.setdefault((mode, 1), run.headline)
        elif all(layer == list(PAPER_PROPOSERS) for layer in run.layer_models):
            cells.setdefault((run.mode, run.layers), run.headline)
    if not {mode for mode, layers in cells if layers > 1}:
        return pd.DataFrame(columns=["layers"])
    rows = [{"mode": m, "layers": n, "score": v} for (m, n), v in cells.items()]
    return pd.DataFrame(rows).pivot(index="layers", columns="mode", values="score").reset_index()


def comparisons(runs: list[Run], reference: str) -> pd.DataFrame:
    """Each run minus the reference run, paired on the instances both were judged on."""
    base = next((r for r in runs if r.variant == reference), None)
    rows = []
    for run in runs:
        if base is None or run is base:
            continue
        diff: Interval = paired(run.scores, base.scores)
        rows.append(
            {
                "run": run.name,
                "minus": base.name,
                "mean_difference": diff.mean,
                "ci_low": diff.low,
                "ci_high": diff.high,
                "n_paired": diff.n,
                "complete": run.complete and base.complete,  # both runs wholly judged
            }
        )
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, out_dir: Path, name: str, note: str = "") -> str:
    """CSV and Markdown of a table, each written whole (a kill leaves the old file or the new);
    a table no run fills is not written."""
    if frame.empty:
        return ""
    write_atomic(out_dir / f"{name}.csv", frame.to_csv(index=False))
    text = f"## {name}\n\n{note}{frame.round(2).to_markdown(index=False, disable_numparse=True)}\n"
    write_atomic(out_dir / f"{name}.md", text)
    return text
