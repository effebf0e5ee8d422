"""A run's metrics as the run browser's index shows them (`eval.view`), each beside the paper's
number where it has one, per benchmark: the browser asks here, not the benchmark."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eval.judges.common import is_complete
from eval.report.metric import LC_KEY, Metric
from eval.report.paper import paper_table2a, paper_table2b
from eval.stats import bootstrap


@dataclass(frozen=True)
class Figure:
    """One metric of a run for the browser's index: ours, its 95% interval, the paper's."""

    name: str
    value: float | None
    low: float | None = None
    high: float | None = None
    paper: float | None = None
    note: str = ""  # e.g. `partial`: the judged part of an incomplete run

    @classmethod
    def over(
        cls, name: str, value: Any, scores: Iterable[float], paper: float | None = None
    ) -> Figure:
        """A figure whose interval is the bootstrap over per-instance `scores` (`eval.stats`)."""
        values = np.array(list(scores), dtype=float)
        if value is None or not values.size:
            return cls(name, None if value is None else float(value), paper=paper)
        interval = bootstrap(values)
        return cls(name, float(value), interval.low, interval.high, paper)


Figures = Callable[[str, Mapping[str, Any], Mapping[str, float]], list[Figure]]


def _source(paper: tuple[float | None, str]) -> str:
    """Says so where the paper has no number and the AlpacaEval leaderboard's is shown."""
    return "the leaderboard's" if paper[0] is not None and paper[1] != "paper" else ""


def alpaca_eval(
    variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]
) -> list[Figure]:
    """LC win rate (interval: alpaca-eval's standard error, times 1.96) and win rate
    (bootstrap over instructions), each beside the paper's Table 2a; a partial set's win
    rate is its judged part's."""
    if not is_complete(metrics):
        partial = metrics.get("partial") or {}
        rate = partial.get("win_rate")
        return [Figure("win rate", rate, note="partial")] if rate is not None else []
    figures = []
    lc, se = metrics.get("length_controlled_winrate"), metrics.get("lc_standard_error")
    if lc is not None:
        low, high = (lc - 1.96 * se, lc + 1.96 * se) if se is not None else (None, None)
        paper = paper_table2a(variant, Metric(LC_KEY, "LC"))
        figures.append(Figure("LC win rate", float(lc), low, high, paper[0], _source(paper)))
    paper = paper_table2a(variant, Metric("win_rate", "win rate"))
    rate = Figure.over("win rate", metrics.get("win_rate"), scores.values(), paper[0])
    return [*figures, dataclasses.replace(rate, note=_source(paper))]


def mt_bench(variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]) -> list[Figure]:
    """The average (bootstrap over the scored turns) and each turn's, beside Table 2b."""
    if not is_complete(metrics):
        average = (metrics.get("partial") or {}).get("average")
        return [Figure("average", average, note="partial")] if average is not None else []
    turn = {t: [v for k, v in scores.items() if k.endswith(f"/{t}")] for t in (1, 2)}
    return [
        Figure.over("average", metrics.get("average"), scores.values(),
                    paper_table2b(variant, "avg")),
        *(
            Figure.over(f"turn {t}", metrics.get(f"turn_{t}"), turn[t],
                        paper_table2b(variant, f"turn_{t}"))
            for t in (1, 2)
        ),
    ]  # fmt: skip


def mt_bench_pair(
    variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]
) -> list[Figure]:
    """The adjusted win rate against the baseline (bootstrap over the counted turns)."""
    if not is_complete(metrics):
        rate = (metrics.get("partial") or {}).get("win_rate_adjusted")
        return [Figure("win rate adjusted", rate, note="partial")] if rate is not None else []
    return [Figure.over("win rate adjusted", metrics.get("win_rate_adjusted"), scores.values())]


def flask(variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]) -> list[Figure]:
    """The mean skill score per instance (bootstrap), then each skill's average (1-5); the
    paper draws FLASK (Figure 3) but tabulates no number."""
    complete = "skills" in metrics
    skills = metrics.get("skills") or (metrics.get("partial") or {}).get("skills") or {}
    note = "" if complete else "partial"
    mean = sum(scores.values()) / len(scores) if scores else None
    head = Figure.over("mean skill score", mean, scores.values())
    return [
        dataclasses.replace(head, note=note),
        *(Figure(name, float(value), note=note) for name, value in skills.items()),
    ]


# Per benchmark; a benchmark not named here (the demo) shows no metric in the index.
BY_BENCHMARK: dict[str, Figures] = {
    "alpaca_eval": alpaca_eval,
    "mt_bench": mt_bench,
    "mt_bench_pair": mt_bench_pair,
    "flask": flask,
    "flask_hard": flask,
}


def figures(
    benchmark: str, variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]
) -> list[Figure]:
    """The run's metrics for the browser's index; `scores` are its per-instance scores, for
    intervals."""
    shown = BY_BENCHMARK.get(benchmark)
    return shown(variant, metrics, scores) if shown else []
