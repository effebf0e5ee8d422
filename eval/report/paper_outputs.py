"""The paper's Table 2(a) rows translated to today's judge (`+experiment=paper_outputs`).

The paper's judge is shut down, so its numbers cannot be set beside ours judged by another.
Its published outputs can: replayed (`conf/experiment/paper_outputs.yaml`) and judged by the
same judge as our runs, they give each paper row a number under that judge, and our run of the
row a paired difference from it on the instructions both were judged on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from eval.stats import paired

if TYPE_CHECKING:
    from eval.runs import Run

# Our Table 2 variants -> the variant of the run that replays the paper's published outputs.
PUBLISHED_OF = {
    "moa": "single_replay+Together-MoA",
    "moa_lite": "single_replay+Together-MoA-Lite",
    "single_gpt-4o": "single_replay+gpt-4o-2024-05-13",
    "single_qwen1.5-110b": "single_published-qwen1.5-110b",
    "single_qwen1.5-72b": "single_published-qwen1.5-72b",
    "single_llama-3-70b": "single_published-llama-3-70b",
    "single_mixtral-8x22b": "single_published-mixtral-8x22b",
    "single_dbrx": "single_published-dbrx",
}


def published_runs(runs: Sequence[Run]) -> dict[str, Run]:
    """Wholly judged runs of published outputs, by the variant they translate (one judge's runs:
    the report makes a table per judge)."""
    wanted = {v: k for k, v in PUBLISHED_OF.items()}
    found: dict[str, Run] = {}
    for run in sorted(runs, key=lambda r: (r.subset != "", r.name)):
        if run.variant in wanted and run.complete and not run.subset:
            found.setdefault(wanted[run.variant], run)
    return found


def translated(run: Run, published: Mapping[str, Run]) -> dict[str, Any]:
    """The published outputs' win rate and avg_length under this judge, and ours minus theirs,
    paired on the instructions both were judged on, with how many."""
    theirs = published.get(run.variant)
    if theirs is None:
        return dict.fromkeys(COLUMNS)
    diff = paired(run.scores, theirs.scores) if run.complete and run.scores else None
    return {
        "published_win_rate": theirs.metrics.get("win_rate"),
        "published_avg_length": theirs.avg_length,
        "paired_difference": None if diff is None else diff.mean,
        "paired_n": None if diff is None else diff.n,
    }


COLUMNS = ("published_win_rate", "published_avg_length", "paired_difference", "paired_n")
