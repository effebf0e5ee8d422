"""`run.json` names the judge of its `metrics.json`: an optional field of the format-2 record,
outside what must match for a run to resume or be judged again."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from eval.records import RunIdentity
from eval.rundir import RunDir
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, run
from tests.test_records_v1 import V1_RUNS
from tests.test_rundir import identity


def test_the_judge_round_trips_and_does_not_decide_the_run(tmp_path: Path) -> None:
    judged = replace(identity(), judge="openai/gpt-4.1")
    data = judged.to_json()
    assert data["judge"] == "openai/gpt-4.1"
    back = RunIdentity.from_json(tmp_path / "run.json", data)
    assert back.judge == "openai/gpt-4.1"
    assert "judge" not in identity().to_json()  # optional: absent until judged
    assert judged == identity()  # another judge is the same run
    assert judged.differences(identity()) == ""


def test_judging_names_the_judge_and_a_resume_keeps_it(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path / "run")
    run_dir.claim(identity())
    run_dir.name_judge("scripted/judge")
    assert json.loads(run_dir.run_file.read_text())["judge"] == "scripted/judge"
    run_dir.claim(identity())  # resumed: the configured run names no judge before judging
    found = run_dir.identity()
    assert found is not None and found.judge == "scripted/judge"
    run_dir.name_judge("together/other")  # judged again by another judge
    found = run_dir.identity()
    assert found is not None and found.judge == "together/other"


def test_a_format_1_run_judged_again_is_named(tmp_path: Path) -> None:
    source = next(p.parent for p in sorted(V1_RUNS.rglob("run.json")))
    copy = tmp_path / "v1"
    shutil.copytree(source, copy)
    run_dir = RunDir(copy)
    before = run_dir.identity()
    assert before is not None and before.judge is None
    run_dir.name_judge("openai/gpt-4.1")
    after = run_dir.identity()
    assert after == before and after is not None and after.judge == "openai/gpt-4.1"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_a_judged_run_names_its_judge_in_run_json(tmp_path: Path) -> None:
    done = run(
        [MOA_BENCH, "provider_override=scripted", "benchmark=mt_bench", "benchmark.limit=2",
         "moa=moa_lite", f"data_dir={SHARED_DATA}", f"results_dir={tmp_path / 'runs'}",
         f"cache.path={tmp_path / 'calls.sqlite'}"],
        environment(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (run_file,) = (tmp_path / "runs").rglob("run.json")
    metrics = json.loads(run_file.with_name("metrics.json").read_text())
    assert json.loads(run_file.read_text())["judge"] == metrics["judge"]
    assert metrics["judge"].startswith("scripted/")
