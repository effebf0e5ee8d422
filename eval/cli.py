"""`moa-bench`: the door. Hydra composes the config, `eval.settings.resolve` validates and
resolves it once (per run directory), and the `task=` value picks the command
(`eval.commands`) that runs on the resolved settings. With no arguments it runs the demo.

Tasks: `run` (generate, then judge), `generate`, `judge` (an existing run), `plan` (predict
calls and cost, spend nothing), `report` (tables and plots from judged runs), `view` (a static
site to browse every run's instances, layers and verdicts), `rescore` (re-parse a judge's output
file), `models` (what an endpoint still serves, beside the catalogue), `cache_merge` (merge call
caches, e.g. those of a sweep's jobs on several hosts, into cache.path).
`prompt="..."` answers one prompt showing every layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from eval.commands.cache_merge import keep_copy
from eval.commands.output import say
from eval.errors import reported, run_cli
from eval.rundir import RunDir
from eval.settings import CONF_DIR, Settings, repeats_of, resolve, to_dict
from eval.variant_name import name_variant
from moa.errors import ConfigError

Command = Callable[[Settings], Awaitable[int]]
# Each `task=` value's command (module, function), imported only when chosen: the report's
# matplotlib and pandas cost seconds. `run`, `generate` and `judge` are one command.
COMMANDS = {
    "run": ("eval.commands.run", "run_one"),
    "generate": ("eval.commands.run", "run_one"),
    "judge": ("eval.commands.run", "run_one"),
    "plan": ("eval.commands.plan", "plan_task"),
    "report": ("eval.commands.report", "report_task"),
    "view": ("eval.commands.view", "view_task"),
    "rescore": ("eval.commands.rescore", "rescore_task"),
    "models": ("eval.commands.models", "list_models"),
    "cache_merge": ("eval.commands.cache_merge", "cache_merge_task"),
    "calibrate": ("eval.calibrate.command", "calibrate_task"),
}
PROMPT = ("eval.commands.prompt", "answer_prompt")
RUNS = ("run", "generate", "judge")  # one run directory each (per repeat)
# The cyclic collector's thresholds for a CLI process, instead of CPython's (700, 10, 10): a
# call makes and frees hundreds of container objects (messages, records, futures), almost none
# in a reference cycle, so at 700 the collector ran ~1,700 times in an AlpacaEval run re-walking
# live objects, an eighth of the run's CPU; at 50,000 it runs a few times, with the same peak
# memory (`scripts/gc_cost.py` prints both).
GC_THRESHOLDS = (50_000, 20, 20)


def command(where: tuple[str, str]) -> Command:
    module, name = where
    found: Command = getattr(importlib.import_module(module), name)
    return found


@dataclass(frozen=True)
class Entered:
    """What a command through the door did: its exit code and the settings it ran on (one per
    run directory for a repeated run)."""

    code: int
    settings: tuple[Settings, ...]


async def dispatch(cfg: DictConfig, overrides: Sequence[str] | None = None) -> int:
    """The command's exit code (`enter`)."""
    return (await enter(cfg, overrides)).code


async def enter(cfg: DictConfig, overrides: Sequence[str] | None = None) -> Entered:
    """The composed config resolved and handed to its command; a copy of the cache is left at
    `cache.copy_to` after it, whatever happened. `overrides` are the command's own, which the
    plan's sweeps compose again (under Hydra, the command line's)."""
    if overrides is None:
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else ()
    task = str(cfg.task)
    if not cfg.prompt and task not in COMMANDS:
        raise ConfigError(
            f"task={task!r} is not one of run, generate, judge, plan, report, view, rescore, "
            "models, cache_merge, calibrate"
        )
    run = command(PROMPT if cfg.prompt else COMMANDS[task])
    if cfg.prompt or task not in RUNS:
        settings = resolve(cfg, overrides)
        try:
            return Entered(await run(settings), (settings,))
        finally:
            keep_copy(settings)
    repeats = repeats_of(cfg)
    name_changed_preset(cfg)
    codes: list[int] = []
    resolved: list[Settings] = []
    try:
        for repeat in range(1, repeats + 1):  # each its own directory, samples and judgment
            if repeats > 1:
                cfg.repeat = repeat
            resolved.append(resolve(cfg, overrides))
            if repeats > 1:
                log_to(resolved[-1].run_dir)
                say(f"run {repeat} of {repeats}", "bold")
            codes.append(await run(resolved[-1]))
    finally:
        if resolved:
            keep_copy(resolved[-1])
    return Entered(max(codes), tuple(resolved))


def name_changed_preset(cfg: DictConfig) -> None:
    """A changed preset runs under its own name (`eval.variant_name`), its log with it; the
    folder Hydra made for the preset's name goes again if it holds only that log, empty."""
    before = Path(str(cfg.run_dir))
    name = name_variant(to_dict(cfg.moa))
    if name is None:
        return
    cfg.moa.name = name
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


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    with reported():
        code = asyncio.run(dispatch(cfg))
    if code:
        sys.exit(code)


def main() -> None:
    """The `moa-bench` script: Hydra's own errors are one line too (`eval.errors`)."""
    gc.set_threshold(*GC_THRESHOLDS)
    run_cli(hydra_main)
