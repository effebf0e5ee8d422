"""The `pairwise` judge kind: each answer against a baseline's, by alpaca-eval's annotator.

The baseline is the instance's reference output (AlpacaEval 2.0) or the mixture's final model
answering alone (the demo). The annotator (its template and decoding) is alpaca-eval's config,
read at run time; the swap is alpaca-eval's seeded coin per instruction. Native file: alpaca-eval's
`annotations.json` where the spec names one; metrics: alpaca-eval's own leaderboard functions,
or each instance's preference.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import DataError, Instance
from eval.judges import alpaca_eval as ae
from eval.judges import alpaca_upstream
from eval.judges.alpaca_eval_metrics import win_rates
from eval.judges.common import (
    JUDGE_TAGS,
    Failure,
    FailureKind,
    count_failures,
    coverage,
    is_complete,
    judge_error,
    settle_all,
)
from eval.judges.kind import Judged, JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from eval.judges.spec import JudgeSpec
from moa.errors import ConfigError
from moa.mixture import Mixture, MixtureSpec
from moa.types import ChatMessage, Completion, GenerateConfig, TokenLogprob

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.types import Generator


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
def _annotator(name: str) -> ae.Annotator:
    return ae.load_annotator(name)


@functools.lru_cache(maxsize=4096)
def _switched(instruction: str, seed: int) -> bool:
    return ae.is_switched(instruction, seed)


async def request_preferences(
    generator: Generator,
    pairs: Sequence[ae.Pair],
    judge: str,
    *,
    seed: int = ae.SEED,
    annotator: str = ae.ANNOTATOR,
) -> None:
    """The calls `ae.annotate` makes for `pairs` with the annotator, the same requests (the same
    swap, prompt and decoding settings, so the same cache keys; identical outputs are a tie
    without a call), one after the other and without reading the answers: for `task=plan`."""
    ann = _annotator(annotator)
    for pair in pairs:
        if pair.output_1 == pair.output_2:
            continue
        switched = _switched(pair.instruction, seed)  # a sweep judges each instruction often
        first, second = (
            (pair.output_2, pair.output_1) if switched else (pair.output_1, pair.output_2)
        )
        fields = {"instruction": pair.instruction, "output_1": first, "output_2": second}
        prompt = alpaca_upstream.make_prompt(ann.template, fields)
        messages = [
            ChatMessage(role=m["role"], content=m["content"])
            for m in alpaca_upstream.prompt_to_chatml(prompt.strip())
        ]
        await generator.generate(judge, messages, ann.config, tags=JUDGE_TAGS)


def preference_score(preference: float | None) -> float | None:
    """A preference (1: the baseline, 2: ours) as a win (100), tie (50) or loss (0),
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


def verdict_of(annotation: ae.Annotation, seed: int = ae.SEED) -> Verdict:
    """One annotation as the browser shows it: the preference, which output the judge saw
    first (alpaca_eval's seeded swap), the judge's first token, and the reference output."""
    pair, preference = annotation.pair, annotation.preference
    reference = f"the reference ({pair.generator_1})"
    first = "ours" if _switched(pair.instruction, seed) else reference
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


def reference_pairs(
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


def _alone_rows(instruction: str, alone: str, ours: str) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {"instruction": instruction, "output": alone, "generator": "alone"},
        {"instruction": instruction, "output": ours, "generator": "moa"},
    )


