"""A variant's name is one folder under `<results_dir>/<benchmark>/`, and a run directory is one
that moa-bench made: a bad name, or a folder holding someone else's files, is refused in one
line before anything is written; a name made from a model's address is one folder too."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from eval.mixture_config import check_name
from eval.rundir import RunDir
from eval.runs import load_runs
from eval.settings import CONF_DIR
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA, command, run, scripted_runs
from tests.kit.fakeserver import FakeServer, serve_in_thread
from tests.test_rundir import identity

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
REFUSED = "cannot name a run directory"


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root`, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", ["../../victim", "a/b", ".", "..", "", "/abs", ".hidden",
                                  "a\\b", "line\nbreak"])  # fmt: skip
def test_a_name_that_is_not_one_folder_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=REFUSED):
        check_name(name)


@pytest.mark.parametrize("name", ["moa", "moa_lite", "single_qwen1.5-110b", "fig4_rank_l3",
                                  "lite_drop", "single_replay+Together-MoA", "v2~b@x"])  # fmt: skip
def test_a_name_that_is_one_folder_stays_as_it_is(name: str) -> None:
    assert check_name(name) == name


def test_the_command_refuses_a_bad_name_or_a_foreign_folder_and_writes_nothing(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim"  # where `moa.name=../../victim` would land
    victim.mkdir()
    (victim / "notes.txt").write_text("mine", encoding="utf-8")
    cases = {
        "escape": ["moa.name=../../victim"],
        "two levels": ["moa.name=a/b"],
        "parent": ["moa.name=.."],
        "empty": ["moa.name="],
        "adopted": [f"run_dir={victim}"],
    }
    before = tree(tmp_path)
    server = FakeServer()
    with serve_in_thread(server) as url, ThreadPoolExecutor(3) as pool:
        done = dict(
            zip(
                cases,
                pool.map(lambda c: run(command(tmp_path, url, "benchmark.limit=1", *cases[c])),
                         cases),
                strict=True,
            )
        )  # fmt: skip
    for case, result in done.items():
        lines = result.stderr.splitlines()
        assert result.returncode == 2, (case, result.stderr)
        assert len(lines) == 1 and lines[0].startswith("moa-bench: error: "), (case, lines)
        expected = "holds files that are not a moa-bench run" if case == "adopted" else REFUSED
        assert expected in lines[0], (case, lines[0])
        assert result.stdout == "", (case, result.stdout)
    assert server.log == []
    assert tree(tmp_path) == before  # no run directory, no log, the victim's file as it was
    assert not (tmp_path / "runs").exists()


def test_a_folder_holding_no_run_is_never_adopted(tmp_path: Path) -> None:
    folder = RunDir(tmp_path / "mine")
    folder.path.mkdir()
    (folder.path / "config.yaml").write_text("my own config\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"holds files that are not a moa-bench run \(config"):
        folder.claim(identity())
    assert os.listdir(folder.path) == ["config.yaml"]
    assert (folder.path / "config.yaml").read_text(encoding="utf-8") == "my own config\n"


def test_a_folder_a_run_started_in_is_claimed(tmp_path: Path) -> None:
    """What precedes `run.json`: Hydra's log, the lock, a killed writer's leftover."""
    folder = RunDir(tmp_path / "moa")
    folder.path.mkdir()
    for name in ("cli.log", ".lock", ".run.json.999999999.abc.tmp"):
        (folder.path / name).write_text("", encoding="utf-8")
    folder.claim(identity())
    assert folder.identity() == identity()
    assert sorted(os.listdir(folder.path)) == [".lock", "cli.log", "run.json"]


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        (["moa=single", "moa.aggregator=replay/Together-MoA"], "single_replay+Together-MoA"),
        (["moa=single", "moa.aggregator=qwen1.5-72b"], "single_qwen1.5-72b"),
        (["moa=as_proposer", "moa.model=together/Qwen/Qwen1.5-72B-Chat"],
         "as_proposer_together+Qwen+Qwen1.5-72B-Chat"),
        (["moa=single_proposer", "moa.proposers=[together/Qwen/Qwen1.5-72B-Chat]"],
         "single_proposer_together+Qwen+Qwen1.5-72B-Chat_n6"),
        (["moa=published_proposers", "moa.aggregator=openai/gpt-4o-2024-05-13"],
         "published_openai+gpt-4o-2024-05-13"),
    ],
)  # fmt: skip
def test_a_name_made_from_a_model_is_one_folder(overrides: list[str], name: str) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", ["benchmark=alpaca_eval", *overrides])
    assert cfg.moa.name == name
    assert cfg.run_dir == f"results/runs/alpaca_eval/{name}"


@needs_data
def test_a_run_of_published_outputs_is_found_by_the_report(tmp_path: Path) -> None:
    runs = scripted_runs(
        tmp_path,
        [("benchmark=alpaca_eval", "moa=single", "moa.aggregator=replay/Together-MoA",
          "benchmark.limit=2")],
    )  # fmt: skip
    found, skipped = load_runs(runs)
    assert [r.name for r in found] == ["single_replay+Together-MoA@scripted~first2"]
    assert skipped == []
    assert found[0].variant == "single_replay+Together-MoA"
