"""moa-bench from Python (a notebook, a script): the command's door, and run directories as
typed runs.

`run("benchmark=alpaca_eval", "moa=moa_lite", "benchmark.limit=5")` takes exactly the overrides
`moa-bench` takes: Hydra composes them, `eval.settings.resolve` checks them, and the same
command runs (`eval.cli.enter`). `open_run(path)` reads any run directory through the readers
the report and the browser use. Inside a running event loop (Jupyter's) `run` cannot start its
own: `await arun(...)` there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra import compose, initialize_config_dir

from eval.benchmarks.data import Data
from eval.cli import RUNS, enter
from eval.judges.common import is_complete
from eval.run_labels import provider
from eval.rundir import RunDir
from eval.runs import open_run as _open
from eval.runs import selection_label
from eval.settings import CONF_DIR
from moa.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Metrics:
    """A judged run's `metrics.json`: the fields every benchmark has, and all of it (`values`)."""

    judge: str  # the judge model's address
    judge_calls: int
    headline: float  # the number the report ranks runs by; NaN unless every instance is judged
    complete: bool  # every instance judged
    failures: Mapping[str, int]  # judge verdicts missing, by kind
    values: Mapping[str, Any]  # the benchmark's own metrics, as written


@dataclass(frozen=True)
class Run:
    """One run directory: what was run on what, and, once judged, its metrics."""

    path: Path
    variant: str
    benchmark: str
    provider: str  # the endpoints that generated the answers, e.g. `together, openai`
    subset: str  # the instance selection (`first5`); empty for the whole benchmark
    repeat: int
    n: int  # instances recorded (failed ones included)
    failed: int  # instances without an answer
    metrics: Metrics | None  # None until judged

    @property
    def judge(self) -> str | None:
        return None if self.metrics is None else self.metrics.judge

    def frame(self) -> pd.DataFrame:
        """One row per instance, in benchmark order: `id`, `output` (the last turn's answer;
        None when it failed), `turns`, and once judged the judge's `score` and `verdict` (as
        the browser shows them), and `preference` where the judge gives one per instance."""
        import pandas as pd

        rundir = RunDir(self.path)
        _, task = _open(rundir, Data())
        results = rundir.results()
        metrics = rundir.metrics()
        finished = {k: r for k, r in results.items() if r.outputs is not None}
        verdicts = {} if metrics is None else task.verdicts(rundir, metrics, finished)
        preferences = (metrics.values.get("preference") if metrics else None) or {}
        rows = []
        for result in sorted(results.values(), key=lambda r: _order(r.id)):
            verdict = verdicts.get(result.id)
            row: dict[str, Any] = {
                "id": result.id,
                "output": result.outputs[-1] if result.outputs else None,
                "turns": len(result.outputs or ()),
            }
            if metrics is not None:
                row["score"] = None if verdict is None else verdict.score
                row["verdict"] = None if verdict is None else verdict.outcome
            if isinstance(preferences, Mapping) and preferences:
                row["preference"] = preferences.get(result.id)
            rows.append(row)
        return pd.DataFrame(rows)


def _order(id_: str) -> tuple[int, str]:
    return (int(id_), "") if id_.isdigit() else (1 << 62, id_)


def open_run(path: str | Path) -> Run:
    """The run directory at `path`, judged or not; a directory that is no run, or a damaged
    file, raises `eval.rundir.RunFileError` naming it."""
    rundir = RunDir(Path(path))
    identity, task = _open(rundir, Data())
    results = rundir.results()
    written = rundir.metrics()
    metrics = None
    if written is not None:
        values = dict(written.values)
        metrics = Metrics(
            judge=written.judge,
            judge_calls=written.judge_calls,
            headline=task.headline({"judge": written.judge, **values}),
            complete=is_complete(values),
            failures=dict(values.get("failures") or {}),
            values=values,
        )
    return Run(
        path=rundir.path,
        variant=identity.variant,
        benchmark=identity.benchmark,
        provider=provider(identity),
        subset=selection_label(identity.selection),
        repeat=identity.repeat,
        n=len(results),
        failed=sum(r.outputs is None for r in results.values()),
        metrics=metrics,
    )


async def arun(*overrides: str) -> Run:
    """`run`, for a caller already in an event loop (`await arun(...)` in Jupyter)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", list(overrides))
        if cfg.prompt or str(cfg.task) not in RUNS:
            raise ConfigError(
                f"api.run makes a run directory: task= is one of {', '.join(RUNS)} "
                "(other commands: the moa-bench command)"
            )
        entered = await enter(cfg, overrides)
    return open_run(entered.settings[-1].run_dir)


def run(*overrides: str) -> Run:
    """Runs a variant on a benchmark with the overrides `moa-bench` takes (`task=run` by
    default: generated, then judged) and opens its run directory (a repeated run's last).
    Failed instances are in the run (`Run.failed`, a None output), not an exception; bad
    settings raise one `ConfigError` before anything is spent."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(*overrides))
    raise RuntimeError("an event loop is running (Jupyter's): use `await arun(...)`")
