"""Every config composes and instantiates: presets, benchmarks, judges, endpoints, experiments."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from eval.generate import judge_address, load_instances, task_of
from eval.mixture_config import build_mixture
from eval.settings import CONF_DIR, resolve, to_dict
from eval.suite import EXPERIMENTS, compose_points
from moa.cache import CacheMode, CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.errors import ConfigError

PRESETS = sorted(p.stem for p in (CONF_DIR / "moa").glob("*.yaml"))
BENCHMARKS = sorted(p.stem for p in (CONF_DIR / "benchmark").glob("*.yaml"))
JUDGES = sorted(p.stem for p in (CONF_DIR / "judge").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_builds_against_the_catalogue(preset: str) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"moa={preset}"])
    spec = build_mixture(to_dict(cfg.moa), resolve(cfg).catalogue)
    # a catalogue name is not checked against the endpoints: each must route to a defined one
    assert spec.name and {m.split("/", 1)[0] for m in spec.models()} <= set(cfg.endpoints)


@pytest.mark.parametrize("benchmark", BENCHMARKS)
def test_every_benchmark_loads_offline(benchmark: str, shared_data: Path) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", [f"benchmark={benchmark}", f"data_dir={shared_data}"])
    settings = resolve(cfg)
    if benchmark == "mt_bench_pair":  # no baseline's answers there: refused before any call
        with pytest.raises(ConfigError, match=r"benchmark\.baseline_file="):
            load_instances(settings)
        return
    instances = load_instances(settings)
    configs = {task_of(settings).generation()(i) for i in instances}
    assert instances and all(c.max_tokens for c in configs)
    if benchmark == "mt_bench":
        assert {c.temperature for c in configs} == {0.0, 0.1, 0.7}


def compose_with(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides)


@pytest.mark.parametrize("judge", JUDGES)
def test_every_judge_resolves(judge: str) -> None:
    cfg = compose_with([f"judge={judge}"])
    for benchmark in BENCHMARKS if cfg.judge.enabled else []:
        bench_cfg = compose_with([f"judge={judge}", f"benchmark={benchmark}"])
        assert "/" in judge_address(resolve(bench_cfg))


def test_every_endpoint_instantiates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    cfg = compose_with([f"data_dir={tmp_path}"])
    (tmp_path / "alpaca_eval" / "model_outputs").mkdir(parents=True)
    specs = to_dict(cfg.endpoints)
    specs["local"]["n_ctx"] = 512
    client = ModelClient(specs, Catalogue({}, specs), CallCache(tmp_path / "c", CacheMode.OFF))
    for name in specs:
        # each endpoint is built by the provider its config names (`openai:<base_url>`, ...)
        kind = str(specs[name].get("provider", "openai"))
        assert client.endpoint(name).api.identity.startswith(f"{kind}:")


def test_every_experiment_expands_and_composes() -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        points = compose_points([], EXPERIMENTS)
    names = [(c.benchmark.name, c.spec.name) for c in points]
    # figure 5 re-uses table 2's three AlpacaEval mixtures (the same run directories)
    assert len(names) - len(set(names)) == 3
    assert ("alpaca_eval", "moa_lite") in names and ("mt_bench", "moa_gpt4o") in names
    assert {"multi_proposer_n1", "single_proposer_qwen1.5-110b_n6"} <= {n for _, n in names}
    assert {"fig4_rank_l4", "as_proposer_dbrx", "single_gpt-4o"} <= {n for _, n in names}


def test_the_suite_is_every_experiment_file() -> None:
    files = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    assert files and sorted(EXPERIMENTS) == files  # a file the plan misses, or a name with none
    assert len(set(EXPERIMENTS)) == len(EXPERIMENTS)


def test_provider_override_routes_every_model() -> None:
    cfg = compose_with(["moa=moa_gpt4o", "provider_override=scripted"])
    catalogue = resolve(cfg).catalogue
    spec = build_mixture(to_dict(cfg.moa), catalogue)
    assert all(m.startswith("scripted/") for m in spec.models())
    assert judge_address(
        resolve(compose_with(["provider_override=scripted", "benchmark=mt_bench"]))
    ).startswith("scripted/")
