"""The paper's tables, built from judged runs with the paper's numbers beside ours.

Each task (`eval.tasks`) picks the tables of its benchmark: Table 2a or 2b, FLASK's skills, and
for AlpacaEval the ablations (Tables 3 and 4, the ranker comparison of Figure 4), the aggregators
compared on the replayed published proposals, and paired comparisons. The ablations find their
runs by the sweep axes in each run's identity.

Every table says how many instances each number is over (`n`, or `<cell>_n` where a row's cells
come from different runs) and which runs cover only a subset of the benchmark (`subset`: the
selection, as in the run directory's `~first30`; empty for the whole benchmark). In the CSV an
interval is two numeric columns (`ci_low`, `ci_high`), a spread over repeated runs or the
paper's three runs is its own `<column>_std` column, integers are integers and an empty cell is
empty; the Markdown joins them (`[low, high]`, `mean ± std`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval import pairing, run_labels
from eval.judges.common import is_complete
from eval.paper_rows import FIGURE3 as FIGURE3
from eval.paper_rows import PAPER_AGGREGATOR as PAPER_AGGREGATOR
from eval.paper_rows import PAPER_PROPOSERS as PAPER_PROPOSERS
from eval.paper_rows import TABLE2_ROWS as TABLE2_ROWS
from eval.paper_rows import departure
from eval.paper_translated import published_runs, translated
from eval.run_labels import Namer
from eval.rundir import RunIdentity, subset_suffix, write_atomic
from eval.stats import Interval, bootstrap, paired

PAPER_DIR = Path(__file__).resolve().parents[1] / "results" / "paper"

TABLE4_ROWS = {
    "qwen1.5-110b": "Qwen1.5-110B-Chat",
    "qwen1.5-72b": "Qwen1.5-72B-Chat",
    "llama-3-70b": "LLaMA-3-70B-Instruct",
    "wizardlm-2-8x22b": "WizardLM-8x22B",
    "mixtral-8x22b": "Mixtral-8x22B",
    "dbrx": "dbrx-instruct",
}

REPLAY = "replay/"  # the endpoint of the published, replayed proposals


def selection_label(selection: Mapping[str, Any] | None) -> str:
    """A run's instance selection as its directory marks it (`first30`, `ids-1,2`,
    `coding+math~first5`); empty for the whole benchmark."""
    if not selection:
        return ""

    suffix = subset_suffix(selection.get("categories"), selection.get("ids"),
                           selection.get("limit"))  # fmt: skip
    return suffix.removeprefix("~") or json.dumps(dict(selection), sort_keys=True)


@dataclass
class Run:
    """One judged run directory and what the report needs from it."""

    benchmark: str
    name: str  # the directory, e.g. `moa` or `moa@scripted~first30`
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
    # alpaca-eval's leaderboard `avg_length`: mean characters of the run's outputs.
    avg_length: float = math.nan
    # How its models are named and sized (a stand-in said to be one), from its config.
    namer: Namer | None = field(default=None, repr=False)
    # Which run of a repeated variant (`repeats`; 1 for a run made once): the tables show the
    # repeats of one configuration as one row, mean ± std (`collapse_repeats`).
    repeat: int = 1

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

    @property
    def n(self) -> int:
        """The instances scored (MT-Bench: questions' turns)."""
        return len(self.scores)

    @property
    def subset(self) -> str:
        """The instance selection (`first30`), empty when the run covers the whole benchmark."""
        return selection_label(self.identity.selection)

    @property
    def judge(self) -> str:
        return str(self.metrics.get("judge") or "")

    @property
    def endpoints(self) -> list[str]:
        """The endpoints its answers were generated on (`eval.run_labels.endpoints`)."""
        return run_labels.endpoints(self.identity)

    @property
    def provider(self) -> str:
        """Where its answers were generated, in words (`eval.run_labels`), a stand-in said."""
        if self.namer is None:
            return run_labels.provider(self.identity)
        return self.namer.provider(self.identity)

    @property
    def judge_shown(self) -> str:
        """Its judge's address, a stand-in said (`eval.run_labels.Namer.judge`)."""
        return self.namer.judge(self.judge) if self.namer else self.judge

    def shown(self, address: str) -> str:
        """A model of the run by its catalogue name, a stand-in said to be one."""
        return self.namer(address) if self.namer else address

    @property
    def departure(self) -> str:
        """How this run of one of the paper's variants differs from the paper's configuration
        of it (`eval.paper_rows`); empty for the paper's configuration and for other variants."""
        return departure(self.variant, self.layer_models, self.aggregator, self.mode,
                         self.identity.customized)  # fmt: skip

    @property
    def row(self) -> str | None:
        """The paper's Table 2 row this run is: its variant's, when its layers are the paper's."""
        label = TABLE2_ROWS.get(self.variant)
        return label if label and not self.departure else None

    @property
    def published(self) -> bool:
        """Whether its proposals are the published outputs, replayed (`published_proposers`)."""
        proposers = self.identity.proposers
        return bool(proposers) and all(p.startswith(REPLAY) for p in proposers)


def preferred(runs: Iterable[Run]) -> list[Run]:
    """Runs in the order a table cell takes them: wholly judged first, then the whole benchmark
    before a subset, more instances first, then by name."""
    return sorted(runs, key=lambda r: (not r.complete, bool(r.subset), -r.n, r.name))


# --- which number: LC where it was computed ------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """The AlpacaEval number a table or plot shows: `key` in metrics.json, `name` to print, and
    when it is not the LC win rate, why (`missing`)."""

    key: str
    name: str
    missing: str = ""

    @property
    def lc(self) -> bool:
        return self.key == LC_KEY

    def of(self, run: Run) -> float | None:
        """The run's value; none for a run not wholly judged (a part is not its result)."""
        value = run.metrics.get(self.key) if run.complete else None
        return None if value is None else float(value)

    @property
    def note(self) -> str:
        if self.lc:
            return "Scores are AlpacaEval 2.0 length-controlled (LC) win rates.\n\n"
        return (
            f"LC win rate unavailable ({self.missing}): our scores here are the raw win rate, "
            "not length-controlled.\n\n"
        )


LC_KEY = "length_controlled_winrate"


def alpaca_metric(runs: Iterable[Run]) -> Metric:
    """LC when every wholly judged run has it, else the raw win rate for all of them (one axis,
    one kind of number), with the reason LC is missing."""
    judged = [r for r in runs if r.complete]
    without = [r for r in judged if r.metrics.get(LC_KEY) is None]
    if judged and not without:
        return Metric(LC_KEY, "LC win rate")
    reasons = [str(r.metrics["lc_unavailable"]) for r in without if r.metrics.get("lc_unavailable")]
    missing = reasons[0] if reasons else "not computed"
    if without and len(without) < len(judged):
        missing = f"{len(without)} of {len(judged)} runs: {missing}"
    return Metric("win_rate", "win rate", missing)


# --- the paper's numbers ---------------------------------------------------------------------


def _paper(name: str) -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / name)


