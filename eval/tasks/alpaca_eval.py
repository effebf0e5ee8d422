"""AlpacaEval 2.0: 805 instructions judged pairwise against GPT-4 Turbo's reference outputs.

Native files: `model_outputs.json` (usable as `alpaca_eval --model_outputs`) and alpaca-eval's
`annotations.json`; metrics from alpaca-eval's own functions. The paper's ablations (Tables 3
and 4, Figures 4 and 5) are AlpacaEval numbers, so this task's report writes them too.
"""

from __future__ import annotations

import dataclasses
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
from eval.tasks.base import Figure, Reading, Task, Verdict, check_rows
from moa.errors import ConfigError
from moa.providers import scripted
from moa.types import ChatMessage, Completion, GenerateConfig, TokenLogprob

if TYPE_CHECKING:
    from eval.report_section import Section
    from eval.tables import Run
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


def _source(paper: tuple[float | None, str]) -> str:
    """Says so where the paper has no number and the AlpacaEval leaderboard's is shown."""
    return "the leaderboard's" if paper[0] is not None and paper[1] != "paper" else ""


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
    # alpaca-eval's annotator config the judge runs (the judge config's `alpaca_eval_annotator`,
    # read with its model: `judge_model`): the paper's weighted one, or the ranking one for a
    # judge without logprobs (`ae.RANKING_ANNOTATOR`).
    annotator: str = ae.ANNOTATOR

    def judge_model(self, judges: Mapping[str, Any]) -> str:
        self.annotator = str(judges.get("alpaca_eval_annotator") or ae.ANNOTATOR)
        return super().judge_model(judges)

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
        annotator = ae.load_annotator(self.annotator)
        annotations = await ae.annotate(client, pairs, judge=judge, annotator=annotator)
        ae.write_annotations(run.native(ANNOTATIONS), annotations)
        # an instance's id is its position in AlpacaEval, which LC's GLM reads
        positions = [int(i.id) for i, r in zip(instances, results, strict=True) if r.outputs]
        metrics = metrics_of(annotations, expected=len(instances), positions=positions)
        if self.annotator != ae.ANNOTATOR:  # the paper's is implied, as it always was
            metrics["annotator"] = self.annotator
        return metrics

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

    def figures(
        self, variant: str, metrics: Mapping[str, Any], scores: Mapping[str, float]
    ) -> list[Figure]:
        """LC win rate (interval: alpaca-eval's standard error, times 1.96) and win rate
        (bootstrap over instructions), each beside the paper's Table 2a; a partial set's win
        rate is its judged part's."""
        from eval import tables

        if not is_complete(metrics):
            partial = metrics.get("partial") or {}
            rate = partial.get("win_rate")
            return [Figure("win rate", rate, note="partial")] if rate is not None else []
        figures = []
        lc, se = metrics.get("length_controlled_winrate"), metrics.get("lc_standard_error")
        if lc is not None:
            low, high = (lc - 1.96 * se, lc + 1.96 * se) if se is not None else (None, None)
            paper = tables.paper_table2a(variant, tables.Metric(tables.LC_KEY, "LC"))
            figures.append(Figure("LC win rate", float(lc), low, high, paper[0], _source(paper)))
        paper = tables.paper_table2a(variant, tables.Metric("win_rate", "win rate"))
        rate = Figure.over("win rate", metrics.get("win_rate"), scores.values(), paper[0])
        return [*figures, dataclasses.replace(rate, note=_source(paper))]

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """LC win rate where it could be computed, else the win rate; none for a partial set."""
        if not is_complete(metrics):
            return math.nan
        lc = metrics.get("length_controlled_winrate")
        return float(lc if lc is not None else metrics.get("win_rate", math.nan))

    def report(self, runs: list[Run], section: Section) -> list[str]:
        """Table 2a (the paper's variants and single models), Tables 3 and 4 and Figure 4's
        ranker comparison (the ablations, by their identities' sweep axes), the aggregators on
        the published proposals, paired differences, the runs no table takes, and Figures 4
        and 5: LC where every judged run has it, else the raw win rate throughout, said so."""
        from eval import plots, tables

        metric = tables.alpaca_metric(runs)
        about = f"{plots.describe('AlpacaEval 2.0', runs)}. "
        cells: dict[str, Mapping[Any, Run]] = {
            "table3": tables.table3_cells(runs),
            "table4": tables.table4_cells(runs),
            "ranker": tables.ranker_cells(runs),
        }
        in_cells = {
            name: list({id(r): r for r in c.values()}.values()) for name, c in cells.items()
        }
        reference = section.reference
        placed = {r.name for r in runs if r.row or r.published}
        placed |= tables.in_ablations(runs)
        published = [r for r in runs if r.published]
        base = tables.published_reference(published, reference)
        ours = [r for r in runs if not r.published]
        ranker = tables.ranker_table(runs, metric)
        cell_note = (
            "`<cell>_n`, `<cell> 95% CI`, `<cell>_avg_length`: the instances that cell's run "
            "scored, the bootstrap interval of its win rate over them, its mean output length; "
            "the paper's columns: LC. "
        )
        parts = [
            section.table(
                tables.table2a(runs), "table2a_alpaca_eval",
                about + metric.note.strip() + " `ci_low`/`ci_high`: bootstrap 95% interval of "
                "the win rate over instructions; `avg_length`: alpaca-eval's mean output length "
                "in characters; `paper_*`: the paper's Table 2(a) (its MoA rows: mean ± std of 3 "
                "runs); `leaderboard_*`: the AlpacaEval 2.0 leaderboard, the only reference for a "
                "model the paper leaves out (dbrx-instruct).\n\n",
                "Table 2(a): AlpacaEval 2.0",
            ),
            section.table(
                tables.table3(runs, metric), "table3_num_proposers",
                f"{plots.describe('AlpacaEval 2.0', in_cells['table3'])}. {metric.note.strip()} "
                f"{cell_note}\n\n",
                "Table 3: number of proposers (2 layers, Qwen1.5-110B-Chat aggregating)",
            ),
            section.table(
                tables.table4(runs, metric), "table4_roles",
                f"{plots.describe('AlpacaEval 2.0', in_cells['table4'])}. {metric.note.strip()} "
                f"{cell_note}\n\n",
                "Table 4: each model as the aggregator and as the only proposer (2 layers)",
            ),
            section.table(
                ranker, "figure4_ranker",
                f"{plots.describe('AlpacaEval 2.0', in_cells['ranker'])}. {metric.note.strip()} "
                "`<cell>_n`: the instances that cell's run scored. `paper_aggregate`: the paper's "
                "tables' value, of our scores' kind, for the same configuration (1 layer: Table "
                "2a Qwen1.5 110B Chat; 2: Table 3, six proposers, LC only; 3: Table 2a MoA); the "
                "paper tabulates no Figure 4 value, and no ranker value at all.\n\n",
                "Figure 4(a): aggregating vs ranking, by layers",
            ),
            section.table(
                tables.published_table(published, reference, metric), "published_aggregators",
                f"{plots.describe('AlpacaEval 2.0', published)}. {metric.note.strip()} The "
                "proposals are the published outputs, replayed, so only the aggregator differs. "
                f"`difference`: this run minus `{base.name if base else ''}` per instruction (win "
                "100, tie 50, loss 0), with its bootstrap 95% interval over `n_paired` "
                "instructions.\n\n",
                "Aggregators on the published proposals",
            ),
            section.table(
                tables.comparisons(ours, reference, section.everyone), "paired_alpaca_eval",
                "Each run minus a run of the reference variant by the same judge on the same "
                "instructions, per instruction (win 100, tie 50, loss 0), with a bootstrap 95% "
                "interval over the `n_paired` instructions both were judged on; `complete`: both "
                f"wholly judged; `refused`: why not. {tables.PAIRING}\n\n",
                f"Paired differences against {reference} (AlpacaEval 2.0)",
            ),
            section.table(
                tables.other_runs(runs, placed, "lc_win_rate" if metric.lc else "win_rate",
                                  metric.of),
                "other_alpaca_eval",
                "Runs no table of the paper takes (another variant or sweep).\n\n",
                "Other AlpacaEval 2.0 runs",
            ),
        ]  # fmt: skip
        for name, attribute, label in (
            ("figure5_cost", "cost_per_instance", "USD per instance"),
            ("figure5_tflops", "tflops_per_instance", "TFLOPs per instance"),
        ):
            title = f"Figure 5: {metric.name} vs {label}\n{plots.describe('AlpacaEval 2.0', runs)}"
            parts.append(plots.pareto(runs, section.path(name), attribute, label, metric,
                                      title=title))  # fmt: skip
        if len(ranker):
            title = "Figure 4(a): aggregating vs ranking, by layers\n" + plots.describe(
                "AlpacaEval 2.0", in_cells["ranker"]
            )
            missing = tables.ranker_gaps(ranker)
            notes = [
                "The paper's LLM-ranker curve is not tabulated in the paper: not drawn. Its "
                "aggregator points are its tables' values for the same configurations "
                "(1 layer: Table 2a Qwen1.5 110B Chat; 2: Table 3, n = 6, LC only; 3: Table 2a "
                "MoA).",
                *([f"Not drawn: {'; '.join(missing)}."] if missing else []),
            ]
            parts.append(plots.ranker(ranker, section.path("figure4_ranker"),
                                      ylabel=plots.win_rate_label(metric), title=title,
                                      notes=notes))  # fmt: skip
        return parts

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
