"""What `task=calibrate` writes for a graded benchmark (MT-Bench, FLASK): `calibration.json`, a
Markdown table and a scatter plot of each model's mean score under both judges."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.calibrate.files import cell, scatter, write_files

NAMES = ("model", "n", "failed", "exact", "within 1", "Pearson", "Spearman", "mean shift",
         "mean published", "mean new")  # fmt: skip


def table(calibration: Mapping[str, Any]) -> str:
    """A Markdown table: a row per model and one for all of them, each judge named."""
    head = (
        f"{calibration['benchmark']}: judge {calibration['judge']} against the published "
        f"{calibration['published_judge']}, on scores of {calibration['scale']}.\n\n"
    )
    lines = ["| " + " | ".join(NAMES) + " |", "|" + "---|" * len(NAMES)]
    rows = {**calibration["models"], "overall": calibration["overall"]}
    for model, m in rows.items():
        means = m["mean_score"]
        cells = [model, m["n"], m["failed"], m["exact"], m["within_1"], m["pearson"],
                 m["spearman"], m["mean_shift"], means["published"], means["new"]]  # fmt: skip
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    tail = (
        f"\n{calibration['calls']} calls, {cell(calibration['cost_usd'])} USD, "
        f"{calibration['seconds']:.0f} s.\n"
    )
    return head + "\n".join(lines) + "\n" + tail


def write(calibration: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """MT-Bench's or FLASK's calibration files: mean scores on the grader's scale."""
    points = {m: (v["mean_score"]["published"], v["mean_score"]["new"])
              for m, v in calibration["models"].items()}  # fmt: skip
    low, high = calibration["scale"]
    return write_files(
        calibration,
        out_dir,
        table(calibration),
        lambda path: scatter(points, (low, high), "mean score", calibration, path),
    )
