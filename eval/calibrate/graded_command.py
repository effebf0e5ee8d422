"""`task=calibrate` for a graded benchmark: MT-Bench (the `single` kind) or FLASK (`rubric`).

The paper judge's published judgment files are given as `calibrate.file` (one path or a list):
no copy of FastChat's `gpt-4_single.jsonl` or FLASK's review files could be pinned to a hash, so
none is downloaded. The judge re-grades the first `calibrate.limit` scored judgments (FLASK:
reviews) of each of `calibrate.models` (every model in the files when empty), through the client
like any run's calls (planned first, `eval.calibrate.plan`; cached, priced, preflighted); the
files go to `calibrate.out_dir/<benchmark>/<judge>/`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from eval.calibrate import graded, score_files
from eval.calibrate.files import folder
from eval.calibrate.plan import announce
from eval.calibrate.scores import Graded, by_model
from eval.commands.output import console
from eval.evaluation import Evaluation
from eval.generate import judge_address
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.judges.rubric import Rubric
from eval.judges.single import Single
from eval.settings import Settings, build_client
from moa.errors import ConfigError
from moa.types import Generator

# Per kind: the published judge, the score scale, and where its judgment files are published.
GRADED = {
    "single": (
        mj.DEFAULT_JUDGE, (1, 10),
        "FastChat's data/mt_bench/model_judgment/gpt-4_single.jsonl (the Hugging Face space "
        "lmsys/mt-bench)",
    ),
    "rubric": (
        fj.DEFAULT_JUDGE, (1, 5),
        "FLASK's gpt_review/outputs/<model>_review.jsonl (github.com/kaistAI/FLASK)",
    ),
}  # fmt: skip


def _paths(run: Settings, kind: str) -> list[Path]:
    given = run.calibrate.get("file")
    if not given:
        raise ConfigError(
            f"task=calibrate benchmark={run.benchmark.name} needs calibrate.file=<path> of the "
            f"published judgments, e.g. {GRADED[kind][2]}; no pinned copy is known to download"
        )
    paths = [Path(str(p)).expanduser() for p in ([given] if isinstance(given, str) else given)]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"calibrate.file={path}: not found")
    return paths


Regrade = Callable[[Generator], Awaitable[list[Graded]]]


def _regrading(judge: str, task: Evaluation, paths: Sequence[Path], run: Settings) -> Regrade:
    """The published items to re-grade, read (and checked) now; re-graded through a generator:
    the client, or the plan's stand-in."""
    models = [str(m) for m in run.calibrate.get("models") or ()]
    limit = run.calibrate.get("limit")
    kind = task.judging
    if isinstance(kind, Single):
        prompts = mj.load_judge_prompts(kind.benchmark.data.path(kind.spec.source("file")))
        judgments = graded.single_judgments(paths, prompts, models, limit)
        return lambda g: graded.regrade_single(g, judge, prompts, judgments)
    assert isinstance(kind, Rubric)
    reviews = graded.rubric_reviews(paths, models, limit)
    setup = kind.setup()
    return lambda g: graded.regrade_rubric(g, judge, setup, reviews)


async def _items(regrade: Regrade, generator: Generator) -> dict[str, int]:
    """The items a re-grading judges, counted (its plan, `eval.calibrate.plan`)."""
    return {"graded items": len(await regrade(generator))}


async def calibrate_graded(run: Settings, task: Evaluation) -> int:
    kind = task.judging.kind
    published_judge, scale, _ = GRADED[kind]
    paths = _paths(run, kind)
    judge = judge_address(run, task)
    regrade = _regrading(judge, task, paths, run)
    if not await announce(run, judge, lambda g: _items(regrade, g)):
        return 0
    out_dir = (
        Path(str(run.calibrate.get("out_dir", "results/calibrate")))
        / run.benchmark.name
        / folder(judge)
    )
    client = build_client(
        run, ledger_path=out_dir / "calls.jsonl", judges=[task.judging.scripted_answer]
    )
    started = time.perf_counter()
    try:
        client.preflight([judge])
        result = await regrade(client)
    finally:
        await client.aclose()
    spent = client.ledger.totals
    calibration: dict[str, Any] = {
        "benchmark": run.benchmark.name,
        "judge": judge,
        "published_judge": published_judge,
        "published_files": [str(p) for p in paths],
        "scale": list(scale),
        **by_model(result),
        "calls": spent.calls,
        "cached": spent.cached,
        "cost_usd": spent.cost_usd,
        "seconds": time.perf_counter() - started,
    }
    written = score_files.write(calibration, out_dir)
    console.print(score_files.table(calibration), markup=False)
    console.print(f"calibration of {judge}: {', '.join(str(p) for p in written)}")
    return 0
