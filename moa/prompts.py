"""The method's prompt constants and how references are injected into a conversation."""

from __future__ import annotations

import re
from collections.abc import Sequence

from moa.types import ChatMessage

# Table 1 of Wang et al., "Mixture-of-Agents Enhances Large Language Model Capabilities"
# (arXiv 2406.04692): the Aggregate-and-Synthesize prompt, as the official implementation
# (togethercomputer/MoA, utils.py) sends it, ending before the numbered responses.
AGGREGATE_AND_SYNTHESIZE = (
    "You have been provided with a set of responses from various open-source models to the "
    "latest user query. Your task is to synthesize these responses into a single, high-quality "
    "response. It is crucial to critically evaluate the information provided in these responses, "
    "recognizing that some of it may be biased or incorrect. Your response should not simply "
    "replicate the given answers but should offer a refined, accurate, and comprehensive reply "
    "to the instruction. Ensure your response is well-structured, coherent, and adheres to the "
    "highest standards of accuracy and reliability.\n\nResponses from models:"
)

# Our wording for the paper's LLM-ranker baseline (Section 3.3), which the paper does not print:
# the same framing and numbered list as the aggregator, asking for a pick instead of a synthesis.
RANK_AND_SELECT = (
    "You have been provided with a set of responses from various open-source models to the "
    "latest user query. Your task is to select the single best response: the one that is most "
    "accurate, helpful and well-written. Do not write a new response. Respond with only the "
    "number of the best response.\n\nResponses from models:"
)

# Our wording for a ranker that passes the best k on (Archon's ranker, Saad-Falcon et al. 2024,
# arXiv 2409.15254, as a layer): `{k}` is replaced by k.
RANK_TOP_K = (
    "You have been provided with a set of responses from various open-source models to the "
    "latest user query. Your task is to select the {k} best responses: the ones that are most "
    "accurate, helpful and well-written. Do not write a new response. Respond with only their "
    "numbers, best first, separated by commas.\n\nResponses from models:"
)

# Our wording for a critic (Archon's critic layer): one previous answer, to be judged, not redone.
CRITIQUE = (
    "You have been provided with a response from a model to the latest user query. Your task is "
    "to critique it: list its strengths and its weaknesses, including any errors or omissions. "
    "Do not write a new response.\n\nResponse from the model:"
)

# How a critique travels with the answer it is about, into the next layer's references.
CRITIQUED = "{answer}\n\nCritique of this response:\n{critique}"


def inject_references(
    messages: Sequence[ChatMessage], references: Sequence[str], preamble: str
) -> list[ChatMessage]:
    """The official injection: the preamble plus `\\n{i}. {reference}` for each reference, as the
    system message, appended after an existing system message with a blank line; user and
    assistant turns are left unchanged."""
    system = preamble + "".join(f"\n{i}. {ref}" for i, ref in enumerate(references, start=1))
    out: list[ChatMessage] = [{"role": m["role"], "content": m["content"]} for m in messages]
    if out and out[0]["role"] == "system":
        out[0]["content"] += "\n\n" + system
    else:
        out.insert(0, {"role": "system", "content": system})
    return out


_PICK = re.compile(r"\d+")


def parse_pick(text: str, count: int) -> int | None:
    """The 0-based index of the first number in range 1..count that the ranker wrote, if any."""
    picks = parse_picks(text, count, 1)
    return picks[0] if picks else None


def parse_picks(text: str, count: int, k: int) -> list[int]:
    """The 0-based indices of the first `k` distinct numbers in range 1..count the ranker wrote."""
    picks: list[int] = []
    for match in _PICK.finditer(text):
        value = int(match.group())
        if 1 <= value <= count and value - 1 not in picks:
            picks.append(value - 1)
            if len(picks) == k:
                break
    return picks
