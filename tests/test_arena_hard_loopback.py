"""Issue 24's acceptance: the published v0.1 answers of gpt-4-0613 and gpt-3.5-turbo-0125,
replayed as a run's answers and judged through the `openai` endpoint by a loopback judge (the
fake server, its every answer ending in a verdict), for all 500 prompts, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.rundir import RunDir
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, point_endpoints, run
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

ANSWERS = SHARED_DATA / "arena_hard/data/arena-hard-v0.1/model_answer"


@pytest.mark.parametrize("model", ["gpt-4-0613", "gpt-3.5-turbo-0125"])
def test_published_answers_are_judged_by_a_loopback_judge(tmp_path: Path, model: str) -> None:
    verdict = ModelProfile(min_tokens=4, max_tokens=8, verdict=" My final verdict is [[A>B]].")
    server = FakeServer(default=verdict)
    with serve_in_thread(server) as url:
        done = run(
            [
                MOA_BENCH,
                f"data_dir={SHARED_DATA}",
                "benchmark=arena_hard_v0.1",
                "moa=single",
                f"moa.aggregator=replay/{model}",
                f"endpoints.replay.outputs_dir={ANSWERS}",
                f"results_dir={tmp_path / 'runs'}",
                f"cache.path={tmp_path / 'calls.sqlite'}",
                *point_endpoints(url),
            ],
            env=environment(),
            timeout=600,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    (folder,) = (tmp_path / "runs" / "arena_hard_v0.1").iterdir()
    metrics = RunDir(folder).metrics()
    assert metrics is not None and metrics.coverage is not None
    assert metrics.coverage.complete and metrics.coverage.n_judged == 500
    assert metrics.extras["games"] == 1000 and metrics.extras["unparseable"] == 0
    # every game judged over HTTP: the baseline first in one, ours first in the other; "A>B"
    # each time is a win for each side once, so the score is even
    sent = [json.dumps(r.messages) for r in server.log]
    assert len(set(sent)) == len(sent) > 990  # a game identical to another is sent once (cache)
    assert metrics.extras["score"] == pytest.approx(50, abs=1)
    (judgments,) = (folder / "model_judgment").rglob("*.jsonl")
    rows = [json.loads(line) for line in judgments.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 500 and all(len(r["games"]) == 2 for r in rows)
