"""Start-up imports only what a run needs: a scripted run never loads the `openai` SDK; a
benchmark run with `judge=none` and a `data_dir` never loads pandas, alpaca-eval or the
downloaders (huggingface_hub, pooch); the door and a prompt load no benchmark's module (a
prompt no judge's either), and a benchmark run loads only its own."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from eval.evaluation import known
from moa.errors import ConfigError
from moa.providers.base import create_provider, register_provider
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, point_endpoints, run

# What a benchmark run that judges nothing and reads its data from `data_dir` does not need.
UNNEEDED = ("pandas", "alpaca_eval", "scipy", "huggingface_hub", "pooch")


def imported_modules(stderr: str) -> list[str]:
    """The modules named by `-X importtime` lines: `import time: self | cumulative | name`."""
    return [
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    ]


def run_importing(args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """A CLI run that must succeed, with the modules it imported (`-X importtime`)."""
    done = run(args, env=environment(PYTHONPROFILEIMPORTTIME="1"))
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert done.returncode == 0, "\n".join(errors[-20:])
    return done, imported_modules(done.stderr)


def benchmark_modules(modules: list[str]) -> list[str]:
    """The benchmarks' own modules (`eval.benchmarks.<name>`) among `modules`."""
    names = {f"eval.benchmarks.{name.replace('.', '_')}" for name in known()}
    return [m for m in modules if m in names]


def test_the_door_imports_no_benchmark_nor_what_only_a_benchmark_needs() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import eval.cli"],
        env=environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    modules = imported_modules(done.stderr)
    assert "eval.settings" in modules
    assert benchmark_modules(modules) == []
    assert [m for m in modules if m.split(".")[0] in UNNEEDED] == []


def test_a_prompt_through_the_openai_endpoint_imports_no_benchmark_nor_judge(
    tmp_path: Path, fake_url: str
) -> None:
    args = [
        MOA_BENCH,
        "prompt=hi",
        "moa=moa",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'calls.sqlite'}",
        *point_endpoints(fake_url),
    ]
    _, modules = run_importing(args)
    assert "openai" in modules
    assert benchmark_modules(modules) == []
    assert [m for m in modules if m.split(".")[0] in UNNEEDED] == []
    # nor generation, nor what it brings: the benchmarks' tasks and the judges
    assert [m for m in modules if m.startswith(("eval.generate", "eval.evaluation"))] == []
    assert [m for m in modules if m.startswith("eval.judges")] == []


def test_a_scripted_prompt_never_imports_openai(tmp_path: Path) -> None:
    args = [
        MOA_BENCH,
        "prompt=hi",
        "provider_override=scripted",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'calls.sqlite'}",
    ]
    done, modules = run_importing(args)
    assert re.search(r"\d+ calls \(0 cached\)", done.stdout)  # it answered, by calls
    # (A module that `importlib.import_module` loads is not listed, as the providers are; but
    # what it imports in turn is, and `openai_compat` imports `openai` with a plain `import`.)
    assert "moa.providers.base" in modules and "moa.client" in modules
    assert [m for m in modules if m == "openai" or m.startswith("openai.")] == []


def test_a_benchmark_run_without_judge_imports_no_pandas_nor_downloader(
    tmp_path: Path, fake_url: str
) -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA}")
    args = [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        "benchmark=alpaca_eval",
        "benchmark.ids=[0]",
        "moa=moa",
        "task=generate",
        "judge=none",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'calls.sqlite'}",
        *point_endpoints(fake_url),
    ]
    _, modules = run_importing(args)
    assert {"openai", "eval.benchmarks.fetch"} <= set(modules)  # the run's own path
    # its own module comes by `importlib.import_module` (unlisted); no other is imported
    assert benchmark_modules(modules) == []
    assert [m for m in modules if m.split(".")[0] in UNNEEDED] == []


def test_a_third_party_provider_is_built_by_its_registered_name() -> None:
    built: list[tuple[str, dict[str, Any]]] = []
    provider: Any = object()

    @register_provider("test-imports-mine")
    def mine(endpoint: str, options: Mapping[str, Any]) -> Any:
        built.append((endpoint, dict(options)))
        return provider

    assert create_provider("test-imports-mine", "e", {"x": 1}) is provider
    assert built == [("e", {"x": 1})]
    with pytest.raises(ConfigError) as refused:
        create_provider("nope", "e", {})
    # The built-in providers are named, whether their modules were imported yet or not.
    for name in ("local", "openai", "replay", "scripted", "test-imports-mine"):
        assert name in str(refused.value)