def _value(frame: pd.DataFrame, row: Any, column: str) -> float | None:
    """A paper cell, none where the paper (or the leaderboard) has no number."""
    if row is None or row not in frame.index or column not in frame.columns:
        return None
    value: Any = frame.at[row, column]
    return None if pd.isna(value) else float(value)


def paper_aggregator_curve(metric: Metric) -> dict[int, float]:
    """Figure 4(a)'s aggregator curve where the paper's tables give the same configuration: one
    layer is Qwen1.5-110B-Chat alone (Table 2a), two layers are the six proposers and the
    Qwen1.5-110B-Chat aggregator (Table 3, n = 6: LC only), three layers are MoA (Table 2a).
    Figure 4 itself is not tabulated, and the LLM-ranker curve is in none of the tables."""
    table2a = _paper("table2a_alpaca_eval.csv").set_index("model")
    column = "lc_win_rate" if metric.lc else "win_rate"
    points = {1: _value(table2a, "Qwen1.5 110B Chat", column), 3: _value(table2a, "MoA", column)}
    if metric.lc:
        table3 = _paper("table3_num_proposers.csv").set_index("n_proposers")
        points[2] = _value(table3, len(PAPER_PROPOSERS), "multiple_proposers_lc")
    return {layers: v for layers, v in sorted(points.items()) if v is not None}


def paper_table2a(variant: str, metric: Metric) -> tuple[float | None, str]:
    """The paper's Table 2a value of a variant in `metric`'s kind, else the AlpacaEval
    leaderboard's (for a model the paper leaves out), and which it is: for Figure 5."""
    table = _paper("table2a_alpaca_eval.csv").set_index("model")
    label = TABLE2_ROWS.get(variant)
    kind = "lc" if metric.lc else "win_rate"
    paper = _value(table, label, "lc_win_rate" if metric.lc else "win_rate")
    if paper is not None:
        return paper, "paper"
    return _value(table, label, f"leaderboard_{kind}"), "leaderboard"


