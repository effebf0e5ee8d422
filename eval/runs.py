"""The one read-model of a judged run directory, for the report, the browser and any other reader.

A `Run` is what the directory's files say of it, each read and checked once: its identity (the
sweep axes as catalogue names), its judge and provider in words, its instance selection, how
many instances were scored and whether every one was judged, its metrics and headline number,
its per-instance scores, and its budget (cost and TFLOPs per instance) from the traces. The
benchmark's judge reads its native file (`eval.evaluation`); nothing here knows a benchmark.
A damaged or foreign directory raises one of `DAMAGE`, which a caller turns into a skipped run
with its one-line reason (`Skipped`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eval import run_labels
from eval.benchmarks import DataError
from eval.benchmarks.data import Data
from eval.errors import describe
from eval.evaluation import Evaluation, evaluation_for
from eval.judge_repeats import repeat_scores
from eval.judges.common import avg_length, is_complete
from eval.judges.readings import Verdict
from eval.paper_rows import TABLE2_ROWS, departure
from eval.run_labels import Namer
from eval.rundir import (
    RUN_FILE,
    InstanceResult,
    RunDir,
    RunFileError,
    RunIdentity,
    RunMetrics,
    subset_suffix,
)
from eval.settings import build_catalogue
from moa.flops import call_tflops, turn_tflops

# What reading a damaged or foreign run directory raises: that run is skipped with the reason,
# the others are reported. (`ValueError` covers `RunFileError`, `ConfigError` and JSON errors.)
DAMAGE = (ValueError, DataError, OSError)

REPLAY = "replay/"  # the endpoint of the published, replayed proposals


def selection_label(selection: Mapping[str, Any] | None) -> str:
    """A run's instance selection as its directory marks it (`first30`, `ids-1,2`,
    `coding+math~first5`); empty for the whole benchmark."""
    if not selection:
        return ""

    suffix = subset_suffix(selection.get("categories"), selection.get("ids"),
                           selection.get("limit"))  # fmt: skip
    return suffix.removeprefix("~") or json.dumps(dict(selection), sort_keys=True)


@dataclass(frozen=True)
class Judgment:
    """What a run's judge said, read from its native file by the benchmark's task: the metrics,
    and on demand the per-instance scores and verdicts (`finished`: the answered instances)."""

    rundir: RunDir
    task: Evaluation
    metrics: RunMetrics
    finished: Mapping[str, InstanceResult]

    def scores(self) -> dict[str, float]:
        """Per instance (MT-Bench: per question and turn), for intervals and paired differences."""
        return self.task.instance_scores(self.rundir, self.metrics, self.finished)

    def verdicts(self) -> dict[str, Verdict]:
        """Per instance id, its judge's verdict (`eval.judges.readings.Verdict`)."""
        return self.task.verdicts(self.rundir, self.metrics, self.finished)

    def repeat_scores(self) -> list[dict[str, float]]:
        """Per judge repeat after the first (`judge.repeats`), its scores as `scores` gives."""
        return repeat_scores(self.task, self.rundir, self.metrics, self.finished)


def judgment_of(
    rundir: RunDir, task: Evaluation, finished: Mapping[str, InstanceResult]
) -> Judgment | None:
    """The run's judgment; none for a run not judged yet (no metrics)."""
    metrics = rundir.metrics()
    return None if metrics is None else Judgment(rundir, task, metrics, finished)


@dataclass
class Run:
    """One judged run directory and what its readers (the report, the browser) need from it."""

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
    # Its judge's file, for the verdicts (`verdicts`), which only some readers need.
    judgment: Judgment | None = field(default=None, repr=False, compare=False)
    # Which run of a repeated variant (`repeats`; 1 for a run made once): the tables show the
    # repeats of one configuration as one row, mean ± std (`collapse_repeats`).
    repeat: int = 1

    @property
    def variant(self) -> str:
        return self.identity.variant

    def verdicts(self) -> dict[str, Verdict]:
        """Per instance id, its judge's verdict, read from the judge's file when asked for."""
        return self.judgment.verdicts() if self.judgment else {}

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


