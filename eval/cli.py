"""`moa-bench`: the Hydra entry point. With no arguments it runs the embedded demo.

Tasks: `run` (generate, then judge), `generate`, `judge` (an existing run), `plan` (predict
calls and cost, spend nothing), `report` (tables and plots from judged runs), `view` (a static
site to browse every run's instances, layers and verdicts), `rescore` (re-parse a judge's output
file), `models` (what an endpoint still serves, beside the catalogue), `cache_merge` (merge call
caches, e.g. those of a sweep's jobs on several hosts, into cache.path), `calibrate` (a judge
measured against the paper's on its published judgments).
`prompt="..."` answers one prompt showing every layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from eval.errors import reported, run_cli
from eval.generate import (
    Generation,
    check_text,
    generate,
    generated,
    judge_address,
    task_of,
)
from eval.judges.common import avg_length, incomplete_reason, is_complete
from eval.mixture_config import describe_spec
from eval.preflight import gone_line
from eval.progress import following, progress
from eval.run_labels import Namer
from eval.rundir import RunDir, RunMetrics
from eval.settings import (
    CONF_DIR,
    build_catalogue,
    build_client,
    build_spec,
    check_endpoints,
    to_dict,
)
from eval.variant_name import name_variant
from moa.agents import Agent
from moa.catalogue import Catalogue
from moa.errors import ConfigError
from moa.ledger import usd
from moa.mixture import Mixture
from moa.trace import CallTrace
from moa.types import GenerateConfig

console = Console()
log = logging.getLogger("moa_bench")


NEXT = (
    "next: `moa-bench task=view` to browse every layer of this run, or `moa-bench "
    'prompt="your question" moa=moa_lite provider_override=local` (README: Using it)'
)


class _ShowLayers:
    """Prints each layer of a one-prompt run as it starts and as it ends; the last layer's
    answer is the output. Models are named as `namer` names them (a stand-in as such)."""

    def __init__(self, layers: int, final_is_output: bool, namer: Namer) -> None:
        self.layers = layers  # with the final agent's
        self.final_is_output = final_is_output  # not for the ranker, whose answer is a pick
        self.namer = namer

    def started(self, depth: int, agents: Sequence[Agent]) -> None:
        names = ", ".join(f"{self.namer.shown(a.model)}#{a.sample}" for a in agents)
        console.print(f"[dim]layer {depth} started: {len(agents)} call(s) ({escape(names)})")

    def finished(self, depth: int, calls: Sequence[CallTrace]) -> None:
        for call in calls:
            body = escape(call.text) if call.text is not None else f"[red]error: {call.error}"
            model = escape(self.namer.shown(call.model))
            # the final layer's last call is the output (a strategy's earlier calls are not)
            if depth == self.layers and self.final_is_output and call is calls[-1]:
                title, border = f"output: {model}", "red" if call.error else "green"
            else:
                title, border = f"layer {depth}: {model} #{call.sample}", "blue"
            console.print(Panel(body, title=title, border_style="red" if call.error else border))


async def answer_prompt(cfg: DictConfig) -> int:
    """One prompt through the chosen variant, showing every layer as it runs; exits non-zero,
    naming each failed call, when no answer came out."""
    check_text(str(cfg.prompt), "prompt")
    catalogue = build_catalogue(cfg)
    spec = build_spec(cfg, catalogue)
    client = build_client(cfg, catalogue, ledger_path=None)
    gen = cfg.benchmark.generation
    config = GenerateConfig(temperature=float(gen.temperature), max_tokens=int(gen.max_tokens))
    try:
        client.preflight(spec.models())
        watcher = _ShowLayers(len(spec.layers), spec.mode != "rank", namer_of(cfg, catalogue))
        turn = await Mixture(spec, client, watcher).run_turn(
            [{"role": "user", "content": str(cfg.prompt)}], config
        )
    finally:
        await client.aclose()
    if spec.mode == "rank" and turn.output is not None and turn.final is not None:
        title = f"output: the proposal {escape(watcher.namer.shown(turn.final.model))} picked"
        console.print(Panel(escape(turn.output), title=title, border_style="green"))
    for event in turn.events:
        console.print(f"[yellow]note: {escape(event)}")
    t = client.ledger.totals
    console.print(
        escape(f"{t.calls} calls ({t.cached} cached), {t.input_tokens + t.output_tokens:,} tokens, "
               f"{t.money()}")
    )  # fmt: skip
    if turn.output is not None:
        return 0
    failed = [c for c in turn.calls() if c.error]
    console.print(f"[red]no answer: {escape(turn.error or 'the mixture failed')}")
    for call in failed:
        console.print(f"[red]  {escape(call.label)} failed after {call.attempts} attempt(s): "
                      f"{escape(call.error or '')}")  # fmt: skip
    return 1


async def judge(cfg: DictConfig, run: Generation) -> RunMetrics:
    """Judges a finished generation with the configured judge; writes native files + metrics."""
    catalogue = build_catalogue(cfg)
    address = judge_address(cfg, catalogue, run.task)
    client = build_client(cfg, catalogue, ledger_path=run.run.judge_ledger)
    run.task.teach_offline_judge()
    done = [i for i, r in zip(run.instances, run.results, strict=True) if r.outputs]
    expected = sum(run.task.judge_calls(i) for i in done)
    try:
        client.preflight([address])
        with progress(client.ledger) as bar:
            judged = bar.add_task("judging", total=expected)
            async with following(bar, judged, lambda: client.ledger.totals.calls):
                values = await run.task.judge(
                    client, address, run.run, run.spec, run.instances, run.results
                )
    finally:
        await client.aclose()
    for model, why in client.gone().items():
        say(gone_line(model, why), "red")
    spent = client.ledger.totals
    outputs = [o for r in run.results for o in r.outputs or ()]
    values = {**values, "avg_length": avg_length(outputs), "judge_usd": spent.cost_usd,
              "judge_nominal_usd": spent.nominal_usd}  # fmt: skip
    metrics = RunMetrics(address, spent.calls, values)
    run.run.write_metrics(metrics)
    if reason := incomplete_reason(metrics.values):
        say(reason, "red")
    return metrics


def namer_of(cfg: DictConfig, catalogue: Catalogue) -> Namer:
    """How this config's models are named for a person (`eval.run_labels.Namer`)."""
    return Namer(catalogue, to_dict(cfg.endpoints))


