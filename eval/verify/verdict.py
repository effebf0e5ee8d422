"""One instance's verdict on the verifiable track, and accuracy over many.

A verdict is one line of the track's native file: the answer as the model gave it, what was
extracted from it, the gold, the verdict and why. `wrong` covers every fault of the answer (no
`\\boxed{}`, an unparseable number, a program that failed or timed out); `error` is kept for
the scorer's own failures (no sandbox could be built, a grader process died), which are counted
apart and left out of the accuracy rather than charged to the model.

Accuracy comes with a Wilson score 95% interval: closed-form, deterministic, and honest at 0% and
100%, where a bootstrap of identical outcomes collapses to a zero-width interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal, get_args

from scipy.stats import binomtest

Decision = Literal["correct", "wrong", "error"]
DECISIONS: tuple[str, ...] = get_args(Decision)


@dataclass(frozen=True)
class Verdict:
    answer: str
    extracted: str | None
    gold: str
    verdict: Decision
    why: str

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Verdict:
        """The inverse of `to_json`; a malformed line raises ValueError naming the field."""
        fields = {"answer": str, "gold": str, "why": str}
        for name, kind in fields.items():
            if not isinstance(data.get(name), kind):
                raise ValueError(f"verdict line: `{name}` must be a string, got {data.get(name)!r}")
        extracted, verdict = data.get("extracted"), data.get("verdict")
        if extracted is not None and not isinstance(extracted, str):
            raise ValueError(f"verdict line: `extracted` must be a string or null: {extracted!r}")
        if verdict not in DECISIONS:
            raise ValueError(f"verdict line: `verdict` must be one of {DECISIONS}: {verdict!r}")
        return cls(
            answer=str(data["answer"]),
            extracted=extracted,
            gold=str(data["gold"]),
            verdict=verdict,  # type: ignore[arg-type]  # checked against DECISIONS above
            why=str(data["why"]),
        )


@dataclass(frozen=True)
class Accuracy:
    """Correct over scored (correct + wrong), with its Wilson 95% interval; `errors` apart."""

    correct: int
    scored: int
    errors: int
    rate: float
    low: float
    high: float

    def __str__(self) -> str:
        errors = f", {self.errors} scorer errors left out" if self.errors else ""
        return (
            f"{100 * self.rate:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] "
            f"({self.correct}/{self.scored}, Wilson 95%{errors})"
        )


def accuracy(verdicts: Iterable[Verdict]) -> Accuracy:
    decisions = [v.verdict for v in verdicts]
    correct, errors = decisions.count("correct"), decisions.count("error")
    scored = len(decisions) - errors
    if scored == 0:
        nan = float("nan")
        return Accuracy(0, 0, errors, nan, nan, nan)
    interval = binomtest(correct, scored).proportion_ci(confidence_level=0.95, method="wilson")
    return Accuracy(
        correct, scored, errors, correct / scored, float(interval.low), float(interval.high)
    )


def accuracy_by(labelled: Iterable[tuple[str, Verdict]]) -> dict[str, Accuracy]:
    """Accuracy per label (MATH's subject, or its level), labels in sorted order."""
    groups: dict[str, list[Verdict]] = {}
    for label, verdict in labelled:
        groups.setdefault(label, []).append(verdict)
    return {label: accuracy(groups[label]) for label in sorted(groups)}
