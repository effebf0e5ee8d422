"""A figure of each run's score with its interval, one row per run, best at the top: for a
benchmark scored against one baseline (Arena-Hard-Auto), where the paper has no figure to copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from eval.report import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ScoreRow = tuple[str, float, float, float]  # run, score, lower, upper


def figure(rows: Sequence[ScoreRow], *, xlabel: str, title: str, notes: Sequence[str]) -> Figure:
    """Each run's score as a point with its interval as a bar, the baseline's 50% marked."""
    wrapped = plots._wrapped(notes)
    height = 1.6 + 0.32 * len(rows) + len(wrapped) * plots.LINE_IN
    fig = plt.figure(figsize=(8, height))
    bottom = (0.6 + len(wrapped) * plots.LINE_IN) / height
    ax = fig.add_axes((0.42, bottom, 0.54, (0.32 * len(rows) + 0.3) / height))
    ordered = sorted(rows, key=lambda r: r[1])
    for y, (_, score, lower, upper) in enumerate(ordered):
        ax.errorbar(score, y, xerr=[[score - lower], [upper - score]], fmt="o", color="C0",
                    capsize=3)  # fmt: skip
    ax.axvline(50.0, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(range(len(ordered)), [plots._short(r[0], 48) for r in ordered], fontsize=7)
    ax.set_ylim(-0.6, len(ordered) - 0.4)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    if wrapped:
        fig.text(0.02, (len(wrapped) * plots.LINE_IN + 0.05) / height, "\n".join(wrapped),
                 fontsize=plots.KEY_FONT, va="top")  # fmt: skip
    return fig


def draw(
    rows: Sequence[ScoreRow], path: Path, *, xlabel: str, title: str, notes: Sequence[str] = ()
) -> str:
    """`figure` as `path`; returns its section of the report's index."""
    plots.save(figure(rows, xlabel=xlabel, title=title, notes=notes), path)
    return plots._caption(title, path, notes)
