"""Arena-Hard-Auto's scores: v0.1 equal to arena-hard-auto's own `show_result.py` (3071ef9) on our
judgment file, converted to the `question_id` layout that code reads; v2.0 by its formula."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from eval.benchmarks.data import Data
from eval.evaluation import evaluation_for
from eval.judges import arena_hard_scores as scores
from eval.judges.games import Games, Judgment, read_judgments
from eval.rundir import write_jsonl
from moa.types import ChatMessage

from .conftest import SHARED_DATA
from .test_arena_hard import Script, answers

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

REFERENCE_V01 = SHARED_DATA / "arena_hard/reference/v0.1"
LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A", "A>B", "B>A", "no verdict")


def verdict(messages: Sequence[ChatMessage]) -> str:
    """A judge whose verdict is fixed by its prompt: every label, and now and then none."""
    digest = hashlib.sha256("".join(m["content"] for m in messages).encode()).digest()
    label = LABELS[digest[0] % len(LABELS)]
    return f"Judging.\n\nMy final verdict is: [[{label}]]" if "verdict" not in label else label


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Games, Path]:
    """gpt-4-0613's published v0.1 answers judged by `verdict`, in our native file."""
    kind = evaluation_for({"name": "arena_hard_v0.1"}, Data(str(SHARED_DATA))).judging
    assert isinstance(kind, Games)
    instances = kind.benchmark.load()
    ours = answers("gpt-4-0613")
    script = Script(verdict)

    async def go() -> list[Judgment]:
        judge = "openai/gpt-4-1106-preview"
        return [
            await kind._judge_one(script, judge, "gpt-4-0613", i, ours[i.id]) for i in instances
        ]

    path = tmp_path_factory.mktemp("judged") / "gpt-4-0613.jsonl"
    write_jsonl(path, [j.to_json() for j in asyncio.run(go())], ascii_only=False)
    return kind, path


def _reference_v01(path: Path, root: Path) -> dict[str, Any]:
    """reference/v0.1/show_result.py --output, run as its README runs it, on `path` converted
    to the `question_id` layout (and answers with the token lengths it averages)."""
    bench = root / "data/arena-hard-v0.1"
    (bench / "model_judgment/gpt-4-1106-preview").mkdir(parents=True)
    (bench / "model_answer").mkdir()
    (root / "leaderboard").mkdir()
    rows = [json.loads(line) for line in path.open()]
    with (bench / "model_judgment/gpt-4-1106-preview/gpt-4-0613.jsonl").open("w") as f:
        for row in rows:
            games = [
                {"score": g["score"], "judgment": g["judgment"]["answer"]} for g in row["games"]
            ]
            f.write(
                json.dumps({"question_id": row["uid"], "model": row["model"], "games": games})
                + "\n"
            )
    for model in ("gpt-4-0314", "gpt-4-0613"):
        with (bench / f"model_answer/{model}.jsonl").open("w") as f:
            for uid in answers(model):
                f.write(
                    json.dumps(
                        {
                            "question_id": uid,
                            "model_id": model,
                            "choices": [{"turns": [{"token_len": 1}]}],
                        }
                    )
                    + "\n"
                )
    # numpy 2 dropped the `np.NAN` alias the reference uses: put it back for its run, nothing more
    runner = (
        "import runpy, sys, numpy; numpy.NAN = numpy.nan; "
        f"sys.path.insert(0, {str(REFERENCE_V01)!r}); sys.argv = ['show_result.py', '--output']; "
        f"runpy.run_path({str(REFERENCE_V01 / 'show_result.py')!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", runner], cwd=root, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (board,) = (root / "leaderboard").glob("*.csv")
    table = {row["model"]: row for row in csv.DictReader(board.open())}
    return table["gpt-4-0613"]


def test_v01_score_and_interval_equal_the_references(
    judged: tuple[Games, Path], tmp_path: Path
) -> None:
    kind, path = judged
    ours = kind.rescore(path)
    theirs = _reference_v01(path, tmp_path)
    assert ours["games"] == 1000 and 0 < ours["unparseable"] < 1000
    assert round(ours["score"], 2) == float(theirs["score"])
    # the bootstrap draws the reference's own resamples (numpy seeded 42), so the bounds agree
    # to its rounding, not only within bootstrap noise
    assert round(ours["lower"], 2) == pytest.approx(float(theirs["rating_q025"]), abs=0.011)
    assert round(ours["upper"], 2) == pytest.approx(float(theirs["rating_q975"]), abs=0.011)


