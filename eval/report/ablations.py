"""The paper's ablations: Table 3 (number of proposers), Table 4 (each model's role) and
Figure 4(a) (aggregating vs ranking, by layers). Their cells come from different runs, found by
the sweep axes in each run's identity; a row says each cell's runs, judge and subset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from eval.paper_rows import PAPER_AGGREGATOR, PAPER_PROPOSERS
from eval.report.frames import as_float, as_int, ci, frame_of, merge_repeats, missing, repeats_of
from eval.report.metric import LC_KEY, Metric
from eval.report.paper import (
    TABLE4_ROWS,
    paper_aggregator_curve,
    paper_csv,
    paper_value,
)
from eval.runs import Run, preferred


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
                name: metric.of(run) if metric else as_float(run.headline),
                f"{name}_n": run.n,
                **{f"{name}_{k}": v for k, v in ci(run).items()},
                f"{name}_avg_length": as_int(run.avg_length),
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
    paper = paper_csv("table3_num_proposers.csv").set_index("n_proposers")
    runs = list(runs)
    cells = _grouped(table3_cells(runs), runs)
    rows = []
    for n in sorted({n for n, _ in cells}):
        mine = {kind: run for (k, kind), run in sorted(cells.items()) if k == n}
        rows.append(
            {
                "n_proposers": n,
                **_cell_columns(mine, ("multiple", "single"), metric),
                "paper_multiple": paper_value(paper, n, "multiple_proposers_lc"),
                "paper_single": paper_value(paper, n, "single_proposer_lc"),
                **_row_runs(mine),
            }
        )
    return frame_of(rows) if rows else pd.DataFrame()


def table4(runs: Iterable[Run], metric: Metric | None = None) -> pd.DataFrame:
    """Table 4, in the paper's order of models: each as the aggregator and as the only
    proposer, each with its `_n`, the paper's LC, the rows' subsets and runs."""
    paper = paper_csv("table4_roles.csv").set_index("model")
    runs = list(runs)
    cells = _grouped(table4_cells(runs), runs)
    rows = []
    for model in [m for m in TABLE4_ROWS if any(k == m for k, _ in cells)]:
        mine = {role: run for (k, role), run in sorted(cells.items()) if k == model}
        rows.append(
            {
                "model": model,
                **_cell_columns(mine, ("as_aggregator", "as_proposer"), metric),
                "paper_as_aggregator": paper_value(paper, TABLE4_ROWS[model], "as_aggregator_lc"),
                "paper_as_proposer": paper_value(paper, TABLE4_ROWS[model], "as_proposer_lc"),
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
        if f"{mode}_n" in table.columns and missing(row[mode]) and not missing(row[f"{mode}_n"])
    ]
