"""The throughput bench's printed figures and verdicts (scripts/bench_report.py) on fixed rows:
before -> after pairs, PASS/FAIL judged on the after with the before beside it, peers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_report import FLOORED, pair, sdk_line, show, verdicts


def _run(name: str, wall: float, start: float, **extra: Any) -> dict[str, Any]:
    return {
        "run": name,
        "wall_s": wall,
        "to_first_request_s": start,
        "span_s": wall - start - 0.1,
        "after_last_answer_s": 0.1,
        "bound_s": 10.0,
        "work_bound_s": 10.0,
        "chain_bound_s": 10.0,
        "efficiency": 10.0 / wall,
        "span_efficiency": 10.0 / (wall - start - 0.1),
        "requests": 13,
        "calls": 13,
        "cache_hits": 0,
        "cpu_s": 1.3,
        "cpu_ms_per_call": 100.0,
        "peak_rss_mb": 80.0,
        **extra,
    }


def test_a_figure_is_a_pair_only_with_a_before() -> None:
    assert pair(0.843, None, ".2f", " s") == "0.84 s"
    assert pair(0.843, 3.261, ".2f", " s") == "3.26 -> 0.84 s"


def test_each_figure_of_a_run_shows_its_before() -> None:
    after, before = _run("prompt", 11.0, 0.84), _run("prompt", 13.5, 3.26)
    text = show(after, before)
    assert "wall 13.50 -> 11.00s = 3.26 -> 0.84s to the first request" in text
    assert "efficiency 0.741 -> 0.909" in text
    assert "->" not in show(after)
    plan = {"run": "plan", "wall_s": 12.0, "cpu_s": 11.5, "peak_rss_mb": 300.0}
    assert show(plan, {**plan, "wall_s": 38.0}) == (
        "plan: wall 38.00 -> 12.00s, CPU 11.50 -> 11.50s, peak RSS 300 -> 300 MB"
    )


def test_verdicts_judge_the_after_with_the_before_beside_it() -> None:
    rows = {
        "prompt": _run("prompt", 11.0, 0.84),
        "judge": _run("judge", 12.0, 1.2),
        "plan": {"run": "plan", "wall_s": 16.0, "cpu_s": 15.0, "peak_rss_mb": 300.0},
    }
    before = {
        "prompt": _run("prompt", 13.5, 3.26),
        "judge": _run("judge", 20.0, 6.0),
        "plan": {**rows["plan"], "wall_s": 38.2},
    }
    lines = [v.line() for v in verdicts(rows, before)]
    assert "PASS  prompt: start-up to the first request <= 1 s  (before 3.26 s, after 0.84 s)" in (
        lines
    )
    assert "PASS  judge: whole command >= 0.8 of the bound  (before 0.500, after 0.833)" in lines
    assert "FAIL  plan: wall <= 15 s  (before 38.20 s, after 16.00 s)" in lines
    # a run not made has no verdict; without a before only the after is shown
    assert not any(line.split("  ")[1].startswith("alpaca_eval") for line in lines)
    alone = [v.line() for v in verdicts({"plan": rows["plan"]})]
    assert alone == ["FAIL  plan: wall <= 15 s  (16.00 s)"]


def test_a_peer_is_shown_beside_the_run_or_said_not_to_run() -> None:
    peer = {
        "name": "alpaca_eval evaluate (32 threads)",
        "wall_s": 30.0,
        "to_first_request_s": 6.0,
        "requests": 805,
        "cpu_s": 20.0,
        "efficiency": 0.333,
    }
    text = show(_run("judge", 12.0, 1.2, peer=peer))
    assert text.endswith("ours 12.00s: 2.50x faster")
    assert show(_run("judge", 60.0, 1.2, peer=peer)).endswith("ours 60.00s: 2.00x slower")
    missing = {"name": "official MoA (advanced-moa.py)", "error": "exit code 1: no together"}
    assert show(_run("prompt", 11.0, 0.84, peer=missing)).endswith(
        "official MoA (advanced-moa.py): could not run here: exit code 1: no together"
    )


def test_the_loopback_server_streams_an_answer_asked_for_as_a_stream() -> None:
    """The official MoA's last call streams (`--official`): its answer in server-sent events."""
    from openai import OpenAI

    from tests.kit.fakeserver import FakeServer, serve_in_thread

    messages: list[Any] = [{"role": "user", "content": "hi"}]
    with serve_in_thread(FakeServer()) as url:
        client = OpenAI(base_url=url, api_key="sk-test")
        parts = client.chat.completions.create(model="m", messages=messages, stream=True)
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in parts)
        client.close()
    assert streamed.startswith("answer ") and streamed.endswith(" word")


def test_the_sdk_alone_is_shown_beside_the_targets_it_floors() -> None:
    floor = {
        "name": "the openai SDK alone (scripts/sdk_alone.py)",
        "post_to_first_request_s": 1.25,
        "post_marginal_cpu_ms_per_call": 1.4,
        "create_to_first_request_s": 1.3,
        "create_marginal_cpu_ms_per_call": 2.6,
    }
    rows = {"prompt": _run("prompt", 11.0, 2.7), "plan": {"run": "plan", "wall_s": 16.0}}
    lines = [v.line() for v in verdicts(rows, None, floor)]
    assert "FAIL  prompt: start-up to the first request <= 1 s  (2.70 s; the openai SDK alone: " \
        "1.25 s)" in lines  # fmt: skip
    assert "FAIL  plan: wall <= 15 s  (16.00 s)" in lines  # a target the SDK does not floor
    assert sdk_line(floor) == (
        "sdk: the openai SDK alone (scripts/sdk_alone.py): 1.25s to the first request; CPU per "
        "further call 1.400 ms on the lightest path (ours), 2.600 ms on chat.completions.create"
    )


def test_the_sdk_alone_is_timed_for_the_runs_whose_targets_it_floors() -> None:
    assert sorted(FLOORED) == ["alpaca_eval", "mt_bench", "prompt"]
