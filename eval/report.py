"""The report: every judged run directory becomes the paper's tables and plots.

Reads each run under a results directory (`<benchmark>/<run>/metrics.json`, `run.json`, the
traces and the judge's native file) and lets its benchmark's task write its tables
(`eval.tables`) and plots (`eval.plots`) as Markdown, CSV and PNG, each written whole, and one
page, `index.md`, that shows and links every one of them. The report writes only into an empty
folder or one it wrote before, and rebuilds it from scratch: the files an earlier report wrote
there (its marker, `.moa-bench-report.json`, lists them) are removed first, nothing else. A run
directory whose files are damaged (a torn metrics.json, a 0-byte annotations.json, a judge file
that does not match the traces) is skipped with a one-line reason; the others are reported.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from eval.benchmarks import DataError
from eval.errors import describe
from eval.judges.common import avg_length
from eval.report_section import Section
from eval.run_filter import RunFilter
from eval.run_labels import Namer
from eval.rundir import (
    RUN_FILE,
    InstanceResult,
    RunDir,
    RunFileError,
    RunIdentity,
    leftover,
    write_atomic,
)
from eval.settings import build_catalogue, to_dict
from eval.tables import Run
from eval.tasks import Data, Task, task_class
from moa.errors import ConfigError
from moa.flops import call_tflops, turn_tflops

# What reading a damaged or foreign run directory raises: that run is skipped with the reason,
# the others are reported. (`ValueError` covers `RunFileError`, `ConfigError` and JSON errors.)
DAMAGE = (ValueError, DataError, OSError)

INDEX = "index.md"
HEAD = "# moa-bench report\n"
# The report's mark in its folder: the files it wrote there, which a rebuild removes first.
MARKER = ".moa-bench-report.json"
WRITER = "moa-bench task=report"


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
    index: Path | None = None  # the page that shows and links every table and plot

    def __str__(self) -> str:
        return self.markdown


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


def load_run(rundir: RunDir, name: str | None = None) -> Run:
    """One judged run directory (called `name`, by default its folder's), each file read and
    checked; damage raises (see `DAMAGE`)."""
    identity, task = open_run(rundir, Data())
    metrics = rundir.metrics()
    if metrics is None:
        raise RunFileError(f"{rundir.metrics_file}: missing")
    namer = namer_of(rundir)
    catalogue = namer.catalogue
    values = {"judge": metrics.judge, **metrics.values}
    finished = rundir.finished()
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
        scores=task.instance_scores(rundir, metrics, finished),
        repeat=identity.repeat,
        namer=namer,
    )
    lengths = avg_length(o for r in finished.values() for o in r.outputs or ())
    run.avg_length = math.nan if lengths is None else lengths
    run.cost_per_instance, run.tflops_per_instance = _budget(finished, namer)
    return run


def namer_of(rundir: RunDir) -> Namer:
    """How a run's models are named and sized (`eval.run_labels.Namer`), from its saved config:
    the catalogue and the endpoints it was made with."""
    try:
        cfg = OmegaConf.load(rundir.config_file)
        if not isinstance(cfg, DictConfig):
            raise RunFileError(f"{rundir.config_file}: not a config mapping")
        return Namer(build_catalogue(cfg), to_dict(cfg.endpoints))
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
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


def refuse_unless_ours(out_dir: Path, setting: str, what: str, ours: bool) -> None:
    """Refuses, in one line, to write a `what` (the report, the browser) into a folder that
    holds files but none of an earlier `what` (`ours`): rebuilding it would overwrite or delete
    files it did not write."""
    if ours or not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    raise ConfigError(
        f"{setting}={out_dir} is not a {what} folder: it holds files the {what} did not write, "
        f"and the {what} writes only into an empty folder or its own: choose another"
    )


def open_run(rundir: RunDir, data: Data) -> tuple[RunIdentity, Task]:
    """A run directory's identity and its benchmark's task; no identity raises."""
    identity = rundir.identity()
    if identity is None:
        raise RunFileError(f"{rundir.run_file}: missing, so not a moa-bench run directory")
    return identity, task_class(identity.benchmark)({"name": identity.benchmark}, data)


def _plain(name: str) -> bool:
    """A file name of the folder itself, not a path that leads out of it."""
    return bool(name) and name not in (".", "..") and not set(name) & {"/", "\\"}


def _report_files(out_dir: Path) -> list[str] | None:
    """The files an earlier report wrote in `out_dir`, as its marker lists them (a report
    made before the marker: `index.md` and what it linked above its other files); None if
    `out_dir` holds no report."""
    try:
        data = json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("written_by") == WRITER:
        return [str(n) for n in data.get("files") or [] if _plain(str(n))]
    try:
        index = (out_dir / INDEX).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if not index.startswith(HEAD):
        return None
    linked = index.split("\n## other files\n")[0]
    return [INDEX, *(n for n in re.findall(r"\]\(([^()]+)\)", linked) if _plain(n))]


def clear_report_dir(out_dir: Path) -> None:
    """Removes what an earlier report wrote in `out_dir` (`_report_files`, and its cut writes'
    leftovers), so that no table or plot of an earlier run set or reference stays beside the
    new ones; other files and every subfolder are left alone. A folder that holds files but
    no report is refused."""
    if not out_dir.is_dir():
        return
    files = _report_files(out_dir)
    refuse_unless_ours(out_dir, "report.out_dir", "report", files is not None)
    for name in files or []:
        path = out_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
    for path in out_dir.glob(".*.tmp"):
        if leftover(path):
            path.unlink(missing_ok=True)


def _inodes(out_dir: Path) -> dict[str, int]:
    """The folder's files by name, each with its inode, which an atomic rewrite changes."""
    return {p.name: p.stat().st_ino for p in out_dir.iterdir() if p.is_file() and p.name != MARKER}


def _index(results_dir: Path, out_dir: Path, runs: list[Run], reference: str,
           parts: list[str], skipped: list[Skipped], chosen: RunFilter,
           left_out: list[str]) -> str:  # fmt: skip
    """The report's one page: every table and plot in order, then any file written but not
    yet linked, then the runs the filter left out and those skipped as damaged."""
    judges = sorted({r.judge for r in runs})
    head = (
        f"{HEAD}\n{len(runs)} judged run(s) from `{results_dir}`"
        + (f" ({chosen}: {len(left_out)} left out)" if str(chosen) else "")
        + f", by {len(judges)} judge(s): {', '.join(judges) or 'none'}; paired comparisons "
        f"against `{reference}`. Each table is here and as CSV and Markdown beside this page; "
        "every row names its `judge` and its `provider` (the endpoints that generated the "
        "answers), and a benchmark judged by several judges has a table per judge, never two "
        "judges' numbers in one column; `n` is the instances scored, `subset` the selection "
        "of a run that covers part of its benchmark (empty: the whole benchmark), `complete` "
        "whether the judge judged every instance.\n"
    )
    text = "\n".join([head, *(p for p in parts if p)])
    unlinked = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != INDEX
        and f"]({p.name})" not in text
    )  # fmt: skip
    if unlinked:
        text += "\n## other files\n\n" + "".join(f"- [{n}]({n})\n" for n in unlinked)
    if left_out:
        text += f"\n## runs left out ({chosen})\n\n" + "".join(f"- {n}\n" for n in left_out)
    if waiting := unjudged(results_dir):
        text += "\n## runs not judged yet (`task=judge` judges one)\n\n" + "".join(
            f"- {n}\n" for n in waiting
        )
    if skipped:
        text += "\n## skipped runs\n\n" + "".join(f"- {s}\n" for s in skipped)
    return text


