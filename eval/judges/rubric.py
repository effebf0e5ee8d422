"""The `rubric` judge kind: each answer scored 1 to 5 on its instance's own skills, as FLASK's
`gpt_review` scores it (its prompt, reviewer and skill files read from the data at run time).

Native file: `review/reviews.jsonl`, whose lines are, as `gpt4_eval.py` writes them, the
evaluation file's whole line (`idx`, `instruction`, `answer`, `task`, `skill`, `domain`,
`difficulty`, in the file's order) followed by the review's fields; metrics:
`aggregate_skill.py`'s per-skill averages.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks import flask as data
from eval.benchmarks._read import read_jsonl
from eval.judges import flask as fj
from eval.judges.common import coverage, judge_error
from eval.judges.kind import JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from moa.types import ChatMessage, Completion, GenerateConfig

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


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


def mean_score(review: fj.Review) -> float | None:
    """A review's score: the mean of its numeric skill scores; none for a failed review."""
    numbers = [v for v in map(fj.as_float, review.score.values()) if v is not None]
    return sum(numbers) / len(numbers) if review.failure is None and numbers else None


class Rubric(JudgeKind):
    kind = "rubric"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "messages": ("system_user",),
        "decoding": ("api_defaults",),
        "verdict": ("skill_score_dict",),
        "swap": ({"policy": "none"},),
        "native_file": ("review/reviews.jsonl",),
        "metric": ("skill_averages",),
    }

    @functools.cached_property
    def _evaluation_rows(self) -> dict[str, dict[str, Any]]:
        """The evaluation file's lines by `idx`, as `gpt4_eval.py` reads them (`json.loads`)."""
        path = self.benchmark.data.path(self.spec.source("items"))
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
        """FLASK's prompt with its skills. `gpt4_eval.py` builds the reviewer's temperature and
        max_tokens but never sends them, so its published reviews used the API's defaults; so
        do we (`GenerateConfig()`)."""
        files = self.benchmark.data
        return fj.make_setup(
            data.read_review_prompts(files.path(self.spec.source("prompts"))),
            data.read_skills(files.path(self.spec.source("skills"))),
            config=GenerateConfig(),
            prompt_id=int(self.spec.source("prompt_id")),
        )

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        items = [
            (self.review_item(i), r.outputs[0])
            for i, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        reviews = await fj.judge_responses(client, items, self.setup(), judge=address)
        fj.write_reviews(run.native(*self._native_parts), reviews)
        return metrics_of(reviews, expected=len(instances))

    @property
    def _native_parts(self) -> tuple[str, ...]:
        return Path(self.spec.native_file or "").parts

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """One review per instance, on its own three skills."""
        items = [(self.review_item(i), o[0]) for i, o in zip(instances, outputs, strict=True) if o]
        await fj.judge_responses(generator, items, self.setup(), judge=address)

    def reads(self, path: Path) -> bool:
        return path.suffix == ".jsonl" and not path.name.endswith(("_single.jsonl", "_pair.jsonl"))

    def rescore(self, path: Path) -> dict[str, Any]:
        return metrics_of(fj.rescore(fj.read_reviews(path)))

    def _reviews(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> list[fj.Review]:
        """The run's reviews: one per answered instance but those whose judge call failed
        (counted in the metrics), as `check_rows` checks."""
        path = run.native(*self._native_parts)
        reviews = fj.read_reviews(path)
        failures = metrics.get("failures")
        failed = failures.get("call", 0) if isinstance(failures, Mapping) else 0
        check_rows(path, len(reviews), len(finished) - int(failed), "reviews")
        return reviews

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Each review's mean over its numeric skill scores. FLASK's file holds a review per
        answered instance but those whose judge call failed (counted in the metrics)."""
        return {
            str(review.item["idx"]): mean
            for review in self._reviews(run, metrics, finished)
            if (mean := mean_score(review)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per instance, the review with its skill scores; tagged with its skills and domains,
        scored as `instance_scores` scores it (the mean of its numeric skill scores)."""
        verdicts = {}
        for review in self._reviews(run, metrics, finished):
            item = review.item
            mean = mean_score(review)
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

    @functools.cached_property
    def _shape(self) -> tuple[str, str, list[str]]:
        """What a review request holds (its system prompt, its template up to the first field)
        and the skill names in `aggregate_skill.py`'s order."""
        setup = self.setup()
        names = sorted(
            (s.name for s in setup.skills),
            key=lambda name: fj.SKILL_ORDER.index(fj.skill_key(name.lower()) or ""),
        )
        return setup.system_prompt, setup.prompt_template.split("{", 1)[0], names

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        """A score dict for every skill whose rubric the request shows, in `aggregate_skill.py`'s
        order, for any request made of FLASK's review prompt."""
        system, head, names = self._shape
        if messages[0]["content"] != system or not messages[-1]["content"].startswith(head):
            return None
        prompt = "\n".join(m["content"] for m in messages)
        scores = {s: rng.randint(1, 5) for s in names if f"\n{s}: " in prompt}
        return f"Feedback for each skill.\n{scores}"


KIND = Rubric
