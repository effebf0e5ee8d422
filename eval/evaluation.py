"""A benchmark with the judge its YAML names: what a run generates, judges and reads back.

The benchmarks are `eval.benchmarks.<name>` (their `BENCHMARK`), one per YAML in
`conf/benchmark/`; each YAML names its judge spec (`judge_spec`, `conf/judge_spec/`), run by a
judge kind (`eval.judges.kinds`). Benchmark modules are imported only when asked for. An
`Evaluation` keeps the two apart (`benchmark`, `judging`) and answers for both under the names
the run, the plan, the report and the browser call.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.benchmarks.data import Data
from eval.judges.kind import JudgeKind
from eval.judges.kinds import judge_for
from eval.judges.readings import Verdict
from eval.judges.spec import BENCHMARK_DIR
from moa.errors import ConfigError
from moa.types import GenerateConfig

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


def known() -> list[str]:
    """Every benchmark name: one YAML in `conf/benchmark/` and one module each."""
    return sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml"))


def benchmark_class(name: str) -> type[Benchmark]:
    if name not in known():
        raise ConfigError(f"unknown benchmark {name!r} (known: {', '.join(known())})")
    # a version's dot is an underscore in its module's name (arena_hard_v0.1)
    module = importlib.import_module(f"eval.benchmarks.{name.replace('.', '_')}")
    cls: type[Benchmark] = module.BENCHMARK
    return cls


@dataclass(frozen=True)
class Evaluation:
    benchmark: Benchmark
    judging: JudgeKind

    @property
    def name(self) -> str:
        return self.benchmark.name

    @property
    def table_per_instance(self) -> bool:
        return self.benchmark.table_per_instance

    @property
    def versus_alone(self) -> bool:
        """The judge compares the mixture with its final model alone (the demo's verdict)."""
        return self.judging.spec.baseline == "final_model_alone"

    def load(self) -> list[Instance]:
        return self.benchmark.load()

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        return self.benchmark.generation()

    def recorded_prompt(self) -> dict[str, str] | None:
        return self.benchmark.recorded_prompt()

    def output_path(self, run: RunDir, variant: str) -> Path:
        return self.benchmark.output_path(run, variant)

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        return self.benchmark.write_outputs(run, variant, instances, results)

    def judge_model(self, judges: Mapping[str, Any]) -> str:
        return self.judging.model(judges)

    async def judge(
        self,
        client: ModelClient,
        judge: str,
        run: RunDir,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        return await self.judging.judge(client, judge, run, spec, instances, results)

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        await self.judging.plan(generator, judge, spec, instances, outputs)

    def extractor(self) -> Callable[[str], str | None] | None:
        return self.judging.extractor()

    def judge_calls(self, instance: Instance) -> int:
        return self.judging.calls(instance)

    def rescore(self, path: Path) -> dict[str, Any]:
        return self.judging.rescore(path)

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        return self.judging.instance_scores(run, metrics, finished)

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        return self.judging.verdicts(run, metrics, finished)

    def headline(self, metrics: Mapping[str, Any]) -> float:
        return self.judging.headline(metrics)


def evaluation_for(settings: Mapping[str, Any], data: Data | None = None) -> Evaluation:
    """The benchmark of a config section (its `name` picks the module) with its judge."""
    benchmark = benchmark_class(str(settings["name"]))(settings, data or Data())
    return Evaluation(benchmark, judge_for(settings, benchmark))


def evaluation_reading(path: Path, data: Data | None = None) -> Evaluation:
    """The evaluation whose judge writes files like `path`, for re-scoring it (with the judge
    settings a benchmark keeps in its `data`, as Arena-Hard's regexes): one whose spec names the
    file exactly first (the verifiable track's), then one that reads its kind."""
    evaluations = [evaluation_for({"name": name}, data) for name in known()]
    for evaluation in evaluations:
        native = evaluation.judging.spec.native_file
        if native is not None and Path(native).name == path.name:
            return evaluation
    for evaluation in evaluations:
        if evaluation.judging.reads(path):
            return evaluation
    raise ConfigError(
        f"rescore.path={path}: not a judge file moa-bench knows (an alpaca-eval "
        "annotations.json, a FastChat *_single.jsonl or *_pair.jsonl, a FLASK review .jsonl, an "
        "Arena-Hard model_judgment .jsonl or a <benchmark>_verdicts.jsonl of the verifiable track)"
    )
