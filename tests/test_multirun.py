"""A parallel sweep (`-m hydra/launcher=parallel`, joblib) of variants that share calls, on one
cache: the jobs overlap, yet every distinct call is paid for exactly once, by one job."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from eval.settings import CONF_DIR
from moa.ledger import read_ledger

ROOT = Path(__file__).resolve().parents[1]
MOA_BENCH = str(Path(sys.executable).parent / "moa-bench")
# MoA and MoA w/ GPT-4o share layers 1 and 2; MoA-Lite and the ranker share layer 1 with both.
VARIANTS = ("moa", "moa_gpt4o", "moa_lite", "llm_ranker")


def running(run_dir: Path) -> tuple[float, float]:
    """From the run's start (it writes config.yaml before any call) to its last instance."""
    with (run_dir / "traces.jsonl").open(encoding="utf-8") as f:
        last = max(json.loads(line)["finished_at"] for line in f)
    return (run_dir / "config.yaml").stat().st_mtime, last


def test_parallel_sweep_pays_once_per_distinct_call(tmp_path: Path, shared_data: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    command = [
        MOA_BENCH,
        "-m",
        "hydra/launcher=parallel",
        f"moa={','.join(VARIANTS)}",
        "provider_override=scripted",
        "+endpoints.scripted.latency_s=0.3",  # long enough for the jobs to overlap
        f"data_dir={shared_data}",
        "benchmark=alpaca_eval",
        "benchmark.limit=10",
        "judge=none",
        "task=generate",
        f"results_dir={tmp_path}",
        f"cache.path={tmp_path / 'calls.sqlite'}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dirs = sorted(tmp_path.glob("alpaca_eval/*"))
    assert len(run_dirs) == len(VARIANTS)
    spans = [running(d) for d in run_dirs]
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # all at once
    records = [row for d in run_dirs for row in read_ledger(d / "calls.jsonl")]
    keys = {row["key"] for row in records}
    paid = [row["key"] for row in records if not row["cached"]]
    assert len(records) > len(keys)  # the variants did want the same calls
    assert len(paid) == len(set(paid)) == len(keys)  # and paid for each exactly once
    with sqlite3.connect(tmp_path / "calls.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone() == (len(keys),)
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)


@pytest.mark.parametrize(
    ("launcher", "plugin"),
    [
        ("parallel", "hydra_plugins.hydra_joblib_launcher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher"),
    ],
)
def test_launcher_configs_compose(launcher: str, plugin: str) -> None:
    pytest.importorskip(plugin)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert str(cfg.hydra.launcher._target_).startswith(plugin)
