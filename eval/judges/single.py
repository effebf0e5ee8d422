"""The `single` judge kind: each answer graded alone, 1 to 10 per turn, as FastChat's
`llm_judge` grades MT-Bench (its judge prompts read from the benchmark's data at run time).

Native file: `model_judgment/<judge>_single.jsonl`, whose `model` is the run directory's name
(`eval.benchmarks.mt_bench.model_id`); metrics: `show_result.py --mode single`.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks.mt_bench import model_id
from eval.judges import mt_bench as mj
from eval.judges.common import FailureKind, count_failures, coverage, is_complete, judge_error
from eval.judges.kind import JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from moa.types import ChatMessage, Completion, GenerateConfig

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
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


def _matches(
    instances: Sequence[Instance],
    outputs: Sequence[Sequence[str] | None],
    model: str,
    prompts: dict[str, mj.Prompt],
) -> list[mj.Match]:
    done = [(i, o) for i, o in zip(instances, outputs, strict=True) if o]
    questions = [
        {"question_id": int(i.id), "category": i.category, "turns": list(i.turns)} for i, _ in done
    ]
    answers = {int(i.id): o for i, o in done if o}
    references = {int(i.id): list(i.references) for i, _ in done if i.references}
    return mj.make_matches(questions, model, answers, prompts, references)


class Single(JudgeKind):
    kind = "single"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "messages": ("system_user",),
        "decoding": (
            {
                "temperature": mj.JUDGE_CONFIG.temperature,
                "max_tokens": mj.JUDGE_CONFIG.max_tokens,
            },
        ),
        "verdict": ("double_bracket_rating",),
        "swap": ({"policy": "none"},),
        "native_file": ("model_judgment/{judge}_single.jsonl",),
        "metric": ("mean_rating",),
    }

    def _prompts(self) -> dict[str, mj.Prompt]:
        return mj.load_judge_prompts(self.benchmark.data.path(self.spec.source("file")))

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        model = model_id(run.path)
        outputs = [r.outputs for r in results]
        matches = _matches(instances, outputs, model, self._prompts())
        judgments = await mj.judge_matches(client, matches, judge=address)
        mj.write_judgments(mj.judgment_path(run.path, address), judgments)
        return metrics_of(judgments, model, expected=len(instances))

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """One grading per question and turn (the model id, here the variant's name, is in no
        request)."""
        matches = _matches(instances, outputs, mixture.name, self._prompts())
        await mj.judge_matches(generator, matches, judge=address)

    def calls(self, instance: Instance) -> int:
        return len(instance.turns)  # one grading per turn

    def reads(self, path: Path) -> bool:
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

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per question, a reading per turn (the judge's judgment text and the prompt it was
        given); the score is the mean rating of its turns, the outcome their ratings."""
        by_question: dict[str, list[mj.Judgment]] = {}
        for j in _judgments(run, metrics, finished):
            by_question.setdefault(str(j.question_id), []).append(j)
        categories = self.benchmark.categories_here()
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

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        """A rating in FastChat's `[[k]]` format for any request made of one of its single-answer
        templates (its system prompt, and the template's text up to its first field)."""
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        user = messages[-1]["content"]
        if not any(system == s and user.startswith(head) for s, head in self._shapes):
            return None
        return f"The response is adequate. Rating: [[{rng.randint(1, 10)}]]"

    @functools.cached_property
    def _shapes(self) -> set[tuple[str, str]]:
        return {
            (p["system_prompt"], p["prompt_template"].split("{", 1)[0])
            for name, p in self._prompts().items()
            if name.startswith("single")
        }


def _judgments(
    run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
) -> list[mj.Judgment]:
    """The run's judgments by its judge, which must be one per answered turn (`check_rows`)."""
    path = mj.judgment_path(run.path, metrics.judge)
    judgments = mj.read_judgments(path)
    turns = sum(len(r.outputs or ()) for r in finished.values())
    check_rows(path, len(judgments), turns, "judgments")
    return judgments


KIND = Single
