"""The report's figures: FLASK radar (Figure 3), ranker by layers (4), budget Pareto (5).

Each figure's title names the benchmark, the judge and n; an axis says LC only when LC was
computed (else it names the raw win rate and why LC is missing); the paper's values are drawn
beside ours where its tables give them; runs a figure cannot draw are listed under it. The budget
plots number their points (labels placed so that none overlaps another or a marker) and list
the numbers in a key below. Each is drawn into a temporary file beside its path, then renamed over
it: a kill leaves the old figure or the new one, never a truncated PNG. Each drawing function
returns the figure's section of the report's index.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.transforms import Bbox

from eval.rundir import atomic_file

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation

    from eval.report.metric import Metric
    from eval.runs import Run

LINE_IN = 0.135  # height of a 7-point line of the key, in inches
KEY_FONT = 7
WRAP = 110  # characters per line of a note under a figure

# Why a run has no x on a budget plot.
UNKNOWN = {
    "cost_per_instance": "no price for one of its models",
    "tflops_per_instance": "no active-parameter count for one of its models",
}


def save(fig: Figure, path: Path) -> None:
    """`fig` as `path` (its format from the suffix), written whole (`atomic_file`), then closed."""
    try:
        with atomic_file(path) as f:
            fig.savefig(f, format=path.suffix.lstrip(".") or "png", bbox_inches="tight", dpi=120)
    finally:
        plt.close(fig)


def describe(benchmark: str, runs: Sequence[Run]) -> str:
    """`<benchmark>, judge <judge>, n = <n>`: the instances scored per run (a range if they
    differ), and the subsets among the runs."""
    judges = sorted({r.judge for r in runs if r.judge})
    ns = sorted({r.n for r in runs})
    n = "?" if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]} to {ns[-1]}"
    subsets = sorted({r.subset for r in runs if r.subset})
    marked = f" (subset: {', '.join(subsets)})" if subsets else ""
    return f"{benchmark}, judge {', '.join(judges) or 'unknown'}, n = {n}{marked}"


def win_rate_label(metric: Metric) -> str:
    """The score axis: LC only when LC was computed; else the raw win rate and why."""
    if metric.lc:
        return "AlpacaEval 2.0 LC win rate (%)"
    reason = textwrap.fill(f"LC unavailable: {metric.missing}", 48)
    return f"AlpacaEval 2.0 win rate (%), raw, not length-controlled\n{reason}"


def _caption(title: str, path: Path, notes: Sequence[str]) -> str:
    """The figure's section of the index: its title, the image, the notes under it."""
    heading, _, rest = title.partition("\n")
    about = f"{rest.replace(chr(10), ' ')}\n\n" if rest else ""
    lines = "".join(f"- {note}\n" for note in notes)
    return f"## {heading}\n\n{about}![{path.stem}]({path.name})\n\n{lines}"


def _wrapped(notes: Sequence[str]) -> list[str]:
    return [line for note in notes for line in textwrap.wrap(note, WRAP) or [""]]


# --- Figure 3 ----------------------------------------------------------------------------


def radar(skills: pd.DataFrame, path: Path, *, title: str = "", notes: Sequence[str] = ()) -> str:
    """`radar_figure` as `path`; returns its section of the report's index."""
    save(radar_figure(skills, title=title, notes=notes), path)
    return _caption(title or path.stem, path, notes)


def radar_figure(skills: pd.DataFrame, *, title: str = "", notes: Sequence[str] = ()) -> Figure:
    """One polygon per run (the index) over the skills (columns, all drawn, a gap where a run
    has no score), scores 1-5, the notes under it."""
    names = list(skills.columns)
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    extra = len(_wrapped(notes)) * LINE_IN
    fig = plt.figure(figsize=(8, 8.2 + extra))
    ax = fig.add_axes((0.15, (1.6 + extra) / (8.2 + extra), 0.7, 5.6 / (8.2 + extra)),
                      polar=True)  # fmt: skip
    for run, row in skills.iterrows():
        values = [float(v) for v in row.tolist()]
        closed = [*values, values[0]]
        (line,) = ax.plot([*angles, angles[0]], closed, marker="o", markersize=3, label=str(run))
        if all(math.isfinite(v) for v in values):
            ax.fill([*angles, angles[0]], closed, alpha=0.1, color=line.get_color())
    ax.set_xticks(angles, [n.replace("_", " ") for n in names], fontsize=9)
    ax.set_ylim(0, 5)
    ax.set_yticks([1, 2, 3, 4, 5])
    ax.set_rlabel_position(180 / max(len(names), 1))  # type: ignore[attr-defined]
    if title:
        ax.set_title(title, fontsize=10, pad=28)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncols=3, frameon=False)
    if notes:
        fig.text(0.05, (0.35 + extra) / (8.2 + extra), "\n".join(_wrapped(notes)),
                 fontsize=KEY_FONT, va="top")  # fmt: skip
    return fig


