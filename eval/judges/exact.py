"""The `exact` judge kind: a verifiable answer checked by a function, no model called.

The spec's `check` names a check of `eval.judges.exact_checks` (over `eval.verify`); the gold is
the instance's reference. Native file: one JSON line per answered instance, its id, its labels
(MATH's subject and level) then the verdict (`eval.verify.verdict.Verdict`); metrics: accuracy
with its Wilson interval, scorer errors apart, and per label where there are labels. Whatever
the judge config names, no model is called: the kind's address is a free scripted one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks._read import read_jsonl
from eval.judges.common import coverage, is_complete
from eval.judges.exact_checks import CHECKS, extractor
from eval.judges.kind import Judged, JudgeKind
from eval.judges.readings import Reading, Verdict, check_rows
from eval.judges.spec import JudgeSpec
from eval.rundir import write_jsonl
from eval.verify import verdict as checked
from moa.errors import ConfigError

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator

# The judge's address in run records: on the scripted endpoint, which is free and never asked.
ADDRESS = "scripted/exact-check"
LABELS = ("subject", "level")  # an instance's meta fields its accuracy is also broken down by


def _labels(instance: Instance) -> dict[str, str]:
    return {k: str(instance.meta[k]) for k in LABELS if k in instance.meta}


def metrics_of(
    verdicts: Sequence[checked.Verdict],
    expected: int,
    labels: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Accuracy over the scored verdicts, with the coverage: a scorer error is not judged; with
    `labels` (one mapping per verdict), the accuracy per value of each label too."""
    acc = checked.accuracy(verdicts)
    values: dict[str, Any] = {
        "accuracy": acc.rate,
        "ci_low": acc.low,
        "ci_high": acc.high,
        "correct": acc.correct,
        "scorer_errors": acc.errors,
        **coverage(expected, acc.scored),
    }
    for label in LABELS:
        pairs = [(m[label], v) for m, v in zip(labels, verdicts, strict=True) if label in m]
        if pairs:
            values[f"by_{label}"] = {
                value: {"accuracy": a.rate, "ci_low": a.low, "ci_high": a.high, "n": a.scored}
                for value, a in checked.accuracy_by(pairs).items()
            }
    return values


class Exact(JudgeKind):
    kind = "exact"
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "metric": ("accuracy",),
        "swap": ({"policy": "none"},),
    }

    def __init__(self, spec: JudgeSpec, benchmark: Judged) -> None:
        super().__init__(spec, benchmark)
        if spec.check is None or spec.check not in CHECKS or spec.native_file is None:
            raise ConfigError(
                f"judge spec {spec.name!r}: the exact kind needs check (one of "
                f"{', '.join(CHECKS)}) and native_file"
            )
        self.check = spec.check
        self.native = spec.native_file

    def model(self, judges: Mapping[str, Any]) -> str:
        """No model judges: every judge config gives this kind its check."""
        return ADDRESS

    def extractor(self) -> Callable[[str], str | None]:
        return extractor(self.check, getattr(self.benchmark, "settings", {}))

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        check = CHECKS[self.check](getattr(self.benchmark, "settings", {}))
        try:
            done = [
                (i, r.outputs[-1]) for i, r in zip(instances, results, strict=True) if r.outputs
            ]
            verdicts = await asyncio.gather(*(check.score(answer, i) for i, answer in done))
        finally:
            await check.aclose()
        labels = [_labels(i) for i, _ in done]
        write_jsonl(
            run.native(self.native),
            (
                {"id": i.id, **label, **v.to_json()}
                for (i, _), label, v in zip(done, labels, verdicts, strict=True)
            ),
            ascii_only=False,
        )
        return metrics_of(verdicts, len(instances), labels)

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """A function checks the answers: no request to plan."""

    def calls(self, instance: Instance) -> int:
        return 0

    def read(self, path: Path) -> list[tuple[str, checked.Verdict]]:
        """The native file back as (instance id, verdict); a malformed line is a ValueError."""
        return [(str(row["id"]), checked.Verdict.from_json(row)) for row in read_jsonl(path)]

    def read_labels(self, path: Path) -> list[dict[str, str]]:
        return [{k: str(row[k]) for k in LABELS if k in row} for row in read_jsonl(path)]

    def reads(self, path: Path) -> bool:
        return path.name == Path(self.native).name

    def rescore(self, path: Path) -> dict[str, Any]:
        verdicts = [v for _, v in self.read(path)]
        return metrics_of(verdicts, len(verdicts), self.read_labels(path))

    def _read_run(
        self, run: RunDir, finished: Mapping[str, InstanceResult]
    ) -> list[tuple[str, checked.Verdict]]:
        path = run.native(self.native)
        rows = self.read(path)
        check_rows(path, len(rows), len(finished), "verdicts")
        return rows

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """1 for a correct answer, 0 for a wrong one; a scorer error has no score."""
        return {
            id_: float(v.correct)
            for id_, v in self._read_run(run, finished)
            if v.verdict != "error"
        }

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        return {
            id_: Verdict(
                score=None if v.verdict == "error" else float(v.correct),
                outcome=v.verdict,
                readings=[
                    Reading(
                        "check",
                        {
                            "extracted": str(v.extracted),
                            "gold": v.gold,
                            "verdict": v.verdict,
                            "why": v.why,
                        },
                    ),
                    Reading("each layer's final answers", self._layers(finished[id_])),
                ],
                reference=("gold", v.gold),
            )
            for id_, v in self._read_run(run, finished)
            if id_ in finished
        }

    def _layers(self, result: InstanceResult) -> dict[str, str]:
        """What the check reads as the final answer of every call before the last, by layer."""
        read = self.extractor()
        return {
            f"layer {depth}, {call.label}": (
                "failed" if call.text is None else str(read(call.text) or "none found")
            )
            for turn in result.trace.turns
            for depth, layer in enumerate(turn.layers, 1)
            for call in layer
        }

    def headline(self, metrics: Mapping[str, Any]) -> float:
        return float(metrics["accuracy"]) if is_complete(metrics) else float("nan")


KIND = Exact
