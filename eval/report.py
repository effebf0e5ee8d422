"""The report: every judged run directory becomes the paper's tables and plots.

Reads each run under a results directory (`<benchmark>/<run>/metrics.json`, `run.json`, the
traces and the judge's native file) and lets its benchmark's task write its tables
(`eval.tables`) and plots (`eval.plots`) as Markdown, CSV and PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from eval.rundir import METRICS, RunDir
from eval.settings import build_catalogue
from eval.tables import Run
from eval.tasks import Data, task_class
from moa.catalogue import Catalogue
from moa.flops import call_tflops, turn_tflops


def load_runs(results_dir: Path) -> list[Run]:
    runs = []
    for metrics_path in sorted(results_dir.glob(f"*/*/{METRICS}")):
        rundir = RunDir(metrics_path.parent)
        identity = rundir.identity()
        metrics = rundir.metrics()
        if identity is None or metrics is None:
            continue
        task = task_class(identity.benchmark)({"name": identity.benchmark}, Data())
        cfg = OmegaConf.load(rundir.config_file)
        assert isinstance(cfg, DictConfig)
        catalogue = build_catalogue(cfg)
        values = {"judge": metrics.judge, **metrics.values}
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
            scores=task.instance_scores(rundir),
        )
        run.cost_per_instance, run.tflops_per_instance = _budget(rundir, catalogue)
        runs.append(run)
    return runs


def _budget(run: RunDir, catalogue: Catalogue) -> tuple[float, float]:
    """Mean cost (USD) and TFLOPs per instance from the traces, TFLOPs counted as the paper
    counts them (`moa.flops`)."""
    costs, flops = [], []
    for result in run.finished().values():
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


def write_report(results_dir: Path, out_dir: Path, reference: str = "moa") -> str:
    """Writes every table and plot that the judged runs allow; returns the Markdown."""
    by_bench: dict[str, list[Run]] = {}
    for run in load_runs(results_dir):
        by_bench.setdefault(run.benchmark, []).append(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for bench, runs in by_bench.items():
        task = task_class(bench)({"name": bench}, Data())
        parts += task.report(runs, out_dir, reference)
    return "\n".join(p for p in parts if p)
