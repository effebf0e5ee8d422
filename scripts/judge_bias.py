"""The AlpacaEval 2.0 judge's own biases, read from its published annotations.

For each `<data>/alpaca_eval/annotations/*.json` (GPT-4 Turbo's verdicts of a model's outputs
against its own, as alpaca_eval shipped them), the verdicts as `eval.stats.bias` takes them: a
is the model's output, b the baseline's, the order the judge saw is alpaca_eval's seeded swap
(`eval.judges.alpaca_eval.is_switched`), lengths in characters. Prints per model the win rate,
the share of verdicts for the answer shown first and for the longer answer, and the length
curve's slope (log-odds per doubling of the length ratio), each with its 95% interval. Each
instruction is judged in one order only, so there is no position consistency here.

Usage: `.venv/bin/python scripts/judge_bias.py [--data ../shared/data]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root
from eval.judges.alpaca_eval import is_switched, read_annotations
from eval.stats.bias import PairVerdict, length_curve, longer_share, position


def verdicts(path: Path) -> list[PairVerdict]:
    """The file's judged pairs (an annotation without a preference is left out)."""
    return [
        PairVerdict(
            pair=a.pair.instruction,
            a_wins=a.preference - 1,
            a_first=is_switched(a.pair.instruction),
            a_length=len(a.pair.output_2),
            b_length=len(a.pair.output_1),
        )
        for a in read_annotations(path)
        if a.preference is not None
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    files = sorted((args.data / "alpaca_eval" / "annotations").glob("*.json"))
    if not files:
        raise SystemExit(f"no annotations under {args.data / 'alpaca_eval' / 'annotations'}")
    print(
        f"{'model':38} {'n':>4} {'win':>5} {'shown first wins':>18} {'longer wins':>18} "
        f"{'slope per doubling':>21}"
    )
    for path in files:
        found = verdicts(path)
        first = position(found).first
        longer = longer_share(found)
        slope = length_curve(found).slope
        win = sum(v.a_wins for v in found) / len(found)
        print(
            f"{path.name.split('.weighted_')[0]:38} {len(found):4d} {win:5.2f} "
            f"{first.value:5.2f} [{first.low:.2f}, {first.high:.2f}] "
            f"{longer.value:5.2f} [{longer.low:.2f}, {longer.high:.2f}] "
            f"{slope.value:+6.2f} [{slope.low:+.2f}, {slope.high:+.2f}]"
        )


if __name__ == "__main__":
    main()
