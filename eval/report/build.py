"""Building the report's folder: every judged run directory becomes the paper's tables and plots.

Reads each run under a results directory through the runs' read-model (`eval.runs`) and writes
the tables and plots its benchmark gets (`eval.report.benchmarks`) as Markdown, CSV and PNG,
each written whole, and one page, `index.md`, that shows and links every one of them. The
report writes only into an empty folder or one it wrote before, and rebuilds it from scratch:
the files an earlier report wrote there (its marker, `.moa-bench-report.json`, lists them) are
removed first, nothing else. A run directory whose files are damaged (a torn metrics.json, a
0-byte annotations.json, a judge file that does not match the traces) is skipped with a one-line
reason; the others are reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from eval.output_dir import refuse_unless_ours
from eval.report import benchmarks, verifiable
from eval.report.section import Section
from eval.run_filter import RunFilter
from eval.rundir import leftover, write_atomic
from eval.runs import Run, Skipped, load_runs, unjudged

INDEX = "index.md"
HEAD = "# moa-bench report\n"
# The report's mark in its folder: the files it wrote there, which a rebuild removes first.
MARKER = ".moa-bench-report.json"
WRITER = "moa-bench task=report"


@dataclass(frozen=True)
class Report:
    """The report's Markdown (what `str` gives, the skipped runs' lines at its end) and the runs
    it skipped."""

    markdown: str
    skipped: list[Skipped] = field(default_factory=list)
    index: Path | None = None  # the page that shows and links every table and plot

    def __str__(self) -> str:
        return self.markdown


def _plain(name: str) -> bool:
    """A file name of the folder itself, not a path that leads out of it."""
    return bool(name) and name not in (".", "..") and not set(name) & {"/", "\\"}


def _report_files(out_dir: Path) -> list[str] | None:
    """The files an earlier report wrote in `out_dir`, as its marker lists them (a report
    made before the marker: `index.md` and what it linked above its other files); None if
    `out_dir` holds no report."""
    try:
        data = json.loads((out_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and data.get("written_by") == WRITER:
        return [str(n) for n in data.get("files") or [] if _plain(str(n))]
    try:
        index = (out_dir / INDEX).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None
    if not index.startswith(HEAD):
        return None
    linked = index.split("\n## other files\n")[0]
    return [INDEX, *(n for n in re.findall(r"\]\(([^()]+)\)", linked) if _plain(n))]


def clear_report_dir(out_dir: Path) -> None:
    """Removes what an earlier report wrote in `out_dir` (`_report_files`, and its cut writes'
    leftovers), so that no table or plot of an earlier run set or reference stays beside the
    new ones; other files and every subfolder are left alone. A folder that holds files but
    no report is refused."""
    if not out_dir.is_dir():
        return
    files = _report_files(out_dir)
    refuse_unless_ours(out_dir, "report.out_dir", "report", files is not None)
    for name in files or []:
        path = out_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
    for path in out_dir.glob(".*.tmp"):
        if leftover(path):
            path.unlink(missing_ok=True)


def _inodes(out_dir: Path) -> dict[str, int]:
    """The folder's files by name, each with its inode, which an atomic rewrite changes."""
    return {p.name: p.stat().st_ino for p in out_dir.iterdir() if p.is_file() and p.name != MARKER}


def _index(results_dir: Path, out_dir: Path, runs: list[Run], reference: str,
           parts: list[str], skipped: list[Skipped], chosen: RunFilter,
           left_out: list[str]) -> str:  # fmt: skip
    """The report's one page: every table and plot in order, then any file written but not
    yet linked, then the runs the filter left out and those skipped as damaged."""
    judges = sorted({r.judge for r in runs})
    head = (
        f"{HEAD}\n{len(runs)} judged run(s) from `{results_dir}`"
        + (f" ({chosen}: {len(left_out)} left out)" if str(chosen) else "")
        + f", by {len(judges)} judge(s): {', '.join(judges) or 'none'}; paired comparisons "
        f"against `{reference}`. Each table is here and as CSV and Markdown beside this page; "
        "every row names its `judge` and its `provider` (the endpoints that generated the "
        "answers), and a benchmark judged by several judges has a table per judge, never two "
        "judges' numbers in one column; `n` is the instances scored, `subset` the selection "
        "of a run that covers part of its benchmark (empty: the whole benchmark), `complete` "
        "whether the judge judged every instance.\n"
    )
    text = "\n".join([head, *(p for p in parts if p)])
    unlinked = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != INDEX
        and f"]({p.name})" not in text
    )  # fmt: skip
    if unlinked:
        text += "\n## other files\n\n" + "".join(f"- [{n}]({n})\n" for n in unlinked)
    if left_out:
        text += f"\n## runs left out ({chosen})\n\n" + "".join(f"- {n}\n" for n in left_out)
    if waiting := unjudged(results_dir):
        text += "\n## runs not judged yet (`task=judge` judges one)\n\n" + "".join(
            f"- {n}\n" for n in waiting
        )
    if skipped:
        text += "\n## skipped runs\n\n" + "".join(f"- {s}\n" for s in skipped)
    return text


def write_report(
    results_dir: Path, out_dir: Path, reference: str = "moa", chosen: RunFilter | None = None
) -> Report:
    """Rebuilds `out_dir` with every table and plot that the judged runs `chosen` (by default
    all) allow, a part per benchmark and judge (`eval.report.section`), and `index.md` linking
    them; returns the index's Markdown, which ends with a line per run left out by the filter
    and per run directory skipped as damaged, and those runs."""
    chosen = chosen or RunFilter()
    found, skipped = load_runs(results_dir)
    admitted = {id(r) for r in found if chosen.admits(r.benchmark, r.name, r.judge, r.endpoints)}
    runs = [r for r in found if id(r) in admitted]
    left_out = [f"{r.benchmark}/{r.name} (judge {r.judge})" for r in found if id(r) not in admitted]
    by_bench: dict[str, list[Run]] = {}
    for run in runs:
        by_bench.setdefault(run.benchmark, []).append(run)
    clear_report_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    before = _inodes(out_dir)
    parts = []
    for bench, bench_runs in by_bench.items():
        judges = sorted({r.judge for r in bench_runs})
        for judge in judges:
            section = Section(out_dir, reference, judge, bench_runs, split=len(judges) > 1)
            parts += benchmarks.sections(
                bench, [r for r in bench_runs if r.judge == judge], section
            )
    parts += verifiable.track(runs, Section(out_dir, reference, "exact checks"))
    text = _index(results_dir, out_dir, runs, reference, parts, skipped, chosen, left_out)
    write_atomic(out_dir / INDEX, text)
    written = sorted(name for name, inode in _inodes(out_dir).items() if before.get(name) != inode)
    marker = {"written_by": WRITER, "files": written}
    write_atomic(out_dir / MARKER, json.dumps(marker, indent=1) + "\n")
    return Report(text, skipped, out_dir / INDEX)
