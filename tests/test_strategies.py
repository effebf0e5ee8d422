"""A user's strategy (`moa.strategy`) is the user's code: whatever it does wrong fails that turn
of that instance, recorded as a failed call is, and never the run; what it cannot do is hide
the harness's own stops."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from eval.cli import dispatch
from eval.mixture_config import build_mixture
from eval.rundir import LEDGER, TRACES, RunDir
from eval.settings import resolve, to_dict
from moa.budget import BudgetExceeded
from moa.errors import ConfigError
from moa.mixture import Mixture
from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, read_jsonl, run
from tests.kit.cli import scripted_config as config

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
USER: list[ChatMessage] = [{"role": "user", "content": "Hi?"}]
CONFIG = GenerateConfig(temperature=0.7, max_tokens=64)
STRATEGIES = """
import asyncio
from pathlib import Path

FLAG = Path(__file__).with_name("fail_once")  # while it exists, the next turn raises


async def flaky(ctx):
    fused = await ctx.generate(references=list(ctx.references))
    if FLAG.exists():
        FLAG.unlink()
        raise ValueError("a bug on this instance")
    return fused or []


async def an_int(ctx):
    return 5


async def a_dict(ctx):
    return {"an answer": "as a key"}


async def hangs(ctx):
    await asyncio.Event().wait()