def describe(cfg: DictConfig) -> str:
    """What a run is about to do, in words: its layers, its final agent and its judge, each
    model by its catalogue name (a stand-in said to be one)."""
    catalogue = build_catalogue(cfg)
    spec = build_spec(cfg, catalogue)
    name = namer_of(cfg, catalogue)
    final = name(spec.final.model)
    text = f"{spec.name}: " + describe_spec(spec, name)
    if cfg.judge.enabled and str(cfg.task) == "run":
        task = task_of(cfg)
        judge = name(judge_address(cfg, catalogue, task))
        text += f". Judged by {judge}" + (f" against {final} alone" if task.versus_alone else "")
    return text + "."


def show_results(run: Generation, metrics: RunMetrics | None) -> None:
    """Per instance: answer length per turn, calls, tokens, time and the judge's verdict, then
    the start of each final answer."""
    prefs = metrics.get("preference", {}) if metrics else {}
    calls = run.spec.calls_per_turn
    table = Table(title=f"{run.spec.name}: {calls if calls is not None else 'some'} calls per turn")
    # its calls' own time: instances queue for a one-at-a-time model, so the time from an
    # instance's start to its end is mostly waiting for the others
    columns = ["id", "turns", "chars", "calls", "tokens", "model s"]
    if prefs:
        columns.append("judged better")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for inst, r in zip(run.instances, run.results, strict=True):
        lengths = "/".join(str(len(o)) for o in r.outputs) if r.outputs else "failed"
        busy = sum(c.latency_s for c in r.trace.calls())
        row = [r.id, str(len(inst.turns)), lengths, str(r.calls),
               str(r.input_tokens + r.output_tokens), f"{busy:.1f}"]  # fmt: skip
        if prefs:
            row.append(_verdict(prefs.get(r.id)))
        table.add_row(*row)
    console.print(table)
    for r in run.results:  # the start of each final answer, one line each
        if r.outputs:
            excerpt = escape(" ".join(r.outputs[-1].split()))
            line = f"{r.id:>3} ({len(r.outputs[-1]):,} chars): {excerpt}"
            console.print(line, style="dim", no_wrap=True, overflow="ellipsis")
    console.print(
        "model s: the seconds its calls took (the model answers one call at a time, so an "
        "instance's own start-to-end time is mostly waiting for the others)"
        + (
            "; judged better: the judge's preference between the model alone (1) and the "
            "mixture (2), from its token probabilities as alpaca_eval computes it; above 1.5 "
            "the mixture is preferred, below it the model alone."
            if prefs
            else "."
        ),
        style="dim",
    )


