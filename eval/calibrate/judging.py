"""Re-judging published pairs with the configured judge, the same pairs in the same order.

The pairs go through alpaca-eval's own annotator (`eval.judges.alpaca_eval.annotate`), so the
prompt, the seeded order of the two outputs and the parser are the ones that made the published
preference; only the model differs. A share of each model's pairs is judged again with the two
outputs swapped, for the judge's position consistency.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from eval.calibrate.measures import Judged, compare, correlations, position_consistency
from eval.judges import alpaca_eval as ae
from eval.judges.pairwise import request_preferences
from moa.types import Generator


def swapped(pair: ae.Pair) -> ae.Pair:
    """The pair with its outputs (and their generators) in the other order."""
    return ae.Pair(
        pair.instruction, pair.output_2, pair.generator_2, pair.output_1, pair.generator_1,
        pair.dataset,
    )  # fmt: skip


def _given(annotation: ae.Annotation) -> float:
    """A published preference (`eval.calibrate.published` keeps only rows that have one)."""
    assert annotation.preference is not None
    return annotation.preference


def to_swap(
    pairs: Sequence[ae.Pair], preferences: Sequence[float | None], share: float
) -> list[tuple[float, ae.Pair]]:
    """The pairs judged again in the other order, with their first preference: the first
    `share` of a model's pairs (rounded up) among those with two outputs and a parsed one."""
    return [
        (first, pair)
        for first, pair in zip(preferences, pairs, strict=True)
        if first is not None and pair.output_1 != pair.output_2
    ][: math.ceil(share * len(pairs))]


async def request(
    generator: Generator,
    judge: str,
    annotator: ae.Annotator,
    published: Mapping[str, Sequence[ae.Annotation]],
    swap_share: float,
) -> dict[str, int]:
    """The requests `calibrate` sends, in its order, without reading the answers (its plan,
    `eval.calibrate.plan`); returns the pairs and swapped pairs judged. Every first verdict
    is taken to parse, as a plan takes every call to succeed: one that fails in the run drops
    its pair from the swapped sample, so the plan may count more calls, never fewer."""
    counts = {"pairs": 0, "swapped pairs": 0}
    for rows in published.values():
        pairs = [a.pair for a in rows]
        await request_preferences(generator, pairs, judge, annotator=annotator.name)
        again = [swapped(p) for _, p in to_swap(pairs, [1.0] * len(pairs), swap_share)]
        await request_preferences(generator, again, judge, annotator=annotator.name)
        counts["pairs"] += len(pairs)
        counts["swapped pairs"] += len(again)
    return counts


async def calibrate(
    generator: Generator,
    judge: str,
    annotator: ae.Annotator,
    published: Mapping[str, Sequence[ae.Annotation]],
    swap_share: float,
) -> dict[str, Any]:
    """`overall` and per-model measures (`eval.calibrate.measures`) of `judge` against the
    published judgments."""
    models: dict[str, Any] = {}
    everything: list[Judged] = []
    both_orders: list[tuple[float, float]] = []
    for model, rows in published.items():
        pairs = [a.pair for a in rows]
        new = await ae.annotate(generator, pairs, judge=judge, annotator=annotator)
        judged = [
            Judged(_given(a), b.preference, len(a.pair.output_1), len(a.pair.output_2))
            for a, b in zip(rows, new, strict=True)
        ]
        again = to_swap(pairs, [b.preference for b in new], swap_share)
        turned = await ae.annotate(
            generator, [swapped(p) for _, p in again], judge=judge, annotator=annotator
        )
        orders = [
            (first, t.preference)
            for (first, _), t in zip(again, turned, strict=True)
            if t.preference is not None
        ]
        models[model] = {**compare(judged), "position_consistency": position_consistency(orders)}
        everything += judged
        both_orders += orders
    rates = [m["win_rate"] for m in models.values() if m["win_rate"]["new"] is not None]
    overall = {
        **compare(everything),
        "position_consistency": position_consistency(both_orders),
        **correlations([r["published"] for r in rates], [r["new"] for r in rates]),
    }
    return {"overall": overall, "models": models}
