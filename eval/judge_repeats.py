"""Judge repeats (`judge.repeats=k`): each answer judged k times, so that the report can tell the
judge's noise from the generation's (README, "Statistics").

Repeat 0 is the run's own judging, with today's cache keys and files. Repeat r > 0 sends the same
judge requests under cache sample index r, as repeated generation samples are told apart, so each
is a fresh verdict that a re-run finds in the cache; a call the judge makes that is not a
judgment (the baseline answer a judge compares with) keeps its own key. Repeat r's files are laid
out as the run's own under `judge_repeats/<r>/<run folder>/` (the folder's name kept: MT-Bench's
files name the model by it), and `metrics.json` lists each repeat's metrics (`judge_repeats`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from eval.rundir import InstanceResult, RunDir, RunMetrics

if TYPE_CHECKING:
    from eval.benchmarks.base import Instance
    from eval.evaluation import Evaluation
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import CallOutcome, ChatMessage, GenerateConfig, Generator

FOLDER = "judge_repeats"


class RepeatedJudge:
    """A client (or the plan's stand-in) whose judge calls (tagged `role: judge`) carry sample
    index `repeat`; every other call goes through as it was asked."""

    def __init__(self, client: Generator, repeat: int) -> None:
        self._client = client
        self._repeat = repeat

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        if (tags or {}).get("role") == "judge":
            sample += self._repeat
        return await self._client.generate(model, messages, config, sample=sample, tags=tags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def repeat_dir(run: RunDir, repeat: int) -> RunDir:
    """Where judge repeat `repeat` (> 0) of `run` keeps its native files."""
    return RunDir(run.path / FOLDER / str(repeat) / run.path.name)


async def judge_again(
    task: Evaluation,
    client: ModelClient,
    address: str,
    run: RunDir,
    spec: MixtureSpec,
    instances: Sequence[Instance],
    results: Sequence[InstanceResult],
    repeats: int,
) -> list[dict[str, Any]]:
    """Judge repeats 1 to `repeats` - 1 of a run whose repeat 0 is judged: each one's metrics
    (its `repeat`, `headline` and the judge's values), for `metrics.json`."""
    done = []
    for repeat in range(1, repeats):
        again = cast("ModelClient", RepeatedJudge(client, repeat))
        values = await task.judge(again, address, repeat_dir(run, repeat), spec, instances, results)
        headline = task.headline(values)
        done.append({"repeat": repeat, "headline": None if math.isnan(headline) else headline,
                     "values": values})  # fmt: skip
    return done


def repeat_scores(
    task: Evaluation,
    run: RunDir,
    metrics: RunMetrics,
    finished: Mapping[str, InstanceResult],
) -> list[dict[str, float]]:
    """Per judge repeat after the first, its per-instance scores, read from its files."""
    found = []
    for entry in metrics.judge_repeats or ():
        again = RunMetrics.of(metrics.judge, 0, entry.get("values") or {}, entry.get("headline"))
        found.append(task.instance_scores(repeat_dir(run, int(entry["repeat"])), again, finished))
    return found
