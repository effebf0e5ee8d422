"""The embedded demo: eight built-in instructions, the mixture judged against its aggregator model
alone, pairwise the AlpacaEval way (by default the embedded model judges)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.benchmarks import Instance
from eval.benchmarks.demo import load_demo
from eval.judges import alpaca_eval as ae
from eval.judges.common import (
    Failure,
    FailureKind,
    count_failures,
    coverage,
    judge_error,
    settle_all,
)
from eval.rundir import InstanceResult, RunDir, RunMetrics, write_atomic
from eval.tasks.alpaca_eval import (
    outcome_of,
    preference_answer,
    preference_score,
    request_preferences,
)
from eval.tasks.base import Reading, Task, Verdict
from moa.mixture import Mixture, MixtureSpec
from moa.providers import scripted

if TYPE_CHECKING:
    from moa.client import ModelClient
    from moa.types import Generator

OUTPUTS = "outputs.json"


class Demo(Task):
    name = "demo"
    table_per_instance = True
    versus_alone = True

    def load(self) -> list[Instance]:
        return load_demo()

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native(OUTPUTS)

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {"id": inst.id, "turns": list(inst.turns), "outputs": r.outputs}
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_atomic(path, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return path

    async def judge(
        self,
        client: ModelClient,
        judge: str,
        run: RunDir,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        """Per instance, alpaca_eval's preference: 1 = the model alone wins, 2 = the mixture;
        with the coverage (`eval.judges.common`): an instance whose baseline or verdict call
        failed is not judged."""
        alone = Mixture(MixtureSpec.paper("alone", (), spec.final), client)
        config_for = self.generation()
        answered = [(i, r.outputs) for i, r in zip(instances, results, strict=True) if r.outputs]
        traces = await settle_all(
            alone.converse(i.turns, config_for(i), {"instance": i.id, "role": "baseline"})
            for i, _ in answered
        )
        baseline_rows, ours = [], []
        failures: list[Failure | None] = []
        for (inst, outputs), trace in zip(answered, traces, strict=True):
            if trace.outputs is None:
                failures.append(Failure(FailureKind.CALL, trace.error or "no baseline answer"))
                continue
            instruction = "\n\n".join(inst.turns)
            baseline_rows.append(
                {"instruction": instruction, "output": trace.outputs[-1], "generator": "alone"}
            )
            ours.append({"instruction": instruction, "output": outputs[-1], "generator": "moa"})
        annotations = await ae.annotate(client, ae.make_pairs(baseline_rows, ours), judge=judge)
        failures += [a.failure for a in annotations]
        prefs = {a.pair.instruction: a.preference for a in annotations}
        judged = sum(a.failure is None or a.failure.kind is FailureKind.PARSE for a in annotations)
        return {
            "preference": {inst.id: prefs.get("\n\n".join(inst.turns)) for inst in instances},
            "failures": count_failures(failures),
            **judge_error(failures),
            **coverage(len(instances), judged),
        }

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """`judge`'s calls: the aggregator model alone at every turn, then one verdict."""
        alone = Mixture(MixtureSpec.paper("alone", (), spec.final), generator)
        config_for = self.generation()
        baseline_rows, ours = [], []
        for inst, mine in zip(instances, outputs, strict=True):
            if not mine:
                continue
            tags = {"instance": inst.id, "role": "baseline"}
            trace = await alone.converse(inst.turns, config_for(inst), tags)
            if trace.outputs is None:
                continue
            instruction = "\n\n".join(inst.turns)
            baseline_rows.append(
                {"instruction": instruction, "output": trace.outputs[-1], "generator": "alone"}
            )
            ours.append({"instruction": instruction, "output": mine[-1], "generator": "moa"})
        await request_preferences(generator, ae.make_pairs(baseline_rows, ours), judge)

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """The metrics' preference per instance: 1 the model alone, 2 the mixture."""
        verdicts = {}
        for id_, preference in (metrics.get("preference") or {}).items():
            shown = "-" if preference is None else f"{preference:.3f} (1: alone, 2: mixture)"
            verdicts[str(id_)] = Verdict(
                score=preference_score(preference),
                outcome=outcome_of(preference),
                readings=[Reading("preference against the model alone", {"preference": shown})],
            )
        return verdicts

    def judge_calls(self, instance: Instance) -> int:
        return len(instance.turns) + 1  # the model alone at each turn, then the verdict

    def offline_judge(self) -> scripted.Responder:
        return preference_answer


TASK = Demo