def test_v01_score_is_the_weighted_win_rate_with_ties_halved(judged: tuple[Games, Path]) -> None:
    """With one model against the baseline, Bradley-Terry's MLE is the plain weighted rate."""
    kind, path = judged
    labels = [
        j.labels for j in read_judgments(path, (r"\[\[([AB<>=]+)\]\]",), "unique_first_pattern")
    ]
    winners = scores.v01_battles(labels)
    expected = 100 * (winners.count("ours") + winners.count("tie") / 2) / len(winners)
    assert kind.rescore(path)["score"] == pytest.approx(expected, abs=1e-3)


def test_v20_battle_scores_by_hand() -> None:
    # game 1 (the baseline as A): A>>B, the baseline much better: ours 0, 0, 0;
    # game 2 (ours as A): A>B, ours better: 1. In the reference's order, game 2's first.
    assert scores.v20_scores([("A>>B", "A>B")]) == [1.0, 0.0, 0.0, 0.0]
    assert scores.v20_scores([("B=A", "B>>A")]) == [0.0, 0.0, 0.0, 0.5]
    assert scores.v20_scores([("A>B", None)]) is None  # dropped whole, as the reference does
    one = scores.mean_battle_score([0.25] * 10)
    assert (one.score, one.lower, one.upper, one.battles) == (25.0, 25.0, 25.0, 10)


def test_v20_mean_score_is_the_references_bootstrap() -> None:
    """print_leaderboard's resampling (pandas' groupby sample, numpy's global generator) seeded
    as ours is gives the same mean and 5% / 95% quantiles."""
    rng = np.random.RandomState(7)
    values = list(rng.choice([0.0, 0.5, 1.0], size=400))
    battles = pd.DataFrame({"model": "ours", "scores": values})
    np.random.seed(scores.SEED)
    means = pd.concat(
        [
            battles.groupby("model").sample(frac=1.0, replace=True).groupby("model").mean()
            for _ in range(100)
        ]
    )["scores"].astype(float)
    got = scores.mean_battle_score(values)
    assert got.score == pytest.approx(100 * means.mean())
    assert got.lower == pytest.approx(100 * means.quantile(0.05))
    assert got.upper == pytest.approx(100 * means.quantile(0.95))


def test_style_control_fit_is_the_logistic_mle_on_the_references_features(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One fit of the style-controlled Bradley-Terry model: upstream's 50 L-BFGS steps stop near
    the logistic MLE of the battles on (1, normalised style differences), and run on they reach
    it as statsmodels finds it."""
    import statsmodels.api as sm

    rng = np.random.RandomState(3)
    lengths = rng.randint(50, 900, size=(80, 2)).astype(float)
    counts = rng.randint(0, 6, size=(80, 2, 3)).astype(float)
    styles = [
        scores.style_features([lengths[i, 0], *counts[i, 0]], [lengths[i, 1], *counts[i, 1]])
        for i in range(80)
    ]
    battles = [float(rng.rand() < 0.3 + 0.4 * (lengths[i, 0] > lengths[i, 1])) for i in range(80)]
    x = scores._design(np.array(styles), ["length", "markdown"])
    glm = sm.GLM(
        np.array(battles), np.column_stack([x[:, 0], x[:, 2:]]), family=sm.families.Binomial()
    )
    beta = glm.fit().params
    expected = 100.0 / (1.0 + np.exp(-beta[0]))
    stopped = scores._bt_win_rate(x, np.array(battles))
    assert stopped != pytest.approx(expected, abs=1e-3)
    assert stopped == pytest.approx(expected, abs=0.5)
    with monkeypatch.context() as longer:
        longer.setattr(scores, "_STEPS", 1000)
        assert scores._bt_win_rate(x, np.array(battles)) == pytest.approx(expected, abs=1e-3)
    got = scores.style_controlled(battles, styles, ["length", "markdown"])
    assert got.lower <= got.score <= got.upper and got.battles == 80
    with pytest.raises(ValueError, match="length and/or markdown"):
        scores.style_controlled(battles, styles, ["colour"])


def test_style_features_by_hand() -> None:
    # ours 300 tokens with 2 headers; the baseline 100 tokens with none
    got = scores.style_features([300, 2, 0, 0], [100, 0, 0, 0])
    assert got[0] == pytest.approx(0.5)  # (300 - 100) / (300 + 100)
    assert got[1] == pytest.approx((2 / 301) / (2 / 301 + 1))
    assert got[2:] == [0.0, 0.0]
