"""FLASK: 1,740 instances, each scored 1-5 by GPT-4 on its own three of 12 skills.

Native files: `model_output/<variant>.jsonl` (`{question_id, text}`, as FLASK's gpt_review reads)
and the review file `review/reviews.jsonl`, whose lines are, as `gpt4_eval.py` writes them, the
evaluation file's whole line (`idx`, `instruction`, `answer`, `task`, `skill`, `domain`,
`difficulty`, in the file's order) followed by the review's fields. The judge is built from
FLASK's own files, read with the validated loaders of `eval.benchmarks.flask`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.benchmarks import Instance
from eval.benchmarks import flask as data
from eval.benchmarks._read import read_jsonl
from eval.judges import flask as fj
from eval.judges.common import coverage, judge_error
from eval.rundir import InstanceResult, RunDir, RunMetrics, write_jsonl
from eval.tasks.base import Reading, Task, Verdict, check_rows
from moa.providers import scripted
from moa.types import ChatMessage, GenerateConfig

if TYPE_CHECKING:
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator

REVIEWS = ("review", "reviews.jsonl")


def metrics_of(reviews: Sequence[fj.Review], *, expected: int | None = None) -> dict[str, Any]:
    """`aggregate_skill.py`'s per-skill averages, with what it skipped and what failed, and the
    coverage (`eval.judges.common`): `expected` instances (by default one per review), judged
    when the judge answered. An incomplete set's averages are its judged part's, under
    `partial`."""
    table = fj.aggregate_skills(reviews)
    skills = {name: score.average for name, score in table.skills.items()}
    cover = coverage(len(reviews) if expected is None else expected, table.n_reviews)
    counts = {
        "n_reviews": table.n_reviews,
        "n_not_three_scores": table.n_not_three_scores,
        "n_not_applicable": table.n_not_applicable,
        "n_unusable": table.n_unusable,
        "failures": table.failures,
        **judge_error(r.failure for r in reviews),
        **cover,
    }
    if cover["complete"]:
        return {"skills": skills, **counts}
    return {**counts, "partial": {"skills": skills}} if skills else counts


class Flask(Task):
    name = "flask"
    hard = False

    def load(self) -> list[Instance]:
        return data.load_flask(
            data_dir=self.data.data_dir, cache_dir=self.data.cache_dir, hard=self.hard
        )

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_output", f"{variant}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        rows = [
            {"question_id": int(inst.id), "text": r.outputs[0]}
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_jsonl(path, rows, ascii_only=False)
        return path

    @functools.cached_property
    def _evaluation_rows(self) -> dict[str, dict[str, Any]]:
        """The evaluation file's lines by `idx`, as `gpt4_eval.py` reads them (`json.loads`)."""
        path = self.data.path(data.HARD if self.hard else data.EVALUATION)
        return {str(row["idx"]): row for row in read_jsonl(path)}

    def review_item(self, instance: Instance) -> dict[str, Any]:
        """The evaluation item FLASK reviews and writes back: the instance's line of the
        evaluation file, every field in its order. The fields the prompt reads (instruction,
        answer, skill) are the instance's, so the prompt does not depend on the rest."""
        row = self._evaluation_rows.get(instance.id, {})
        return {
            **row,
            "idx": int(instance.id),
            "instruction": instance.turns[0],
            "answer": (instance.references or ("",))[0],
            "skill": list(instance.meta["skill"]),
        }

    def setup(self) -> fj.Setup:
        """FLASK's prompt 2 with its skills. `gpt4_eval.py` builds the reviewer's temperature and
        max_tokens but never sends them, so its published reviews used the API's defaults; so
        do we (`GenerateConfig()`)."""
        kwargs = {"data_dir": self.data.data_dir, "cache_dir": self.data.cache_dir}
        return fj.make_setup(
            data.load_review_prompts(**kwargs),
            data.load_skills(**kwargs),
            config=GenerateConfig(),
        )

    async def judge(
        self,
        client: ModelClient,
        judge: str,
        run: RunDir,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        items = [
            (self.review_item(i), r.outputs[0])
            for i, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        reviews = await fj.judge_responses(client, items, self.setup(), judge=judge)
        fj.write_reviews(run.native(*REVIEWS), reviews)
        return metrics_of(reviews, expected=len(instances))

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """`judge`'s calls: one review per instance, on its own three skills."""
        items = [(self.review_item(i), o[0]) for i, o in zip(instances, outputs, strict=True) if o]
        await fj.judge_responses(generator, items, self.setup(), judge=judge)

    @classmethod
    def reads(cls, path: Path) -> bool:
        return path.suffix == ".jsonl" and not path.name.endswith("_single.jsonl")

    def rescore(self, path: Path) -> dict[str, Any]:
        return metrics_of(fj.rescore(fj.read_reviews(path)))

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Each review's mean over its numeric skill scores. FLASK's file holds a review per
        answered instance but those whose judge call failed (counted in the metrics)."""
        return {
            str(review.item["idx"]): mean
            for review in _reviews(run, metrics, finished)
            if (mean := _mean(review)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per instance, the review with its skill scores; tagged with its skills and domains,
        scored as `instance_scores` scores it (the mean of its numeric skill scores)."""
        verdicts = {}
        for review in _reviews(run, metrics, finished):
            item = review.item
            mean = _mean(review)
            facts = {str(k): str(v) for k, v in review.score.items()}
            facts |= {k: str(item[k]) for k in ("task", "difficulty") if item.get(k)}
            if review.failure is not None:
                facts["failure"] = f"{review.failure.kind.value}: {review.failure.reason}"
            tags = [*item.get("skill", ()), *item.get("domain", ())]
            verdicts[str(item["idx"])] = Verdict(
                score=mean,
                outcome="-" if mean is None else f"{mean:.2f}",
                readings=[Reading("review", facts, review.review)],
                tags=[str(t) for t in tags],
            )
        return verdicts

    def offline_judge(self) -> scripted.Responder:
        """A score dict for every skill whose rubric the request shows, in `aggregate_skill.py`'s
        order, for any request made of FLASK's review prompt."""
        setup = self.setup()
        head = setup.prompt_template.split("{", 1)[0]
        names = sorted(
            (s.name for s in setup.skills),
            key=lambda name: fj.SKILL_ORDER.index(fj.skill_key(name.lower()) or ""),
        )

        def answer(
            messages: Sequence[ChatMessage], config: GenerateConfig, rng: random.Random, tokens: int
        ) -> str | None:
            if messages[0]["content"] != setup.system_prompt or not messages[-1][
                "content"
            ].startswith(head):
                return None
            prompt = "\n".join(m["content"] for m in messages)
            scores = {s: rng.randint(1, 5) for s in names if f"\n{s}: " in prompt}
            return f"Feedback for each skill.\n{scores}"

        return answer


def _reviews(
    run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
) -> list[fj.Review]:
    """The run's reviews: one per answered instance but those whose judge call failed
    (counted in the metrics), as `check_rows` checks."""
    path = run.native(*REVIEWS)
    reviews = fj.read_reviews(path)
    failures = metrics.get("failures")
    failed = failures.get("call", 0) if isinstance(failures, Mapping) else 0
    check_rows(path, len(reviews), len(finished) - int(failed), "reviews")
    return reviews


def _mean(review: fj.Review) -> float | None:
    """A review's score: the mean of its numeric skill scores; none for a failed review."""
    numbers = [v for v in map(fj.as_float, review.score.values()) if v is not None]
    return sum(numbers) / len(numbers) if review.failure is None and numbers else None


TASK = Flask
