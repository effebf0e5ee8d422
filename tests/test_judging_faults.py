"""Judging keeps the rules generation keeps: at a budget stop the judge calls in flight finish and
are recorded once, a cap that is enough lets judging finish, and a judge that failed in part (or
whole) gives no result, only its judged part under clearly named keys and a count of the rest."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from eval.benchmarks import Instance
from eval.benchmarks.data import Data
from eval.benchmarks.flask import Skill
from eval.evaluation import evaluation_for
from eval.judges import alpaca_eval as ae
from eval.judges import flask as fj
from eval.judges import mt_bench as mj
from eval.judges import pairwise, rubric, single
from eval.judges.alpaca_eval_metrics import win_rates
from eval.judges.common import incomplete_reason, is_complete, settle_all
from eval.records import Coverage
from eval.rundir import InstanceResult, RunDir
from moa.agents import Agent
from moa.budget import Budget, BudgetExceeded
from moa.cache import CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.ledger import Ledger, read_ledger
from moa.mixture import MixtureSpec
from moa.types import Completion, GenerateConfig, TokenLogprob
from tests.kit.cli import SHARED_DATA, command, read_jsonl, run, run_dir
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

from .fakes import FakeJudge

JUDGE = "fake/judge"
N = 20
ADMITTED = 7  # the cap while judging: 7 calls are admitted, the 8th is refused
Job = Callable[[Any], Awaitable[Sequence[Any]]]


def _alpaca(n: int) -> Job:
    pairs = [
        ae.Pair(f"Question {i}?", f"baseline {i}", "gpt4", f"answer {i}", "moa") for i in range(n)
    ]
    return lambda generator: ae.annotate(generator, pairs, judge=JUDGE)


MT_PROMPTS: dict[str, mj.Prompt] = {
    "single-v1": {
        "name": "single-v1",
        "system_prompt": "You are a helpful assistant.",
        "prompt_template": "[Question]\n{question}\n[Answer]\n{answer}",
    },
    "single-v1-multi-turn": {
        "name": "single-v1-multi-turn",
        "system_prompt": "Judge turn 2.",
        "prompt_template": "{question_1}|{answer_1}|{question_2}|{answer_2}",
    },
}


def _questions(n: int, turns: int) -> list[dict[str, Any]]:
    return [
        {"question_id": i, "category": "writing", "turns": [f"Q{i}t{t}" for t in range(turns)]}
        for i in range(n)
    ]


def _mt_bench(n: int) -> Job:
    questions = _questions(n, 1)
    answers = {q["question_id"]: (f"A{q['question_id']}",) for q in questions}
    matches = mj.make_matches(questions, "moa", answers, MT_PROMPTS, {})
    return lambda generator: mj.judge_matches(generator, matches, judge=JUDGE)


SETUP = fj.Setup(
    system_prompt="sys",
    prompt_template="{prompt1}{skills}[I]{question}[R]{response}[A]{sample_answer}",
    defaults={"prompt1": "p1"},
    skills=[Skill("Readability", "c", {k: f"s{k}" for k in range(1, 6)})],
    config=GenerateConfig(),
)


def _flask_item(i: int) -> dict[str, Any]:
    return {"idx": i, "instruction": f"Task {i}.", "answer": "ref", "skill": ["Readability"]}


def _flask(n: int) -> Job:
    items = [(_flask_item(i), f"response {i}") for i in range(n)]
    return lambda generator: fj.judge_responses(generator, items, SETUP, judge=JUDGE)


def _demo_inputs(n: int) -> tuple[list[Instance], list[InstanceResult]]:
    instances = [Instance(str(i), (f"Say {i}.",), None, None, {}) for i in range(n)]
    results = [InstanceResult(str(i), [f"moa says {i}"], None, 4, 0, 0, 0.0) for i in range(n)]
    return instances, results


def _demo(n: int, tmp_path: Path) -> Job:
    """The demo: the aggregator model alone answers each instance, then one verdict each."""
    task = evaluation_for(
        {"name": "demo", "generation": {"temperature": 0.7, "max_tokens": 20}}, Data()
    )
    spec = MixtureSpec.paper("demo", (), Agent("fake/alone"))
    instances, results = _demo_inputs(n)

    async def job(client: Any) -> Sequence[Any]:
        metrics = await task.judge(client, JUDGE, RunDir(tmp_path), spec, instances, results)
        return list(metrics["preference"].values())

    return job


JOBS: dict[str, Callable[[int, Path], Job]] = {
    "alpaca_eval": lambda n, _: _alpaca(n),
    "mt_bench": lambda n, _: _mt_bench(n),
    "flask": lambda n, _: _flask(n),
    "demo": _demo,
}
CALLS = {"alpaca_eval": N, "mt_bench": N, "flask": N, "demo": 2 * 10}  # the demo: 10 instances
SIZE = {"alpaca_eval": N, "mt_bench": N, "flask": N, "demo": 10}


def _client(url: str, root: Path, max_calls: int) -> ModelClient:
    """The real client over the fake server, with its judge ledger and a call cap over it (as
    `build_budget` makes one: earlier runs' calls count)."""
    ledger = root / "judge_calls.jsonl"
    return ModelClient(
        endpoint_specs={
            "fake": {"provider": "openai", "base_url": url, "max_concurrency": 16, "timeout_s": 5}
        },
        catalogue=Catalogue({}, ["fake"]),
        cache=CallCache(root / "calls.sqlite"),
        ledger=Ledger(ledger),
        budget=Budget.from_ledgers(None, max_calls, [ledger] if ledger.exists() else []),
    )


async def test_settle_all_waits_for_every_sibling_before_raising() -> None:
    ended: list[int] = []

    async def call(i: int) -> int:
        if i == 0:
            raise BudgetExceeded("budget.max_calls=1 reached")
        for _ in range(i):  # still running when call 0 has raised
            await asyncio.sleep(0)
        ended.append(i)
        return i

    with pytest.raises(BudgetExceeded):
        await settle_all(call(i) for i in range(4))
    assert sorted(ended) == [1, 2, 3]
    assert await settle_all(call(i) for i in (1, 2)) == [1, 2]


@pytest.mark.parametrize("name", list(JOBS))
async def test_a_budget_stop_while_judging_lets_calls_in_flight_finish(
    tmp_path: Path, name: str
) -> None:
    """The judge's calls were abandoned when one was refused: the client closed under them, so
    some were recorded as paid calls with a "client has been closed" error, others not at all,
    and each re-run counted more calls against the cap while sending none."""
    server = FakeServer(default=ModelProfile(ttft_s=0.05, min_tokens=5, max_tokens=30))
    job = JOBS[name](SIZE[name], tmp_path)
    with serve_in_thread(server) as url:
        client = _client(url, tmp_path, ADMITTED)
        try:
            with pytest.raises(BudgetExceeded):
                await job(client)
            # Raised only once every admitted call had ended, the client still open.
            assert len(server.log) == ADMITTED
            totals = client.ledger.totals
            assert (totals.calls, totals.errors, totals.cached) == (ADMITTED, 0, 0)
        finally:
            await client.aclose()
        first = list(read_ledger(tmp_path / "judge_calls.jsonl"))
        assert len(first) == ADMITTED and len({r["key"] for r in first}) == ADMITTED
        assert all(r["error"] is None and not r["cached"] for r in first)

        # A cap that is enough for all of judging lets it finish; what was made comes cached.
        again = _client(url, tmp_path, CALLS[name])
        try:
            out = await job(again)
        finally:
            await again.aclose()
    assert len(out) == SIZE[name] and len(server.log) == CALLS[name]
    paid = [r for r in read_ledger(tmp_path / "judge_calls.jsonl") if not r["cached"]]
    assert len(paid) == CALLS[name] and len({r["key"] for r in paid}) == CALLS[name]
    assert all(r["error"] is None for r in paid)


# --- a judge that fails in part, or whole -----------------------------------------------------


def _preference(m: float, big_m: float) -> Completion:
    top = (("m", m), ("M", big_m))
    token = "m" if m > big_m else "M"
    return Completion(token, 400, 1, "length", (TokenLogprob(token, max(m, big_m), top),))


def _alpaca_instances(n: int) -> tuple[list[Instance], list[InstanceResult]]:
    instances = [
        Instance(
            str(i),
            (f"Instruction number {i:02d}.",),
            None,
            None,
            {"reference_output": f"reference {i}", "reference_generator": "gpt4", "dataset": "x"},
        )
        for i in range(n)
    ]
    results = [InstanceResult(str(i), [f"ours {i}"], None, 1, 0, 0, 0.0) for i in range(n)]
    return instances, results


def _revoked_after(
    answered: int, answer: Callable[[int], Completion | str], keys: list[str]
) -> FakeJudge:
    """A judge whose key is revoked after `answered` calls: the rest fail."""
    return FakeJudge(
        {key: answer(i) if i < answered else None for i, key in enumerate(keys)},
        error="permanent 401: invalid api key",
    )


async def _judge_alpaca(tmp_path: Path, answered: int) -> dict[str, Any]:
    instances, results = _alpaca_instances(N)
    keys = [i.turns[0] for i in instances]
    judge = _revoked_after(answered, lambda i: _preference(-0.1, -3.0 + i / 10), keys)
    task = evaluation_for({"name": "alpaca_eval"}, Data())
    spec = SimpleNamespace(name="moa")
    return await task.judge(judge, JUDGE, RunDir(tmp_path), spec, instances, results)


async def test_an_alpaca_judge_revoked_midway_gives_no_win_rate(tmp_path: Path) -> None:
    metrics = await _judge_alpaca(tmp_path, answered=5)
    assert (metrics["n_expected"], metrics["n_judged"], metrics["complete"]) == (N, 5, False)
    assert metrics["failures"] == {"call": 15, "parse": 0}
    assert metrics["judge_error"] == "permanent 401: invalid api key"
    for key in ("win_rate", "length_controlled_winrate", "standard_error", "n_total"):
        assert key not in metrics  # no number from 5 of 20 presented as the run's result
    assert metrics["partial"]["n_total"] == 5 and 0 <= metrics["partial"]["win_rate"] <= 100
    task = evaluation_for({"name": "alpaca_eval"}, Data())
    assert math.isnan(task.headline(metrics)) and not is_complete(metrics)
    line = incomplete_reason(metrics)
    assert line is not None and "\n" not in line
    assert "5 of 20 instances judged" in line and "15 judge call(s) failed" in line
    # The native file still holds every row, the failed ones without a preference.
    rows = ae.read_annotations(tmp_path / "annotations.json")
    assert len(rows) == N and sum(r.preference is None for r in rows) == 15


async def test_an_alpaca_judge_that_never_answers_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    metrics = await _judge_alpaca(tmp_path, answered=0)
    assert (metrics["n_judged"], metrics["complete"]) == (0, False)
    assert "partial" not in metrics and "win_rate" not in metrics
    assert metrics["failures"] == {"call": N, "parse": 0}
    line = incomplete_reason(metrics)
    assert line is not None and line.startswith("judging incomplete: 0 of 20 instances judged")
    # Re-scoring the file says the same, and alpaca_eval's metric is never fed an empty column.
    rescored = evaluation_for({"name": "alpaca_eval"}, Data()).rescore(
        tmp_path / "annotations.json"
    )
    assert rescored["complete"] is False and "win_rate" not in rescored
    with pytest.raises(ValueError, match="no preference among 20 annotations"):
        win_rates(ae.read_annotations(tmp_path / "annotations.json"), length_controlled=False)


async def test_a_whole_alpaca_judging_keeps_its_metrics_and_says_so(tmp_path: Path) -> None:
    metrics = await _judge_alpaca(tmp_path, answered=N)
    assert (metrics["n_expected"], metrics["n_judged"], metrics["complete"]) == (N, N, True)
    assert metrics["n_total"] == N and "win_rate" in metrics and "partial" not in metrics
    assert "judge_error" not in metrics and incomplete_reason(metrics) is None


async def test_an_unparseable_verdict_is_judged_but_not_scored() -> None:
    """The judge answered: the set is complete, the verdict counted as a parse failure and left
    out of the win rate, as alpaca_eval leaves it out."""
    pairs = [ae.Pair(f"Question {i}?", "b", "gpt4", f"a {i}", "moa") for i in range(3)]
    judge = FakeJudge(
        {
            "Question 0?": _preference(-0.1, -3.0),
            "Question 1?": _preference(-3.0, -0.1),
            "Question 2?": Completion("The"),
        }
    )
    metrics = pairwise.metrics_of(await ae.annotate(judge, pairs), expected=3)
    assert metrics["complete"] is True and metrics["n_judged"] == 3
    assert metrics["n_total"] == 2 and metrics["failures"] == {"call": 0, "parse": 1}


async def test_an_mt_bench_judge_revoked_midway_gives_no_average() -> None:
    questions = _questions(10, 2)
    answers = {q["question_id"]: ("a1", "a2") for q in questions}
    matches = mj.make_matches(questions, "moa", answers, MT_PROMPTS, {})
    # Turn 1 of every question is rated; turn 2 of questions 5-9 fails.
    judge = FakeJudge(
        {
            **{f"Q{i}t0|": "Rating: [[6]]" if i < 5 else None for i in range(10)},
            **{f"Q{i}t0\n": "Rating: [[8]]" for i in range(10)},
        },
        error="permanent 401: invalid api key",
    )
    metrics = single.metrics_of(await mj.judge_matches(judge, matches), "moa", expected=10)
    assert (metrics["n_expected"], metrics["n_judged"], metrics["complete"]) == (10, 5, False)
    assert metrics["n_scored"] == 15 and metrics["failures"] == {"call": 5, "parse": 0}
    assert not {"turn_1", "turn_2", "average"} & set(metrics)
    assert metrics["partial"] == {"turn_1": 8.0, "turn_2": 6.0, "average": 110 / 15}
    task = evaluation_for({"name": "mt_bench"}, Data())
    assert math.isnan(task.headline(metrics))

    every = FakeJudge({"Q": None}, error="permanent 401: invalid api key")
    none = single.metrics_of(await mj.judge_matches(every, matches), "moa", expected=10)
    assert (none["n_judged"], none["complete"], none["n_scored"]) == (0, False, 0)
    assert "partial" not in none and none["judge_error"] == "permanent 401: invalid api key"


async def test_a_flask_judge_revoked_midway_gives_no_skills() -> None:
    items = [(_flask_item(i), f"response {i}") for i in range(N)]
    judge = _revoked_after(5, lambda i: "{'readability': 4}", [f"Task {i}." for i in range(N)])
    reviews = await fj.judge_responses(judge, items, SETUP)
    metrics = rubric.metrics_of(reviews, expected=N)
    assert (metrics["n_expected"], metrics["n_judged"], metrics["complete"]) == (N, 5, False)
    assert "skills" not in metrics and metrics["partial"] == {"skills": {"readability": 4.0}}
    assert metrics["failures"] == {"call": 15, "parse": 0}

    every = _revoked_after(0, lambda i: "", [f"Task {i}." for i in range(N)])
    none = rubric.metrics_of(await fj.judge_responses(every, items, SETUP), expected=N)
    assert (none["n_judged"], none["complete"]) == (0, False)
    assert "partial" not in none and "skills" not in none


def test_metrics_written_before_coverage_are_complete_unless_a_call_failed() -> None:
    assert is_complete({"win_rate": 50.0, "failures": {"call": 0, "parse": 2}})
    assert not is_complete({"win_rate": 50.0, "failures": {"call": 3, "parse": 0}})
    assert is_complete({"preference": {}})


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_run_stopped_while_judging_finishes_with_a_cap_that_is_enough(tmp_path: Path) -> None:
    """20 answers then 20 verdicts: stopped at 27 calls, 7 of them the judge's, which finish and
    are recorded once; a re-run with exactly 40 calls allowed judges the rest and is complete."""
    server = FakeServer(default=ModelProfile(ttft_s=0.02, min_tokens=5, max_tokens=30))
    args = ["benchmark.limit=20", "moa=single", "task=run"]
    with serve_in_thread(server) as url:
        stopped = run(command(tmp_path, url, *args, "budget.max_calls=27"))
        assert stopped.returncode == 3, stopped.stderr
        assert len(server.log) == 27
        directory = run_dir(tmp_path, "single_qwen1.5-110b")
        judged = read_jsonl(directory / "judge_calls.jsonl")
        assert len(judged) == 7 and all(r["error"] is None and not r["cached"] for r in judged)
        done = run(command(tmp_path, url, *args, "budget.max_calls=40"))
    assert done.returncode == 0, done.stderr
    assert len(server.log) == 40  # nothing sent twice, nothing counted that was not sent
    metrics = RunDir(directory).metrics()
    assert metrics is not None and metrics.coverage == Coverage(20, 20, True)
