"""Judges as data: the specs in conf/judge_spec/, the kinds that run them, and a new pairwise
benchmark made of a loader and two YAML files, judged offline by the scripted fake."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks.base import Instance
from eval.benchmarks.benchmark import Benchmark
from eval.benchmarks.data import Data
from eval.evaluation import evaluation_for, known
from eval.judges.exact import Exact
from eval.judges.kind import JudgeKind
from eval.judges.kinds import run_spec
from eval.judges.pairwise import Pairwise
from eval.judges.spec import SPEC_DIR, load_spec, read_spec
from eval.rundir import InstanceResult, RunDir, RunMetrics
from moa.agents import Agent
from moa.errors import ConfigError
from moa.mixture import MixtureSpec
from moa.providers.scripted import Scripted
from moa.types import CallOutcome, CallRecord, ChatMessage, GenerateConfig


class FakeGenerator:
    """The scripted provider as a `Generator`, asking the judges it is given."""

    def __init__(self, judges: Sequence[JudgeKind] = ()) -> None:
        self.fake = Scripted(judges=[j.scripted_answer for j in judges])
        self.calls = 0

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.calls += 1
        completion = await self.fake.generate(model, messages, config, sample)
        return CallOutcome(completion, CallRecord(key=f"k{self.calls}", model=model, sample=sample))


class Toy(Benchmark):
    """A pairwise benchmark as a user adds one: instances with a reference answer to beat."""

    name = "toy"

    def load(self) -> list[Instance]:
        return [
            Instance(
                str(n),
                (f"Name a colour, {n}.",),
                None,
                (str(n),),
                {"reference_output": f"Blue, {n}.", "reference_generator": "ref"},
            )
            for n in range(6)
        ]


def _results(instances: Sequence[Instance], answer: str = "Red #### 3") -> list[InstanceResult]:
    return [InstanceResult(i.id, [answer], None, 3, 0, 0, 0.0) for i in instances]


def test_every_shipped_spec_is_run_by_its_kind() -> None:
    for name in known():
        evaluation = evaluation_for({"name": name})
        assert evaluation.judging.spec == load_spec(name)
        assert evaluation.judging.kind == load_spec(name).kind
    assert {load_spec(p.stem).kind for p in SPEC_DIR.glob("*.yaml")} == {
        "pairwise",
        "single",
        "rubric",
        "pairwise_baseline",
    }


def _spec_file(tmp_path: Path, base: str, **changes: Any) -> Path:
    import yaml

    raw = yaml.safe_load((SPEC_DIR / f"{base}.yaml").read_text())
    raw.update(changes)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("base", "changes", "refusal"),
    [
        ("alpaca_eval", {"verdict": "ranking"}, "verdict='ranking' is not one the pairwise kind"),
        ("alpaca_eval", {"swap": {"policy": "none"}}, "seeded swap"),
        ("mt_bench", {"decoding": {"temperature": 0.7}}, "decoding="),
        ("flask", {"colour": "red"}, "unknown field(s) colour"),
    ],
)
def test_a_spec_its_kind_cannot_run_is_refused_in_one_line(
    tmp_path: Path, base: str, changes: dict[str, Any], refusal: str
) -> None:
    spec = read_spec(_spec_file(tmp_path, base, **changes)) if "colour" not in changes else None
    with pytest.raises(ConfigError) as refused:
        run_spec(spec or read_spec(_spec_file(tmp_path, base, **changes)), Toy({}, Data()))
    assert refusal in str(refused.value) and "\n" not in str(refused.value)


async def test_a_new_pairwise_benchmark_is_a_loader_and_a_judge_spec(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, "alpaca_eval", metric="preference", model_key="alpaca_eval")
    toy = Toy({"name": "toy"}, Data())
    judge = Pairwise(read_spec(path), toy)
    assert judge.model({"alpaca_eval": "gpt-4-turbo"}) == "gpt-4-turbo"
    with pytest.raises(ConfigError, match="names no model for 'alpaca_eval'"):
        judge.model({"toy": "gpt-4-turbo"})
    instances = toy.load()
    generator = FakeGenerator([judge])
    run = RunDir(tmp_path / "run")
    mixture = MixtureSpec.paper("moa", (), Agent("scripted/m"))
    metrics = await judge.judge(generator, "scripted/judge", run, mixture, instances,
                                _results(instances))  # type: ignore[arg-type]  # fmt: skip
    assert generator.calls == len(instances)
    assert metrics["complete"] and metrics["failures"] == {"call": 0, "parse": 0}
    preferences = metrics["preference"]
    assert sorted(preferences) == [i.id for i in instances]
    assert all(1.0 <= p <= 2.0 for p in preferences.values())
    rows = json.loads((tmp_path / "run" / "annotations.json").read_text())
    assert [r["instruction"] for r in rows] == [i.turns[0] for i in instances]
    assert judge.reads(tmp_path / "run" / "annotations.json")
    # the fake answers a judge only when it is given that judge: otherwise its answer has no
    # logprobs, which the weighted annotator refuses at the first call (issue 23)
    unasked = FakeGenerator()
    with pytest.raises(ConfigError, match="answered without logprobs"):
        await judge.judge(unasked, "scripted/judge", RunDir(tmp_path / "other"), mixture,
                          instances, _results(instances))  # type: ignore[arg-type]  # fmt: skip
    assert unasked.calls == 1


def _exact_spec(tmp_path: Path) -> Path:
    path = tmp_path / "toy_exact.yaml"
    path.write_text(
        "kind: exact\nmodel_key: none\ntemplate: {}\nmessages: none\ndecoding: none\n"
        "verdict: last_number\nswap: {policy: none}\ncheck: gsm8k\nnative_file: verdicts.jsonl\n"
        "metric: accuracy\n"
    )
    return path


async def test_the_exact_kind_checks_by_function_and_reads_its_file_back(tmp_path: Path) -> None:
    judge = Exact(read_spec(_exact_spec(tmp_path)), Toy({"name": "toy"}, Data()))
    instances = Toy({"name": "toy"}, Data()).load()
    results = _results(instances)  # "Red #### 3": right for instance 3 only
    results[5] = InstanceResult("5", None, "failed", 0, 0, 0, 0.0)
    run = RunDir(tmp_path / "run")
    mixture = MixtureSpec.paper("moa", (), Agent("scripted/m"))
    generator = FakeGenerator()
    metrics = await judge.judge(generator, "-", run, mixture, instances, results)  # type: ignore[arg-type]
    await judge.plan(generator, "-", mixture, instances, [r.outputs for r in results])
    assert generator.calls == 0 and judge.calls(instances[0]) == 0
    assert (metrics["correct"], metrics["n_expected"], metrics["n_judged"]) == (1, 6, 5)
    assert metrics["complete"] is False and metrics["accuracy"] == pytest.approx(0.2)
    finished = {r.id: r for r in results if r.outputs}
    values = RunMetrics("-", 0, metrics)
    assert judge.instance_scores(run, values, finished) == {"0": 0.0, "1": 0.0, "2": 0.0,
                                                            "3": 1.0, "4": 0.0}  # fmt: skip
    verdicts = judge.verdicts(run, values, finished)
    assert verdicts["3"].outcome == "correct" and verdicts["3"].reference == ("gold", "3")
    rescored = judge.rescore(tmp_path / "run" / "verdicts.jsonl")
    assert rescored["correct"] == 1 and rescored["complete"] is True


def test_no_benchmark_or_judge_module_imports_the_scripted_fake() -> None:
    root = Path(__file__).resolve().parents[1] / "eval"
    modules = [*(root / "benchmarks").glob("*.py"), *(root / "judges").glob("*.py")]
    assert len(modules) > 10
    for module in modules:
        assert "moa.providers.scripted" not in module.read_text(encoding="utf-8"), module
