"""MT-Bench: 80 two-turn questions graded 1-10 by GPT-4, as FastChat's `llm_judge` grades them.

Decoding follows FastChat's per-category temperatures (when the config asks for them). Native
files: `model_answer/<model>.jsonl` and `model_judgment/<judge>_single.jsonl`, where the model id
is the run directory's name (`moa@scripted`, `moa~first5`), in the answer file's name, its
`model_id` and the judgments' `model`: FastChat matches answers to judgments by that id, so runs of
one variant on different providers stay apart once their files are merged.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks.mt_bench import (
    JUDGE_PROMPTS,
    QUESTIONS,
    REFERENCES,
    TEMPERATURES,
    load_mt_bench,
)
from eval.judges import mt_bench as mj
from eval.judges.common import FailureKind, count_failures, coverage, is_complete, judge_error
from eval.rundir import InstanceResult, RunDir, RunMetrics, write_jsonl
from eval.tasks.base import Reading, Task, Verdict, check_rows
from moa.providers import scripted
from moa.types import ChatMessage, GenerateConfig

if TYPE_CHECKING:
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


_HEADLINE = ("turn_1", "turn_2", "average")  # a model's metrics, none for a partial set


def metrics_of(
    judgments: Sequence[mj.Judgment], variant: str | None = None, *, expected: int | None = None
) -> dict[str, Any]:
    """`show_result.py --mode single`: one model's scores, or every model's by name, each with
    its coverage (`eval.judges.common`): `expected` questions (by default those its judgments
    cover), judged when the judge answered each of their turns, and any question and turn judged
    twice (`_duplicates`). An incomplete model's scores are its judged part's, under
    `partial`."""
    table = mj.summarize(judgments)
    if variant is None:
        return {
            "models": {
                model: _covered(vars(scores), [j for j in judgments if j.model == model], None)
                for model, scores in table.items()
            }
        }
    scores = vars(table[variant]) if variant in table else {}
    return _covered(scores, [j for j in judgments if j.model == variant], expected)


def _covered(
    scores: Mapping[str, Any], judgments: Sequence[mj.Judgment], expected: int | None
) -> dict[str, Any]:
    answered: dict[int, bool] = {}
    for j in judgments:
        ok = j.failure is None or j.failure.kind is FailureKind.PARSE
        answered[j.question_id] = answered.get(j.question_id, True) and ok
    cover = coverage(len(answered) if expected is None else expected, sum(answered.values()))
    failures = [j.failure for j in judgments]
    out = {**scores, "failures": count_failures(failures), **judge_error(failures), **cover}
    out.update(_duplicates(judgments))
    if cover["complete"]:
        return out
    partial = {k: out.pop(k) for k in _HEADLINE if k in out}
    return {**out, "partial": partial} if any(v is not None for v in partial.values()) else out


def _duplicates(judgments: Sequence[mj.Judgment]) -> dict[str, Any]:
    """A (question, turn) judged more than once (Archon's published file has two): FastChat's
    `show_result.py` averages every line in, so the scores above count it twice; named here
    (`duplicates`, `<question>/<turn>` with how many), with the scores of one judgment each (the
    last in the file, as a re-judging appends it) under `deduplicated`."""
    seen = Counter((j.question_id, j.turn) for j in judgments)
    twice = sorted(k for k, n in seen.items() if n > 1)
    if not twice:
        return {}
    last = list({(j.question_id, j.turn): j for j in judgments}.values())
    (once,) = mj.summarize(last).values()
    return {
        "duplicates": [f"{q}/{t} x{seen[q, t]}" for q, t in twice],
        "deduplicated": {k: getattr(once, k) for k in _HEADLINE},
    }


def model_id(run: RunDir) -> str:
    """The model id FastChat knows this run by: its directory's name (`moa@scripted`)."""
    return run.path.name


def answer_id(variant: str, question_id: str) -> str:
    """Stable across re-runs, unlike FastChat's random shortuuid, so identical runs diff clean."""
    return hashlib.sha256(f"{variant}/{question_id}".encode()).hexdigest()[:22]


class MTBench(Task):
    name = "mt_bench"
    view_data: ClassVar[Mapping[str, str]] = {
        QUESTIONS: "its categories",
        REFERENCES: "its categories",  # read with the questions (`load_mt_bench`)
    }

    def load(self) -> list[Instance]:
        return load_mt_bench(data_dir=self.data.data_dir, cache_dir=self.data.cache_dir)

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        default = self.default_generation()
        if not self.settings["generation"].get("per_category_temperature"):
            return lambda instance: default
        by_category = {c: default.merged(temperature=t) for c, t in TEMPERATURES.items()}
        return lambda instance: by_category.get(instance.category or "", default)

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_answer", f"{model_id(run)}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {
                "question_id": int(inst.id),
                "answer_id": answer_id(variant, inst.id),
                "model_id": model_id(run),
                "choices": [{"index": 0, "turns": r.outputs}],
                "tstamp": r.finished_at,
            }
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path

    def _prompts(self) -> dict[str, mj.Prompt]:
        return mj.load_judge_prompts(self.data.path(JUDGE_PROMPTS))

    async def judge(
        self,
        client: ModelClient,
        judge: str,
        run: RunDir,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        done = [(i, r.outputs) for i, r in zip(instances, results, strict=True) if r.outputs]
        questions = [
            {"question_id": int(i.id), "category": i.category, "turns": list(i.turns)}
            for i, _ in done
        ]
        answers = {int(i.id): outputs for i, outputs in done if outputs}
        references = {int(i.id): list(i.references) for i, _ in done if i.references}
        model = model_id(run)
        matches = mj.make_matches(questions, model, answers, self._prompts(), references)
        judgments = await mj.judge_matches(client, matches, judge=judge)
        mj.write_judgments(mj.judgment_path(run.path, judge), judgments)
        return metrics_of(judgments, model, expected=len(instances))

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """`judge`'s calls: one grading per question and turn (the model id, here the variant's
        name, is in no request)."""
        done = [(i, o) for i, o in zip(instances, outputs, strict=True) if o]
        questions = [
            {"question_id": int(i.id), "category": i.category, "turns": list(i.turns)}
            for i, _ in done
        ]
        answers = {int(i.id): o for i, o in done}
        references = {int(i.id): list(i.references) for i, _ in done if i.references}
        matches = mj.make_matches(questions, spec.name, answers, self._prompts(), references)
        await mj.judge_matches(generator, matches, judge=judge)

    def judge_calls(self, instance: Instance) -> int:
        return len(instance.turns)  # one grading per turn

    @classmethod
    def reads(cls, path: Path) -> bool:
        return path.name.endswith("_single.jsonl")

    def rescore(self, path: Path) -> dict[str, Any]:
        return metrics_of(mj.rescore(mj.read_judgments(path)))

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per question and turn, the rating of the run's judge, whose file must hold one
        judgment per answered turn."""
        judgments = _judgments(run, metrics, finished)
        return {f"{j.question_id}/{j.turn}": float(j.score) for j in judgments if j.failure is None}

    def _categories(self) -> dict[str, str]:
        """Each question's category, from the benchmark's files where they are on this
        machine; none without them (the browser says so, `view_data`, and downloads nothing)."""
        if any(self.data.local(relpath) is None for relpath in self.view_data):
            return {}
        return {i.id: i.category or "" for i in load_mt_bench(data_dir=self.data.root)}

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per question, a reading per turn (the judge's judgment text and the prompt it was
        given); the score is the mean rating of its turns, the outcome their ratings."""
        by_question: dict[str, list[mj.Judgment]] = {}
        for j in _judgments(run, metrics, finished):
            by_question.setdefault(str(j.question_id), []).append(j)
        categories = self._categories()
        verdicts = {}
        for qid, judgments in by_question.items():
            judgments.sort(key=lambda j: j.turn)
            rated = [float(j.score) for j in judgments if j.failure is None]
            readings = [
                Reading(
                    f"turn {j.turn}",
                    {
                        "rating": "-" if j.failure else f"{j.score:g} / 10",
                        "judge": f"{j.judge[0]} ({j.judge[1]})",
                        **({"failure": j.failure.reason} if j.failure else {}),
                    },
                    j.judgment,
                    j.user_prompt,
                )
                for j in judgments
            ]
            verdicts[qid] = Verdict(
                score=sum(rated) / len(rated) if rated else None,
                outcome=" / ".join("-" if j.failure else f"{j.score:g}" for j in judgments),
                readings=readings,
                tags=[categories[qid]] if categories.get(qid) else [],
            )
        return verdicts

    def headline(self, metrics: Mapping[str, Any]) -> float:
        if not is_complete(metrics):
            return float("nan")
        average = metrics.get("average")
        return float("nan") if average is None else float(average)

    def offline_judge(self) -> scripted.Responder:
        """A rating in FastChat's `[[k]]` format for any request made of one of its single-answer
        templates (its system prompt, and the template's text up to its first field)."""
        shapes = {
            (p["system_prompt"], p["prompt_template"].split("{", 1)[0])
            for name, p in self._prompts().items()
            if name.startswith("single")
        }

        def answer(
            messages: Sequence[ChatMessage], config: GenerateConfig, rng: random.Random, tokens: int
        ) -> str | None:
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            user = messages[-1]["content"]
            if not any(system == s and user.startswith(head) for s, head in shapes):
                return None
            return f"The response is adequate. Rating: [[{rng.randint(1, 10)}]]"

        return answer


def _judgments(
    run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
) -> list[mj.Judgment]:
    """The run's judgments by its judge, which must be one per answered turn (`check_rows`)."""
    path = mj.judgment_path(run.path, metrics.judge)
    judgments = mj.read_judgments(path)
    turns = sum(len(r.outputs or ()) for r in finished.values())
    check_rows(path, len(judgments), turns, "judgments")
    return judgments


TASK = MTBench
