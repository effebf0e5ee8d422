"""What `task=calibrate` writes for a graded benchmark (MT-Bench, FLASK): `calibration.json`, a
Markdown table and a scatter plot of each model's mean score under both judges."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.calibrate.files import cell
from eval.rundir import write_atomic

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


def scatter(calibration: Mapping[str, Any], path: Path) -> None:
    """Published against new mean score per model, with the diagonal where they would agree."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = calibration["scale"]
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1,
            label="same mean score")  # fmt: skip
    for model, m in calibration["models"].items():
        old, new = m["mean_score"]["published"], m["mean_score"]["new"]
        if new is None:
            continue
        ax.scatter(old, new, color="tab:blue")
        ax.annotate(model, (old, new), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"mean score, published judge {calibration['published_judge']}")
    ax.set_ylabel(f"mean score, judge {calibration['judge']}")
    ax.set_title(f"{calibration['benchmark']}: {calibration['judge']} against the paper's judge",
                 fontsize=9)  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(calibration: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """The three files in `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "calibration.json", out_dir / "calibration.md", out_dir / "calibration.png"]
    write_atomic(paths[0], json.dumps(calibration, indent=2) + "\n")
    write_atomic(paths[1], table(calibration))
    scatter(calibration, paths[2])
    return paths