class Pairwise(JudgeKind):
    kind = "pairwise"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "messages": ("chatml",),
        "decoding": ("template",),
        "verdict": ("logprob_preference",),
        "baseline": ("reference", "final_model_alone"),
        "native_file": ("annotations.json", None),
        "metric": ("leaderboard", "preference"),
    }

    def __init__(self, spec: JudgeSpec, benchmark: Judged) -> None:
        super().__init__(spec, benchmark)
        if spec.source("source") != "alpaca_eval" or spec.swap.get("policy") != (
            "seeded_by_instruction"
        ):
            raise ConfigError(
                f"judge spec {spec.name!r}: the pairwise kind runs alpaca-eval's annotators "
                "with its seeded swap (template.source: alpaca_eval, swap.policy: "
                "seeded_by_instruction)"
            )
        self.annotator = spec.source("annotator")
        self.seed = int(spec.swap.get("seed", ae.SEED))

    @property
    def alone(self) -> bool:
        return self.spec.baseline == "final_model_alone"

    def model(self, judges: Mapping[str, Any]) -> str:
        """The judge config's model; its `alpaca_eval_annotator`, when set, replaces the spec's
        annotator: alpaca-eval's ranking one for a judge without logprobs
        (`ae.RANKING_ANNOTATOR`)."""
        if chosen := judges.get("alpaca_eval_annotator"):
            self.annotator = str(chosen)
        return super().model(judges)

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        failures: list[Failure | None] = []
        if self.alone:
            pairs = await self._alone_pairs(client, mixture, instances, results, failures)
        else:
            pairs = reference_pairs(instances, [r.outputs for r in results], mixture.name)
        annotations = await ae.annotate(
            client, pairs, annotator=_annotator(self.annotator), judge=address, seed=self.seed
        )
        if self.spec.native_file is not None:
            ae.write_annotations(run.native(self.spec.native_file), annotations)
        if self.spec.metric == "preference":
            return _preferences(instances, annotations, failures)
        # an AlpacaEval instance's id is its position there, which LC's GLM reads
        answered = [i.id for i, r in zip(instances, results, strict=True) if r.outputs]
        positions = [int(id_) for id_ in answered] if all(map(str.isdigit, answered)) else None
        metrics = metrics_of(annotations, expected=len(instances), positions=positions)
        if self.annotator != ae.ANNOTATOR:  # the paper's is implied, as it always was
            metrics["annotator"] = self.annotator
        return metrics

    async def _alone_pairs(
        self,
        client: ModelClient,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
        failures: list[Failure | None],
    ) -> list[ae.Pair]:
        """Each answered instance's last answer against the final model's alone, all turns of
        it answered concurrently; an instance whose baseline failed is not judged (`failures`)."""
        alone = Mixture(MixtureSpec.paper("alone", (), mixture.final), client)
        config_for = self.benchmark.generation()
        answered = [(i, r.outputs) for i, r in zip(instances, results, strict=True) if r.outputs]
        traces = await settle_all(
            alone.converse(i.turns, config_for(i), {"instance": i.id, "role": "baseline"})
            for i, _ in answered
        )
        baseline_rows, ours = [], []
        for (inst, outputs), trace in zip(answered, traces, strict=True):
            if trace.outputs is None:
                failures.append(Failure(FailureKind.CALL, trace.error or "no baseline answer"))
                continue
            theirs, mine = _alone_rows("\n\n".join(inst.turns), trace.outputs[-1], outputs[-1])
            baseline_rows.append(theirs)
            ours.append(mine)
        return ae.make_pairs(baseline_rows, ours)

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """One verdict per instance against its baseline, unless identical; a baseline of the
        final model alone is its answer at every turn first."""
        if not self.alone:
            pairs = reference_pairs(instances, outputs, mixture.name)
        else:
            alone = Mixture(MixtureSpec.paper("alone", (), mixture.final), generator)
            config_for = self.benchmark.generation()
            baseline_rows, ours = [], []
            for inst, mine in zip(instances, outputs, strict=True):
                if not mine:
                    continue
                tags = {"instance": inst.id, "role": "baseline"}
                trace = await alone.converse(inst.turns, config_for(inst), tags)
                if trace.outputs is None:
                    continue
                theirs, row = _alone_rows("\n\n".join(inst.turns), trace.outputs[-1], mine[-1])
                baseline_rows.append(theirs)
                ours.append(row)
            pairs = ae.make_pairs(baseline_rows, ours)
        await request_preferences(
            generator, pairs, address, seed=self.seed, annotator=self.annotator
        )

    def calls(self, instance: Instance) -> int:
        # the model alone at each turn, then the verdict
        return len(instance.turns) + 1 if self.alone else 1

    def reads(self, path: Path) -> bool:
        native = self.spec.native_file
        return native is not None and path.suffix == Path(native).suffix

    def rescore(self, path: Path) -> dict[str, Any]:
        """The file's metrics, each row placed at its instruction's position in AlpacaEval for
        LC; a row whose instruction is not in the set, or without the set's file, is a file
        whose rows are taken to be the set's first ones, in its order (as alpaca-eval does)."""
        annotations = ae.rescore(
            ae.read_annotations(path), annotator=_annotator(self.annotator), seed=self.seed
        )
        return metrics_of(annotations, positions=self._positions(annotations))

    def _positions(self, annotations: Sequence[ae.Annotation]) -> list[int] | None:
        try:
            where = {i.turns[0]: int(i.id) for i in self.benchmark.load()}
        except (DataError, ConfigError, OSError):
            return None
        found = [where.get(a.pair.instruction) for a in annotations]
        return None if None in found else [p for p in found if p is not None]

    def _annotations(
        self, run: RunDir, finished: Mapping[str, InstanceResult]
    ) -> list[ae.Annotation]:
        """The run's annotations, which must be one per answered instance (`check_rows`)."""
        path = run.native(self.spec.native_file or "")
        annotations = ae.read_annotations(path)
        check_rows(path, len(annotations), len(finished), "annotations")
        return annotations

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per instruction, the preference as a win (100), tie (50) or loss (0), fractional."""
        if self.spec.native_file is None:
            return {}
        return {
            a.pair.instruction: score
            for a in self._annotations(run, finished)
            if (score := preference_score(a.preference)) is not None
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """From the annotations, keyed by instruction (the traces' own text finds each one's
        id); without a native file, the metrics' preference per instance."""
        if self.spec.native_file is None:
            return _preference_verdicts(metrics)
        by_instruction = {r.turns[0]: id_ for id_, r in finished.items() if r.turns}
        return {
            by_instruction[a.pair.instruction]: verdict_of(a, self.seed)
            for a in self._annotations(run, finished)
            if a.pair.instruction in by_instruction
        }

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """LC win rate where it could be computed, else the win rate; none for a partial set
        or a judge whose metric is the preferences alone."""
        if self.spec.metric != "leaderboard" or not is_complete(metrics):
            return math.nan
        lc = metrics.get("length_controlled_winrate")
        return float(lc if lc is not None else metrics.get("win_rate", math.nan))

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        return preference_answer(messages, config, rng, tokens)