async def swallows(ctx):
    try:
        await ctx.generate()
    except Exception:
        return "made up"
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on the path holding `lab_strategies`; the modules imported from it are
    forgotten after the test."""
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "lab_strategies.py").write_text(STRATEGIES, encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(folder)):
            del sys.modules[name]


class Answers:
    """Answers every call; raises `raises` instead, if set (what the harness raises)."""

    def __init__(self, raises: Exception | None = None) -> None:
        self.raises = raises

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        if self.raises is not None:
            raise self.raises
        record = CallRecord(key=f"{model}#{sample}", model=model, sample=sample)
        return CallOutcome(Completion(f"answer of {model}#{sample}", 10, 5), record)


def turn(tmp_path: Path, layers: list[Any], generator: Answers | None = None) -> Any:
    spec = build_mixture({"name": "t", "layers": layers}, resolve(config(tmp_path)).catalogue)
    return asyncio.run(Mixture(spec, generator or Answers()).run_turn(USER, CONFIG))


def test_a_strategy_that_raises_fails_its_instance_alone_and_the_next_run_retries_it(
    tmp_path: Path, lab: Path
) -> None:
    (lab / "fail_once").touch()
    overrides = (
        "benchmark=alpaca_eval",
        "benchmark.limit=3",
        "task=generate",
        "moa=moa_lite",
        "moa.layers.1.0.strategy=lab_strategies.flaky",
        "moa.name=flaky_lite",  # a changed preset runs under a name of its own
    )
    cfg = config(tmp_path, *overrides)
    run_dir = Path(str(cfg.run_dir))
    asyncio.run(dispatch(cfg))
    rows = read_jsonl(run_dir / TRACES)
    (failed,) = [r for r in rows if r["outputs"] is None]
    assert failed["error"] == (
        "strategy lab_strategies.flaky raised ValueError: a bug on this instance"
    )
    # its call is in the trace and the ledger, as every call it made
    assert failed["trace"]["turns"][0]["final"]["text"]
    assert len(json.loads((run_dir / "model_outputs.json").read_text())) == 2
    paid = read_jsonl(run_dir / LEDGER)
    assert len(paid) == 3 * (6 + 1) and not any(c["cached"] for c in paid)

    assert asyncio.run(dispatch(config(tmp_path, *overrides))) == 0
    retried = read_jsonl(run_dir / LEDGER)[len(paid) :]
    assert len(retried) == 7 and all(c["cached"] for c in retried)  # the failed instance's
    assert len(json.loads((run_dir / "model_outputs.json").read_text())) == 3


def test_what_a_strategy_returns_is_checked_and_a_hang_is_bounded(
    tmp_path: Path, lab: Path
) -> None:
    def final(strategy: str, **settings: Any) -> Any:
        layers = [[{"model": "dbrx"}], [{"model": "dbrx", "strategy": strategy, **settings}]]
        return turn(tmp_path, layers)

    for name, kind in (("an_int", "int"), ("a_dict", "dict")):
        done = final(f"lab_strategies.{name}")
        assert done.output is None
        assert done.error == (
            f"strategy lab_strategies.{name} returned {kind}, not a str or a list of str"
        )
    hung = final("lab_strategies.hangs", strategy_timeout_s=0.2)
    assert hung.output is None
    assert hung.error == "strategy lab_strategies.hangs took longer than strategy_timeout_s=0.2 s"
    # in a middle layer, the turn fails there, as a final strategy's would
    middle = turn(
        tmp_path,
        [
            [{"model": "dbrx"}],
            [{"model": "dbrx", "strategy": "lab_strategies.an_int"}, {"model": "qwen1.5-72b"}],
            [{"model": "dbrx"}],
        ],
    )
    assert middle.output is None and middle.final is None
    assert middle.error == (
        "layer 2: strategy lab_strategies.an_int returned int, not a str or a list of str"
    )


def test_a_strategy_cannot_hide_a_budget_stop(tmp_path: Path, lab: Path) -> None:
    layers = [[{"model": "dbrx", "strategy": "lab_strategies.swallows"}]]
    with pytest.raises(BudgetExceeded, match="the cap"):
        turn(tmp_path, layers, Answers(raises=BudgetExceeded("the cap")))


def test_the_strategy_timeout_is_a_strategys_setting_and_a_number(
    tmp_path: Path, lab: Path
) -> None:
    cases = {
        "strategy_timeout_s is for a strategy": {"model": "dbrx", "strategy_timeout_s": 5},
        r"strategy_timeout_s=0, must be seconds > 0": {
            "model": "dbrx",
            "strategy": "lab_strategies.an_int",
            "strategy_timeout_s": 0,
        },
    }
    for said, agent in cases.items():
        with pytest.raises(ConfigError, match=said):
            turn(tmp_path, [[agent]])


def test_a_strategy_module_that_fails_to_import_is_one_line(tmp_path: Path, lab: Path) -> None:
    (lab / "broken_lab.py").write_text("ratio = 1 / 0\n", encoding="utf-8")
    args = [
        MOA_BENCH,
        "provider_override=scripted",
        f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={tmp_path / 'c.sqlite'}",
        "benchmark=alpaca_eval",
        "benchmark.limit=1",
        "moa=moa_lite",
        "moa.layers.1.0.strategy=broken_lab.fuse",
    ]
    env = environment()
    env["PYTHONPATH"] = f"{lab}:{env.get('PYTHONPATH', '')}"
    done = run(args, env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "moa-bench: error: strategy 'broken_lab.fuse': importing broken_lab raised "
        "ZeroDivisionError: division by zero"
    )


def test_an_edited_strategy_is_another_run(tmp_path: Path, lab: Path) -> None:
    overrides = (
        "benchmark=alpaca_eval",
        "benchmark.limit=1",
        "task=generate",
        "moa=moa_lite",
        "moa.layers.1.0.strategy=lab_strategies.flaky",
        "moa.name=flaky_lite",  # a changed preset runs under a name of its own
    )
    cfg = config(tmp_path, *overrides)
    assert asyncio.run(dispatch(cfg)) == 0
    identity = RunDir(Path(str(cfg.run_dir))).identity()
    assert identity is not None
    settings = identity.aggregator.settings()
    assert set(settings) == {"strategy", "source_sha256"}
    assert re.fullmatch("[0-9a-f]{64}", settings["source_sha256"])

    module = lab / "lab_strategies.py"
    module.write_text(module.read_text().replace("a bug", "another bug"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"holds a different run .*aggregator"):
        asyncio.run(dispatch(config(tmp_path, *overrides)))


def test_moas_own_strategies_are_not_fingerprinted(tmp_path: Path) -> None:
    """They change with the harness, as the built-in kinds do: their runs' identities are as
    they were before fingerprints."""
    cfg = config(tmp_path, "moa=self_moa_seq")
    spec = build_mixture(to_dict(cfg.moa), resolve(cfg).catalogue)
    assert spec.final.settings("strategy") == {
        "strategy": "moa.strategy.sliding_window",
        "options": {"window": 4},
    }
