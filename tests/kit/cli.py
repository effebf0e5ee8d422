"""Running the real `moa-bench` command against a loopback fake server, for tests and scripts.

The `together` and `openai` endpoints point at the fake server, so the paper's models run through
the real OpenAI-compatible provider (with tiny backoffs, for the reliability tests); the server
counts every request.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"  # the real benchmark files (read-only)
MOA_BENCH = str(Path(sys.executable).parent / "moa-bench")
KEYS = {"TOGETHER_API_KEY": "sk-test-together-0000", "OPENAI_API_KEY": "sk-test-openai-0000"}
ENDPOINTS = ("together", "openai")  # the paper's two providers
QUICK_RETRIES = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5}


def point_endpoints(url: str, **settings: object) -> list[str]:
    """Overrides pointing both of the paper's endpoints at `url`, each with `settings`. The fake
    server answers any model, so its model list says nothing: the run does not check its models
    against it (`eval.preflight`) unless `lists_models=True` is among `settings`."""
    out = []
    settings = {"lists_models": False, **settings}
    for name in ENDPOINTS:
        out.append(f"endpoints.{name}.base_url={url}")
        out += [f"++endpoints.{name}.{key}={value}" for key, value in settings.items()]
    return out


def endpoint_overrides(url: str, **limits: object) -> list[str]:
    """`point_endpoints` with tiny backoffs and a 5 s timeout, unless `limits` say otherwise."""
    return point_endpoints(url, **{**QUICK_RETRIES, **limits})


def cache_file(root: Path) -> Path:
    return root / "calls.sqlite"


def command(root: Path, url: str, *overrides: str, **limits: object) -> list[str]:
    """An AlpacaEval generation with MoA 6 -> 6 -> 1, its files under `root`."""
    return [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}",
        f"cache.path={cache_file(root)}",
        "benchmark=alpaca_eval",
        "moa=moa",
        "task=generate",
        *endpoint_overrides(url, **limits),
        *overrides,
    ]


def environment(**extra: str) -> dict[str, str]:
    """This environment with the fake keys instead of any real ones, and no Hugging Face network."""
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    return {**env, **KEYS, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **extra}


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    return subprocess.run(
        args, env=env or environment(), capture_output=True, text=True, timeout=timeout
    )


def run_dir(root: Path, variant: str = "moa") -> Path:
    """The variant's run directory, subset runs (`moa~first40`) included."""
    base = root / "runs" / "alpaca_eval"
    found = [d for d in base.glob(f"{variant}*") if d.name.split("~")[0] == variant]
    return found[0] if len(found) == 1 else base / variant


def outputs(root: Path, variant: str = "moa") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(
        (run_dir(root, variant) / "model_outputs.json").read_text(encoding="utf-8")
    )
    return rows


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ledger(root: Path, variant: str = "moa") -> list[dict[str, Any]]:
    return read_jsonl(run_dir(root, variant) / "calls.jsonl")


def torn_files(directory: Path, cache: Path) -> list[str]:
    """The files of a run directory, and its cache, that a kill left unreadable (a JSON-lines
    file may end in one torn line, no more)."""
    bad = []
    for name in ("traces.jsonl", "calls.jsonl"):
        if (path := directory / name).exists():
            try:
                [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")[:-1]]
            except ValueError:
                bad.append(name)
    for name in ("run.json", "model_outputs.json"):
        if (path := directory / name).exists():
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                bad.append(name)
    if (path := directory / "config.yaml").exists():
        try:
            if not yaml.safe_load(path.read_text(encoding="utf-8")):
                bad.append(path.name)
        except yaml.YAMLError:
            bad.append(path.name)
    if cache.exists():
        with sqlite3.connect(cache) as db:
            if db.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                bad.append(cache.name)
    return bad


def scripted_config(root: Path, *overrides: str) -> DictConfig:
    """The composed config of an offline run on the scripted fake, its files under `root`
    (to run in-process with `eval.cli.dispatch`)."""
    from hydra import compose, initialize_config_dir

    from eval.settings import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(
            "config",
            [
                "provider_override=scripted",
                f"data_dir={SHARED_DATA}",
                f"results_dir={root / 'runs'}",
                f"cache.path={root / 'calls.sqlite'}",
                *overrides,
            ],
        )


def scripted_runs(root: Path, runs: Sequence[Sequence[str]]) -> Path:
    """Each run of `runs` (its overrides) generated and judged on the scripted fake, in
    process, under `root`; returns the results directory."""
    import asyncio

    from eval.cli import dispatch

    for overrides in runs:
        if asyncio.run(dispatch(scripted_config(root, *overrides))) != 0:
            raise RuntimeError(f"the scripted run {' '.join(overrides)} failed")
    return root / "runs"
