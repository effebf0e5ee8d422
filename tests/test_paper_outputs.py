"""`+experiment=paper_outputs`: the paper's published AlpacaEval outputs, replayed for today's
judge; their `avg_length` is alpaca-eval's leaderboard's."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from eval import paper_rows
from eval.judges.common import avg_length
from eval.records import AgentRecord, RunIdentity
from eval.report.paper_tables import table2a
from eval.runs import Run
from eval.settings import CONF_DIR
from moa.providers.replay import read_outputs
from tests.kit.cli import SHARED_DATA

LEADERBOARD = {"Together-MoA": 1825, "Together-MoA-Lite": 1968, "gpt-4o-2024-05-13": 1873}


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
def test_every_replayed_row_is_published_with_the_leaderboards_length() -> None:
    sweep = OmegaConf.load(CONF_DIR / "experiment" / "paper_outputs.yaml")
    catalogue = OmegaConf.load(CONF_DIR / "catalogue" / "paper.yaml")
    rows = str(sweep.hydra.sweeper.params["moa.aggregator"]).split(",")
    addresses = [str(catalogue[r].address) if r in catalogue else r for r in rows]
    files = {a.removeprefix("replay/") for a in addresses if a.startswith("replay/")}
    assert set(LEADERBOARD) <= files and len(files) == 8
    for name in files:
        outputs = read_outputs(SHARED_DATA / "alpaca_eval" / "model_outputs" / f"{name}.json")
        assert len(outputs) == 805
        if name in LEADERBOARD:
            assert avg_length(outputs.values()) == LEADERBOARD[name]


def _run(variant: str, win_rate: float, scores: dict[str, float], length: float) -> Run:
    aggregator_agent = AgentRecord("scripted/m", 0, "aggregate")
    identity = RunIdentity("alpaca_eval", variant, [], aggregator_agent, "aggregate", {}, None)
    layers, aggregator = paper_rows.configuration(variant) or ([], "m")
    metrics = {"judge": "scripted/judge", "complete": True, "win_rate": win_rate}
    run = Run("alpaca_eval", variant, identity, Path("/nonexistent"), metrics,
              layer_models=layers, aggregator=aggregator, scores=scores,
              avg_length=length)  # fmt: skip
    run.headline = win_rate
    return run


def test_table2a_sets_each_paper_row_beside_its_published_outputs_under_the_same_judge() -> None:
    ours = {str(i): 100.0 * (i % 2) for i in range(10)}  # wins on odd instructions
    theirs = {str(i): 100.0 * (i % 3 == 0) for i in range(8)}  # two fewer judged
    runs = [
        _run("moa", 50.0, ours, 2100.0),
        _run("moa_lite", 50.0, ours, 1500.0),
        _run("single_replay+Together-MoA", 40.0, theirs, 1825.0),
        _run("single_replay+Together-MoA-Lite", 40.0, theirs, 1968.0),
    ]
    frame = table2a(runs).set_index("model")
    assert frame.loc["MoA", "published_avg_length"] == 1825
    assert frame.loc["MoA-Lite", "published_avg_length"] == 1968
    assert frame.loc["MoA", "published_win_rate"] == 40.0 and frame.loc["MoA", "paired_n"] == 8
    common = [ours[k] - theirs[k] for k in theirs]
    assert frame.loc["MoA", "paired_difference"] == pytest.approx(sum(common) / 8)
    assert frame.loc["MoA", "paper_lc"] == pytest.approx(65.1, abs=0.1)  # the paper's, beside
    alone = table2a(runs[:2])  # no published outputs judged: the table as it was
    assert "published_win_rate" not in alone.columns
