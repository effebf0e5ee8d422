"""Which AlpacaEval number a table or plot shows: LC where every run has it, else the raw win
rate for all of them, with the reason LC is missing (one axis, one kind of number)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eval.runs import Run


@dataclass(frozen=True)
class Metric:
    """The AlpacaEval number a table or plot shows: `key` in metrics.json, `name` to print, and
    when it is not the LC win rate, why (`missing`)."""

    key: str
    name: str
    missing: str = ""

    @property
    def lc(self) -> bool:
        return self.key == LC_KEY

    def of(self, run: Run) -> float | None:
        """The run's value; none for a run not wholly judged (a part is not its result)."""
        value = run.metrics.get(self.key) if run.complete else None
        return None if value is None else float(value)

    @property
    def note(self) -> str:
        if self.lc:
            return "Scores are AlpacaEval 2.0 length-controlled (LC) win rates.\n\n"
        return (
            f"LC win rate unavailable ({self.missing}): our scores here are the raw win rate, "
            "not length-controlled.\n\n"
        )


LC_KEY = "length_controlled_winrate"


def alpaca_metric(runs: Iterable[Run]) -> Metric:
    """LC when every wholly judged run has it, else the raw win rate for all of them (one axis,
    one kind of number), with the reason LC is missing."""
    judged = [r for r in runs if r.complete]
    without = [r for r in judged if r.metrics.get(LC_KEY) is None]
    if judged and not without:
        return Metric(LC_KEY, "LC win rate")
    reasons = [str(r.metrics["lc_unavailable"]) for r in without if r.metrics.get("lc_unavailable")]
    missing = reasons[0] if reasons else "not computed"
    if without and len(without) < len(judged):
        missing = f"{len(without)} of {len(judged)} runs: {missing}"
    return Metric("win_rate", "win rate", missing)
