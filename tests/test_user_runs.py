"""What a user sees and relies on during a run: subsets, progress, logs and clear refusals."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from eval.cli import dispatch
from eval.progress import progress
from eval.rundir import RunDir
from moa.errors import ConfigError
from moa.ledger import Ledger
from moa.types import CallRecord
from tests.kit.cli import MOA_BENCH, SHARED_DATA, command, environment, run
from tests.kit.cli import scripted_config as config
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


@needs_data
def test_a_subset_never_overwrites_the_whole_run(tmp_path: Path) -> None:
    whole = ["benchmark=mt_bench", "moa=moa_lite"]
    assert asyncio.run(dispatch(config(tmp_path, *whole))) == 0
    full = tmp_path / "runs" / "mt_bench" / "moa_lite@scripted"
    before = {p: p.read_bytes() for p in full.rglob("*") if p.is_file() and p.suffix != ".log"}
    subset = [*whole, "benchmark.limit=5"]
    assert asyncio.run(dispatch(config(tmp_path, *subset))) == 0
    after = {p: p.read_bytes() for p in full.rglob("*") if p.is_file() and p.suffix != ".log"}
    assert after == before  # not one byte of the whole run changed
    small = RunDir(tmp_path / "runs" / "mt_bench" / "moa_lite@scripted~first5")
    identity = small.identity()
    assert identity is not None and identity.selection == {"limit": 5}
    answers = small.native("model_answer", f"{small.path.name}.jsonl").read_text().splitlines()
    assert len(answers) == 5 and len(small.finished()) == 5
    metrics = small.metrics()
    assert metrics is not None and metrics.values["n_scored"] == 10  # 5 questions x 2 turns
    ledger = [json.loads(line) for line in small.ledger.read_text().splitlines()]
    assert ledger and all(r["cached"] for r in ledger)  # the whole run's calls, reused


def test_the_bar_keeps_its_eta_on_80_columns_and_counts_calls_live() -> None:
    ledger = Ledger()
    console = Console(width=80, record=True, file=io.StringIO())  # prints the last frame
    with progress(ledger, console=console) as bar:
        task = bar.add_task("instances", total=805, completed=3)
        for n in range(1234):
            ledger.add(CallRecord(key=str(n), model="m", sample=0, cost_usd=0.01))
        bar.update(task, advance=1)
        bar.refresh()
    lines = [line for line in console.export_text().splitlines() if "instances" in line]
    assert lines and all(len(line) <= 80 for line in lines)
    last = lines[-1]
    assert "4/805" in last and "1,234 calls" in last  # counted at the redraw, not per instance
    assert any(ch.isdigit() or ch == "-" for ch in last.split("805", 1)[1][:12])  # the ETA


@needs_data
def test_the_log_has_the_run_and_no_request_lines(tmp_path: Path) -> None:
    with serve_in_thread(FakeServer(default=ModelProfile(min_tokens=3, max_tokens=8))) as url:
        args = command(tmp_path, url, "benchmark.limit=2")
        first = run(args)
        again = run(args)
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    log = (tmp_path / "runs" / "alpaca_eval" / "moa~first2" / "cli.log").read_text()
    assert "HTTP Request" not in log + first.stdout + first.stderr
    assert "run moa on alpaca_eval (2 of its instances)" in log and "run directory" in log
    assert "2/2 instances done" in log and "$" in log
    assert "resuming: 2 of 2 instances kept from before" in again.stdout


def test_a_failed_prompt_exits_non_zero_and_names_the_calls(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(fail_status=401))
    with serve_in_thread(server) as url:
        done = run(
            [
                MOA_BENCH, f"cache.path={tmp_path / 'c.sqlite'}", "moa=moa_lite", "prompt=Hi",
                f"endpoints.together.base_url={url}",
            ]
        )  # fmt: skip
    assert done.returncode == 1
    assert "no answer" in done.stdout and "layer 1 started: 6 call(s)" in done.stdout
    assert done.stdout.count("failed after 1 attempt(s): permanent 401") == 6


def test_a_misspelt_key_gets_the_one_it_meant() -> None:
    done = run([MOA_BENCH, "benchmark.limt=2"], environment())
    assert done.returncode == 2
    assert "did you mean benchmark.limit" in done.stderr and "+benchmark" not in done.stderr


def test_an_unknown_preset_is_named_as_such() -> None:
    done = run([MOA_BENCH, "moa=mao"], environment())
    assert done.returncode == 2 and "Could not find 'moa/mao'" in done.stderr
    assert "run directory" not in done.stderr


@needs_data
def test_a_different_run_says_what_differs(tmp_path: Path) -> None:
    base = ["benchmark=alpaca_eval", "moa=moa_lite", "benchmark.limit=2", "judge=none"]
    assert asyncio.run(dispatch(config(tmp_path, *base))) == 0
    # decoding is not the preset's: the same directory's name (a changed preset has its own)
    changed = config(tmp_path, *base, "benchmark.generation.temperature=0.3")
    with pytest.raises(ConfigError) as error:
        asyncio.run(dispatch(changed))
    message = str(error.value)
    assert "generation: " in message and '"temperature": 0.3' in message
    assert "moa.name=<name>" in message


@needs_data
def test_a_small_budget_finishes_whole_instances(tmp_path: Path) -> None:
    """A cap of a quarter of the plan, with every instance let in at once: about a quarter of
    the instances finish, instead of all of them started and none finished."""
    server = FakeServer(default=ModelProfile(min_tokens=3, max_tokens=8))
    with serve_in_thread(server) as url:
        capped = run(command(tmp_path, url, "benchmark.limit=40", "budget.max_calls=130",
                             max_concurrency=4))  # fmt: skip
    assert capped.returncode == 3, capped.stderr
    assert "/40 instances are saved" in capped.stderr
    saved = int(capped.stderr.split("/40 instances are saved")[0].rsplit(" ", 1)[1])
    assert saved >= 6  # 130 calls are 10 whole instances of 13 calls


# --- what a person reads: summaries, progress, hints (issue 21, item 7) -----------------------


def test_a_misplaced_or_misspelt_choice_says_where_it_belongs() -> None:
    preset = run([MOA_BENCH, "moa=moa_lit"], environment())
    assert preset.returncode == 2 and "did you mean moa=moa_lite" in preset.stderr
    decoding = run([MOA_BENCH, "temperature=0.5"], environment())
    assert decoding.returncode == 2
    assert "benchmark.generation.temperature=" in decoding.stderr
    assert "moa.layers.<layer>.<agent>.temperature=" in decoding.stderr
    model = run([MOA_BENCH, "moa=single", "moa.aggregator=qwen25-72b", "task=plan"],
                environment())  # fmt: skip
    assert model.returncode == 2
    assert "'+catalogue.qwen25-72b={address:<endpoint>/<model id>," in model.stderr
    assert all(len(r.stderr.strip().splitlines()) == 1 for r in (preset, decoding, model))


@needs_data
def test_the_summary_shows_metrics_as_a_table_with_flasks_skills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert asyncio.run(dispatch(config(tmp_path, "benchmark=flask", "benchmark.limit=2"))) == 0
    out = capsys.readouterr().out
    assert "metrics, judged by scripted/gpt-4-0613:" in out
    assert "judge scripted/gpt-4-0613: 2 calls" in out
    skills = [line for line in out.splitlines() if "│ skills: " in line]  # the reviewed ones
    assert skills and all(re.search(r"│ [1-5]\.\d\d +│", line) for line in skills)
    assert "{'" not in out and "metrics: {" not in out  # no Python dict
    assert "judge failures" in out and "n reviews" in out


@needs_data
def test_mt_benchs_bar_counts_turns(tmp_path: Path) -> None:
    """Two turns a question, each a whole mixture: counted by questions, the bar sat at 0."""
    done = run([MOA_BENCH, "provider_override=scripted", f"data_dir={SHARED_DATA}",
                f"results_dir={tmp_path / 'runs'}", f"cache.path={tmp_path / 'c.sqlite'}",
                "benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=2", "judge=none"],
               environment())  # fmt: skip
    assert done.returncode == 0, done.stderr
    (bar,) = [line for line in done.stdout.splitlines() if line.startswith("turns ")]
    assert " 4/4 " in bar
