"""The preference-by-length curve drawn: the fit with its band, the observed bins beside it.

A `matplotlib.figure.Figure` built without pyplot (no global state, no display); whoever places
it in a report saves it (`eval.report.plots.save` writes it whole).
"""

from __future__ import annotations

from matplotlib.figure import Figure

from eval.stats.bias import LengthCurve


def length_figure(curve: LengthCurve, title: str) -> Figure:
    """`title` names the run and the judge; the axes and the caption say the rest."""
    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    xs = [point.x for point in curve.curve]
    ax.fill_between(
        xs,
        [point.low for point in curve.curve],
        [point.high for point in curve.curve],
        alpha=0.25,
        label="95% band",
    )
    ax.plot(xs, [point.p for point in curve.curve], label="logistic fit")
    sizes = [max(8.0, 200 * b.n / curve.n) for b in curve.bins]
    observed = ([b.x for b in curve.bins], [b.p for b in curve.bins])
    ax.scatter(*observed, s=sizes, c="k", label="observed (area: verdicts)")
    ax.axhline(0.5, color="grey", linewidth=0.6)
    ax.axvline(0.0, color="grey", linewidth=0.6)
    ax.set_ylim(0, 1)
    ax.set_xlabel("log2 length ratio (a / b)")
    ax.set_ylabel("preference for a")
    slope = curve.slope
    ax.set_title(
        f"{title}\nlength bias {slope.value:+.2f} log-odds per doubling "
        f"[{slope.low:+.2f}, {slope.high:+.2f}], n = {curve.n}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="upper left")
    return figure
