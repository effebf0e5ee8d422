"""Generation: one benchmark through one mixture variant, into a resumable run directory."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.benchmarks import DataError, Instance, select
from eval.evaluation import Evaluation, evaluation_for
from eval.mixture_config import identity_layers
from eval.rundir import TRACES, InstanceResult, RunDir, RunIdentity, write_atomic
from eval.runner import EXIT_CACHE, EXIT_INTERRUPTED, Runner, RunStopped, Stop, not_generated
from eval.sendable import check_text
from eval.settings import Settings, build_client
from moa.cache import CacheWriteError
from moa.client import ModelClient
from moa.context import count_events
from moa.errors import ConfigError
from moa.ledger import Totals
from moa.mixture import Mixture, MixtureSpec
from moa.providers.replay import published
from moa.redact import environment_secrets, scrub

log = logging.getLogger("moa_bench")
_ERROR_KINDS_SHOWN = 10


def task_of(settings: Settings) -> Evaluation:
    """The configured benchmark's task, reading data from `data_dir` or the download cache."""
    return evaluation_for(settings.benchmark.section, settings.data)


def judge_address(settings: Settings, task: Evaluation | None = None) -> str:
    """The address of the configured judge of the configured benchmark."""
    model = (task or task_of(settings)).judge_model(settings.judge.section)
    return settings.catalogue.resolve(model).address


