"""`moa-bench`: the Hydra entry point. With no arguments it runs the embedded demo.

Tasks: `run` (generate, then judge), `generate`, `judge` (an existing run), `plan` (predict
calls and cost, spend nothing), `report` (tables and plots from judged runs), `rescore` (re-parse
a judge's output file). `prompt="..."` answers one prompt showing every layer.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from eval.errors import reported, run_cli
from eval.generate import Generation, generate, judge_address, load_instances, task_of
from eval.rundir import RunMetrics
from eval.settings import build_catalogue, build_client, build_mixture, build_spec
from moa.errors import ConfigError
from moa.mixture import Mixture
from moa.trace import TurnTrace
from moa.types import GenerateConfig

console = Console()
# The configs live at the repository root, beside the packages (an editable install).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

OmegaConf.register_new_resolver("suffix", lambda v: f"@{v}" if v else "", replace=True)


async def answer_prompt(cfg: DictConfig) -> None:
    """One prompt through the chosen variant, printing every layer's answers."""
    catalogue = build_catalogue(cfg)
    spec = build_spec(cfg, catalogue)
    client = build_client(cfg, catalogue, ledger_path=None)
    gen = cfg.benchmark.generation
    config = GenerateConfig(temperature=float(gen.temperature), max_tokens=int(gen.max_tokens))
    try:
        client.preflight(spec.models())
        turn = await Mixture(spec, client).run_turn(
            [{"role": "user", "content": str(cfg.prompt)}], config
        )
    finally:
        await client.aclose()
    show_turn(turn)
    t = client.ledger.totals
    console.print(
        f"{t.calls} calls ({t.cached} cached), {t.input_tokens + t.output_tokens:,} tokens, "
        f"${t.cost_usd:.4f} paid"
    )


def show_turn(turn: TurnTrace) -> None:
    for depth, layer in enumerate(turn.layers, start=1):
        for call in layer:
            body = escape(call.text) if call.text is not None else f"[red]error: {call.error}"
            console.print(Panel(body, title=f"layer {depth}: {call.model} #{call.sample}"))
    if turn.final is not None:
        body = escape(turn.output) if turn.output is not None else f"[red]{turn.error}"
        console.print(Panel(body, title=f"output: {turn.final.model}", border_style="green"))
    for event in turn.events:
        console.print(f"[yellow]note: {event}")


async def judge(cfg: DictConfig, run: Generation) -> RunMetrics:
    """Judges a finished generation with the configured judge; writes native files + metrics."""
    catalogue = build_catalogue(cfg)
    address = judge_address(cfg, catalogue, run.task)
    client = build_client(cfg, catalogue, ledger_path=run.run.judge_ledger)
    run.task.teach_offline_judge()
    try:
        client.preflight([address])
        values = await run.task.judge(
            client, address, run.run, run.spec, run.instances, run.results
        )
    finally:
        await client.aclose()
    metrics = RunMetrics(address, client.ledger.totals.calls, values)
    run.run.write_metrics(metrics)
    return metrics


def show_results(run: Generation, metrics: RunMetrics | None) -> None:
    """Per instance: answer length per turn, calls, tokens, time and the judge's verdict."""
    prefs = metrics.get("preference", {}) if metrics else {}
    table = Table(title=f"{run.spec.name}: {run.spec.calls_per_turn} calls per turn")
    columns = ["id", "turns", "chars", "calls", "tokens", "seconds"]
    if prefs:
        columns.append("judged better")
    for column in columns:
        table.add_column(column, no_wrap=True)
    for inst, r in zip(run.instances, run.results, strict=True):
        lengths = "/".join(str(len(o)) for o in r.outputs) if r.outputs else "failed"
        row = [r.id, str(len(inst.turns)), lengths, str(r.calls),
               str(r.input_tokens + r.output_tokens), f"{r.seconds:.1f}"]  # fmt: skip
        if prefs:
            row.append(_verdict(prefs.get(r.id)))
        table.add_row(*row)
    console.print(table)


def _verdict(preference: float | None) -> str:
    """alpaca_eval's preference: 1 = the model alone wins, 2 = the mixture wins."""
    if preference is None:
        return "-"
    word = "mixture" if preference > 1.5 else "model alone" if preference < 1.5 else "tie"
    return f"{word} ({preference:.2f})"


