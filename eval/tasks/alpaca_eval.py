"""AlpacaEval 2.0: 805 instructions judged pairwise against GPT-4 Turbo's reference outputs.

Native files: `model_outputs.json` (usable as `alpaca_eval --model_outputs`) and alpaca-eval's
`annotations.json`; metrics from alpaca-eval's own functions.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.benchmarks import DataError, Instance
from eval.benchmarks.alpaca_eval import load_alpaca_eval
from eval.judges import alpaca_eval as ae
from eval.judges import alpaca_upstream
from eval.judges.alpaca_eval_metrics import win_rates
from eval.judges.common import (
    JUDGE_TAGS,
    FailureKind,
    count_failures,
    coverage,
    is_complete,
    judge_error,
)
from eval.rundir import InstanceResult, RunDir, RunMetrics, write_atomic
from eval.tasks.base import Reading, Task, Verdict, check_rows
from moa.errors import ConfigError
from moa.providers import scripted
from moa.types import ChatMessage, Completion, GenerateConfig, TokenLogprob

if TYPE_CHECKING:
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator

OUTPUTS = "model_outputs.json"
ANNOTATIONS = "annotations.json"


# `WinRates` fields that are not a partial set's metrics: its failures are kept at the top level,
# and LC is never computed for a partial set.
_NOT_PARTIAL = ("failures", "length_controlled_winrate", "lc_standard_error", "lc_unavailable")


def metrics_of(
    annotations: Sequence[ae.Annotation],
    *,
    expected: int | None = None,
    positions: Sequence[int] | None = None,
) -> dict[str, Any]:
    """alpaca-eval's leaderboard metrics of a set of annotations, with its coverage
    (`eval.judges.common`): `expected` instances (by default one per annotation), judged unless
    their call failed. Only a complete set has metrics (and LC, whose GLM looks each
    instruction's difficulty up by its position in AlpacaEval: `positions`, see `win_rates`);
    an incomplete one has its judged part's win rate under `partial`."""
    judged = sum(a.failure is None or a.failure.kind is FailureKind.PARSE for a in annotations)
    cover = coverage(len(annotations) if expected is None else expected, judged)
    failures = [a.failure for a in annotations]
    rest = {"failures": count_failures(failures), **judge_error(failures), **cover}
    if all(a.preference is None for a in annotations):
        return rest  # nothing scored: no win rate, whole or partial
    if cover["complete"]:
        return {**vars(win_rates(annotations, positions=positions)), **rest}
    rates = vars(win_rates(annotations, length_controlled=False))
    return {**rest, "partial": {k: v for k, v in rates.items() if k not in _NOT_PARTIAL}}


def preference_answer(
    messages: Sequence[ChatMessage], config: GenerateConfig, rng: random.Random, tokens: int
) -> Completion | None:
    """The fake judge: a request for top logprobs (the weighted annotator's) gets "m" and "M"
    with a seeded probability, as the real judge's first token."""
    if not (config.logprobs and config.top_logprobs):
        return None
    p_m = rng.uniform(0.02, 0.98)
    top = [("m", math.log(p_m)), ("M", math.log(1 - p_m))]
    top += [(f"<{i}>", math.log(1e-6)) for i in range(max(config.top_logprobs - 2, 0))]
    top.sort(key=lambda t: -t[1])
    token, logprob = top[0]
    return Completion(token, tokens, 1, "length", (TokenLogprob(token, logprob, tuple(top)),))


@functools.cache
def _annotator() -> ae.Annotator:
    return ae.load_annotator()


@functools.cache
def _template_fields(template: str) -> tuple[str, ...]:
    """The `{field}`s of a template in first-occurrence order, as `make_prompts` finds them."""
    found = Counter(re.findall(r"{([^ \s]+?)}", template))
    if any(n != 1 for n in found.values()):
        raise ValueError(f"All placeholders should be repeated batch_size=1 times but {found}.")
    return tuple(found)


def fill_template(template: str, fields: Mapping[str, str]) -> str:
    """alpaca_eval's `make_prompts` for one row of strings, as `alpaca_upstream.make_prompt`, but
    without the DataFrame it builds per row (a third of a millisecond: ten seconds over the
    paper's suite in `task=plan`): each field's first occurrence replaced, in template order, one
    after the other (a field's value holding a later `{field}` gets it replaced, as upstream)."""
    prompt = template
    for name in _template_fields(template):
        prompt = prompt.replace("{" + name + "}", str(fields[name]), 1)
    return prompt


@functools.lru_cache(maxsize=4096)
def _switched(instruction: str, seed: int) -> bool:
    return ae.is_switched(instruction, seed)


async def request_preferences(
    generator: Generator, pairs: Sequence[ae.Pair], judge: str, *, seed: int = ae.SEED
) -> None:
    """The calls `ae.annotate` makes for `pairs` with the default annotator, the same requests
    (the same swap, prompt and decoding settings, so the same cache keys; identical outputs are
    a tie without a call), one after the other and without reading the answers: for
    `task=plan`."""
    annotator = _annotator()
    for pair in pairs:
        if pair.output_1 == pair.output_2:
            continue
        switched = _switched(pair.instruction, seed)  # a sweep judges each instruction often
        first, second = (
            (pair.output_2, pair.output_1) if switched else (pair.output_1, pair.output_2)
        )
        fields = {"instruction": pair.instruction, "output_1": first, "output_2": second}
        prompt = fill_template(annotator.template, fields)
        messages = [
            ChatMessage(role=m["role"], content=m["content"])
            for m in alpaca_upstream.prompt_to_chatml(prompt.strip())
        ]
        await generator.generate(judge, messages, annotator.config, tags=JUDGE_TAGS)


def preference_score(preference: float | None) -> float | None:
    """A preference (1: the reference, 2: ours) as a win (100), tie (50) or loss (0),
    fractional: the scale of the win rate."""
    return None if preference is None else (preference - 1.0) * 100.0


def outcome_of(preference: float | None) -> str:
    """alpaca_eval's preference in a word: above 1.5 the model (ours) wins."""
    if preference is None:
        return "not judged"
    return "win" if preference > 1.5 else "loss" if preference < 1.5 else "tie"


def _first_token(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """The judge's first token and its top alternatives' probabilities, the preference's
    source."""
    content = ((raw or {}).get("logprobs") or {}).get("content") or []
    if not content:
        return {}
    top = sorted(content[0].get("top_logprobs") or [], key=lambda t: -float(t["logprob"]))[:4]
    odds = ", ".join(f"{t['token']!r} {math.exp(float(t['logprob'])):.2f}" for t in top)
    return {"first token": repr(content[0].get("token")), "top probabilities": odds}


def verdict_of(annotation: ae.Annotation) -> Verdict:
    """One annotation as the browser shows it: the preference, which output the judge saw
    first (alpaca_eval's seeded swap), the judge's first token, and the reference output."""
    pair, preference = annotation.pair, annotation.preference
    reference = f"the reference ({pair.generator_1})"
    first = "ours" if _switched(pair.instruction, ae.SEED) else reference
    facts = {
        "preference": "-" if preference is None else f"{preference:.3f} (1: reference, 2: ours)",
        "shown first": first,
        **_first_token(annotation.raw_completion),
        "annotator": annotation.annotator,
    }
    if annotation.failure is not None:
        facts["failure"] = f"{annotation.failure.kind.value}: {annotation.failure.reason}"
    text = (annotation.raw_completion or {}).get("text")
    return Verdict(
        score=preference_score(preference),
        outcome=outcome_of(preference),
        readings=[Reading("preference", facts, None if text is None else str(text))],
        tags=[pair.dataset] if pair.dataset else [],
        reference=(pair.generator_1, pair.output_1),
    )


class AlpacaEval(Task):
    name = "alpaca_eval"

    def load(self) -> list[Instance]:
        return load_alpaca_eval(data_dir=self.data.data_dir, cache_dir=self.data.cache_dir)

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
            {
                "instruction": inst.turns[0],
                "output": r.outputs[0],
                "generator": variant,
                "dataset": inst.meta.get("dataset"),
            }
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
        pairs = _pairs(instances, [r.outputs for r in results], spec.name)
        annotations = await ae.annotate(client, pairs, judge=judge)
        ae.write_annotations(run.native(ANNOTATIONS), annotations)
        # an instance's id is its position in AlpacaEval, which LC's GLM reads
        positions = [int(i.id) for i, r in zip(instances, results, strict=True) if r.outputs]
        return metrics_of(annotations, expected=len(instances), positions=positions)

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """`judge`'s calls: one per instance against its reference output, unless identical."""
        await request_preferences(generator, _pairs(instances, outputs, spec.name), judge)

    @classmethod
    def reads(cls, path: Path) -> bool:
        return path.suffix == ".json"

    def rescore(self, path: Path) -> dict[str, Any]:
        """The file's metrics, each row placed at its instruction's position in AlpacaEval for
        LC; a row whose instruction is not in the set, or without the set's file, is a file
        whose rows are taken to be the set's first ones, in its order (as alpaca-eval does)."""
        annotations = ae.rescore(ae.read_annotations(path))
        return metrics_of(annotations, positions=self._positions(annotations))

    def _positions(self, annotations: Sequence[ae.Annotation]) -> list[int] | None:
        try:
            where = {i.turns[0]: int(i.id) for i in self.load()}
        except (DataError, ConfigError, OSError):
            return None
        found = [where.get(a.pair.instruction) for a in annotations]
        return None if None in found else [p for p in found if p is not None]

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per instruction, the preference as a win (100), tie (50) or loss (0), fractional."""
        return {
            a.pair.instruction: score
            for a in _annotations(run, finished)
            if (score := preference_score(a.preference)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Annotations are keyed by instruction; the traces' own text finds each one's id."""
        by_instruction = {r.turns[0]: id_ for id_, r in finished.items() if r.turns}
        return {
            by_instruction[a.pair.instruction]: verdict_of(a)
            for a in _annotations(run, finished)
            if a.pair.instruction in by_instruction
        }

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """LC win rate where it could be computed, else the win rate; none for a partial set."""
        if not is_complete(metrics):
            return math.nan
        lc = metrics.get("length_controlled_winrate")
        return float(lc if lc is not None else metrics.get("win_rate", math.nan))

    def offline_judge(self) -> scripted.Responder:
        return preference_answer


TASK = AlpacaEval


def _pairs(
    instances: Sequence[Instance], outputs: Sequence[Sequence[str] | None], name: str
) -> list[ae.Pair]:
    """What the judge compares: each answered instruction's reference output (the baseline, as
    alpaca-eval reads it) against ours, as alpaca-eval pairs them."""
    baseline = [
        {
            "instruction": i.turns[0],
            "output": i.meta["reference_output"],
            "generator": i.meta["reference_generator"],
            "dataset": i.meta.get("dataset"),
        }
        for i in instances
    ]
    ours = [
        {"instruction": i.turns[0], "output": o[0], "generator": name}
        for i, o in zip(instances, outputs, strict=True)
        if o
    ]
    return ae.make_pairs(baseline, ours)


def _annotations(run: RunDir, finished: Mapping[str, InstanceResult]) -> list[ae.Annotation]:
    """The run's annotations, which must be one per answered instance (`check_rows`)."""
    path = run.native(ANNOTATIONS)
    annotations = ae.read_annotations(path)
    check_rows(path, len(annotations), len(finished), "annotations")
    return annotations
