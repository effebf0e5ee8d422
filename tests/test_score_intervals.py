"""The score-with-interval figure (Arena-Hard-Auto's in the report): one point and bar per run,
best at the top, the title as given."""

from __future__ import annotations

from pathlib import Path

from eval.report import score_intervals


def test_each_run_is_a_point_with_its_interval_best_on_top(tmp_path: Path) -> None:
    rows = [("weak", 30.0, 25.0, 36.0), ("strong", 70.0, 64.0, 75.0)]
    fig = score_intervals.figure(
        rows, xlabel="win rate (%) against gpt-4-0314", title="T, judge J", notes=["bars: 95%"]
    )
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["weak", "strong"]  # top is last
    assert ax.get_title() == "T, judge J" and "gpt-4-0314" in ax.get_xlabel()
    bars = [c for c in ax.collections if c.get_segments()]
    spans = sorted(tuple(seg[:, 0]) for c in bars for seg in c.get_segments())
    assert spans == [(25.0, 36.0), (64.0, 75.0)]
    caption = score_intervals.draw(rows, tmp_path / "f.png", xlabel="x", title="Fig\nabout")
    assert (tmp_path / "f.png").stat().st_size > 0 and "![f](f.png)" in caption
