"""The benchmark registry, the judge specs, and the scripted fake asking the judge it is given."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from eval.benchmarks.data import Data
from eval.evaluation import evaluation_for, evaluation_reading, known
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.judges.kind import JudgeKind
from eval.settings import CONF_DIR
from moa.errors import ConfigError
from moa.providers.scripted import Scripted
from moa.types import CallOutcome, CallRecord, ChatMessage, GenerateConfig

from .conftest import SHARED_DATA

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


class ScriptedGenerator:
    """The scripted provider as a `Generator`, without a client around it."""

    def __init__(self, judge: JudgeKind) -> None:
        self.fake = Scripted(judges=[judge.scripted_answer])

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        completion = await self.fake.generate(model, messages, config, sample)
        return CallOutcome(completion, CallRecord(key="k", model=model, sample=sample))


def test_every_benchmark_config_has_a_benchmark_and_a_judge_spec() -> None:
    configs = sorted(p.stem for p in (CONF_DIR / "benchmark").glob("*.yaml"))
    assert configs == known()
    for name in known():
        evaluation = evaluation_for({"name": name})
        assert evaluation.name == name and evaluation.judging.spec.name == name


def test_rescore_finds_the_judge_by_file(tmp_path: Path) -> None:
    assert evaluation_reading(tmp_path / "annotations.json").name == "alpaca_eval"
    path = tmp_path / "model_judgment" / "gpt-4_single.jsonl"
    assert evaluation_reading(path).name == "mt_bench"
    assert evaluation_reading(tmp_path / "review" / "reviews.jsonl").name == "flask"
    with pytest.raises(ConfigError, match="not a judge file"):
        evaluation_reading(tmp_path / "notes.txt")


def _edited_copy(tmp_path: Path, relpath: str, old: str, new: str) -> Data:
    """A data folder whose `relpath` has `old` replaced by `new` everywhere."""
    root = tmp_path / "data"
    shutil.copytree(SHARED_DATA, root)
    path = root / relpath
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return Data(str(root))


@needs_data
@pytest.mark.parametrize("edited", [False, True])
async def test_the_offline_mt_bench_judge_follows_its_templates(
    tmp_path: Path, edited: bool
) -> None:
    data = Data(str(SHARED_DATA))
    if edited:  # a reworded template: the offline judge must still answer it
        old = "Please act as an impartial judge"
        data = _edited_copy(
            tmp_path, "mt_bench/judge_prompts.jsonl", old, "Kindly act as a fair judge"
        )
    task = evaluation_for({"name": "mt_bench"}, data)
    instances = task.load()[:12]
    questions = [
        {"question_id": int(i.id), "category": i.category, "turns": list(i.turns)}
        for i in instances
    ]
    answers = {int(i.id): ["first answer", "second answer"] for i in instances}
    references = {int(i.id): list(i.references) for i in instances if i.references}
    prompts = mj.load_judge_prompts(data.path("mt_bench/judge_prompts.jsonl"))
    matches = mj.make_matches(questions, "m", answers, prompts, references)
    judgments = await mj.judge_matches(ScriptedGenerator(task.judging), matches)
    assert len(judgments) == 24 and all(1 <= j.score <= 10 for j in judgments)


@needs_data
@pytest.mark.parametrize("edited", [False, True])
async def test_the_offline_flask_judge_follows_its_templates(tmp_path: Path, edited: bool) -> None:
    data = Data(str(SHARED_DATA))
    if edited:
        old = "We would like to request your feedback"
        data = _edited_copy(
            tmp_path, "flask/gpt_review_prompt.jsonl", old, "We ask for your review"
        )
    task = evaluation_for({"name": "flask"}, data)
    setup = task.judging.setup()  # type: ignore[attr-defined]
    items = [
        (
            {
                "idx": int(i.id),
                "instruction": i.turns[0],
                "answer": i.references[0],
                "skill": list(i.meta["skill"]),
            },
            "a response",
        )
        for i in task.load()[:10]
        if i.references
    ]
    reviews = await fj.judge_responses(ScriptedGenerator(task.judging), items, setup)
    for (item, _), review in zip(items, reviews, strict=True):
        assert review.failure is None
        assert {fj.skill_key(str(k).lower()) for k in review.score} == {
            fj.skill_key(s.lower()) for s in item["skill"]
        }


@needs_data
async def test_a_prompt_that_is_no_judges_gets_an_ordinary_answer() -> None:
    judges = [evaluation_for({"name": n}, Data(str(SHARED_DATA))).judging for n in known()]
    messages: list[ChatMessage] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Rate this answer from 1 to 10: [[rating]]"},
    ]
    fake = Scripted(judges=[judge.scripted_answer for judge in judges])
    answer = await fake.generate("m", messages, GenerateConfig(max_tokens=50), 0)
    assert answer.text.startswith("[m #0] On 'Rate this answer") and "Rating" not in answer.text
