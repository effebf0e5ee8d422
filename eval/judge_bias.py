"""The judge's own biases in one run (`eval.stats.bias`): for a pairwise judge, its position
consistency on a share of the pairs judged again in the other order (`judge.swap_share`), the
first place's edge, the share of verdicts for the longer answer and the preference by length
ratio; for a grader, its scores against the answers' lengths.

The pairs judged again go through the judge's own annotator with the two outputs swapped (the
annotator's seeded order depends on the instruction alone, so the other order is shown); they are
kept beside the run's annotations, in `judge_swapped/`, which stays as the judge wrote it.
Lengths are in characters. Nothing here is a verdict on the run: a longer answer may also be the
better one; only the position edge is a bias by construction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.judges import alpaca_eval as ae
from eval.judges.pairwise import Pairwise, _annotator, reference_pairs
from eval.rundir import InstanceResult, RunDir
from eval.stats.bias import PairVerdict, length_curve, longer_share, position, score_length

if TYPE_CHECKING:
    from eval.benchmarks.base import Instance
    from eval.evaluation import Evaluation
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec

FOLDER = "judge_swapped"
GRADERS = ("single", "rubric")


def swapped_path(kind: Pairwise, run: RunDir) -> Path:
    """Where the pairs judged in the other order are kept."""
    return run.path / FOLDER / Path(kind.spec.native_file or "annotations.json").name


def _pairwise(task: Evaluation) -> Pairwise | None:
    """The run's judge if it is a pairwise one against reference outputs with a file."""
    kind = task.judging
    if isinstance(kind, Pairwise) and not kind.alone and kind.spec.native_file is not None:
        return kind
    return None


async def judge_swapped(
    task: Evaluation,
    client: ModelClient,
    address: str,
    run: RunDir,
    mixture: MixtureSpec,
    instances: Sequence[Instance],
    results: Sequence[InstanceResult],
    share: float,
) -> int:
    """Judges the first `share` of the run's pairs whose outputs differ again, in the other
    order; returns how many (0 for a judge that is not pairwise)."""
    kind = _pairwise(task)
    if kind is None or share <= 0:
        return 0
    pairs = reference_pairs(instances, [r.outputs for r in results], mixture.name)
    differ = [p for p in pairs if p.output_1 != p.output_2]
    chosen = differ[: math.ceil(share * len(differ))]
    turned = [dataclasses.replace(p, output_1=p.output_2, generator_1=p.generator_2,
                                  output_2=p.output_1, generator_2=p.generator_1)
              for p in chosen]  # fmt: skip
    annotations = await ae.annotate(
        client, turned, annotator=_annotator(kind.annotator), judge=address, seed=kind.seed
    )
    ae.write_annotations(swapped_path(kind, run), annotations)
    return len(annotations)


def pair_verdicts(kind: Pairwise, run: RunDir) -> list[PairVerdict]:
    """The run's verdicts as `eval.stats.bias` takes them: a is the run's answer, b the
    reference's; the swapped pairs' with the order undone."""
    found = []
    swapped = swapped_path(kind, run)
    for again, path in ((False, run.native(kind.spec.native_file or "")), (True, swapped)):
        if again and not path.exists():
            continue
        for a in ae.read_annotations(path):
            if a.preference is None:
                continue
            ours, theirs = (a.pair.output_1, a.pair.output_2) if again else (
                a.pair.output_2, a.pair.output_1)  # fmt: skip
            shown_first = ae.is_switched(a.pair.instruction, kind.seed) != again
            wins = 2.0 - a.preference if again else a.preference - 1.0
            found.append(PairVerdict(a.pair.instruction, wins, shown_first, len(ours), len(theirs)))
    return found


def _lengths(finished: Mapping[str, InstanceResult], keys: Sequence[str]) -> dict[str, int]:
    """Each scored key's answer length: `<id>/<turn>` (MT-Bench) that turn's, else the last."""
    lengths = {}
    for key in keys:
        head, _, turn = key.rpartition("/")
        result = finished.get(head) if head and turn.isdigit() else finished.get(key)
        outputs = result.outputs if result is not None else None
        if outputs:
            lengths[key] = len(outputs[int(turn) - 1] if head and turn.isdigit() else outputs[-1])
    return lengths


def bias_of(
    task: Evaluation, run: RunDir, scores: Mapping[str, float],
    finished: Mapping[str, InstanceResult],
) -> dict[str, Any] | None:  # fmt: skip
    """The judge's biases in this run as plain data (each with its method), or None for a
    judge kind that has none to show or too few verdicts."""
    kind = _pairwise(task)
    if kind is not None:
        verdicts = pair_verdicts(kind, run)
        if len({v.pair for v in verdicts}) < 3:
            return None
        where = position(verdicts)
        return finite(
            {
                "kind": "pairwise",
                "first": None if where.first is None else dataclasses.asdict(where.first),
                "consistency": None
                if where.consistency is None
                else dataclasses.asdict(where.consistency),
                "longer": dataclasses.asdict(longer_share(verdicts)),
                "length_curve": dataclasses.asdict(length_curve(verdicts)),
            }
        )
    if task.judging.kind in GRADERS and len(scores) >= 4:
        lengths = _lengths(finished, list(scores))
        found = dataclasses.asdict(score_length(scores, lengths))
        return finite({"kind": "grader", "score_length": found})
    return None


def _finite(data: Any) -> Any:
    if isinstance(data, float) and math.isnan(data):
        return None
    if isinstance(data, Mapping):
        return finite(data)
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def finite(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with every NaN, however deep, as None, so that metrics.json stays plain JSON."""
    return {k: _finite(v) for k, v in data.items()}


def _range(found: Mapping[str, Any], key: str = "value") -> str:
    if None in (found[key], found["low"], found["high"]):
        return "undefined"
    return f"{found[key]:.2f} [{found['low']:.2f}, {found['high']:.2f}]"


def summary(bias: Mapping[str, Any] | None) -> str:
    """The biases in one line, for the run browser; empty when there are none."""
    if not bias:
        return ""
    if bias.get("kind") == "grader":
        return f"score vs log length: r = {_range(bias['score_length'], 'r')}"
    parts = []
    if first := bias.get("first"):
        parts.append(f"the answer shown first wins {_range(first)}")
    if consistency := bias.get("consistency"):
        parts.append(
            f"the winner survives the swap in {_range(consistency)} of {consistency['n']} pairs"
        )
    parts.append(f"the longer answer wins {_range(bias['longer'])}")
    slope = bias["length_curve"]["slope"]
    parts.append(f"{_range(slope)} log-odds per doubling of the length ratio")
    return "; ".join(parts) + " (95% intervals)"
