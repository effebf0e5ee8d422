"""The `pairwise_baseline` judge kind: each turn of each answer against a baseline's answer, in
two games with the positions swapped, as FastChat's `llm_judge --mode pairwise-baseline` judges
MT-Bench (`eval.judges.mt_bench_pair`; its pair templates read from the benchmark's data).

The baseline's answers come with the instances (`baseline_model`, `baseline_turns` in their
meta, `eval.benchmarks.mt_bench_pair`). Native file: `model_judgment/<judge>_pair.jsonl`, whose
`model_1` is the run directory's name and `model_2` the baseline's; metrics: `show_result.py
--mode pairwise-baseline` (win, loss, tie and its rates).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks.mt_bench import model_id
from eval.benchmarks.mt_bench_pair import run_baseline
from eval.judges import mt_bench as mj
from eval.judges import mt_bench_pair as mp
from eval.judges.common import FailureKind, coverage, is_complete, judge_error
from eval.judges.kind import JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from moa.types import ChatMessage, Completion, GenerateConfig

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator

_RATES = ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted")
SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}  # a turn's share of a win: its mean is the adjusted


def metrics_of(
    judgments: Sequence[mp.PairJudgment], model: str, baseline: str, expected: int | None = None
) -> dict[str, Any]:
    """`model`'s scores against `baseline`, with its coverage (`eval.judges.common`): `expected`
    questions (by default those judged), judged when the judge answered both games of each of
    their turns. An incomplete set's scores are under `partial`."""
    mine = [j for j in judgments if j.model_1 == model]
    answered: dict[int, bool] = {}
    for j in mine:
        ok = all(f is None or f.kind is FailureKind.PARSE for f in j.failures)
        answered[j.question_id] = answered.get(j.question_id, True) and ok
    cover = coverage(len(answered) if expected is None else expected, sum(answered.values()))
    table = mp.summarize(mine, baseline)
    scores = table.get(model)
    failures = [f for j in mine for f in j.failures]
    rates = {k: getattr(scores, k) for k in _RATES} if scores else {}
    out = {
        "baseline": baseline,
        "failures": scores.failures if scores else {k.value: 0 for k in FailureKind},
        **judge_error(failures),
        **cover,
    }
    return {**out, **rates} if cover["complete"] else {**out, "partial": rates}


def _baselines(instances: Sequence[Instance]) -> tuple[str, dict[int, Sequence[str]]]:
    names = {str(i.meta["baseline_model"]) for i in instances}
    if len(names) != 1:
        raise ValueError(f"the instances name {len(names)} baselines, not one")
    return names.pop(), {int(i.id): i.meta["baseline_turns"] for i in instances}


def _matches(
    instances: Sequence[Instance],
    outputs: Sequence[Sequence[str] | None],
    model: str,
    prompts: dict[str, mj.Prompt],
) -> list[mp.PairMatch]:
    done = [(i, o) for i, o in zip(instances, outputs, strict=True) if o]
    if not done:
        return []
    questions = [
        {"question_id": int(i.id), "category": i.category, "turns": list(i.turns)} for i, _ in done
    ]
    baseline, theirs = _baselines([i for i, _ in done])
    ours = {int(i.id): o for i, o in done if o}
    references = {int(i.id): list(i.references) for i, _ in done if i.references}
    return mp.make_pair_matches(questions, model, ours, baseline, theirs, prompts, references)


