"""Aggregation for answers that can be checked: majority vote and verification.

`vote` (self-consistency) makes no call: it reads the final answer out of each of the previous
layer's answers with the benchmark's extractor (handed to the mixture by the caller, since moa
knows no benchmark; without one, each answer's whole stripped text votes) and passes on the
first answer of the answer most given. Ties go to the answer given earliest in layer order; with
nothing extractable the first answer goes on. The trace records the tally and which rule chose.

`verify` (Archon's verifier) asks its model once per candidate whether it is correct, and passes
on the first candidate it verifies (none verified: the first candidate). Its prompt asks for a
last line `Verdict: correct` or `Verdict: incorrect`; anything else counts as not verified.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from moa.events import Verified, Voted

Extractor = Callable[[str], str | None]

VERIFY = (
    "You have been provided with a candidate response to the latest user query. Check it "
    "carefully, step by step: its reasoning, its calculations and its final answer. Then end "
    "with a last line that is exactly `Verdict: correct` if the final answer is correct, or "
    "`Verdict: incorrect` if it is not.\n\nCandidate response:"
)
_VERDICT = re.compile(r"verdict\W*\s*(correct|incorrect)", re.IGNORECASE)


def majority(answers: Sequence[str], extract: Extractor | None) -> Voted:
    """The answer a majority vote passes on (see the module's rules)."""
    read = [_read(a, extract) for a in answers]
    tally = Counter(r for r in read if r is not None)
    if not tally:
        return Voted(1, 0, 0, len(answers), "none readable: the first answer")
    most = max(tally.values())
    tied = [r for r in tally if tally[r] == most]  # in order of first appearance
    chosen = read.index(tied[0]) + 1
    rule = "majority" if len(tied) == 1 else f"tie of {len(tied)}: the earliest given"
    return Voted(chosen, most, sum(tally.values()), len(answers), rule)


def verdict_of(text: str | None) -> bool:
    """Whether a verifier's text ends in `Verdict: correct` (its last verdict line counts)."""
    found = _VERDICT.findall(text or "")
    return bool(found) and found[-1].lower() == "correct"


def best_verified(verdicts: Sequence[bool]) -> Verified:
    verified = [i for i, ok in enumerate(verdicts, start=1) if ok]
    if not verified:
        return Verified(1, 0, len(verdicts), "none verified: the first candidate")
    return Verified(verified[0], len(verified), len(verdicts), "the first verified")


def _read(answer: str, extract: Extractor | None) -> str | None:
    found = extract(answer) if extract is not None else answer
    return found.strip() if found is not None and found.strip() else None
