"""The paper's compute count (Wang et al. 2024, Section 3.5 and Figure 5), in one place.

A call costs 2 x active parameters x tokens (prompt and answer) floating-point operations. The
agents of a layer run in parallel, so a layer costs its largest call; a turn costs the sum of its
layers (the aggregator or ranker counts as a layer of its own), and a conversation the sum of its
turns. A model without a known parameter count makes every total it enters NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def call_tflops(active_params_b: float | None, tokens: int) -> float:
    """TFLOPs of one call of `tokens` tokens (input plus output) to a model of
    `active_params_b` billion active parameters; NaN when that is unknown (None)."""
    if active_params_b is None:
        return math.nan
    return 2e-3 * active_params_b * tokens


def turn_tflops(layers: Iterable[Iterable[float]]) -> float:
    """Per layer the largest of its calls' TFLOPs, summed over layers; an empty layer costs 0,
    and any NaN call makes the whole sum NaN. Pass every turn's layers to count a conversation."""
    total = 0.0
    for layer in layers:
        largest = 0.0
        for flops in layer:
            if math.isnan(flops):
                return math.nan
            largest = max(largest, flops)
        total += largest
    return total