def write_report(
    results_dir: Path, out_dir: Path, reference: str = "moa", chosen: RunFilter | None = None
) -> Report:
    """Rebuilds `out_dir` with every table and plot that the judged runs `chosen` (by default
    all) allow, a part per benchmark and judge (`eval.report_section`), and `index.md` linking
    them; returns the index's Markdown, which ends with a line per run left out by the filter
    and per run directory skipped as damaged, and those runs."""
    chosen = chosen or RunFilter()
    found, skipped = load_runs(results_dir)
    admitted = {id(r) for r in found if chosen.admits(r.benchmark, r.name, r.judge, r.endpoints)}
    runs = [r for r in found if id(r) in admitted]
    left_out = [f"{r.benchmark}/{r.name} (judge {r.judge})" for r in found if id(r) not in admitted]
    by_bench: dict[str, list[Run]] = {}
    for run in runs:
        by_bench.setdefault(run.benchmark, []).append(run)
    clear_report_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = _inodes(out_dir)
    parts = []
    for bench, bench_runs in by_bench.items():
        task = task_class(bench)({"name": bench}, Data())
        judges = sorted({r.judge for r in bench_runs})
        for judge in judges:
            section = Section(out_dir, reference, judge, bench_runs, split=len(judges) > 1)
            parts += task.report([r for r in bench_runs if r.judge == judge], section)
    text = _index(results_dir, out_dir, runs, reference, parts, skipped, chosen, left_out)
    write_atomic(out_dir / INDEX, text)
    written = sorted(name for name, inode in _inodes(out_dir).items() if before.get(name) != inode)
    marker = {"written_by": WRITER, "files": written}
    write_atomic(out_dir / MARKER, json.dumps(marker, indent=1) + "\n")
    return Report(text, skipped, out_dir / INDEX)
