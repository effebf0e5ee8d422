"""`task=run` (generate, then judge), `task=generate` and `task=judge`: one run directory."""

from __future__ import annotations

import dataclasses
import os

from eval.commands.output import say
from eval.commands.prompt import namer_of
from eval.commands.summary import show_results, summarize
from eval.generate import Generation, generate, generated, judge_address, task_of
from eval.judge_repeats import judge_again, repeat_scores
from eval.judges.common import avg_length, incomplete_reason, is_complete
from eval.mixture_config import describe_spec
from eval.preflight import gone_line
from eval.preload import preload
from eval.progress import following, progress
from eval.rundir import RunDir, RunMetrics
from eval.settings import Settings, build_client, check_endpoints
from moa.errors import ConfigError

NEXT = (
    "next: `moa-bench task=view` to browse every layer of this run, or `moa-bench "
    'prompt="your question" moa=moa_lite provider_override=local` (README: Using it)'
)


async def run_one(settings: Settings) -> int:
    """One run directory: generate and judge (`task=run`), or one of the two."""
    task = settings.task
    with RunDir(settings.run_dir).locked():
        if job := slurm_job():
            say(job)
        if task == "judge":
            return await judge_existing(settings)
        say(describe(settings), "bold")
        judging = task == "run" and settings.judge.enabled
        if judging:  # its key too, before anything is paid for
            await check_endpoints(settings, [judge_address(settings)])
        await check_models(settings, settings.spec.models(), judging)
        run = await generate(settings)
        metrics = None
        if judging and not run.failed:
            metrics = await judge(settings, run)
        if run.task.table_per_instance:
            show_results(run, metrics)
        summarize(run, metrics, namer_of(settings))
        if run.task.table_per_instance:  # the demo: where to go from here, in one line
            say(NEXT)
        return 1 if run.failed or not judged_all(metrics) else 0


async def judge_existing(settings: Settings) -> int:
    """`task=judge`: the finished instances of an existing run, as they are; the unfinished
    ones are named, and the run exits 1 while there are any."""
    if not settings.judge.enabled:
        raise ConfigError("task=judge with judge=none: choose a judge (judge=paper, judge=local)")
    await check_endpoints(settings, [judge_address(settings)])  # before any download
    await check_models(settings, [], judged=True)
    run = generated(settings)
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
    metrics = await judge(settings, run)
    summarize(run, metrics, namer_of(settings))
    return 1 if run.failed or not judged_all(metrics) else 0


async def check_models(settings: Settings, models: list[str], judged: bool) -> None:
    """`eval.preflight`: the run's models (and its judge) against their endpoints' model lists."""
    from eval.preflight import check_served

    judge = [judge_address(settings)] if judged else []
    for line in await check_served(settings, models + judge):
        say(line, "yellow")


async def judge(settings: Settings, run: Generation) -> RunMetrics:
    """Judges a finished generation with the configured judge; writes native files + metrics."""
    address = judge_address(settings, run.task)
    client = build_client(
        settings, ledger_path=run.run.judge_ledger, judges=[run.task.judging.scripted_answer]
    )
    done = [i for i, r in zip(run.instances, run.results, strict=True) if r.outputs]
    expected = sum(run.task.judge_calls(i) for i in done) * settings.judge.repeats
    try:
        client.preflight([address])
        # scipy, statsmodels and pandas, for after the answers: imported while the judge
        # answers (not before: they would slow the start-up to the first request)
        preload("eval.judge_bias", "eval.report.precision")
        with progress(client.ledger) as bar:
            judged = bar.add_task("judging", total=expected)
            async with following(bar, judged, lambda: client.ledger.totals.calls):
                values = await run.task.judge(
                    client, address, run.run, run.spec, run.instances, run.results
                )
                again = await judge_again(
                    run.task, client, address, run.run, run.spec, run.instances, run.results,
                    settings.judge.repeats,
                )  # fmt: skip
                from eval.judge_bias import judge_swapped

                await judge_swapped(
                    run.task, client, address, run.run, run.spec, run.instances, run.results,
                    settings.judge.swap_share,
                )  # fmt: skip
    finally:
        await client.aclose()
    for model, why in client.gone().items():
        say(gone_line(model, why), "red")
    spent = client.ledger.totals
    outputs = [o for r in run.results for o in r.outputs or ()]
    values = {**values, "avg_length": avg_length(outputs), "judge_usd": spent.cost_usd,
              "judge_nominal_usd": spent.nominal_usd}  # fmt: skip
    metrics = RunMetrics.of(address, spent.calls, values, run.task.headline(values))
    metrics = dataclasses.replace(metrics, judge_repeats=again or None)
    if is_complete(metrics.values):  # a partly judged run's files are read by the report alone
        metrics = with_statistics(run, metrics)
    run.run.write_metrics(metrics)
    run.run.name_judge(address)
    if reason := incomplete_reason(metrics.values):
        say(reason, "red")
    return metrics


def with_statistics(run: Generation, metrics: RunMetrics) -> RunMetrics:
    """The wholly judged run's metrics with its precision and its judge's biases (README,
    "Statistics"), read back from the files its judge wrote."""
    from eval.judge_bias import bias_of, finite
    from eval.report.precision import cluster_of, parts
    from eval.stats.repeats import Scores, estimate

    finished = {r.id: r for r in run.results if r.outputs}
    scores = run.task.instance_scores(run.run, metrics, finished)
    again = repeat_scores(run.task, run.run, metrics, finished)
    found = estimate(Scores.from_runs([[scores, *again]], cluster_of(run.task.name)))
    precision = finite({**parts(found), "method": found.method, "split": found.split.method})
    bias = bias_of(run.task, run.run, scores, finished)
    return dataclasses.replace(metrics, bias=bias, precision=precision)


def describe(settings: Settings) -> str:
    """What a run is about to do, in words: its layers, its final agent and its judge, each
    model by its catalogue name (a stand-in said to be one)."""
    spec = settings.spec
    name = namer_of(settings)
    final = name(spec.final.model)
    text = f"{spec.name}: " + describe_spec(spec, name)
    if settings.judge.enabled and settings.task == "run":
        task = task_of(settings)
        judge = name(judge_address(settings, task))
        text += f". Judged by {judge}" + (f" against {final} alone" if task.versus_alone else "")
    return text + "."


def judged_all(metrics: RunMetrics | None) -> bool:
    """No judge's metrics (not judged at all) or metrics of every instance."""
    return metrics is None or is_complete(metrics.values)


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
