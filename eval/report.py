"""The report: every judged run directory becomes the paper's tables and plots.

Reads each run under a results directory (`<benchmark>/<run>/metrics.json`, `run.json`, the
traces and the judge's native file) and lets its benchmark's task write its tables
(`eval.tables`) and plots (`eval.plots`) as Markdown, CSV and PNG, each written whole. A run
directory whose files are damaged (a torn metrics.json, a 0-byte annotations.json, a judge file
that does not match the traces) is skipped with a one-line reason; the others are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eval.benchmarks import DataError
from eval.errors import describe
from eval.rundir import METRICS, InstanceResult, RunDir, RunFileError
from eval.settings import build_catalogue
from eval.tables import Run
from eval.tasks import Data, task_class
from moa.catalogue import Catalogue
from moa.flops import call_tflops, turn_tflops

# What reading a damaged or foreign run directory raises: that run is skipped with the reason,
# the others are reported. (`ValueError` covers `RunFileError`, `ConfigError` and JSON errors.)
DAMAGE = (ValueError, DataError, OSError)


@dataclass(frozen=True)
class Skipped:
    """A run directory the report left out, and why, in one line."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass(frozen=True)
class Report:
    """The report's Markdown (what `str` gives, the skipped runs' lines at its end) and the runs
    it skipped."""

    markdown: str
    skipped: list[Skipped] = field(default_factory=list)

    def __str__(self) -> str:
        return self.markdown


def load_runs(results_dir: Path) -> tuple[list[Run], list[Skipped]]:
    """Every judged run under `results_dir`, and those whose files are damaged: skipped, each
    with its reason, never stopping the others."""
    runs, skipped = [], []
    for metrics_path in sorted(results_dir.glob(f"*/*/{METRICS}")):
        rundir = RunDir(metrics_path.parent)
        try:
            runs.append(load_run(rundir))
        except DAMAGE as exc:
            skipped.append(Skipped(rundir.path, describe(exc)))
    return runs, skipped


def load_run(rundir: RunDir) -> Run:
    """One judged run directory, each file read and checked; damage raises (see `DAMAGE`)."""
    identity = rundir.identity()
    if identity is None:
        raise RunFileError(f"{rundir.run_file}: missing, so not a moa-bench run directory")
    metrics = rundir.metrics()
    if metrics is None:
        raise RunFileError(f"{rundir.metrics_file}: missing")
    task = task_class(identity.benchmark)({"name": identity.benchmark}, Data())
    try:
        cfg = OmegaConf.load(rundir.config_file)
        if not isinstance(cfg, DictConfig):
            raise RunFileError(f"{rundir.config_file}: not a config mapping")
        catalogue = build_catalogue(cfg)
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise RunFileError(f"{rundir.config_file}: {describe(exc)}") from None
    values = {"judge": metrics.judge, **metrics.values}
    finished = rundir.finished()
    run = Run(
        benchmark=identity.benchmark,
        name=rundir.path.name,
        identity=identity,
        path=rundir.path,
        metrics=values,
        headline=task.headline(values),
        layer_models=[
            [catalogue.by_address(str(model)).name for model, _ in layer]
            for layer in identity.layers
        ],
        aggregator=catalogue.by_address(identity.aggregator_model).name,
        scores=task.instance_scores(rundir, metrics, finished),
    )
    run.cost_per_instance, run.tflops_per_instance = _budget(finished, catalogue)
    return run


def _budget(finished: Mapping[str, InstanceResult], catalogue: Catalogue) -> tuple[float, float]:
    """Mean cost (USD) and TFLOPs per instance from the traces, TFLOPs counted as the paper
    counts them (`moa.flops`)."""
    costs, flops = [], []
    for result in finished.values():
        cost, layers = 0.0, []
        for turn in result.trace.turns:
            for layer in [*turn.layers, [turn.final] if turn.final else []]:
                layer_flops = []
                for call in layer:
                    entry = catalogue.by_address(call.model)
                    cost += entry.cost(call.input_tokens, call.output_tokens)
                    tokens = call.input_tokens + call.output_tokens
                    layer_flops.append(call_tflops(entry.active_params_b, tokens))
                layers.append(layer_flops)
        costs.append(cost)
        flops.append(turn_tflops(layers))
    return (float(np.mean(costs)), float(np.mean(flops))) if costs else (math.nan, math.nan)


def write_report(results_dir: Path, out_dir: Path, reference: str = "moa") -> Report:
    """Writes every table and plot that the judged runs allow; returns the Markdown, which ends
    with a line per run directory skipped as damaged, and those runs."""
    runs, skipped = load_runs(results_dir)
    by_bench: dict[str, list[Run]] = {}
    for run in runs:
        by_bench.setdefault(run.benchmark, []).append(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for bench, bench_runs in by_bench.items():
        task = task_class(bench)({"name": bench}, Data())
        parts += task.report(bench_runs, out_dir, reference)
    if skipped:
        parts.append("## skipped runs\n\n" + "".join(f"- {s}\n" for s in skipped))
    return Report("\n".join(p for p in parts if p), skipped)
