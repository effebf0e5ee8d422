"""`task=calibrate benchmark=arena_hard_v0.1|arena_hard_v2.0 calibrate.file=<judgments>`: the
configured judge against the published one on a judgment file in arena-hard-auto's layout
(`eval.calibrate.games`). The published files are not in the pinned repository, so the file is
given; `calibrate.models` and `calibrate.limit` choose its models and each one's first prompts.
Planned, cached and priced like the other calibrations; the files go to
`calibrate.out_dir/<benchmark>/<judge>/`: `calibration.json`, `calibration.md` and a scatter of
each model's score under both judges (`calibration.png`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.calibrate import games
from eval.calibrate.files import cell, folder, scatter, write_files
from eval.calibrate.plan import announce
from eval.commands.output import console
from eval.evaluation import Evaluation
from eval.generate import judge_address
from eval.judges.games import Games
from eval.settings import Settings, build_client
from moa.errors import ConfigError
from moa.types import Generator

NAMES = ("model", "n", "failed", "exact label", "same side", "kappa", "score published",
         "score new")  # fmt: skip


def _paths(run: Settings) -> list[Path]:
    given = run.calibrate.get("file")
    if not given:
        raise ConfigError(
            f"task=calibrate benchmark={run.benchmark.name} needs calibrate.file=<path> of a "
            "judgment file in arena-hard-auto's layout (model_judgment/<judge>/<model>.jsonl)"
        )
    paths = [Path(str(p)).expanduser() for p in ([given] if isinstance(given, str) else given)]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"calibrate.file={path}: not found")
    return paths


def table(calibration: Mapping[str, Any]) -> str:
    """A Markdown table: a row per model and one for all of them, each judge named."""
    head = (
        f"{calibration['benchmark']}: judge {calibration['judge']} against the published "
        f"{calibration['published_judge']}, game by game; scores are win rates (%) against "
        "the baseline.\n\n"
    )
    lines = ["| " + " | ".join(NAMES) + " |", "|" + "---|" * len(NAMES)]
    rows = {**calibration["models"], "overall": calibration["overall"]}
    for model, m in rows.items():
        score = m.get("score") or {}
        cells = [model, m["n"], m["failed"], m["exact"], m["same_side"], m["kappa"],
                 score.get("published"), score.get("new")]  # fmt: skip
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    o = calibration["overall"]
    tail = (
        f"\nSpearman {cell(o['spearman'])}, Pearson {cell(o['pearson'])} of the per-model "
        f"scores; {calibration['calls']} calls, {cell(calibration['cost_usd'])} USD, "
        f"{calibration['seconds']:.0f} s.\n"
    )
    return head + "\n".join(lines) + "\n" + tail


def write(calibration: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Arena-Hard's calibration files: each model's score (its win rate against the baseline)."""
    points = {m: (v["score"]["published"], v["score"]["new"])
              for m, v in calibration["models"].items()}  # fmt: skip
    return write_files(
        calibration,
        out_dir,
        table(calibration),
        lambda path: scatter(points, (0, 100), "win rate (%)", calibration, path),
    )


async def calibrate_games(run: Settings, task: Evaluation) -> int:
    kind = task.judging
    assert isinstance(kind, Games)
    paths = _paths(run)
    models = [str(m) for m in run.calibrate.get("models") or ()]
    limit = run.calibrate.get("limit")
    published = games.published_judgments(paths, models, None if limit is None else int(limit))
    if not published:
        raise ConfigError(f"calibrate.file={paths[0]}: no judgment of {models or 'any model'}")
    judge = judge_address(run, task)

    async def send(g: Generator) -> dict[str, int]:
        await games.rejudge(g, kind, judge, published)
        return {"prompts": len(published)}

    if not await announce(run, judge, send):
        return 0
    out_dir = (
        Path(str(run.calibrate.get("out_dir", "results/calibrate")))
        / run.benchmark.name
        / folder(judge)
    )
    client = build_client(run, ledger_path=out_dir / "calls.jsonl", judges=[kind.scripted_answer])
    started = time.perf_counter()
    try:
        client.preflight([judge])
        new = await games.rejudge(client, kind, judge, published)
    finally:
        await client.aclose()
    spent = client.ledger.totals
    calibration: dict[str, Any] = {
        "benchmark": run.benchmark.name,
        "judge": judge,
        "published_judge": ", ".join(sorted({j.judge for j in published if j.judge})) or "-",
        "published_files": [str(p) for p in paths],
        **games.compare(kind, published, new),
        "calls": spent.calls,
        "cached": spent.cached,
        "cost_usd": spent.cost_usd,
        "seconds": time.perf_counter() - started,
    }
    written = write(calibration, out_dir)
    console.print(table(calibration), markup=False)
    console.print(f"calibration of {judge}: {', '.join(str(p) for p in written)}")
    return 0