# --- Figure 4 ----------------------------------------------------------------------------

RANKER_LABELS = {
    "aggregate": "ours: Qwen1.5-110B-Chat aggregating (MoA)",
    "rank": "ours: Qwen1.5-110B-Chat picking one (LLM-ranker)",
}


def ranker(
    table: pd.DataFrame,
    path: Path,
    *,
    ylabel: str = "AlpacaEval 2.0 win rate (%)",
    title: str = "",
    notes: Sequence[str] = (),
) -> str:
    """`ranker_figure` as `path`; returns its section of the report's index."""
    save(ranker_figure(table, ylabel=ylabel, title=title, notes=notes), path)
    return _caption(title or path.stem, path, notes)


def ranker_figure(
    table: pd.DataFrame,
    *,
    ylabel: str = "AlpacaEval 2.0 win rate (%)",
    title: str = "",
    notes: Sequence[str] = (),
) -> Figure:
    """Our curves by number of layers (integer ticks) and the paper's aggregator points
    (`paper_aggregate`, where its tables give them), the notes under them."""
    wrapped = _wrapped(notes)
    height = 4.6 + len(wrapped) * LINE_IN
    fig = plt.figure(figsize=(7, height))
    ax = fig.add_axes((0.14, (0.75 + len(wrapped) * LINE_IN) / height, 0.82, 3.2 / height))
    for mode, label in RANKER_LABELS.items():
        rows = table[["layers", mode]].dropna() if mode in table.columns else table.iloc[:0]
        if len(rows):  # a series with no point has no line, so no legend entry
            ax.plot(rows["layers"], rows[mode].astype(float), marker="o", label=label)
    if "paper_aggregate" in table.columns:
        rows = table[["layers", "paper_aggregate"]].dropna()
        if len(rows):
            ax.plot(rows["layers"], rows["paper_aggregate"].astype(float), marker="D",
                    linestyle="--", markerfacecolor="none", color="C3",
                    label="paper: aggregating (values of its Tables 2a and 3)")  # fmt: skip
    layers = [int(v) for v in table["layers"]]
    ax.set_xticks(range(min(layers), max(layers) + 1))  # whole layers only
    ax.set_xlim(min(layers) - 0.3, max(layers) + 0.3)
    ax.set_xlabel("layers (the aggregator's included)")
    ax.set_ylabel(ylabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    if wrapped:
        fig.text(0.02, (len(wrapped) * LINE_IN + 0.05) / height, "\n".join(wrapped),
                 fontsize=KEY_FONT, va="top")  # fmt: skip
    return fig


# --- Figure 5 ----------------------------------------------------------------------------


def frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    best, keep = -math.inf, []
    for i in order:
        if points[i][1] > best:
            keep.append(i)
            best = points[i][1]
    return keep


def _padded(box: Bbox, pad: float) -> Bbox:
    return Bbox.from_extents(box.x0 - pad, box.y0 - pad, box.x1 + pad, box.y1 + pad)


def _marker_box(ax: Axes, x: float, y: float, radius: float) -> Bbox:
    px, py = ax.transData.transform((x, y))
    return Bbox.from_extents(px - radius, py - radius, px + radius, py + radius)


RINGS = (7, 10, 14, 19, 25, 32, 40, 49, 59, 70, 82, 95, 110, 126, 143, 161, 180)


def place_labels(
    ax: Axes,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    obstacles: Sequence[Bbox],
    renderer: RendererBase,
) -> list[Annotation]:
    """A label per point, each at the nearest offset (rings of 12 directions) where it overlaps
    no other label and no marker, inside the axes if it can be; a label away from its point
    gets a thin leader line. The axes' limits must be final (the figure drawn)."""
    inside = ax.get_window_extent(renderer)
    placed: list[Bbox] = [*obstacles]
    labels = []
    for (x, y), text in zip(points, texts, strict=True):
        label = ax.annotate(
            text, (x, y), xytext=(RINGS[0], RINGS[0]), textcoords="offset points", fontsize=7,
            ha="center", va="center", annotation_clip=False,
        )  # fmt: skip
        chosen = None
        for must_be_inside in (True, False):
            for radius in RINGS if must_be_inside else (*RINGS, *range(200, 600, 20)):
                for step in range(12):
                    angle = math.pi / 4 + step * math.pi / 6
                    offset = (radius * math.cos(angle), radius * math.sin(angle))
                    label.xyann = offset
                    box = _padded(label.get_window_extent(renderer), 1.5)
                    if must_be_inside and not (
                        inside.x0 <= box.x0 and box.x1 <= inside.x1
                        and inside.y0 <= box.y0 and box.y1 <= inside.y1
                    ):  # fmt: skip
                        continue
                    if not any(box.overlaps(other) for other in placed):
                        chosen = (offset, box)
                        break
                if chosen:
                    break
            if chosen:
                break
        if chosen is None:  # unreachable in practice: the outer rings are free
            chosen = ((0.0, 0.0), label.get_window_extent(renderer))
        offset, box = chosen
        label.xyann = offset
        placed.append(box)
        labels.append(label)
        if math.hypot(*offset) > RINGS[1]:  # far from its point: a leader line to its edge
            px, py = ax.transData.transform((x, y))
            ex = min(max(px, box.x0), box.x1)
            ey = min(max(py, box.y0), box.y1)
            end = ax.transData.inverted().transform((ex, ey))
            ax.plot([x, end[0]], [y, end[1]], color="0.6", linewidth=0.5, zorder=1)
    return labels


def pareto_figure(
    runs: Sequence[Run],
    attribute: str,
    label: str,
    metric: Metric | None = None,
    *,
    title: str = "",
) -> tuple[Figure, list[str]]:
    """Our runs' score against `attribute` (numbered; the key below lists them), the Pareto
    frontier through them, and the paper's Table 2a value of each variant it reports (or the
    AlpacaEval leaderboard's, for a model the paper leaves out) at our run's x. Returns the
    figure and the lines of the runs left out."""
    from eval.report.metric import alpaca_metric
    from eval.report.paper import paper_table2a

    metric = metric or alpaca_metric(runs)
    shown: list[tuple[Run, float, float]] = []
    left: list[str] = []
    for run in sorted(runs, key=lambda r: r.name):
        y = metric.of(run)
        x = float(getattr(run, attribute))
        if y is None:
            left.append(f"{run.name} (not wholly judged)" if not run.complete
                        else f"{run.name} (no {metric.name})")  # fmt: skip
        elif math.isnan(x):
            left.append(f"{run.name} ({UNKNOWN.get(attribute, 'no ' + label)})")
        else:
            shown.append((run, x, y))
    notes = [f"Not drawn: {'; '.join(left)}."] if left else []
    papers: list[tuple[Run, float, float, str]] = []
    for run, x, _ in shown:
        theirs, source = paper_table2a(run.variant, metric) if run.row else (None, "")
        if theirs is not None:
            papers.append((run, x, theirs, source))

    key_rows = []
    key_width = max((len(_short(run.name)) for run, _, _ in shown), default=3)
    for i, (run, x, y) in enumerate(shown, 1):
        value = f"${x:.4f}" if attribute == "cost_per_instance" else f"{x:.1f}"
        paper = next((f"  {src} {v:.1f}" for r, _, v, src in papers if r is run), "")
        score = f"{y:>{len(metric.name)}.1f}"
        key_rows.append(f"{i:>2}  {_short(run.name):<{key_width}}  {score}  {value:>9}{paper}")
    columns = 1 if len(key_rows) <= 12 else 2
    per_column = math.ceil(len(key_rows) / columns) if key_rows else 0
    wrapped = _wrapped(notes)
    width, top, plot_h, below, legend_h = 8.0, 0.8, 4.4, 0.6, 0.45
    key_h = (per_column + 1) * LINE_IN + 0.1
    left_h = len(wrapped) * LINE_IN + (0.1 if wrapped else 0)
    height = top + plot_h + below + legend_h + key_h + left_h
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((1.2 / width, (height - top - plot_h) / height, 6.5 / width, plot_h / height))

    xs, ys = [x for _, x, _ in shown], [y for _, _, y in shown]
    ax.scatter(xs, ys, s=24, color="C0", zorder=3, label="ours (numbered: see the key)")
    best = [(xs[i], ys[i]) for i in frontier(list(zip(xs, ys, strict=True)))]
    if best:
        ax.plot([p[0] for p in best], [p[1] for p in best], linestyle="--", color="grey",
                zorder=2, label="our Pareto frontier")  # fmt: skip
    for source, marker, color in (("paper", "D", "C3"), ("leaderboard", "s", "C2")):
        mine = [(x, v) for _, x, v, src in papers if src == source]
        if not mine:
            continue
        what = "paper's Table 2a" if source == "paper" else "AlpacaEval leaderboard's"
        ax.scatter([p[0] for p in mine], [p[1] for p in mine], s=30, marker=marker,
                   facecolors="none", edgecolors=color, zorder=3,
                   label=f"{what} {metric.name} of the variant, at our run's x")  # fmt: skip
    for run, x, v, _ in papers:
        y = next(yy for r, _, yy in shown if r is run)
        ax.plot([x, x], [y, v], linestyle=":", color="0.7", linewidth=0.8, zorder=1)
    if not shown:
        ax.text(0.5, 0.5, "no run to draw", transform=ax.transAxes, ha="center")
    ax.margins(0.08)
    ax.set_xlabel(label)
    ax.set_ylabel(win_rate_label(metric), fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.canvas.draw()
    ax.set_autoscale_on(False)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    radius = 4.0 * fig.dpi / 72.0
    obstacles = [_marker_box(ax, x, y, radius) for _, x, y in shown]
    obstacles += [_marker_box(ax, x, v, radius) for _, x, v, _ in papers]
    place_labels(ax, [(x, y) for _, x, y in shown], [str(i) for i in range(1, len(shown) + 1)],
                 obstacles, renderer)  # fmt: skip

    legend_top = (height - top - plot_h - below) / height
    if shown:
        fig.legend(loc="upper left", bbox_to_anchor=(0.02, legend_top), ncols=2, fontsize=7,
                   frameon=False)  # fmt: skip
    key_top = legend_top - legend_h / height
    unit = "USD" if attribute == "cost_per_instance" else label.split()[0]
    header = f" #  {'run':<{key_width}}  {metric.name}  {unit:>9}" + ("  theirs" if papers else "")
    x_frac = 0.02
    for c in range(columns):
        lines = key_rows[c * per_column : (c + 1) * per_column]
        if not lines:
            continue
        block = fig.text(x_frac, key_top, "\n".join([header, *lines]), fontsize=KEY_FONT,
                         family="monospace", va="top", ha="left")  # fmt: skip
        fig.canvas.draw()
        right = block.get_window_extent(renderer).x1
        x_frac = right / fig.bbox.width + 0.03
    if wrapped:
        fig.text(0.02, key_top - key_h / height, "\n".join(wrapped), fontsize=KEY_FONT,
                 va="top", ha="left")  # fmt: skip
    return fig, notes


def _short(name: str, limit: int = 36) -> str:
    """A run's name cut in the middle, keeping its provider and subset marks at the end."""
    if len(name) <= limit:
        return name
    tail = min(len(name) - name.find("@"), 16) if "@" in name else 12
    return name[: limit - tail - 1] + "…" + name[-tail:]


def pareto(
    runs: Sequence[Run],
    path: Path,
    attribute: str,
    label: str,
    metric: Metric | None = None,
    *,
    title: str = "",
) -> str:
    """`pareto_figure` as `path`; returns its section of the report's index."""
    fig, notes = pareto_figure(runs, attribute, label, metric, title=title)
    save(fig, path)
    return _caption(title or path.stem, path, notes)