def paper_table2b(variant: str, column: str) -> float | None:
    """The paper's Table 2b cell (`avg`, `turn_1`, `turn_2`) of a variant, if it has one."""
    return _value(_paper("table2b_mt_bench.csv").set_index("model"), TABLE2_ROWS.get(variant),
                  column)  # fmt: skip


# --- building frames -------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def frame_of(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """A table from row dicts: a column of integers (and gaps) stays integer, a column of
    flags stays boolean, every gap is missing (empty in the CSV and the Markdown)."""
    names = (
        list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    )
    frame = pd.DataFrame([{c: r.get(c) for c in names} for r in rows], columns=names)
    for column in names:
        values = [r.get(column) for r in rows if not _missing(r.get(column))]
        if values and all(_is_int(v) for v in values):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="Int64")
        elif values and all(isinstance(v, bool | np.bool_) for v in values):
            frame[column] = pd.array([r.get(column) for r in rows], dtype="boolean")
    return frame


def _interval(run: Run) -> Interval | None:
    if not run.complete or not run.scores:
        return None
    return bootstrap(np.array(list(run.scores.values())))


def _coverage(run: Run) -> dict[str, Any]:
    """What made the row's numbers, `judge` and `provider` (where the answers were generated),
    and over what: `subset` (empty: the whole benchmark), `n` (instances scored) and `complete`
    (every instance judged)."""
    return {"judge": run.judge_shown, "provider": run.provider, "subset": run.subset,
            "n": run.n, "complete": run.complete}  # fmt: skip


def _mean(run: Run) -> float | None:
    """The mean of the run's per-instance scores, the middle of its interval."""
    return float(np.mean(list(run.scores.values()))) if run.complete and run.scores else None


def _ci(run: Run) -> dict[str, Any]:
    interval = _interval(run)
    return {
        "ci_low": interval.low if interval else None,
        "ci_high": interval.high if interval else None,
    }


def _int(value: float) -> int | None:
    return None if math.isnan(value) else int(value)


