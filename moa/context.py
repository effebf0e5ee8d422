"""The context-overflow policy: what to do when injected references would not fit a model's window.

The official implementation sends the request anyway and, when it fails, silently loses that
reference. Here the prompt is fitted before it is sent, by an explicit policy, and every change
is described so that the mixture can record it in the turn's trace:

- `trim` (default): cut every reference to the same fraction of its length;
- `drop_last`: drop references from the end until the prompt fits;
- `error`: send nothing; the turn fails with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from moa.events import ContextOverflow, TraceEvent
from moa.prompts import inject_references
from moa.tokens import estimate_prompt, estimate_tokens
from moa.types import ChatMessage

Policy = Literal["trim", "drop_last", "error"]
POLICIES: tuple[Policy, ...] = ("trim", "drop_last", "error")
# After the endpoint itself rejects a prompt as too long, the retry aims this much lower.
TIGHTEN = 0.75
_SHRINK = 0.9  # trimming steps down by this factor until the estimate fits


@dataclass(frozen=True)
class Fitted:
    """The references to inject, and what the policy did to them (None: they fit as they are)."""

    references: tuple[str, ...]
    change: str | None = None
    error: str | None = None  # no prompt can be sent: the turn fails with this reason
    dropped: int = 0  # drop_last: how many references, the last ones, were left out


def count_events(events: Iterable[TraceEvent]) -> Counter[str]:
    """How often each policy applied, from trace events."""
    return Counter(e.policy for e in events if isinstance(e, ContextOverflow))


def prompt_limit(context_length: int | None, max_tokens: int | None) -> int | None:
    """Tokens the prompt may take: the window less the room the answer may use."""
    if context_length is None:
        return None
    return context_length - (max_tokens or 0)


def tightened(sent_tokens: int, limit: int | None) -> int:
    """The limit for the one retry after an endpoint said the prompt was too long."""
    return int(min(sent_tokens, limit if limit is not None else sent_tokens) * TIGHTEN)


def fit(
    messages: Sequence[ChatMessage],
    references: Sequence[str],
    preamble: str,
    limit: int | None,
    policy: Policy,
) -> Fitted:
    """The references to inject so that the prompt's estimate stays within `limit` tokens."""

    def size(refs: Sequence[str]) -> int:
        return estimate_prompt(inject_references(messages, refs, preamble))

    full = size(references)
    if limit is None or full <= limit:
        return Fitted(tuple(references))
    if policy == "error":
        return Fitted((), error=f"the prompt (~{full} tokens) exceeds the {limit} available")
    if policy == "drop_last":
        kept = list(references)
        while kept and size(kept) > limit:
            kept.pop()
        if not kept:
            return Fitted((), error=f"not even one reference fits in {limit} tokens")
        dropped = len(references) - len(kept)
        return Fitted(
            tuple(kept),
            f"dropped the last {dropped} of {len(references)} references (~{limit})",
            dropped=dropped,
        )
    return _trim(references, size, full, limit)


def _trim(
    references: Sequence[str], size: Callable[[Sequence[str]], int], full: int, limit: int
) -> Fitted:
    bare = size([""] * len(references))
    if bare >= limit:
        return Fitted((), error=f"the conversation alone (~{bare} tokens) fills all {limit}")
    fraction = (limit - bare) / max(sum(estimate_tokens(r) for r in references), 1)
    while True:
        cut = tuple(r[: int(len(r) * fraction)].rstrip() for r in references)
        if size(cut) <= limit:
            return Fitted(
                cut,
                f"trimmed {len(references)} references to {fraction:.0%} of their length "
                f"(~{full} -> {limit} tokens)",
            )
        fraction *= _SHRINK