def load_instances(settings: Settings, task: Evaluation | None = None) -> list[Instance]:
    """The selected instances (`benchmark.limit`, `ids`, `categories`), in benchmark order."""
    bench = settings.benchmark
    try:
        chosen = select(
            (task or task_of(settings)).load(),
            limit=bench.limit,
            ids=list(bench.ids) if bench.ids else None,
            categories=list(bench.categories) if bench.categories else None,
        )
    except (DataError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    for instance in chosen:
        for n, turn in enumerate(instance.turns, 1):
            check_text(turn, f"instance {instance.id} turn {n}")
    return chosen


@dataclass
class Generation:
    task: Evaluation
    run: RunDir
    spec: MixtureSpec
    instances: list[Instance]
    results: list[InstanceResult]
    output_file: Path
    totals: Totals  # of this process's generation calls (none for `task=judge`)
    stopped: dict[str, str] = field(default_factory=dict)  # endpoints stopped: why (`ModelClient`)
    ignoring_n: dict[str, str] = field(default_factory=dict)  # `ModelClient.ignoring_n`
    gone: dict[str, str] = field(default_factory=dict)  # models not served (`ModelClient.gone`)

    @property
    def failed(self) -> list[InstanceResult]:
        return [r for r in self.results if r.outputs is None]

    @property
    def degraded(self) -> list[InstanceResult]:
        """Finished instances whose answer was made without a proposal that failed."""
        return [r for r in self.results if r.outputs is not None and r.degraded]

    def notes(self, metrics: Mapping[str, Any] | None = None) -> list[str]:
        """What the end-of-run summary should say beyond the totals."""
        failures = (metrics or {}).get("failures") or {}
        judged = [f"{n} {kind}" for kind, n in failures.items() if n]
        verdicts = [f"judge verdicts missing: {', '.join(judged)} (counted in metrics.json)"]
        notes = run_notes(self.results) + (verdicts if judged else [])
        if degraded := self.degraded:
            notes.append(
                f"{len(degraded)} instance(s) degraded: answered without a proposal that failed; "
                "run the same command again to retry those calls (on_degraded=accept keeps them)"
            )
        return notes


def run_notes(results: Iterable[InstanceResult]) -> list[str]:
    """Context-policy counts and every call error, grouped: none of them is in any answer."""
    results = list(results)
    notes = []
    events = [e for r in results for turn in r.trace.turns for e in turn.events]
    if policies := count_events(events):
        counts = ", ".join(f"{policy} x{n}" for policy, n in sorted(policies.items()))
        notes.append(f"context overflow policy applied: {counts} (events in {TRACES})")
    errors = Counter((c.model, c.error) for r in results for c in r.trace.calls() if c.error)
    if errors:
        notes.append(
            f"{sum(errors.values())} call(s) failed and were left out of every answer "
            f"({TRACES} and calls.jsonl have each one):"
        )
        shown = errors.most_common(_ERROR_KINDS_SHOWN)
        notes += [f"  {n} x {model}: {error}" for (model, error), n in shown]
        if len(errors) > len(shown):
            notes.append(f"  and {len(errors) - len(shown)} other kinds of error")
    return notes


def identity_of(settings: Settings) -> RunIdentity:
    """What must match for a run directory to be resumed: the variant and how it decodes."""
    spec = settings.spec
    layers, aggregator = identity_layers(spec)
    return RunIdentity(
        benchmark=settings.benchmark.name,
        variant=spec.name,
        layers=layers,
        aggregator=aggregator,
        mode=spec.mode,
        generation=dict(settings.benchmark.generation),
        selection=settings.benchmark.selection(),
        repeat=spec.repeat,
    )


def _check_inputs(settings: Settings, instances: Sequence[Instance]) -> None:
    """What a run reads besides the benchmark, checked before any call: replayed outputs must
    answer every selected instruction."""
    for address in settings.spec.models():
        endpoint, model = address.split("/", 1)
        options = settings.endpoints.get(endpoint) or {}
        if options.get("provider") == "replay":
            path, outputs = published(Path(str(options.get("outputs_dir"))), model)
            missing = [i for i in instances if i.turns[0] not in outputs or len(i.turns) > 1]
            if missing:
                raise ConfigError(
                    f"{path}: no published output for {len(missing)} of the {len(instances)} "
                    f"selected instructions (first: instance {missing[0].id}); replay serves "
                    "single-turn instructions only"
                )


async def generate(settings: Settings, *, show_progress: bool = True) -> Generation:
    """Validates everything first, the cheap checks (config, run directory, keys) before the
    data, which may have to be downloaded; then runs."""
    spec = settings.spec
    task = task_of(settings)
    run = RunDir(settings.run_dir)
    run.claim(dataclasses.replace(identity_of(settings), prompt=task.recorded_prompt()))
    write_atomic(run.config_file, scrub(settings.config_yaml, environment_secrets()))
    client = build_client(settings, ledger_path=run.ledger)
    try:
        client.preflight(spec.models())
        instances = load_instances(settings, task)
        _check_inputs(settings, instances)
        endpoints = sorted({m.split("/", 1)[0] for m in spec.models()})
        log.info(
            "run %s on %s (%d of its instances): %s, %d layer(s), models %s via endpoints %s; "
            "run directory %s",
            spec.name, task.name, len(instances), spec.mode, len(spec.proposer_layers) + 1,
            ", ".join(spec.models()), ", ".join(endpoints), run.path,
        )  # fmt: skip
        runner: Runner[Instance] = Runner(
            Mixture(spec, client, extract=task.extractor()),
            client.ledger,
            run,
            concurrency=settings.concurrency,
            show_progress=show_progress,
            redo_degraded=settings.on_degraded == "retry",
            budget=client.budget,
        )
        results = await runner.run(instances, task.generation(), {"variant": spec.name})
    finally:
        closed = await _close(client)
    runner.stopped = closed or runner.stopped  # the cache's last word has the final counts
    output = task.write_outputs(run, spec.name, instances, results)
    if runner.stopped is not None:
        done = sum(r.outputs is not None for r in results)
        saved = f"{done}/{len(results)} instances are saved ({output})"
        raise RunStopped(stop_message(runner.stopped, saved), runner.stopped.exit_code)
    totals, stopped = client.ledger.totals, client.stopped()
    return Generation(
        task,
        run,
        spec,
        instances,
        results,
        output,
        totals,
        stopped,
        client.ignoring_n(),
        client.gone(),
    )


def generated(settings: Settings) -> Generation:
    """An existing run directory as it is, for `task=judge`: nothing is generated or written,
    and no generation endpoint is built (so none of their keys is needed)."""
    spec = settings.spec
    task = task_of(settings)
    run = RunDir(settings.run_dir)
    identity = run.identity()
    if identity is None:
        raise ConfigError(
            f"{run.path} holds no run to judge: run task=generate (or task=run) first"
        )
    if identity != identity_of(settings):
        raise ConfigError(
            f"{run.path} holds another run of {identity.variant!r} "
            f"({identity.differences(identity_of(settings))}): judge it with the settings "
            "it was generated with"
        )
    instances = load_instances(settings, task)
    finished = run.finished()
    results = [finished.get(i.id) or not_generated(i.id) for i in instances]
    return Generation(
        task, run, spec, instances, results, task.output_path(run, spec.name), Totals()
    )


async def _close(client: ModelClient) -> Stop | None:
    """Closes the client; answers its cache could not store (kept in a journal) stop the run
    once its outputs are saved."""
    try:
        await client.aclose()
    except CacheWriteError as exc:
        return Stop(str(exc), EXIT_CACHE)
    return None


def stop_message(stop: Stop, saved: str) -> str:
    if stop.exit_code == EXIT_INTERRUPTED:
        return f"interrupted; {saved}; run the same command to resume"
    if stop.exit_code == EXIT_CACHE:
        return stop.reason  # says what was kept where, and what to do
    return (
        f"stopped: {stop.reason}; {saved}; raise the cap and run the same command to carry on "
        "(the calls already made come from the cache, free)"
    )
