"""A verdict label outside the version's set is an unparseable game, as arena-hard-auto's
`show_result.py` treats it: v0.1's skips the game, v2.0's has no score for it (the prompt is
dropped); both when the judge answers it and when a judgment file holds it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from eval.judges import arena_hard_scores as scores
from eval.judges.common import FailureKind
from eval.judges.games import Games, read_judgments
from eval.rundir import write_jsonl
from moa.types import ChatMessage

from .conftest import SHARED_DATA
from .test_arena_hard import Script, evaluation

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


def _kind(version: str) -> Games:
    kind = evaluation(version).judging
    assert isinstance(kind, Games)
    return kind


def _file(path: Path, category: str, games: Sequence[tuple[str, str]]) -> Path:
    rows = [
        {
            "uid": f"q{n}",
            "category": category,
            "judge": "gpt-4.1",
            "model": "ours",
            "baseline": "base",
            "games": [
                {"score": label, "judgment": {"answer": f"Verdict: [[{label}]]"}, "prompt": []}
                for label in pair
            ],
        }
        for n, pair in enumerate(games)
    ]
    write_jsonl(path, rows, ascii_only=False)
    return path


def test_v01_label_of_v20_only_or_none_at_all_is_unparseable(tmp_path: Path) -> None:
    kind = _kind("v0.1")
    path = _file(tmp_path / "j.jsonl", "arena-hard-v0.1", [("A<B", "B>A"), ("A>>>B", "A=B")])
    got = kind.rescore(path)
    assert got["games"] == 4 and got["unparseable"] == 2
    games = [
        g
        for j in read_judgments(path, kind.config.regex_patterns, "unique_first_pattern")
        for g in j.games
    ]
    assert [g.score for g in games] == ["A<B", "B>A", "A>>>B", "A=B"]  # kept as the judge wrote
    assert [g.failure is not None and g.failure.kind for g in games] == [
        FailureKind.PARSE,
        False,
        FailureKind.PARSE,
        False,
    ]
    # the score rests on the two games that were read, nothing else
    assert got["n"] == len(scores.v01_battles([(None, "B>A"), (None, "A=B")]))


def test_v20_label_outside_its_ten_drops_the_prompt(tmp_path: Path) -> None:
    kind = _kind("v2.0")
    path = _file(tmp_path / "j.jsonl", "hard_prompt", [("A<B", "B>A"), ("A>>>B", "A>B")])
    got = kind.rescore(path)
    assert got["games"] == 4 and got["unparseable"] == 1
    assert got["n"] == 2  # the first prompt's two battles; the second prompt is dropped whole


def test_a_judge_answering_an_unknown_label_is_counted_unparseable() -> None:
    kind = _kind("v0.1")
    instance = kind.benchmark.load()[0]

    def judge(messages: Sequence[ChatMessage]) -> str:
        return "My final verdict is: [[A>>>B]]"

    judgment = asyncio.run(kind._judge_one(Script(judge), "openai/j", "ours", instance, "Hi."))
    metrics = kind.metrics_of([judgment])
    assert judgment.labels == ("A>>>B", "A>>>B")
    assert metrics["unparseable"] == 2 and "score" not in metrics
