"""`moa-bench task=calibrate`: the configured judge against the paper's, on the paper judge's
published judgments (`calibrate.models`, `calibrate.limit` pairs or graded items each): AlpacaEval's
annotations, or for MT-Bench and FLASK the judgment file given as `calibrate.file`
(`eval.calibrate.graded_command`).

Its calls go through the client like any run's: cached (a second run pays nothing), priced,
planned first (`eval.calibrate.plan`: `calibrate.dry_run=true` prints the plan and stops),
checked against the endpoint's model list (`eval.preflight`). The files go to
`calibrate.out_dir/<judge>/`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.calibrate import files
from eval.calibrate.games_command import calibrate_games
from eval.calibrate.graded_command import GRADED, calibrate_graded
from eval.calibrate.judging import calibrate, request
from eval.calibrate.plan import announce
from eval.calibrate.published import published
from eval.commands.output import console
from eval.generate import judge_address, task_of
from eval.judges import alpaca_eval as ae
from eval.settings import Settings, build_client
from moa.errors import ConfigError

PUBLISHED_JUDGE = "openai/gpt-4-1106-preview"  # weighted_alpaca_eval_gpt4_turbo's model


def _settings(run: Settings) -> Mapping[str, Any]:
    settings = run.calibrate
    if not settings.get("models"):
        raise ConfigError("task=calibrate needs calibrate.models=[<published model>,...]")
    share = settings.get("swap_share", 0.2)
    if not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"calibrate.swap_share={share!r}: give a share between 0 and 1")
    return settings


async def calibrate_task(run: Settings) -> int:
    task = task_of(run)
    if task.judging.kind in GRADED:
        return await calibrate_graded(run, task)
    if task.judging.kind == "games":
        return await calibrate_games(run, task)
    if run.benchmark.name != "alpaca_eval":
        raise ConfigError(
            f"task=calibrate: benchmark={run.benchmark.name} has no published judgments to "
            "measure a judge on here; use alpaca_eval, mt_bench, flask or arena_hard_v*"
        )
    settings = _settings(run)
    judge = judge_address(run, task)
    annotator = ae.load_annotator(
        str(run.judge.section.get("alpaca_eval_annotator") or ae.ANNOTATOR)
    )
    limit = settings.get("limit")
    data_dir, cache_dir = run.data.data_dir, run.data.cache_dir
    rows = {
        str(model): published(str(model), limit, data_dir, cache_dir)
        for model in settings["models"]
    }
    share = float(settings.get("swap_share", 0.2))
    if not await announce(run, judge, lambda g: request(g, judge, annotator, rows, share)):
        return 0
    name = files.folder(judge)
    folder = name if annotator.name == ae.ANNOTATOR else f"{name}~{annotator.name}"
    out_dir = Path(str(settings.get("out_dir", "results/calibrate"))) / folder
    client = build_client(
        run, ledger_path=out_dir / "calls.jsonl", judges=[task.judging.scripted_answer]
    )
    started = time.perf_counter()
    try:
        client.preflight([judge])
        result = await calibrate(client, judge, annotator, rows, share)
    finally:
        await client.aclose()
    spent = client.ledger.totals
    calibration = {
        "judge": judge,
        "annotator": annotator.name,
        "published_judge": PUBLISHED_JUDGE,
        **result,
        "calls": spent.calls,
        "cached": spent.cached,
        "cost_usd": spent.cost_usd,
        "seconds": time.perf_counter() - started,
    }
    paths = files.write(calibration, out_dir)
    console.print(files.table(calibration), markup=False)
    console.print(f"calibration of {judge}: {', '.join(str(p) for p in paths)}")
    return 0
