"""Run directories written in format 1 (`tests/data/v1_runs/`: scripted runs of every benchmark
made before the format-2 records) open as typed records, resume as the same run, and report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eval.generate import identity_of
from eval.records import FORMAT, AgentRecord, Coverage
from eval.rundir import RunDir
from eval.runs import load_run
from eval.settings import resolve
from tests.kit.cli import SHARED_DATA

V1_RUNS = Path(__file__).parent / "data" / "v1_runs"
RUNS = sorted(str(p.parent.relative_to(V1_RUNS)) for p in V1_RUNS.rglob("run.json"))
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")


@pytest.fixture(params=RUNS)
def v1_run(request: pytest.FixtureRequest, tmp_path: Path) -> RunDir:
    """A copy of one format-1 run directory (readers and resumes may write)."""
    copy = tmp_path / "runs" / request.param
    shutil.copytree(V1_RUNS / request.param, copy)
    return RunDir(copy)


def test_the_fixtures_are_format_1_of_every_benchmark() -> None:
    benchmarks = {run.split("/")[0] for run in RUNS}
    assert benchmarks == {"alpaca_eval", "mt_bench", "flask_hard", "demo"}
    for run in RUNS:
        for name in ("run.json", "metrics.json"):
            assert json.loads((V1_RUNS / run / name).read_text())["format"] == 1


def test_a_v1_run_opens_as_typed_records(v1_run: RunDir) -> None:
    identity, metrics = v1_run.identity(), v1_run.metrics()
    assert identity is not None and metrics is not None
    assert all(isinstance(a, AgentRecord) for a in identity.agents)
    assert identity.aggregator.kind == identity.mode
    assert all(
        a.kind in ("propose", "critique", "rank") for layer in identity.layers for a in layer
    )
    assert metrics.judge and metrics.judge_calls > 0 and metrics.headline is None
    assert metrics.coverage is None or metrics.coverage == Coverage(
        metrics.coverage.n_expected, metrics.coverage.n_expected, True
    )
    assert not set(metrics.extras) & {"n_judged", "failures", "judge_usd", "avg_length"}
    results = v1_run.finished()
    assert results and all(r.outputs for r in results.values())


def test_a_v1_ranker_and_strategy_keep_their_settings(tmp_path: Path) -> None:
    ranker = RunDir(V1_RUNS / "alpaca_eval" / "llm_ranker_l2~first3").identity()
    assert ranker is not None and (ranker.mode, ranker.aggregator.role) == ("rank", "ranker")
    window = RunDir(V1_RUNS / "alpaca_eval" / "self_moa_seq~first2").identity()
    assert window is not None and window.aggregator.strategy == "moa.strategy.sliding_window"
    assert window.aggregator.options == {"window": 4} and window.customized


@needs_data
def test_a_v1_run_resumes_as_the_same_run(v1_run: RunDir) -> None:
    """Today's identity of the config that wrote the directory is the upgraded one, so the
    directory is claimed (resumed), and its run.json is rewritten in format 2."""
    cfg = OmegaConf.load(v1_run.config_file)
    cfg.data_dir = str(SHARED_DATA)
    for endpoint in cfg.endpoints.values():
        if "outputs_dir" in endpoint:
            endpoint.outputs_dir = str(SHARED_DATA / "alpaca_eval" / "model_outputs")
    today = identity_of(resolve(cfg))  # type: ignore[arg-type]
    assert v1_run.identity() == today
    v1_run.claim(today)
    assert json.loads(v1_run.run_file.read_text())["format"] == FORMAT
    assert v1_run.identity() == today


@needs_data
def test_a_v1_run_is_read_by_the_report(v1_run: RunDir) -> None:
    run, metrics = load_run(v1_run), v1_run.metrics()
    assert metrics is not None and run.metrics == {"judge": metrics.judge, **metrics.values}
    assert run.identity == v1_run.identity()