def _preferences(
    instances: Sequence[Instance],
    annotations: Sequence[ae.Annotation],
    failures: list[Failure | None],
) -> dict[str, Any]:
    """Per instance, alpaca_eval's preference (1: the baseline wins, 2: ours), with the coverage
    (`eval.judges.common`): an instance whose baseline or verdict call failed is not judged."""
    failures = [*failures, *(a.failure for a in annotations)]
    prefs = {a.pair.instruction: a.preference for a in annotations}
    judged = sum(a.failure is None or a.failure.kind is FailureKind.PARSE for a in annotations)
    return {
        "preference": {inst.id: prefs.get("\n\n".join(inst.turns)) for inst in instances},
        "failures": count_failures(failures),
        **judge_error(failures),
        **coverage(len(instances), judged),
    }


def _preference_verdicts(metrics: RunMetrics) -> dict[str, Verdict]:
    """The metrics' preference per instance: 1 the model alone, 2 the mixture."""
    verdicts = {}
    for id_, preference in (metrics.get("preference") or {}).items():
        shown = "-" if preference is None else f"{preference:.3f} (1: alone, 2: mixture)"
        verdicts[str(id_)] = Verdict(
            score=preference_score(preference),
            outcome=outcome_of(preference),
            readings=[Reading("preference against the model alone", {"preference": shown})],
        )
    return verdicts


KIND = Pairwise