class PairwiseBaseline(JudgeKind):
    kind = "pairwise_baseline"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "messages": ("system_user",),
        "decoding": (
            {
                "temperature": mj.JUDGE_CONFIG.temperature,
                "max_tokens": mj.JUDGE_CONFIG.max_tokens,
            },
        ),
        "verdict": ("double_bracket_choice",),
        "swap": ({"policy": "both_orders"},),
        "baseline": ("model_answer",),
        "native_file": ("model_judgment/{judge}_pair.jsonl",),
        "metric": ("win_rate",),
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
        judgments = await mp.judge_pair_matches(client, matches, judge=address)
        mp.write_judgments(mp.judgment_path(run.path, address), judgments)
        baseline, _ = _baselines(instances)
        return metrics_of(judgments, model, baseline, expected=len(instances))

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """Two games per question and turn (the model id, here the variant's name, is in no
        request)."""
        matches = _matches(instances, outputs, mixture.name, self._prompts())
        await mp.judge_pair_matches(generator, matches, judge=address)

    def calls(self, instance: Instance) -> int:
        return 2 * len(instance.turns)  # two games per turn

    def reads(self, path: Path) -> bool:
        return path.name.endswith("_pair.jsonl")

    def rescore(self, path: Path) -> dict[str, Any]:
        """Every model's scores against the file's baseline (the `model_2` all its rows share;
        with none shared, every model's as `--mode pairwise-all` would count them)."""
        judgments = mp.rescore(mp.read_judgments(path))
        second = {j.model_2 for j in judgments}
        baseline = second.pop() if len(second) == 1 else None
        return {
            "baseline": baseline,
            "models": {
                m: {k: getattr(s, k) for k in (*_RATES, "failures")}
                for m, s in mp.summarize(judgments, baseline).items()
            },
        }

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per question and turn, 1 for a win, 0.5 a tie, 0 a loss (their mean is the adjusted
        win rate); a turn with a game in error has none."""
        model = model_id(run.path)
        return {
            f"{j.question_id}/{j.turn}": SCORE[outcome]
            for j in _judgments(run, metrics, finished)
            if (outcome := j.outcome(model)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per question, a reading per turn and game (the judge's text, the prompt it was given
        and who sat in seat A), scored as `instance_scores`, with the baseline's answer."""
        model = model_id(run.path)
        by_question: dict[str, list[mp.PairJudgment]] = {}
        for j in _judgments(run, metrics, finished):
            by_question.setdefault(str(j.question_id), []).append(j)
        categories = self.benchmark.categories_here()
        baseline = str(metrics.get("baseline", "baseline"))
        theirs = run_baseline(run.path, baseline)
        verdicts = {}
        for qid, judgments in by_question.items():
            judgments.sort(key=lambda j: j.turn)
            outcomes = [j.outcome(model) for j in judgments]
            scored = [SCORE[o] for o in outcomes if o is not None]
            verdicts[qid] = Verdict(
                score=sum(scored) / len(scored) if scored else None,
                outcome=" / ".join(o or "-" for o in outcomes),
                readings=[r for j in judgments for r in _readings(j, model, baseline)],
                tags=[categories[qid]] if categories.get(qid) else [],
                reference=(baseline, _turns(theirs[qid])) if qid in theirs else None,
            )
        return verdicts

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """The adjusted win rate (a tie half a win), by which `show_result.py` sorts."""
        rate = metrics.get("win_rate_adjusted") if is_complete(metrics) else None
        return float("nan") if rate is None else float(rate)

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        """A verdict in FastChat's `[[A]]` format for any request made of one of its pair
        templates (its system prompt, and the template's text up to its first field)."""
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        user = messages[-1]["content"]
        if not any(system == s and user.startswith(head) for s, head in self._shapes):
            return None
        return f"Both are helpful. Final verdict: [[{rng.choice('ABC')}]]"

    @functools.cached_property
    def _shapes(self) -> set[tuple[str, str]]:
        return {
            (p["system_prompt"], p["prompt_template"].split("{", 1)[0])
            for name, p in self._prompts().items()
            if name.startswith("pair-")
        }


def _readings(j: mp.PairJudgment, model: str, baseline: str) -> list[Reading]:
    """Both games of a turn: game 1 shows ours as assistant A, game 2 the baseline."""
    names = {"model_1": "ours", "model_2": baseline, mp.TIE: mp.TIE, mp.ERROR: mp.ERROR}
    out = []
    for game, winner, text, prompt, failure in (
        (1, j.g1_winner, j.g1_judgment, j.g1_user_prompt, j.g1_failure),
        (2, j.g2_winner, j.g2_judgment, j.g2_user_prompt, j.g2_failure),
    ):
        facts = {
            "winner": names.get(winner, winner),
            "assistant A": "ours" if game == 1 else baseline,
            "judge": f"{j.judge[0]} ({j.judge[1]})",
        }
        if failure is not None:
            facts["failure"] = f"{failure.kind.value}: {failure.reason}"
        out.append(Reading(f"turn {j.turn}, game {game}", facts, text, prompt))
    facts = {"outcome": j.outcome(model) or "not counted (a game in error)"}
    out.append(Reading(f"turn {j.turn}, both games", facts))
    return out


def _turns(answer: Sequence[str]) -> str:
    return "\n\n".join(f"[turn {n}]\n{text}" for n, text in enumerate(answer, 1))


def _judgments(
    run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
) -> list[mp.PairJudgment]:
    """The run's judgments by its judge, which must be one row per answered turn."""
    path = mp.judgment_path(run.path, metrics.judge)
    judgments = mp.read_judgments(path)
    turns = sum(len(r.outputs or ()) for r in finished.values())
    check_rows(path, len(judgments), turns, "judgments")
    return judgments


KIND = PairwiseBaseline
