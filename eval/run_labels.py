"""What made a run's numbers, in words: the endpoints that generated its answers, and its judge.

Every row of the report names both, so that numbers from different judges or made on a fake
model are never read as the same kind of number.
"""

from __future__ import annotations

from eval.rundir import RunIdentity


def endpoints(identity: RunIdentity) -> list[str]:
    """The endpoints of a run's models (every layer's and the final agent's), sorted."""
    addresses = [a[0] for layer in identity.layers for a in layer] + [identity.aggregator_model]
    return sorted({str(a).split("/", 1)[0] for a in addresses})


def provider(identity: RunIdentity) -> str:
    """Where a run's answers were generated, e.g. `together, openai`, `scripted`, `replay`."""
    return ", ".join(endpoints(identity))