def _float(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _repeat_group(run: Run) -> str:
    """What repeats of one configuration share: the folder they are in, the judge and the whole
    identity (the repeat index apart)."""
    identity = {k: v for k, v in dataclasses.asdict(run.identity).items() if k != "repeat"}
    return json.dumps([str(run.path.parent), run.benchmark, run.judge, identity], sort_keys=True)


def repeats_of(run: Run, runs: Iterable[Run]) -> list[Run]:
    """`run` and its repeats among `runs` (`_repeat_group`; each repeat index once, `run`'s
    first), in repeat order."""
    key, found = _repeat_group(run), {run.repeat: run}
    for other in runs:
        if _repeat_group(other) == key:
            found.setdefault(other.repeat, other)
    return [found[r] for r in sorted(found)]


def collapse_repeats(
    runs: Sequence[Run], row: Callable[[Run], dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per run, but repeats of one configuration (`_repeat_group`, each repeat index
    once) as one row (`merge_repeats`)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        members = groups.setdefault(_repeat_group(run), [])
        if any(m.repeat == run.repeat for m in members):  # the same run twice: not a repeat
            groups[f"{run.path}\0{run.name}"] = [run]
        else:
            members.append(run)
    if all(len(members) == 1 for members in groups.values()):
        return [row(run) for run in runs]
    return [
        merge_repeats([row(run) for run in sorted(members, key=lambda r: (r.repeat, r.name))])
        for members in groups.values()
    ]


def merge_repeats(parts: Sequence[Mapping[str, Any]], count: str = "repeats") -> dict[str, Any]:
    """The rows of repeats of one configuration as one: `count` counts them, a number that
    differs between them is their mean with a `<column>_std` (sample standard deviation) beside
    it and each run's value in `<column>_runs` (in the CSV; the Markdown leaves it out), flags
    are and-ed and texts joined."""
    merged: dict[str, Any] = {}
    for column in parts[0]:
        values = [p.get(column) for p in parts]
        present = [v for v in values if not _missing(v)]
        if len({json.dumps(v, default=str) for v in values}) <= 1:
            merged[column] = values[0]
        elif present and all(isinstance(v, bool | np.bool_) for v in present):
            merged[column] = all(present) and len(present) == len(values)
        elif present and all(isinstance(v, int | float | np.number) for v in present):
            numbers = [float(v) for v in present if v is not None]
            merged[column] = statistics.fmean(numbers)
            merged[f"{column}_std"] = statistics.stdev(numbers) if len(numbers) > 1 else None
            merged[f"{column}_runs"] = " ".join(f"{v:.4g}" for v in numbers)  # CSV only
        else:
            merged[column] = ", ".join(dict.fromkeys(str(v) for v in present))
    merged[count] = len(parts)
    return merged


def _ordered(runs: Iterable[Run], order: Sequence[str]) -> list[Run]:
    rank = {name: i for i, name in enumerate(order)}
    return sorted(runs, key=lambda r: (rank.get(r.variant, len(rank)), r.name))


# --- Table 2 -------------------------------------------------------------------------------


def table2a(runs: Iterable[Run]) -> pd.DataFrame:
    """Table 2(a): the paper's MoA variants and single models only, in its order. Ours: LC and
    raw win rate with their standard errors (alpaca-eval's), a bootstrap 95% interval of the
    win rate over instructions, alpaca-eval's `avg_length`, cost and TFLOPs per instance; then
    the paper's values (its MoA rows: mean and std of 3 runs) and the AlpacaEval leaderboard's,
    which are the only reference for a model the paper leaves out (dbrx-instruct). Where the
    paper's published outputs were judged by the same judge (`+experiment=paper_outputs`):
    their win rate and avg_length, and ours minus theirs, paired (`eval.paper_translated`)."""
    runs = list(runs)
    paper = _paper("table2a_alpaca_eval.csv").set_index("model")
    chosen = _ordered((r for r in runs if r.row), list(TABLE2_ROWS))
    published = published_runs(runs)  # the paper's outputs under this judge, if judged

    def row(run: Run) -> dict[str, Any]:
        label = TABLE2_ROWS[run.variant]
        judged = run.complete
        return {
            "run": run.name,
            "model": label,
            **_coverage(run),
            "lc_win_rate": _float(run.metrics.get(LC_KEY)) if judged else None,
            "lc_standard_error": _float(run.metrics.get("lc_standard_error")) if judged else None,
            "win_rate": _float(run.metrics.get("win_rate")) if judged else None,
            "standard_error": _float(run.metrics.get("standard_error")) if judged else None,
            **_ci(run),
            "avg_length": _int(run.avg_length),
            "cost_per_instance_usd": _float(run.cost_per_instance),
            "tflops_per_instance": _float(run.tflops_per_instance),
            "paper_lc": _value(paper, label, "lc_win_rate"),
            "paper_lc_std": _value(paper, label, "lc_win_rate_std"),
            "paper_win_rate": _value(paper, label, "win_rate"),
            "paper_win_rate_std": _value(paper, label, "win_rate_std"),
            "leaderboard_lc": _value(paper, label, "leaderboard_lc"),
            "leaderboard_win_rate": _value(paper, label, "leaderboard_win_rate"),
            **(translated(run, published) if published else {}),
        }

    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


def table2b(runs: Iterable[Run]) -> pd.DataFrame:
    """Table 2(b), MT-Bench: the paper's variants and single models only. `n` counts scored
    turns (two per question); the interval is over them."""
    paper = _paper("table2b_mt_bench.csv").set_index("model")
    chosen = _ordered((r for r in runs if r.row), list(TABLE2_ROWS))

    def row(run: Run) -> dict[str, Any]:
        label = TABLE2_ROWS[run.variant]
        judged = run.complete
        return {
            "run": run.name,
            "model": label,
            **_coverage(run),
            **{
                k: _float(run.metrics.get(k)) if judged else None
                for k in ("average", "turn_1", "turn_2")
            },
            **_ci(run),
            "avg_length": _int(run.avg_length),
            "paper_average": _value(paper, label, "avg"),
            "paper_average_std": _value(paper, label, "avg_std"),
            "paper_turn_1": _value(paper, label, "turn_1"),
            "paper_turn_2": _value(paper, label, "turn_2"),
        }

    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


# --- FLASK --------------------------------------------------------------------------------


def flask_table(runs: Iterable[Run]) -> pd.DataFrame:
    """Per run: the paper's label where it has one, coverage, then the average of each of
    FLASK's 12 skills in FLASK's order (empty: no score for that skill, or not wholly judged)."""
    from eval.judges.flask import SKILL_ORDER

    chosen = _ordered(runs, [*FIGURE3, *TABLE2_ROWS])

    def row(run: Run) -> dict[str, Any]:
        skills = run.metrics.get("skills", {}) if run.complete else {}
        return {
            "run": run.name,
            "model": FIGURE3.get(run.variant, "") if not run.departure else "",
            **_coverage(run),
            **{s: _float(skills.get(s)) for s in SKILL_ORDER},
            "mean_skill_score": _mean(run),
            **_ci(run),
            "avg_length": _int(run.avg_length),
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
            _float(r.metrics["skills"].get(skill)) for skill in SKILL_ORDER
        ]
        for r in drawn
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(SKILL_ORDER), dtype=float)
    empty = [s for s in SKILL_ORDER if frame.empty or frame[s].isna().all()]
    if empty and drawn:
        notes.append(f"No score for {', '.join(empty)} in these runs (drawn as gaps).")
    notes.append("The paper gives FLASK only as this plot (no table), so no paper value is drawn.")
    return frame, drawn, notes


# --- Tables 3 and 4, Figure 4: cells of different runs ------------------------------------


def _cells_of(candidates: Mapping[Any, list[Run]]) -> dict[Any, Run]:
    return {key: preferred(runs)[0] for key, runs in candidates.items()}


def table3_cells(runs: Iterable[Run]) -> dict[tuple[int, str], Run]:
    """(n, "multiple" | "single") -> the run of that cell: two layers aggregated by
    Qwen1.5-110B-Chat, the first n of the paper's proposers, or Qwen1.5-110B-Chat sampled n
    times; n = 1 is both."""
    return _cells_of(_table3_candidates(runs))


def _table3_candidates(runs: Iterable[Run]) -> dict[tuple[int, str], list[Run]]:
    found: dict[tuple[int, str], list[Run]] = {}
    for run in runs:
        if run.layers != 2 or run.mode != "aggregate" or run.aggregator != PAPER_AGGREGATOR:
            continue
        names, n = run.proposers, len(run.proposers)
        if names == list(PAPER_PROPOSERS[:n]):
            found.setdefault((n, "multiple"), []).append(run)
        if names == [PAPER_AGGREGATOR] * n:
            found.setdefault((n, "single"), []).append(run)
    return found


def table4_cells(runs: Iterable[Run]) -> dict[tuple[str, str], Run]:
    """(model, "as_aggregator" | "as_proposer") -> the run: two layers, a model aggregating the
    paper's six proposers, or a model sampled six times as the only proposer with
    Qwen1.5-110B-Chat aggregating."""
    return _cells_of(_table4_candidates(runs))


def _table4_candidates(runs: Iterable[Run]) -> dict[tuple[str, str], list[Run]]:
    found: dict[tuple[str, str], list[Run]] = {}
    six = len(PAPER_PROPOSERS)
    for run in runs:
        if run.layers != 2 or run.mode != "aggregate":
            continue
        if run.proposers == list(PAPER_PROPOSERS) and run.aggregator in PAPER_PROPOSERS:
            found.setdefault((run.aggregator, "as_aggregator"), []).append(run)
        model = run.proposers[0] if run.proposers else ""
        if (
            run.proposers == [model] * six
            and model in PAPER_PROPOSERS
            and run.aggregator == PAPER_AGGREGATOR
        ):
            found.setdefault((model, "as_proposer"), []).append(run)
    return found


def ranker_cells(runs: Iterable[Run]) -> dict[tuple[int, str], Run]:
    """(layers, "aggregate" | "rank") -> the run: the paper's six proposers in every layer, then
    Qwen1.5-110B-Chat aggregating or picking; one layer is Qwen1.5-110B-Chat alone (both)."""
    return _cells_of(_ranker_candidates(runs))


def _ranker_candidates(runs: Iterable[Run]) -> dict[tuple[int, str], list[Run]]:
    found: dict[tuple[int, str], list[Run]] = {}
    for run in runs:
        if run.aggregator != PAPER_AGGREGATOR or run.published:
            continue
        if not run.layer_models:
            for mode in ("aggregate", "rank"):
                found.setdefault((1, mode), []).append(run)
        elif all(layer == list(PAPER_PROPOSERS) for layer in run.layer_models):
            found.setdefault((run.layers, run.mode), []).append(run)
    return found


def in_ablations(runs: Sequence[Run]) -> set[str]:
    """The runs that fit a cell of Table 3, Table 4 or Figure 4, the one a cell shows or
    another of the same configuration: none of them is an "other" run."""
    found: list[Mapping[Any, list[Run]]] = [
        _table3_candidates(runs),
        _table4_candidates(runs),
        _ranker_candidates(runs),
    ]
    return {run.name for cells in found for members in cells.values() for run in members}


def _per_cell(cells: Mapping[str, Run], labels: Mapping[str, str], whole: str = "") -> str:
    """One value the cells' runs share, or each cell's (`cell: value; ...`)."""
    distinct = set(labels.values())
    if len(distinct) == 1:
        (value,) = distinct
        return value
    return "; ".join(f"{cell}: {label or whole}" for cell, label in labels.items())


def _row_runs(cells: Mapping[str, Sequence[Run]]) -> dict[str, Any]:
    """A row whose cells come from different runs (each with its repeats): their judge and
    provider, the subsets among them, and which runs."""
    first = {cell: members[0] for cell, members in cells.items()}
    return {
        "judge": _per_cell(first, {c: r.judge_shown for c, r in first.items()}),
        "provider": _per_cell(first, {c: r.provider for c, r in first.items()}),
        "subset": _per_cell(first, {c: r.subset for c, r in first.items()}, "whole"),
        "runs": "; ".join(f"{c}: {', '.join(r.name for r in m)}" for c, m in cells.items()),
    }


def _cell_columns(
    cells: Mapping[str, Sequence[Run]], names: Sequence[str], metric: Metric | None
) -> dict[str, Any]:
    """Each cell's value (`metric`, by default the headline) and its `_n`; a cell of repeated
    runs their mean, with `_std` and `_repeats` (`merge_repeats`)."""
    row: dict[str, Any] = {}
    for name in names:
        parts = [
            {
                name: metric.of(run) if metric else _float(run.headline),
                f"{name}_n": run.n,
                **{f"{name}_{k}": v for k, v in _ci(run).items()},
                f"{name}_avg_length": _int(run.avg_length),
            }
            for run in cells.get(name, ())
        ]
        if len(parts) > 1:
            row.update(merge_repeats(parts, f"{name}_repeats"))
        else:
            empty = (name, f"{name}_n", f"{name}_ci_low", f"{name}_ci_high", f"{name}_avg_length")
            row.update(parts[0] if parts else dict.fromkeys(empty))
    return row


def _grouped(cells: Mapping[Any, Run], runs: Sequence[Run]) -> dict[Any, list[Run]]:
    """Each cell's run with its repeats among `runs`."""
    return {key: repeats_of(run, runs) for key, run in cells.items()}


def table3(runs: Iterable[Run], metric: Metric | None = None) -> pd.DataFrame:
    """Table 3 by number of proposers: ours (`metric`, by default the headline) multiple and
    single, each with its `_n`, the paper's LC, the rows' subsets and runs."""
    paper = _paper("table3_num_proposers.csv").set_index("n_proposers")
    runs = list(runs)
    cells = _grouped(table3_cells(runs), runs)
    rows = []
    for n in sorted({n for n, _ in cells}):
        mine = {kind: run for (k, kind), run in sorted(cells.items()) if k == n}
        rows.append(
            {
                "n_proposers": n,
                **_cell_columns(mine, ("multiple", "single"), metric),
                "paper_multiple": _value(paper, n, "multiple_proposers_lc"),
                "paper_single": _value(paper, n, "single_proposer_lc"),
                **_row_runs(mine),
            }
        )
    return frame_of(rows) if rows else pd.DataFrame()


def table4(runs: Iterable[Run], metric: Metric | None = None) -> pd.DataFrame:
    """Table 4, in the paper's order of models: each as the aggregator and as the only
    proposer, each with its `_n`, the paper's LC, the rows' subsets and runs."""
    paper = _paper("table4_roles.csv").set_index("model")
    runs = list(runs)
    cells = _grouped(table4_cells(runs), runs)
    rows = []
    for model in [m for m in TABLE4_ROWS if any(k == m for k, _ in cells)]:
        mine = {role: run for (k, role), run in sorted(cells.items()) if k == model}
        rows.append(
            {
                "model": model,
                **_cell_columns(mine, ("as_aggregator", "as_proposer"), metric),
                "paper_as_aggregator": _value(paper, TABLE4_ROWS[model], "as_aggregator_lc"),
                "paper_as_proposer": _value(paper, TABLE4_ROWS[model], "as_proposer_lc"),
                **_row_runs(mine),
            }
        )
    return frame_of(rows) if rows else pd.DataFrame()


def ranker_table(runs: Iterable[Run], metric: Metric | None = None) -> pd.DataFrame:
    """Figure 4(a) by number of layers: ours aggregating and ranking, each with its `_n`, and
    the paper's aggregator value where its tables give the same configuration
    (`paper_aggregator_curve`; the paper tabulates no ranker value). Empty without a run of
    more than one layer."""
    runs = list(runs)
    cells = _grouped(ranker_cells(runs), runs)
    if not any(layers > 1 for layers, _ in cells):
        return pd.DataFrame()
    paper = paper_aggregator_curve(metric or Metric(LC_KEY, "LC win rate"))
    rows = []
    for layers in sorted({n for n, _ in cells}):
        mine = {mode: run for (n, mode), run in sorted(cells.items()) if n == layers}
        rows.append(
            {
                "layers": layers,
                **_cell_columns(mine, ("aggregate", "rank"), metric),
                "paper_aggregate": paper.get(layers),
                **_row_runs(mine),
            }
        )
    return frame_of(rows)


def ranker_gaps(table: pd.DataFrame) -> list[str]:
    """The cells of `ranker_table` that have a run but no value (not wholly judged)."""
    return [
        f"{mode} at {int(row['layers'])} layers (its run not wholly judged)"
        for _, row in table.iterrows()
        for mode in ("aggregate", "rank")
        if f"{mode}_n" in table.columns and _missing(row[mode]) and not _missing(row[f"{mode}_n"])
    ]


# --- paired comparisons --------------------------------------------------------------------


def _difference(run: Run, base: Run) -> dict[str, Any]:
    """`run` minus `base` per instance with its interval, or why they may not be paired."""
    refused = pairing.refusal(run, base)
    diff: Interval | None = None if refused else paired(run.scores, base.scores)
    empty = diff is None or diff.n == 0
    return {
        "minus": base.name,
        "minus_judge": base.judge_shown,
        "difference": None if empty or diff is None else diff.mean,
        "diff_ci_low": None if empty or diff is None else diff.low,
        "diff_ci_high": None if empty or diff is None else diff.high,
        "n_paired": None if diff is None else diff.n,
        "refused": refused or None,
    }


PAIRING = pairing.RULE


def comparisons(
    runs: Sequence[Run], reference: str, everyone: Sequence[Run] | None = None
) -> pd.DataFrame:
    """Each run minus a run of the reference variant judged by the same judge on the same
    instances (the whole benchmark's, wholly judged, if there are several), paired on the
    instances both were judged on. A run with no such run to pair with, and each such run
    beside the first of the reference variant's, is refused (`eval.pairing`): `refused` says
    why and `minus` names the first. `everyone` are the runs the reference's are looked for
    in (by default `runs`), so that a run is refused against another judge's."""
    references = preferred(r for r in (everyone or runs) if r.variant == reference)
    if not references:
        return pd.DataFrame()
    first, by_kind = references[0], pairing.bases(references, references)

    def row(run: Run) -> dict[str, Any]:
        base = by_kind.get((run.judge, run.subset))
        against = base if base is not None and base is not run else first
        return {
            "run": run.name,
            "judge": run.judge_shown,
            "provider": run.provider,
            "subset": run.subset,
            "n": run.n,
            "avg_length": _int(run.avg_length),
            **_difference(run, against),
            "complete": run.complete and against.complete,  # both runs wholly judged
        }

    rows = collapse_repeats([run for run in runs if run is not first], row)
    return frame_of(rows) if rows else pd.DataFrame()


def published_reference(runs: Sequence[Run], reference: str) -> Run | None:
    """The published-proposals run the others are paired against: the `reference` variant's if
    it is one of them, else the first (`published_table`'s order)."""
    ordered = _published_order(runs)
    chosen = preferred(r for r in ordered if r.variant == reference)
    return chosen[0] if chosen else (ordered[0] if ordered else None)


def _published_order(runs: Iterable[Run]) -> list[Run]:
    """The paper's aggregator first (`published_proposers`' default), then by run name."""
    published = [r for r in runs if r.published]
    return sorted(published, key=lambda r: (r.aggregator != PAPER_AGGREGATOR, r.name))


def published_table(runs: Sequence[Run], reference: str, metric: Metric) -> pd.DataFrame:
    """Aggregators compared with the proposals held fixed (the published outputs, replayed):
    per aggregator its scores, then its paired difference, per instruction, from the reference
    run's (`published_reference`), with a bootstrap 95% interval (`diff_ci_low`/`_high`)."""
    ordered = _published_order(runs)
    base = published_reference(ordered, reference)
    if base is None:
        return pd.DataFrame()

    def row(run: Run) -> dict[str, Any]:
        judged = run.complete
        head: dict[str, Any] = {
            "run": run.name,
            "aggregator": run.shown(run.identity.aggregator_model),
            **_coverage(run),
            ("lc_win_rate" if metric.lc else "win_rate"): metric.of(run),
            **(
                {"win_rate": _float(run.metrics.get("win_rate")) if judged else None}
                if metric.lc
                else {}
            ),
            "standard_error": _float(run.metrics.get("standard_error")) if judged else None,
            **_ci(run),
            "avg_length": _int(run.avg_length),
        }
        if run is base:
            return {**head, "minus": "(reference)", "minus_judge": base.judge_shown,
                    "difference": None, "diff_ci_low": None, "diff_ci_high": None,
                    "n_paired": None, "refused": None}  # fmt: skip
        return {**head, **_difference(run, base)}

    return frame_of(collapse_repeats(ordered, row))


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
            **_coverage(run),
            value: score(run) if score else _float(run.headline),
            **(
                {
                    "standard_error": _float(run.metrics.get("standard_error"))
                    if run.complete
                    else None
                }
                if "standard_error" in run.metrics
                else {}
            ),
            **_ci(run),
            "avg_length": _int(run.avg_length),
            "note": run.departure or None,
        }

    chosen = sorted((r for r in runs if r.name not in placed), key=lambda r: r.name)
    return frame_of(collapse_repeats(chosen, row)) if chosen else pd.DataFrame()


# --- writing -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A Markdown cell: empty for a gap, integers as integers, two decimals (three significant
    digits below 0.1), flags as yes/no."""
    if _missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if _is_int(value):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        return f"{value:.3g}" if 0 < abs(value) < 0.1 else f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _plain(column: str) -> Callable[[Any], str]:
    return lambda row: _cell(row[column])


def _spread(column: str, std: str) -> Callable[[Any], str]:
    return lambda row: _cell(row[column]) + ("" if _missing(row[std]) else f" ± {_cell(row[std])}")


def _range(low: str, high: str) -> Callable[[Any], str]:
    def text(row: Any) -> str:
        if _missing(row[low]) and _missing(row[high]):
            return ""
        return f"[{_cell(row[low])}, {_cell(row[high])}]"

    return text


def markdown(frame: pd.DataFrame) -> str:
    """The table in Markdown: `x` and `x_std` as `x ± std`, `…ci_low` and `…ci_high` as one
    `[low, high]` column (`95% CI`), every gap empty."""
    columns = list(frame.columns)
    shown: list[tuple[str, Callable[[Any], str]]] = []
    for column in columns:
        high = column.replace("ci_low", "ci_high")
        if column.endswith("_std") and column.removesuffix("_std") in columns:
            continue  # beside its column
        if column.endswith("_runs") and column.removesuffix("_runs") in columns:
            continue  # each repeat's value: in the CSV
        if column.endswith("ci_high") and column.replace("ci_high", "ci_low") in columns:
            continue  # with its low end
        if column.endswith("ci_low") and high in columns:  # over repeats: the mean interval
            prefix = column.removesuffix("ci_low").replace("_", " ")
            shown.append((f"{prefix}95% CI", _range(column, high)))
        elif f"{column}_std" in columns:
            shown.append((column, _spread(column, f"{column}_std")))
        else:
            shown.append((column, _plain(column)))
    lines = [
        "| " + " | ".join(name for name, _ in shown) + " |",
        "|" + "|".join("---" for _ in shown) + "|",
    ]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(text(row) for _, text in shown) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    frame: pd.DataFrame, out_dir: Path, name: str, note: str = "", title: str = ""
) -> str:
    """CSV and Markdown of a table, each written whole (a kill leaves the old file or the new);
    returns its section of the report's index, linking both. A table no run fills is not
    written."""
    if frame.empty:
        return ""
    write_atomic(out_dir / f"{name}.csv", frame.to_csv(index=False))
    heading = title or name
    body = f"{note}{markdown(frame)}"
    write_atomic(out_dir / f"{name}.md", f"# {heading}\n\n{body}")
    return f"## {heading}\n\n{body}\n[{name}.csv]({name}.csv) · [{name}.md]({name}.md)\n"