def _verdict(preference: float | None) -> str:
    """alpaca_eval's preference: 1 = the model alone wins, 2 = the mixture wins."""
    if preference is None:
        return "-"
    word = "mixture" if preference > 1.5 else "model alone" if preference < 1.5 else "tie"
    return f"{word} ({preference:.2f})"


def say(text: str, style: str = "") -> None:
    """A line for the person at the terminal and for the run's `cli.log`."""
    console.print(escape(text), style=style or None)
    log.info(text)


def summarize(run: Generation, metrics: RunMetrics | None, name: Namer) -> None:
    t = run.totals
    say(
        f"{len(run.results) - len(run.failed)}/{len(run.results)} instances done; "
        f"{t.calls} calls ({t.cached} from cache, {t.requests} sent, {t.retries} retries, "
        f"{t.errors} errors); {t.input_tokens + t.output_tokens:,} tokens; {t.money()}"
    )
    if metrics is not None:
        say(
            f"judge {name.judge(metrics.judge)}: {metrics.judge_calls} calls; "
            f"{usd(metrics.get('judge_usd', 0.0))} paid"
        )
    if marks := t.marks():
        say(marks + " (each is marked in traces.jsonl and calls.jsonl)", "yellow")
    for endpoint, why in run.stopped.items():
        say(f"endpoint {endpoint} {why}: no more calls were sent to it", "red")
    for model, why in run.gone.items():
        say(gone_line(model, why), "red")
    for endpoint, evidence in run.ignoring_n.items():
        say(
            f"endpoint {endpoint} ignores n ({evidence}): the choices it sent are kept, the other "
            "draws went one per request; set supports_n: false for it",
            "yellow",
        )
    say(f"outputs: {run.output_file}")
    say(f"every layer's answers, tokens and costs: {run.run.traces}; the run: {run.run.path}")
    if metrics and "preference" not in metrics.values:  # the demo's: per instance, above
        show_metrics(metrics)
    for note in run.notes(metrics.values if metrics else None):
        say(note)
    if run.failed:
        say(
            f"{len(run.failed)} instance(s) failed (see traces.jsonl); run the same command "
            "again to retry them: completed calls come from the cache.",
            "red",
        )


# Shown elsewhere in the summary (the judge's line), or per instance (the demo's table).
_NOT_IN_TABLE = ("judge_usd", "judge_nominal_usd", "preference")


