"""The paper's rows as configurations: which of our variants are rows of its Table 2 (and
Figure 3), and how a run of one differs from the paper's configuration of it.

A run is reported as a row of the paper's only when its layers are the paper's configuration of
that row, not because its variant carries the row's name: a preset whose aggregator, proposers,
layers, kind or agent settings were changed on the command line is another configuration
(`departure` says how), reported with the other runs. It reads no run directory and no number,
so the runs' read-model (`eval.runs`) and the variant names (`eval.variant_name`) stand on it,
below the report (`eval.report.paper` holds the paper's numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from eval.rundir import RunIdentity

# Our variant names -> the paper's row labels (Table 2a and 2b), in the paper's order.
TABLE2_ROWS = {
    "moa_gpt4o": "MoA w/ GPT-4o",
    "moa": "MoA",
    "moa_lite": "MoA-Lite",
    "single_gpt-4o": "GPT-4 Omni (05/13)",
    "single_wizardlm-2-8x22b": "WizardLM 8x22B",
    "single_qwen1.5-110b": "Qwen1.5 110B Chat",
    "single_qwen1.5-72b": "Qwen1.5 72B Chat",
    "single_llama-3-70b": "Llama 3 70B Instruct",
    "single_mixtral-8x22b": "Mixtral 8x22B v0.1",
    "single_dbrx": "dbrx-instruct",
}
# Figure 3 (FLASK): MoA against Qwen1.5-110B-Chat and GPT-4o alone (`conf/experiment/figure3`).
FIGURE3 = {"moa": "MoA", "single_qwen1.5-110b": "Qwen1.5-110B-Chat", "single_gpt-4o": "GPT-4o"}

# The paper's six proposers as catalogue names, in the order of its MoA (`conf/moa/moa.yaml`):
# Table 3's "multiple proposers" are the first n of them.
PAPER_PROPOSERS = (
    "qwen1.5-110b", "qwen1.5-72b", "wizardlm-2-8x22b", "llama-3-70b", "mixtral-8x22b", "dbrx",
)  # fmt: skip
PAPER_AGGREGATOR = "qwen1.5-110b"  # the aggregator of every ablation

# The paper's mixtures: proposer layers of the six proposers, then the aggregator.
_MIXTURES = {
    "moa": (2, PAPER_AGGREGATOR),
    "moa_gpt4o": (2, "gpt-4o"),
    "moa_lite": (1, "qwen1.5-72b"),
}


def configuration(variant: str) -> tuple[list[list[str]], str] | None:
    """The paper's configuration of a variant it reports (proposer layers and aggregator, as
    catalogue names); none for a variant that is no row of the paper's."""
    if variant in _MIXTURES:
        depth, aggregator = _MIXTURES[variant]
        return [list(PAPER_PROPOSERS) for _ in range(depth)], aggregator
    if variant.startswith("single_") and (variant in TABLE2_ROWS or variant in FIGURE3):
        return [], variant.removeprefix("single_")
    return None


def departure(
    variant: str, layers: Sequence[Sequence[str]], aggregator: str, mode: str, customized: bool
) -> str:
    """How a run of one of the paper's variants differs from the paper's configuration of it, in
    words; empty when it is that configuration (or when the variant is none of the paper's)."""
    paper = configuration(variant)
    if paper is None:
        return ""
    theirs, their_aggregator = paper
    label = TABLE2_ROWS.get(variant) or FIGURE3[variant]
    changes = []
    if [list(layer) for layer in layers] != theirs:
        changes.append("its proposer layers differ")
    if aggregator != their_aggregator:
        changes.append(f"its aggregator is {aggregator}, not {their_aggregator}")
    if mode != "aggregate":
        changes.append(f"its last agent does {mode}")
    if customized:
        changes.append("agents have settings of their own")
    return f"not the paper's {label}: {'; '.join(changes)}" if changes else ""


def identity_departure(identity: RunIdentity, name: Callable[[str], str]) -> str:
    """`departure` of a run identity, its addresses named by `name` (address -> catalogue
    name)."""
    layers = [[name(agent.model) for agent in layer] for layer in identity.layers]
    return departure(identity.variant, layers, name(identity.aggregator_model), identity.mode,
                     identity.customized)  # fmt: skip
