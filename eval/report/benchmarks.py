"""Which tables and figures a benchmark's runs get in the report: the report decides, per
benchmark name; a benchmark not named here (the demo) gets none."""

from __future__ import annotations

import functools
from collections.abc import Callable

from eval.report import alpaca_eval, arena_hard, flask, mt_bench, mt_bench_pair, statistics
from eval.report.section import Section
from eval.runs import Run

Sections = Callable[[list[Run], Section], list[str]]

BY_BENCHMARK: dict[str, Sections] = {
    "alpaca_eval": alpaca_eval.sections,
    "mt_bench": mt_bench.sections,
    "mt_bench_pair": mt_bench_pair.sections,
    "flask": functools.partial(flask.sections, "flask", "FLASK"),
    "flask_hard": functools.partial(flask.sections, "flask_hard", "FLASK-Hard"),
    "arena_hard_v0.1": functools.partial(
        arena_hard.sections, "arena_hard_v0.1", "Arena-Hard-Auto v0.1"
    ),
    "arena_hard_v2.0": functools.partial(
        arena_hard.sections, "arena_hard_v2.0", "Arena-Hard-Auto v2.0"
    ),
}


def sections(benchmark: str, runs: list[Run], section: Section) -> list[str]:
    """Writes `benchmark`'s tables and plots of one judge's runs (`section` says where and under
    which names); returns their Markdown."""
    write = BY_BENCHMARK.get(benchmark)
    return [*write(runs, section), *statistics.sections(benchmark, runs, section)] if write else []
