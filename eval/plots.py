"""The report's figures: FLASK radar (Figure 3), ranker by layers (4), budget Pareto (5).

Each is drawn into a temporary file beside its path, then renamed over it: a kill leaves the old
figure or the new one, never a truncated PNG.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from eval.tables import Run


def save(fig: Figure, path: Path) -> None:
    """`fig` as `path` (its format from the suffix), written whole, then closed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", bbox_inches="tight", dpi=120)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)


def radar(skills: pd.DataFrame, path: Path) -> None:
    """One polygon per run over the skills (columns), scores 1-5."""
    names = list(skills.columns)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
    for run, row in skills.iterrows():
        values = row.tolist()
        ax.plot([*angles, angles[0]], [*values, values[0]], label=str(run))
        ax.fill([*angles, angles[0]], [*values, values[0]], alpha=0.1)
    ax.set_xticks(angles, names, fontsize=8)
    ax.set_ylim(0, 5)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize=8)
    save(fig, path)


def ranker(table: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in (c for c in table.columns if c != "layers"):
        ax.plot(table["layers"], table[mode], marker="o", label=mode)
    ax.set_xlabel("layers")
    ax.set_ylabel("AlpacaEval 2.0 (LC) win rate")
    ax.legend()
    save(fig, path)


def frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    best, keep = -math.inf, []
    for i in order:
        if points[i][1] > best:
            keep.append(i)
            best = points[i][1]
    return keep


def pareto(runs: Sequence[Run], path: Path, attribute: str, label: str) -> None:
    shown = [r for r in runs if not math.isnan(getattr(r, attribute))]
    fig, ax = plt.subplots(figsize=(7, 5))
    points = [(float(getattr(r, attribute)), r.headline) for r in shown]
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    for run, (x, y) in zip(shown, points, strict=True):
        ax.annotate(run.name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    best = [points[i] for i in frontier(points)]
    ax.plot([p[0] for p in best], [p[1] for p in best], linestyle="--", color="grey")
    ax.set_xlabel(label)
    ax.set_ylabel("AlpacaEval 2.0 (LC) win rate")
    save(fig, path)
