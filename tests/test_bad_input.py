"""Bad input is refused before any call, by the real command, with one line and a non-zero exit.

Every case runs `moa-bench` against a counting fake server that must see no request at all. A
judge answer that never parses is the exception: it is counted and reported, not fatal.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from eval.rundir import RunDir
from tests.kit.cli import KEYS, SHARED_DATA, command, environment, run
from tests.kit.fakeserver import FakeServer, serve_in_thread

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
BASELINE = Path("alpaca_eval") / "alpaca_eval_gpt4_baseline.json"


def bad_data(root: Path, name: str, text: str) -> str:
    """A data_dir override whose AlpacaEval file holds `text`."""
    path = root / name / BASELINE
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return f"data_dir={root / name}"


def published_copy(root: Path, *, truncate: bool) -> str:
    """A data_dir with the published proposers' outputs, one of them truncated (cut in half)
    or incomplete (its first instruction's row left out)."""
    name = "replay_truncated" if truncate else "replay_incomplete"
    target = root / name / "alpaca_eval"
    target.mkdir(parents=True)
    (target / BASELINE.name).write_text((SHARED_DATA / BASELINE).read_text(encoding="utf-8"))
    outputs = target / "model_outputs"
    outputs.mkdir()
    for source in (SHARED_DATA / "alpaca_eval" / "model_outputs").glob("*.json"):
        text = source.read_text(encoding="utf-8")
        if source.stem == "Qwen1.5-110B-Chat":
            text = text[: len(text) // 2] if truncate else json.dumps(json.loads(text)[1:])
        (outputs / source.name).write_text(text, encoding="utf-8")
    return f"data_dir={root / name}"


def matrix(root: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """case: (overrides, environment, what the one stderr line must mention)."""
    good = (SHARED_DATA / BASELINE).read_text(encoding="utf-8")
    rows = json.loads(good)
    (root / "file").write_text("not a directory", encoding="utf-8")
    ok = environment()
    no_key = {k: v for k, v in ok.items() if k != "TOGETHER_API_KEY"}
    return {
        "unknown model": (["moa.aggregator=gpt-5"], ok, "unknown model 'gpt-5'"),
        "unknown preset": (["moa=moa_xl"], ok, "Could not find 'moa/moa_xl'"),
        "unknown provider": (
            ["endpoints.together.provider=anthropic"],
            ok,
            "unknown provider 'anthropic'",
        ),
        "unknown override endpoint": (
            ["provider_override=azure"],
            ok,
            "'azure' is not an endpoint",
        ),
        "missing key": ([], no_key, "set the environment variable TOGETHER_API_KEY"),
        "truncated data": (
            [bad_data(root, "truncated", good[: len(good) // 2])],
            ok,
            "invalid JSON",
        ),
        "short data": (
            [bad_data(root, "short", json.dumps(rows[:800]))],
            ok,
            "expected 805 instructions, found 800",
        ),
        "malformed record": (
            [bad_data(root, "malformed", json.dumps([{**rows[0], "instruction": 7}, *rows[1:]]))],
            ok,
            "record 1: field 'instruction' is missing or not a string",
        ),
        "unknown key": (["concurrency_limit=8"], ok, "concurrency_limit is not a setting"),
        "unparseable override": (["concurrency=[8"], ok, "no viable alternative at input '[8'"),
        "wrong type": (["benchmark.limit=ten"], ok, "benchmark.limit='ten' must be an integer"),
        "out of range": (["concurrency=-1"], ok, "concurrency=-1 must be an integer >= 0"),
        "unknown policy": (["context_overflow=squash"], ok, "context_overflow='squash'"),
        "key in config": (
            [f"++endpoints.together.api_key={KEYS['TOGETHER_API_KEY']}"],
            ok,
            "API keys are read from the environment only",
        ),
        "lone surrogate": (
            [bad_data(root, "surrogate", good.replace("What are", "What \\ud800", 1))],
            ok,
            "instance 0 turn 1: a lone surrogate (U+D800) at character 5",
        ),
        "duplicate proposers": (
            ["moa.proposers=[qwen1.5-110b,dbrx,qwen1.5-110b]"],
            ok,
            "Qwen1.5-110B-Chat more than once",
        ),
        "no attempts": (["++endpoints.together.max_attempts=0"], ok, "max_attempts=0 would"),
        "truncated replay": (
            ["moa=published_proposers", published_copy(root, truncate=True)],
            ok,
            "Qwen1.5-110B-Chat.json: not a JSON file",
        ),
        "incomplete replay": (
            ["moa=published_proposers", published_copy(root, truncate=False)],
            ok,
            "no published output for 1 of the 3 selected instructions (first: instance 0)",
        ),
        "unwritable results": (
            [f"results_dir={root / 'file' / 'runs'}"],
            ok,
            "cannot create the run directory",
        ),
    }


def test_bad_input_is_refused_before_any_call(tmp_path: Path) -> None:
    server = FakeServer()
    cases = matrix(tmp_path)
    with serve_in_thread(server) as url, ThreadPoolExecutor(4) as pool:

        def attempt(case: str) -> Any:
            overrides, env, _ = cases[case]
            root = tmp_path / case.replace(" ", "_")
            return run(command(root, url, "benchmark.limit=3", *overrides), env)

        results = dict(zip(cases, pool.map(attempt, cases), strict=True))
    for case, done in results.items():
        lines = done.stderr.splitlines()
        assert done.returncode == 2, (case, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("moa-bench: error: "), (case, lines)
        assert cases[case][2] in lines[0], (case, lines[0])
        assert KEYS["TOGETHER_API_KEY"] not in done.stderr + done.stdout
    assert server.log == []


def test_a_judge_answer_that_never_parses_is_counted_not_fatal(tmp_path: Path) -> None:
    server = FakeServer()  # its answers carry no `[[rating]]`
    with serve_in_thread(server) as url:
        done = run(
            command(
                tmp_path,
                url,
                "benchmark=mt_bench",
                "benchmark.limit=2",
                "moa=single",
                "task=run",
            )
        )
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "mt_bench" / "single_qwen1.5-110b~first2"
    metrics = RunDir(run_dir).metrics()
    assert metrics is not None and metrics.failures == {"call": 0, "parse": 4}
    assert metrics.extras["n_scored"] == 0
    assert "judge verdicts missing: 4 parse" in done.stdout
    judged = [r for r in server.log if r.model == "gpt-4"]  # as FastChat sends it
    assert len(judged) == 4  # asked once each: an unparseable verdict is not retried


def test_every_key_is_checked_before_the_first_call_or_download(tmp_path: Path) -> None:
    """Issue 20, item 10: with OPENAI_API_KEY unset, `task=run` paid for the generation before
    the judge's endpoint was built and refused; and a missing key was said only once the data
    had been downloaded (offline: after the download's retries, and that error instead)."""
    server = FakeServer()
    cache = tmp_path / "empty-download-cache"
    offline = environment(MOA_BENCH_CACHE=str(cache))
    no_openai = {k: v for k, v in offline.items() if k != "OPENAI_API_KEY"}
    no_together = {k: v for k, v in offline.items() if k != "TOGETHER_API_KEY"}

    def needs(endpoint: str, variable: str) -> str:
        return (
            f"moa-bench: error: endpoint {endpoint!r} needs an API key: set the environment "
            f"variable {variable}"
        )

    cases = {
        "run": (["task=run", "moa=moa_lite"], no_openai, needs("openai", "OPENAI_API_KEY")),
        "generate": (["data_dir=null"], no_together, needs("together", "TOGETHER_API_KEY")),
        "judge": (["task=judge", "data_dir=null"], no_openai, needs("openai", "OPENAI_API_KEY")),
    }
    with serve_in_thread(server) as url:
        for case, (overrides, env, line) in cases.items():
            done = run(command(tmp_path / case, url, "benchmark.limit=3", *overrides), env)
            assert done.returncode == 2, (case, done.stderr)
            assert done.stderr.splitlines() == [line], case
            assert not server.log, case  # nothing paid for
            assert not cache.exists(), case  # nothing downloaded, nor tried
