"""One judge's part of a benchmark's report: where its tables and plots go, and their names.

Numbers of two judges never share a column: a benchmark whose runs were judged by several judges
gets a part per judge, each file's name and title marked with its judge; with one judge the
names are plain (`table2a_alpaca_eval.csv`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from eval.runs import Run


def judge_mark(judge: str) -> str:
    """A judge's address as a file name's part: `_judge-openai-gpt-4-1106-preview`."""
    return "_judge-" + re.sub(r"[^A-Za-z0-9.]+", "-", judge).strip("-")


@dataclass(frozen=True)
class Section:
    out_dir: Path
    reference: str  # the variant paired differences are taken against
    judge: str
    # The benchmark's runs of every judge: whom a run of this judge is refused a pairing with.
    everyone: Sequence[Run] = ()
    split: bool = False  # the benchmark has several judges: names and titles carry this one's

    def name(self, stem: str) -> str:
        return stem + judge_mark(self.judge) if self.split else stem

    def title(self, title: str) -> str:
        return f"{title}, judged by {self.judge}" if self.split else title

    def path(self, stem: str, suffix: str = ".png") -> Path:
        return self.out_dir / f"{self.name(stem)}{suffix}"

    def table(self, frame: pd.DataFrame, stem: str, note: str = "", title: str = "") -> str:
        """`eval.report.markdown.write_table` under this part's name and title."""
        from eval.report.markdown import write_table

        return write_table(frame, self.out_dir, self.name(stem), note, self.title(title or stem))
