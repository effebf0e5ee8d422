"""What `task=calibrate` writes: `calibration.json`, a Markdown table and a scatter plot."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from eval.rundir import write_atomic

COLUMNS = ("n", "agreement", "kappa", "mean_shift", "length_preference", "position_consistency")


def folder(judge: str) -> str:
    """A folder name for the judge's address."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", judge)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(calibration: Mapping[str, Any]) -> str:
    """A Markdown table: a row per model and one for all of them, each judge named."""
    head = (
        f"Judge {calibration['judge']} against the published {calibration['published_judge']} "
        f"({calibration['annotator']}); win rates in percent.\n\n"
    )
    names = ("model", "n", "agreement", "kappa", "mean shift", "longer wins (new / published)",
             "position consistency", "win rate published", "win rate new")  # fmt: skip
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    rows = {**calibration["models"], "overall": calibration["overall"]}
    for model, m in rows.items():
        length, rate = m["length_preference"], m["win_rate"]
        cells = [model, m["n"], m["agreement"], m["kappa"], m["mean_shift"],
                 f"{cell(length['new'])} / {cell(length['published'])}",
                 m["position_consistency"]["share"], rate["published"], rate["new"]]  # fmt: skip
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    o = calibration["overall"]
    tail = (
        f"\nSpearman {cell(o['spearman'])}, Pearson {cell(o['pearson'])} of the per-model win "
        f"rates; {calibration['calls']} calls, {cell(calibration['cost_usd'])} USD, "
        f"{calibration['seconds']:.0f} s.\n"
    )
    return head + "\n".join(lines) + "\n" + tail


def scatter(
    points: Mapping[str, tuple[float | None, float | None]],
    scale: tuple[float, float],
    quantity: str,
    calibration: Mapping[str, Any],
    path: Path,
) -> None:
    """Published against new `quantity` per model (`points`: model -> (published, new)), with
    the diagonal where the two judges would agree."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high = scale
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1,
            label=f"same {quantity}")  # fmt: skip
    for model, (old, new) in points.items():
        if old is None or new is None:
            continue
        ax.scatter(old, new, color="tab:blue")
        ax.annotate(model, (old, new), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"{quantity}, published judge {calibration['published_judge']}")
    ax.set_ylabel(f"{quantity}, judge {calibration['judge']}")
    benchmark = calibration.get("benchmark", "AlpacaEval 2.0")
    ax.set_title(f"{benchmark}: {calibration['judge']} against the published judge", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_files(
    calibration: Mapping[str, Any], out_dir: Path, markdown: str, draw: Callable[[Path], None]
) -> list[Path]:
    """`calibration.json`, the Markdown table and the scatter `draw` makes, in `out_dir`;
    returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "calibration.json", out_dir / "calibration.md", out_dir / "calibration.png"]
    write_atomic(paths[0], json.dumps(calibration, indent=2) + "\n")
    write_atomic(paths[1], markdown)
    draw(paths[2])
    return paths


def write(calibration: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """AlpacaEval's calibration files: win rates on 0-100."""
    rates = {m: v["win_rate"] for m, v in calibration["models"].items()}
    points = {m: (r["published"], r["new"]) for m, r in rates.items()}
    return write_files(
        calibration,
        out_dir,
        table(calibration),
        lambda path: scatter(points, (0, 100), "win rate (%)", calibration, path),
    )
