"""MT-Bench: 80 two-turn questions graded 1-10 by GPT-4, as FastChat's `llm_judge` grades them.

Decoding follows FastChat's per-category temperatures (when the config asks for them). Native
files: `model_answer/<variant>.jsonl` and `model_judgment/<judge>_single.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.benchmarks import Instance
from eval.benchmarks.mt_bench import JUDGE_PROMPTS, TEMPERATURES, load_mt_bench
from eval.judges import mt_bench as mj
from eval.rundir import InstanceResult, RunDir, write_atomic
from eval.tasks.base import Task
from moa.providers import scripted
from moa.types import ChatMessage, GenerateConfig

if TYPE_CHECKING:
    from eval.tables import Run
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


def metrics_of(judgments: Sequence[mj.Judgment], variant: str | None = None) -> dict[str, Any]:
    """`show_result.py --mode single`: one model's scores, or every model's by name."""
    table = {model: vars(scores) for model, scores in mj.summarize(judgments).items()}
    if variant is None:
        return {"models": table}
    return dict(table.get(variant, {}))


def answer_id(variant: str, question_id: str) -> str:
    """Stable across re-runs, unlike FastChat's random shortuuid, so identical runs diff clean."""
    return hashlib.sha256(f"{variant}/{question_id}".encode()).hexdigest()[:22]


class MTBench(Task):
    name = "mt_bench"

    def load(self) -> list[Instance]:
        return load_mt_bench(data_dir=self.data.data_dir, cache_dir=self.data.cache_dir)

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        default = self.default_generation()
        if not self.settings["generation"].get("per_category_temperature"):
            return lambda instance: default
        by_category = {c: default.merged(temperature=t) for c, t in TEMPERATURES.items()}
        return lambda instance: by_category.get(instance.category or "", default)

    def output_path(self, run: RunDir, variant: str) -> Path:
        return run.native("model_answer", f"{variant}.jsonl")

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        lines = [
            json.dumps(
                {
                    "question_id": int(inst.id),
                    "answer_id": answer_id(variant, inst.id),
                    "model_id": variant,
                    "choices": [{"index": 0, "turns": r.outputs}],
                    "tstamp": r.finished_at,
                },
                ensure_ascii=False,
            )
            for inst, r in zip(instances, results, strict=True)
            if r.outputs
        ]
        path = self.output_path(run, variant)
        write_atomic(path, "".join(line + "\n" for line in lines))
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
        matches = mj.make_matches(questions, spec.name, answers, self._prompts(), references)
        judgments = await mj.judge_matches(client, matches, judge=judge)
        mj.write_judgments(mj.judgment_path(run.path, judge), judgments)
        return metrics_of(judgments, spec.name)

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """`judge`'s calls: one grading per question and turn."""
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

    def instance_scores(self, run: RunDir) -> dict[str, float]:
        return {
            f"{j.question_id}/{j.turn}": float(j.score)
            for p in run.native("model_judgment").glob("*_single.jsonl")
            for j in mj.read_judgments(p)
            if j.failure is None
        }

    def headline(self, metrics: Mapping[str, Any]) -> float:
        average = metrics.get("average")
        return float("nan") if average is None else float(average)

    def report(self, runs: list[Run], out_dir: Path, reference: str) -> list[str]:
        from eval import tables

        return [
            tables.write_table(tables.table2b(runs), out_dir, "table2b_mt_bench"),
            tables.write_table(tables.comparisons(runs, reference), out_dir, "paired_mt_bench"),
        ]

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


TASK = MTBench