def metric_rows(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A judge's metrics as (name, value) lines a person reads: numbers to two decimals, a
    group (FLASK's skills, a partial set's, a deduplicated set's) a line per member, counts of
    judge failures on one line."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        name = key.replace("_", " ")
        if key in _NOT_IN_TABLE or value is None:
            continue
        if isinstance(value, Mapping) and key == "failures":
            failed = ", ".join(f"{n} {kind}" for kind, n in value.items() if n)
            rows.append(("judge failures", failed or "none"))
        elif isinstance(value, Mapping):
            rows += [(f"{name}: {k.replace('_', ' ')}", v) for k, v in metric_rows(value)]
        elif isinstance(value, list):
            rows.append((name, ", ".join(str(v) for v in value)))
        elif isinstance(value, float):
            rows.append((name, f"{value:.2f}"))
        else:
            rows.append((name, str(value)))
    return rows


def show_metrics(metrics: RunMetrics) -> None:
    """The judge's metrics as a small table (and a line each in `cli.log`)."""
    say(f"metrics, judged by {metrics.judge}:")
    table = Table()
    table.add_column("metric")
    table.add_column("value", overflow="fold")
    for name, value in metric_rows(metrics.values):
        table.add_row(escape(name), escape(value))
        log.info("metric %s: %s", name, value)
    console.print(table)


async def plan_task(cfg: DictConfig) -> int:
    """Prints the calls, tokens and dollars a config or a whole sweep will spend, sharing
    counted once; nothing is called. `plan.experiments=all` plans the paper's whole suite."""
    from eval.plan import plan_sweep
    from eval.suite import EXPERIMENTS, compose_points

    wanted = cfg.plan.experiments
    experiments = list(EXPERIMENTS) if wanted == "all" else list(wanted or [])
    points = (
        compose_points(list(HydraConfig.get().overrides.task), experiments)
        if experiments
        else [cfg]
    )
    await plan_sweep(cfg, points, console)
    return 0


def rescore_task(cfg: DictConfig) -> int:
    from eval.tasks import task_reading

    path = Path(str(cfg.rescore.path))
    if not path.is_file():
        raise ConfigError(f"rescore.path={path} is not a file")
    task = task_reading(path)
    console.print_json(data={"kind": task.name, **task.rescore(path)}, default=str)
    return 0


def cache_merge_task(cfg: DictConfig) -> int:
    """`task=cache_merge`: the union of `cache_merge.sources` in `cache.path`, a line each."""
    from moa.cache_merge import expand, merge_caches

    sources = expand([str(s) for s in cfg.cache_merge.sources or []])
    if not sources:
        raise ConfigError("task=cache_merge needs cache_merge.sources=[a.sqlite,b.sqlite,...]")
    target = Path(str(cfg.cache.path)).expanduser()
    merged = merge_caches(target, sources)
    for one in merged:
        say(f"merged {one}")
    added = sum(m.added for m in merged)
    say(f"{target}: {added} answers added from {len(merged)} cache(s); checksums verified")
    return 0


async def dispatch(cfg: DictConfig) -> int:
    if cfg.prompt:
        return await answer_prompt(cfg)
    task = str(cfg.task)
    if task == "plan":
        return await plan_task(cfg)
    if task == "report":
        from eval.report import write_report  # matplotlib and pandas: only for the report
        from eval.run_filter import RunFilter

        out_dir = Path(str(cfg.report.out_dir))
        chosen = RunFilter.from_settings(to_dict(cfg.report))
        report = write_report(
            Path(str(cfg.results_dir)), out_dir, str(cfg.report.reference), chosen
        )
        print(report)
        for skipped in report.skipped:
            console.print(f"[yellow]{escape(str(skipped))}")
        console.print(f"tables and plots: {out_dir} (an index of them all: {report.index})")
        return 0
    if task == "view":
        from eval.view.site import main as view_main

        return view_main(cfg, console)
    if task == "rescore":
        return rescore_task(cfg)
    if task == "models":
        from eval.models import list_models

        return await list_models(cfg, console)
    if task == "cache_merge":
        return cache_merge_task(cfg)
    if task == "calibrate":
        from eval.calibrate.command import calibrate_task

        return await calibrate_task(cfg, console)
    if task not in ("run", "generate", "judge"):
        raise ConfigError(
            f"task={task!r} is not one of run, generate, judge, plan, report, view, rescore, "
            "models, cache_merge, calibrate"
        )
    repeats = cfg.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"repeats={repeats!r}: give the number of runs, at least 1")
    name_changed_preset(cfg)
    if repeats == 1:
        return await run_one(cfg, task)
    codes = []
    for repeat in range(1, repeats + 1):  # each its own directory, samples and judgment
        cfg.repeat = repeat
        log_to(Path(str(cfg.run_dir)))
        say(f"run {repeat} of {repeats}", "bold")
        codes.append(await run_one(cfg, task))
    return max(codes)


def name_changed_preset(cfg: DictConfig) -> None:
    """A changed preset runs under its own name (`eval.variant_name`), its log with it; the
    folder Hydra made for the preset's name goes again if it holds only that log, empty."""
    before = Path(str(cfg.run_dir))
    name = name_variant(cfg)
    if name is None:
        return
    for log_file in log_to(Path(str(cfg.run_dir))):
        if log_file.parent == before.resolve() and log_file.is_file():
            if not log_file.stat().st_size:
                log_file.unlink()
            with contextlib.suppress(OSError):  # not empty: someone's files, left alone
                before.rmdir()
    say(
        f"{name}: the preset's settings were changed, so this is not the preset's run: it has "
        "its own name and directory (moa.name=<name> chooses another)",
        "yellow",
    )


def log_to(run_dir: Path) -> list[Path]:
    """Points the run log (`cli.log`, `conf/hydra/job_logging/moa.yaml`) at `run_dir`: Hydra
    opened it in the first repeat's directory (a folder that is not a run's is refused first).
    Returns where it was."""
    RunDir(run_dir).refuse_foreign()
    moved = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            moved.append(Path(handler.baseFilename))
            handler.close()
            run_dir.mkdir(parents=True, exist_ok=True)
            handler.baseFilename = str((run_dir / moved[-1].name).resolve())
    return moved


def slurm_job() -> str | None:
    """The SLURM job this process is, in the run's log (a sweep's job under
    `hydra/launcher=slurm`): the id squeue and sacct show, the node, and the restart after a
    requeue, which runs the same job id again."""
    job = os.environ.get("SLURM_JOB_ID")
    if job is None:
        return None
    if array := os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    line = f"SLURM job {job} on {os.environ.get('SLURMD_NODENAME', 'an unnamed node')}"
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    return line + (f", restart {restarts}" if restarts != "0" else "")


async def run_one(cfg: DictConfig, task: str) -> int:
    """One run directory: generate and judge (`task=run`), or one of the two."""
    rundir = RunDir(Path(str(cfg.run_dir)))
    with rundir.locked():
        if job := slurm_job():
            say(job)
        if task == "judge":
            return await judge_existing(cfg)
        say(describe(cfg), "bold")
        catalogue = build_catalogue(cfg)
        judged = task == "run" and cfg.judge.enabled
        if judged:  # its key too, before anything is paid for
            await check_endpoints(cfg, catalogue, [judge_address(cfg, catalogue)])
        await check_models(cfg, catalogue, build_spec(cfg, catalogue).models(), judged)
        run = await generate(cfg)
        metrics = None
        if task == "run" and cfg.judge.enabled and not run.failed:
            metrics = await judge(cfg, run)
        if run.task.table_per_instance:
            show_results(run, metrics)
        summarize(run, metrics, namer_of(cfg, build_catalogue(cfg)))
        if run.task.table_per_instance:  # the demo: where to go from here, in one line
            say(NEXT)
        return 1 if run.failed or not judged_all(metrics) else 0


async def judge_existing(cfg: DictConfig) -> int:
    """`task=judge`: the finished instances of an existing run, as they are; the unfinished
    ones are named, and the run exits 1 while there are any."""
    if not cfg.judge.enabled:
        raise ConfigError("task=judge with judge=none: choose a judge (judge=paper, judge=local)")
    catalogue = build_catalogue(cfg)
    await check_endpoints(cfg, catalogue, [judge_address(cfg, catalogue)])  # before any download
    await check_models(cfg, catalogue, [], judged=True)
    run = generated(cfg)
    done = len(run.results) - len(run.failed)
    if not done:
        raise ConfigError(f"{run.run.path}: no finished instance to judge; run task=generate")
    if run.failed:
        ids = ", ".join(r.id for r in run.failed[:10]) + (", ..." if len(run.failed) > 10 else "")
        say(
            f"{len(run.failed)} of {len(run.results)} instances are not generated yet ({ids}): "
            f"judging the {done} that are; task=generate finishes the others",
            "yellow",
        )
    metrics = await judge(cfg, run)
    summarize(run, metrics, namer_of(cfg, build_catalogue(cfg)))
    return 1 if run.failed or not judged_all(metrics) else 0


async def check_models(
    cfg: DictConfig, catalogue: Catalogue, models: list[str], judged: bool
) -> None:
    """`eval.preflight`: the run's models (and its judge) against their endpoints' model lists."""
    from eval.preflight import check_served

    judge = [judge_address(cfg, catalogue)] if judged else []
    for line in await check_served(cfg, catalogue, models + judge):
        say(line, "yellow")


def judged_all(metrics: RunMetrics | None) -> bool:
    """No judge's metrics (not judged at all) or metrics of every instance."""
    return metrics is None or is_complete(metrics.values)


def keep_copy(cfg: DictConfig) -> None:
    """`cache.copy_to`: a copy of the cache after the task, e.g. from a job's local disk to
    the run directory, for `task=cache_merge` (README: Scale-out)."""
    if cfg.cache.get("copy_to") and str(cfg.task) != "cache_merge":
        from moa.cache_merge import copy_cache

        copy_cache(*(Path(str(p)).expanduser() for p in (cfg.cache.path, cfg.cache.copy_to)))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    with reported():
        try:
            code = asyncio.run(dispatch(cfg))
        finally:
            keep_copy(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """The `moa-bench` script: Hydra's own errors are one line too (`eval.errors`)."""
    run_cli(hydra_main)