def summarize(run: Generation, metrics: RunMetrics | None) -> None:
    t = run.client.ledger.totals
    console.print(
        f"{len(run.results) - len(run.failed)}/{len(run.results)} instances done; "
        f"{t.calls} calls ({t.cached} from cache, {t.requests} sent, {t.retries} retries, "
        f"{t.errors} errors); {t.input_tokens + t.output_tokens:,} tokens; ${t.cost_usd:.4f} paid "
        f"(${t.nominal_usd:.4f} at catalogue prices)"
    )
    console.print(f"outputs: {run.output_file}")
    if metrics and "preference" not in metrics.values:
        shown = {k: v for k, v in metrics.values.items() if not isinstance(v, dict | list)}
        console.print(f"metrics: {shown}")
    for note in run.notes(metrics.values if metrics else None):
        console.print(escape(note))
    if run.failed:
        console.print(
            f"[red]{len(run.failed)} instance(s) failed[/red] (see traces.jsonl); run the same "
            "command again to retry them: completed calls come from the cache."
        )


async def plan_task(cfg: DictConfig) -> int:
    """Prints the calls, tokens and dollars a config or a whole sweep will spend, sharing
    counted once; nothing is called. `plan.experiments=all` plans the paper's whole suite."""
    from eval.plan import plan
    from eval.suite import EXPERIMENTS, compose_points

    wanted = cfg.plan.experiments
    experiments = list(EXPERIMENTS) if wanted == "all" else list(wanted or [])
    points = (
        compose_points(list(HydraConfig.get().overrides.task), experiments)
        if experiments
        else [cfg]
    )
    catalogue = build_catalogue(cfg)
    by_benchmark: dict[str, list[DictConfig]] = {}
    for point in points:
        by_benchmark.setdefault(str(point.benchmark.name), []).append(point)
    total = unique = 0
    total_usd = unique_usd = 0.0
    for name, group in by_benchmark.items():
        specs = list(dict.fromkeys(build_mixture(c.moa, catalogue) for c in group))
        task = task_of(group[0])
        result = await plan(
            specs,
            load_instances(group[0], task),
            task.generation(),
            catalogue,
            output_tokens=int(cfg.plan.output_tokens),
        )
        console.rule(f"{name}: {len(specs)} variant(s)")
        budget = cfg.get("budget") or {}
        # a wide table: rich would wrap it to the terminal
        print(result.render(budget.get("max_usd"), budget.get("max_calls")))
        total, unique = total + result.total_calls, unique + result.unique_calls
        total_usd, unique_usd = total_usd + result.total_usd, unique_usd + result.unique_usd
    console.rule("all")
    console.print(
        f"calls without sharing: {total:,} (${total_usd:,.2f}); with sharing: {unique:,} "
        f"(${unique_usd:,.2f}); ratio {unique / max(total, 1):.2f}. Output tokens are estimated "
        f"at {int(cfg.plan.output_tokens)} per call; prices are the catalogue's."
    )
    return 0


def rescore_task(cfg: DictConfig) -> int:
    from eval.tasks import task_reading

    path = Path(str(cfg.rescore.path))
    if not path.is_file():
        raise ConfigError(f"rescore.path={path} is not a file")
    task = task_reading(path)
    console.print_json(data={"kind": task.name, **task.rescore(path)}, default=str)
    return 0


async def dispatch(cfg: DictConfig) -> int:
    if cfg.prompt:
        await answer_prompt(cfg)
        return 0
    task = str(cfg.task)
    if task == "plan":
        return await plan_task(cfg)
    if task == "report":
        from eval.report import write_report  # matplotlib and pandas: only for the report

        out_dir = Path(str(cfg.report.out_dir))
        print(write_report(Path(str(cfg.results_dir)), out_dir, str(cfg.report.reference)))
        console.print(f"tables and plots: {out_dir}")
        return 0
    if task == "rescore":
        return rescore_task(cfg)
    if task not in ("run", "generate", "judge"):
        raise ConfigError(
            f"task={task!r} is not one of run, generate, judge, plan, report, rescore"
        )
    run = await generate(cfg)
    metrics = None
    if task in ("run", "judge") and cfg.judge.enabled and not run.failed:
        metrics = await judge(cfg, run)
    if run.task.table_per_instance:
        show_results(run, metrics)
    summarize(run, metrics)
    return 1 if run.failed else 0


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    with reported():
        code = asyncio.run(dispatch(cfg))
    if code:
        sys.exit(code)


def main() -> None:
    """The `moa-bench` script: Hydra's own errors are one line too (`eval.errors`)."""
    run_cli(hydra_main)
