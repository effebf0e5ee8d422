"""`task=calibrate` plans its calls before any: `calibrate.dry_run=true` prints the plan and sends
nothing, a real calibration prints it first and then sends exactly the requests planned, and a
plan after it finds them all in the cache. On the scripted judge, with the real published
AlpacaEval annotations of ../shared/data and a FastChat file made of the real MT-Bench questions.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from eval.cli import dispatch
from eval.settings import resolve
from moa.providers.scripted import Scripted
from moa.types import ChatMessage, Completion, GenerateConfig
from tests.kit.cli import SHARED_DATA, scripted_config
from tests.test_calibrate_graded import _fastchat_file

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
PLAN = re.compile(
    r"^plan: judge (\S+) on endpoint (.+?): (.+?); ([\d,]+) requests, ([\d,]+) in the cache, "
    r"([\d,]+) to make; about ([\d,]+) input and ([\d,]+) output tokens; "
    r"\$([\d,.]+) to pay of \$([\d,.]+)",
    re.MULTILINE,
)
ALPACA = ("benchmark=alpaca_eval", "calibrate.models=[alpaca-7b,claude-2]", "calibrate.limit=12")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


class Calibration:
    """`task=calibrate` in process on the scripted judge, its files under `root`, each request
    that reaches the scripted provider counted."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.sent = 0
        answer = Scripted.generate

        async def counted(
            provider: Scripted,
            model: str,
            messages: Sequence[ChatMessage],
            config: GenerateConfig,
            sample: int,
        ) -> Completion:
            self.sent += 1
            return await answer(provider, model, messages, config, sample)

        monkeypatch.setattr(Scripted, "generate", counted)

    def __call__(self, capsys: pytest.CaptureFixture[str], *overrides: str) -> re.Match[str]:
        """Runs it; returns its plan line."""
        out_dir = f"calibrate.out_dir={self.root / 'calibrate'}"
        config = scripted_config(self.root, "task=calibrate", out_dir, *overrides)
        capsys.readouterr()
        assert asyncio.run(dispatch(config)) == 0
        printed = capsys.readouterr().out
        (plan,) = PLAN.finditer(printed)
        return plan

    def calibration(self) -> Mapping[str, object]:
        (path,) = (self.root / "calibrate").rglob("calibration.json")
        return json.loads(path.read_text())  # type: ignore[no-any-return]


def _counts(plan: re.Match[str]) -> tuple[int, int, int]:
    """Requests, in the cache, to make."""
    return _number(plan[4]), _number(plan[5]), _number(plan[6])


def test_the_dry_run_plans_what_the_alpaca_eval_calibration_then_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calibrate = Calibration(tmp_path, monkeypatch)
    plan = calibrate(capsys, *ALPACA, "calibrate.swap_share=0.25", "calibrate.dry_run=true")
    assert calibrate.sent == 0  # nothing sent, nothing written
    assert not (tmp_path / "calibrate").exists() and not (tmp_path / "calls.sqlite").exists()
    assert plan[1] == "scripted/gpt-4-1106-preview" and plan[2] == "scripted (scripted)"
    assert plan[3] == "24 pairs, 6 swapped pairs"  # 12 per model, a quarter of them again
    requests, cached, to_make = _counts(plan)
    assert requests == to_make == 30 and cached == 0  # the real pairs all differ: no tie
    assert _number(plan[7]) > 0 and _number(plan[8]) == 30  # the annotator's one token each

    real = calibrate(capsys, *ALPACA, "calibrate.swap_share=0.25")
    assert _counts(real) == _counts(plan)  # the real run prints the same plan first
    assert calibrate.sent == to_make  # and sends exactly what it planned
    assert calibrate.calibration()["calls"] == to_make

    again = calibrate(capsys, *ALPACA, "calibrate.swap_share=0.25", "calibrate.dry_run=true")
    assert _counts(again) == (30, 30, 0) and calibrate.sent == to_make
    assert again[9] == "0.00"


def test_the_dry_run_prices_the_calls_at_the_catalogue_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On an endpoint that bills: the estimated tokens at the judge's catalogue price."""
    calibrate = Calibration(tmp_path, monkeypatch)
    bills = "++endpoints.scripted.bills=true"
    plan = calibrate(capsys, *ALPACA, bills, "calibrate.dry_run=true")
    catalogue = resolve(scripted_config(tmp_path, bills)).catalogue
    usd = catalogue.by_address(plan[1]).cost(_number(plan[7]), _number(plan[8]))
    assert usd > 0 and plan[9] == plan[10] == f"{usd:,.2f}"
    assert "does not bill" not in plan.string and calibrate.sent == 0


def test_the_dry_run_plans_what_the_mt_bench_calibration_then_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gpt-4_single.jsonl"
    _fastchat_file(path)
    calibrate = Calibration(tmp_path, monkeypatch)
    graded = ("benchmark=mt_bench", f"calibrate.file={path}", "calibrate.limit=5")
    plan = calibrate(capsys, *graded, "calibrate.dry_run=true")
    assert calibrate.sent == 0 and not (tmp_path / "calibrate").exists()
    assert plan[3] == "10 graded items"  # 5 judgments of each of the file's two models
    assert _counts(plan) == (10, 0, 10)
    calibrate(capsys, *graded)
    assert calibrate.sent == 10 == calibrate.calibration()["calls"]
    assert _counts(calibrate(capsys, *graded, "calibrate.dry_run=true")) == (10, 10, 0)
    assert calibrate.sent == 10
