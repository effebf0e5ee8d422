"""`task=calibrate` for Arena-Hard-Auto: a judge plays again the games of a published judgment
file (a synthetic one in v0.1's layout, made of the real v0.1 prompts and the published
gpt-4-0314 / gpt-4-0613 / gpt-3.5-turbo-0125 answers in ../shared/data) and is measured on its
verdict labels."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from eval.calibrate import games
from eval.judges.games import LABELS, Games
from moa.types import ChatMessage
from tests.kit.cli import MOA_BENCH, environment, run

from .conftest import SHARED_DATA
from .test_arena_hard import Script, answers, evaluation

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
PROMPTS = 12
# the third "model" is gpt-4-0613 signed off differently, so that three models are ranked
MODELS = {"gpt-4-0613": "", "gpt-3.5-turbo-0125": "", "gpt-4-0613-signed": "\n\n-- signed"}


def _label(text: str) -> str:
    return LABELS[hashlib.sha256(text.encode()).digest()[0] % len(LABELS)]


def _kind() -> Games:
    kind = evaluation("v0.1").judging
    assert isinstance(kind, Games)
    return kind


def published_file(path: Path) -> dict[str, str]:
    """v0.1's `model_judgment/gpt-4-1106-preview/<model>.jsonl` layout, one file for three
    models; returns the published label by the user prompt the judge was sent."""
    kind = _kind()
    instances = kind.benchmark.load()[:PROMPTS]
    by_prompt: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as f:
        for model, tail in MODELS.items():
            ours = answers(model.removesuffix("-signed"))
            for inst in instances:
                base, mine = str(inst.meta["reference_output"]), ours[inst.id] + tail
                played = []
                for a, b in ((base, mine), (mine, base)):
                    user = kind.messages(inst.category or "", inst.turns[0], a, b)[1]["content"]
                    by_prompt[user] = label = _label(model + user)
                    played.append({"user_prompt": user, "judgment": f"So: [[{label}]]",
                                   "score": label})  # fmt: skip
                row = {"question_id": inst.id, "model": model, "judge": "gpt-4-1106-preview",
                       "games": played}  # fmt: skip
                f.write(json.dumps(row) + "\n")
    return by_prompt


def test_a_judge_giving_the_published_verdicts_agrees_fully(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    labels = published_file(path)
    kind = _kind()
    published = games.published_judgments([path], [], None)
    script = Script(lambda m: f"My final verdict is: [[{labels[m[-1]['content']]}]]")
    new = asyncio.run(games.rejudge(script, kind, "openai/judge", published))
    assert len(script.calls) == 2 * PROMPTS * len(MODELS)
    system = kind.config.system_prompt("arena-hard-v0.1")
    assert all(c[0][0]["content"] == system for c in script.calls)
    got = games.compare(kind, published, new)
    overall = got["overall"]
    assert overall["n"] == 2 * PROMPTS * len(MODELS) and overall["failed"] == 0
    assert overall["exact"] == overall["same_side"] == overall["kappa"] == 1.0
    assert overall["spearman"] == pytest.approx(1.0) and overall["pearson"] == pytest.approx(1.0)
    assert set(got["models"]) == set(MODELS)
    for m in got["models"].values():
        assert m["score"]["new"] == m["score"]["published"] and m["n"] == 2 * PROMPTS


def test_strength_aside_the_side_is_the_same(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    labels = published_file(path)
    milder = {"A>>B": "A>B", "A>B": "A>>B", "B>>A": "B>A", "B>A": "B>>A", "A=B": "A=B"}

    def judge(messages: Sequence[ChatMessage]) -> str:
        return f"[[{milder[labels[messages[-1]['content']]]}]]"

    kind = _kind()
    published = games.published_judgments([path], ["gpt-4-0613"], 5)
    new = asyncio.run(games.rejudge(Script(judge), kind, "openai/judge", published))
    got = games.compare(kind, published, new)["overall"]
    assert got["n"] == 10 and got["same_side"] == 1.0
    ties = sum(g.score == "A=B" for j in published for g in j.games)
    assert got["exact"] == ties / 10 and got["kappa"] < 1.0
    assert got["spearman"] is None  # one model


def _cli(tmp_path: Path, *extra: str) -> object:
    args = [
        MOA_BENCH, "task=calibrate", "benchmark=arena_hard_v0.1", "provider_override=scripted",
        f"calibrate.out_dir={tmp_path / 'calibrate'}", f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'calls.sqlite'}", *extra,
    ]  # fmt: skip
    return run(args, environment())


def test_calibrate_end_to_end_with_the_scripted_judge(tmp_path: Path) -> None:
    missing = _cli(tmp_path)
    assert missing.returncode != 0  # type: ignore[attr-defined]
    err = missing.stderr.strip()  # type: ignore[attr-defined]
    assert len(err.splitlines()) == 1 and "calibrate.file=" in err
    path = tmp_path / "judgments.jsonl"
    published_file(path)
    done = _cli(tmp_path, f"calibrate.file={path}", "calibrate.limit=4")
    assert done.returncode == 0, done.stdout + done.stderr  # type: ignore[attr-defined]
    (out,) = (tmp_path / "calibrate" / "arena_hard_v0.1").iterdir()
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["published_judge"] == "gpt-4-1106-preview"
    assert set(calibration["models"]) == set(MODELS) and calibration["calls"] == 24
    assert calibration["overall"]["n"] + calibration["overall"]["failed"] == 24
    table = (out / "calibration.md").read_text()
    assert "| overall |" in table and re.search(r"same side", table)
    assert (out / "calibration.png").stat().st_size > 1000
