"""Every number says what made it: a changed preset is not the paper's row, judges and providers
are never mixed, repeats are grouped everywhere, every run is found, stand-ins are named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from eval.report import write_report
from eval.settings import CONF_DIR, to_dict
from eval.suite import EXPERIMENTS, sweep_points
from eval.variant_name import MARK, changed_name, preset_section
from tests.kit.cli import MOA_BENCH, SHARED_DATA, run

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

QWEN25 = "+catalogue.qwen25-72b={address:together/Qwen/Qwen2.5-72B-Instruct-Turbo,price_in:1.2,price_out:1.2}"  # noqa: E501


def scripted(root: Path, *overrides: str) -> list[str]:
    """The real command, offline on the scripted fake, its files under `root`."""
    return [
        MOA_BENCH, "provider_override=scripted", f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}", f"cache.path={root / 'calls.sqlite'}",
        "benchmark=alpaca_eval", *overrides,
    ]  # fmt: skip


def report_of(root: Path) -> Path:
    out = root / "report"
    assert write_report(root / "runs", out).skipped == []
    return out


# --- 1. a changed preset ---------------------------------------------------------------------


def test_the_naming_rule() -> None:
    preset = {"name": "moa_lite", "aggregator": "qwen1.5-72b", "layers": [[{"model": "a"}]]}
    assert changed_name(dict(preset), preset) == "moa_lite"
    changed = {**preset, "aggregator": "qwen25-72b"}
    name = changed_name(changed, preset)
    assert name.startswith(f"moa_lite{MARK}") and name == changed_name(dict(changed), preset)
    assert changed_name({**preset, "aggregator": "x"}, preset) != name  # another change
    assert changed_name({**changed, "name": "mine"}, preset) == "mine"  # named: kept


def test_no_experiment_of_the_paper_is_renamed() -> None:
    """The sweeps set knobs that their names carry (`single_${.aggregator}`, `fig4_...`): every
    point keeps its name, so its run directory and its report row. (A point's `moa` section is
    the same on every benchmark: each is composed once.)"""
    checked = set()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        for preset in ("moa", "moa_lite", "single", "multi_proposer", "llm_ranker"):
            # the preset as written, read without composing the config, is Hydra's (defaults,
            # relative and absolute interpolations, resolvers)
            assert preset_section(preset) == to_dict(compose("config", [f"moa={preset}"]).moa)
        for experiment in EXPERIMENTS:
            head = compose("config", [f"+experiment={experiment}"], return_hydra_config=True)
            params = {str(k): str(v) for k, v in head.hydra.sweeper.params.items()}
            for point in sweep_points(params):
                moa = tuple(o for o in point if o.startswith("moa"))
                if (experiment, moa) in checked:
                    continue
                checked.add((experiment, moa))
                cfg = compose("config", [f"+experiment={experiment}", *moa])
                (preset,) = [o.split("=", 1)[1] for o in moa if o.startswith("moa=")]
                name = changed_name(to_dict(cfg.moa), preset_section(preset))
                assert name == str(cfg.moa.name), (experiment, moa)
    assert len(checked) > 40


@needs_data
def test_a_changed_preset_is_its_own_run_and_not_the_papers_row(tmp_path: Path) -> None:
    """The README's current-model command (`moa=moa_lite moa.aggregator=qwen25-72b`) wrote
    `moa_lite~first2`, was Table 2a's "MoA-Lite" and refused the real MoA-Lite there later."""
    limit = "benchmark.limit=2"
    changed = run(scripted(tmp_path, "moa=moa_lite", "moa.aggregator=qwen25-72b", QWEN25, limit))
    assert changed.returncode == 0, changed.stderr
    assert "not the preset's run" in changed.stdout
    real = run(scripted(tmp_path, "moa=moa_lite", limit))
    assert real.returncode == 0, real.stderr  # not refused: its directory is its own
    # a run made before the rule, or named so by hand: still not the paper's row
    named = run(scripted(tmp_path, "moa=moa_lite", "moa.name=moa_lite", "moa.aggregator=qwen25-72b",
                         QWEN25, "benchmark.limit=3"))  # fmt: skip
    assert named.returncode == 0, named.stderr
    folders = sorted(p.name for p in (tmp_path / "runs" / "alpaca_eval").iterdir())
    (own,) = [f for f in folders if MARK in f]
    assert own.startswith("moa_lite_changed-") and own.endswith("@scripted~first2")
    assert folders == sorted([own, "moa_lite@scripted~first2", "moa_lite@scripted~first3"])

    report = report_of(tmp_path)
    table2a = pd.read_csv(report / "table2a_alpaca_eval.csv")
    assert table2a["run"].tolist() == ["moa_lite@scripted~first2"]
    other = pd.read_csv(report / "other_alpaca_eval.csv").set_index("run")
    assert set(other.index) == {own, "moa_lite@scripted~first3"}
    note = other.loc["moa_lite@scripted~first3", "note"]
    assert note == "not the paper's MoA-Lite: its aggregator is qwen25-72b, not qwen1.5-72b"
