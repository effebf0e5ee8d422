"""A run directory's rules: judging what exists, one run at a time, degraded answers repaired."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from eval.rundir import RunDir, write_atomic
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA, command, environment, outputs, run, run_dir
from tests.kit.fakeserver import FakeServer, FaultPlan, ModelProfile, serve_in_thread
from tests.test_rundir import identity

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
JUDGE = "gpt-4-1106-preview"  # the AlpacaEval annotator's model


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@needs_data
def test_task_judge_judges_what_exists_with_the_judges_key_only(tmp_path: Path) -> None:
    server = FakeServer(default=ModelProfile(min_tokens=3, max_tokens=8))
    base = ["moa=moa_lite", "benchmark.limit=3"]
    with serve_in_thread(server) as url:
        capped = command(tmp_path, url, *base, "budget.max_calls=20", max_concurrency=2)
        stopped = run(capped)  # 2 of the 3 instances finish
        assert stopped.returncode == 3, stopped.stderr
        folder = run_dir(tmp_path, "moa_lite")
        before = {k: v for k, v in files(folder).items() if k != "cli.log"}
        generation_requests = len(server.log)
        no_generation_key = environment()
        del no_generation_key["TOGETHER_API_KEY"]
        judged = run(command(tmp_path, url, *base, "task=judge"), no_generation_key)
    assert judged.returncode == 1, judged.stderr  # an instance is still unjudged
    assert "1 of 3 instances are not generated yet (2)" in judged.stdout
    assert "judging the 2 that are" in judged.stdout
    after = files(folder)
    for name in ("config.yaml", "traces.jsonl", "calls.jsonl", "model_outputs.json"):
        assert after[name] == before[name], name  # nothing of the generation is rewritten
    named = json.loads(after["run.json"])  # the run as it was, now naming its judge
    assert named == {**json.loads(before["run.json"]), "judge": f"openai/{JUDGE}"}
    assert len(server.log) == generation_requests + 2  # two judge calls, no generation call
    assert {r.model for r in server.log[generation_requests:]} == {JUDGE}
    assert len(json.loads(after["annotations.json"])) == 2


def test_a_second_run_on_a_directory_is_refused(tmp_path: Path) -> None:
    folder = RunDir(tmp_path / "moa")
    with folder.locked():
        done = run(
            [
                *command(tmp_path, "http://127.0.0.1:9/v1", "moa=moa"),
                f"run_dir={folder.path}",
            ]
        )
        with pytest.raises(ConfigError, match="in use by another moa-bench run"), folder.locked():
            pass
    assert done.returncode == 2
    assert "is in use by another moa-bench run (pid" in done.stderr
    with folder.locked():  # free again once its holder is done
        pass


def test_only_a_dead_writers_temporary_files_are_cleaned(tmp_path: Path) -> None:
    folder = RunDir(tmp_path / "moa")
    folder.claim(identity())  # a run that is resumed: its directory holds the run already
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        live = folder.path / f".model_outputs.json.{sleeper.pid}.abc.tmp"
        dead = folder.path / ".model_outputs.json.999999999.abc.tmp"
        legacy = folder.path / ".model_outputs.json.abc.tmp"
        for path in (live, dead, legacy):
            path.write_text("half", encoding="utf-8")
        write_atomic(folder.path / "x.json", "{}")
        folder.claim(identity())
        assert live.exists() and not dead.exists() and not legacy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@needs_data
def test_a_degraded_answer_is_repaired_on_the_next_run(tmp_path: Path) -> None:
    """A proposal that used up its attempts leaves the answer degraded; run again with the
    endpoint healthy, the failed calls are retried and what depends on them redone."""
    args = ["moa=moa_lite", "benchmark.limit=4"]
    server = FakeServer(  # its first two answers are errors, then it is healthy
        default=ModelProfile(min_tokens=3, max_tokens=8), faults=FaultPlan(script=["500"] * 2)
    )
    with serve_in_thread(server) as url:
        first = run(command(tmp_path, url, *args, max_attempts=1, max_concurrency=1))
        assert first.returncode == 0, first.stderr
        assert "1 instance(s) degraded" in first.stdout  # instance 0 lost two proposals
        degraded, sent = outputs(tmp_path, "moa_lite"), len(server.log)
        again = run(command(tmp_path, url, *args, max_attempts=1))
        assert again.returncode == 0 and "instance(s) degraded" not in again.stdout
        assert len(server.log) - sent == 3  # the two failed proposals, and their aggregation
        repaired, sent = outputs(tmp_path, "moa_lite"), len(server.log)
        third = run(command(tmp_path, url, *args, max_attempts=1))
    assert repaired != degraded and len(repaired) == 4
    assert third.returncode == 0 and outputs(tmp_path, "moa_lite") == repaired
    assert len(server.log) == sent  # nothing left to repair