@dataclass(frozen=True)
class Skipped:
    """A run directory the report left out, and why, in one line."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


def run_dirs(results_dir: Path) -> list[tuple[str, RunDir]]:
    """Every run directory under `results_dir` (a folder with a `run.json`), however deep it
    lies, with its name: its path below its benchmark's folder (`moa@scripted`; a variant name
    with a `/`, as runs were once allowed, makes a name with one)."""
    found = []
    for run_file in sorted(results_dir.rglob(RUN_FILE)):
        parts = run_file.parent.relative_to(results_dir).parts
        found.append(("/".join(parts[1:] or parts), RunDir(run_file.parent)))
    return found


def load_runs(results_dir: Path) -> tuple[list[Run], list[Skipped]]:
    """Every judged run under `results_dir` (`run_dirs`), and those whose files are damaged:
    skipped, each with its reason, never stopping the others."""
    runs, skipped = [], []
    for name, rundir in run_dirs(results_dir):
        if not rundir.metrics_file.exists():
            continue  # not judged: `unjudged` names it
        try:
            runs.append(load_run(rundir, name))
        except DAMAGE as exc:
            skipped.append(Skipped(rundir.path, describe(exc)))
    return runs, skipped


def unjudged(results_dir: Path) -> list[str]:
    """The run directories under `results_dir` with no judge's metrics yet, by name."""
    return [
        f"{rundir.path.relative_to(results_dir)}"
        for _, rundir in run_dirs(results_dir)
        if not rundir.metrics_file.exists()
    ]


def load_run(rundir: RunDir, name: str | None = None, data: Data | None = None) -> Run:
    """One judged run directory (called `name`, by default its folder's; `data`: where its
    benchmark's files are, for verdicts that show them), each file read and checked; damage
    raises (see `DAMAGE`)."""
    identity, task = open_run(rundir, data or Data())
    metrics = rundir.metrics()
    if metrics is None:
        raise RunFileError(f"{rundir.metrics_file}: missing")
    namer = namer_of(rundir)
    catalogue = namer.catalogue
    values = {"judge": metrics.judge, **metrics.values}
    finished = rundir.finished()
    judgment = Judgment(rundir, task, metrics, finished)
    run = Run(
        benchmark=identity.benchmark,
        name=name or rundir.path.name,
        identity=identity,
        path=rundir.path,
        metrics=values,
        headline=task.headline(values),
        layer_models=[
            [catalogue.by_address(agent.model).name for agent in layer] for layer in identity.layers
        ],
        aggregator=catalogue.by_address(identity.aggregator_model).name,
        scores=judgment.scores(),
        repeat=identity.repeat,
        namer=namer,
        judgment=judgment,
    )
    lengths = avg_length(o for r in finished.values() for o in r.outputs or ())
    run.avg_length = math.nan if lengths is None else lengths
    run.cost_per_instance, run.tflops_per_instance = _budget(finished, namer)
    return run


def namer_of(rundir: RunDir) -> Namer:
    """How a run's models are named and sized (`eval.run_labels.Namer`), from its saved config:
    the catalogue and the endpoints it was made with."""
    try:
        cfg = OmegaConf.to_container(OmegaConf.load(rundir.config_file), resolve=True)
        if not isinstance(cfg, dict):
            raise RunFileError(f"{rundir.config_file}: not a config mapping")
        return Namer(build_catalogue({str(k): v for k, v in cfg.items()}), cfg["endpoints"])
    except (yaml.YAMLError, OmegaConfBaseException, KeyError) as exc:
        raise RunFileError(f"{rundir.config_file}: {describe(exc)}") from None


def _budget(finished: Mapping[str, InstanceResult], namer: Namer) -> tuple[float, float]:
    """Mean cost (USD) and TFLOPs per instance from the traces, at catalogue prices, a call to
    an endpoint that does not bill free, and TFLOPs counted as the paper counts them
    (`moa.flops`) with the size of the model that answered (a stand-in's own)."""
    free = namer.free
    costs, flops = [], []
    for result in finished.values():
        cost, layers = 0.0, []
        for turn in result.trace.turns:
            for layer in [*turn.layers, [turn.final] if turn.final else []]:
                layer_flops = []
                for call in layer:
                    if call.model.partition("/")[0] not in free:
                        entry = namer.catalogue.by_address(call.model)
                        cost += entry.cost(call.input_tokens, call.output_tokens)
                    tokens = call.input_tokens + call.output_tokens
                    params = namer.served(call.model).active_params_b
                    layer_flops.append(call_tflops(params, tokens))
                layers.append(layer_flops)
        costs.append(cost)
        flops.append(turn_tflops(layers))
    return (float(np.mean(costs)), float(np.mean(flops))) if costs else (math.nan, math.nan)


def open_run(rundir: RunDir, data: Data) -> tuple[RunIdentity, Evaluation]:
    """A run directory's identity and its benchmark's task; no identity raises."""
    identity = rundir.identity()
    if identity is None:
        raise RunFileError(f"{rundir.run_file}: missing, so not a moa-bench run directory")
    return identity, evaluation_for({"name": identity.benchmark}, data)
