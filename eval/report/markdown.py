"""Writing a table: its CSV and its Markdown, each written whole, and its section of the
report's index. The Markdown joins what the CSV keeps apart (`[low, high]`, `mean ± std`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.report.frames import is_int, missing
from eval.rundir import write_atomic


def _cell(value: Any) -> str:
    """A Markdown cell: empty for a gap, integers as integers, two decimals (three significant
    digits below 0.1), flags as yes/no."""
    if missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if is_int(value):
        return str(int(value))
    if isinstance(value, float | np.floating):
        value = float(value)
        return f"{value:.3g}" if 0 < abs(value) < 0.1 else f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _plain(column: str) -> Callable[[Any], str]:
    return lambda row: _cell(row[column])


def _spread(column: str, std: str) -> Callable[[Any], str]:
    return lambda row: _cell(row[column]) + ("" if missing(row[std]) else f" ± {_cell(row[std])}")


def _range(low: str, high: str) -> Callable[[Any], str]:
    def text(row: Any) -> str:
        if missing(row[low]) and missing(row[high]):
            return ""
        return f"[{_cell(row[low])}, {_cell(row[high])}]"

    return text


def markdown(frame: pd.DataFrame) -> str:
    """The table in Markdown: `x` and `x_std` as `x ± std`, `…ci_low` and `…ci_high` as one
    `[low, high]` column (`95% CI`), every gap empty."""
    columns = list(frame.columns)
    shown: list[tuple[str, Callable[[Any], str]]] = []
    for column in columns:
        high = column.replace("ci_low", "ci_high")
        if column.endswith("_std") and column.removesuffix("_std") in columns:
            continue  # beside its column
        if column.endswith("_runs") and column.removesuffix("_runs") in columns:
            continue  # each repeat's value: in the CSV
        if column.endswith("ci_high") and column.replace("ci_high", "ci_low") in columns:
            continue  # with its low end
        if column.endswith("ci_low") and high in columns:  # over repeats: the mean interval
            prefix = column.removesuffix("ci_low").replace("_", " ")
            shown.append((f"{prefix}95% CI", _range(column, high)))
        elif f"{column}_std" in columns:
            shown.append((column, _spread(column, f"{column}_std")))
        else:
            shown.append((column, _plain(column)))
    lines = [
        "| " + " | ".join(name for name, _ in shown) + " |",
        "|" + "|".join("---" for _ in shown) + "|",
    ]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(text(row) for _, text in shown) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    frame: pd.DataFrame, out_dir: Path, name: str, note: str = "", title: str = ""
) -> str:
    """CSV and Markdown of a table, each written whole (a kill leaves the old file or the new);
    returns its section of the report's index, linking both. A table no run fills is not
    written."""
    if frame.empty:
        return ""
    write_atomic(out_dir / f"{name}.csv", frame.to_csv(index=False))
    heading = title or name
    body = f"{note}{markdown(frame)}"
    write_atomic(out_dir / f"{name}.md", f"# {heading}\n\n{body}")
    return f"## {heading}\n\n{body}\n[{name}.csv]({name}.csv) · [{name}.md]({name}.md)\n"
