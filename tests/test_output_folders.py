"""The browser's and the report's folders: each writes only into an empty folder or its own, and
deletes only what it listed as written; the browser reads the benchmark files where the run read
them, never downloads, says what a run is shown without, and rebuilds it once they are there."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks import fetch as fetch_mod
from eval.benchmarks.data import Data
from eval.report.build import MARKER, write_report
from eval.view.site import MANIFEST, build_site, folder
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA, scripted_runs

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

RUNS = (
    ("benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=2"),
    ("benchmark=alpaca_eval", "moa=moa_lite", "benchmark.limit=2"),
)
MT_BENCH = "mt_bench/moa_lite@scripted~first2"
DATA = Data(str(SHARED_DATA))
ALPACA = "alpaca_eval/moa_lite@scripted~first2"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small judged runs, made with `data_dir` (as their config.yaml records)."""
    return scripted_runs(tmp_path_factory.mktemp("made"), RUNS)


@pytest.fixture
def runs(made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the runs; any download fails the test, and the download cache is empty."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"unexpected download: {args} {kwargs}")

    monkeypatch.setattr(fetch_mod, "HTTP", refuse)
    monkeypatch.setattr(fetch_mod, "hf_hub_download", refuse)
    monkeypatch.setenv("MOA_BENCH_CACHE", str(tmp_path / "empty-cache"))
    shutil.copytree(made, tmp_path / "runs")
    yield tmp_path / "runs"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def rows(site: Path, key: str) -> list[dict[str, Any]]:
    """A run's instance rows as the site holds them (`MOA.put(path, rows);`)."""
    text = (site / "data" / folder(key) / "rows.js").read_text(encoding="utf-8")
    data: list[dict[str, Any]] = json.loads(text[text.index(",") + 1 : text.rindex(")")])
    return data


def recorded_data_dir(runs: Path, key: str, value: str) -> None:
    config = runs / key / "config.yaml"
    text = config.read_text(encoding="utf-8")
    assert f"data_dir: {SHARED_DATA}\n" in text
    config.write_text(text.replace(f"data_dir: {SHARED_DATA}\n", f"data_dir: {value}\n"))


# --- the browser's folder ------------------------------------------------------------------------


def test_a_folder_with_a_data_subfolder_is_refused_and_loses_nothing(
    runs: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    for name in ("data/photos/cat.jpg", "data/taxes/2024.csv", "notes.txt"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text(name, encoding="utf-8")
    before = tree(home)
    with pytest.raises(ConfigError, match=r"view.out_dir=.*home is not a browser folder"):
        build_site(runs, home, DATA)
    assert tree(home) == before


def test_a_rebuild_deletes_only_the_folders_its_manifest_lists(runs: Path, tmp_path: Path) -> None:
    site, victim = tmp_path / "site", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine", encoding="utf-8")
    assert sorted(build_site(runs, site, DATA).built) == [ALPACA, MT_BENCH]
    mine = {"data/mine/keep.txt": "mine", "notes.txt": "notes"}  # put there since
    for name, text in mine.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text, encoding="utf-8")
    manifest = json.loads((site / MANIFEST).read_text(encoding="utf-8"))
    manifest["folders"] += ["../../victim", "mine"]  # listed, but not a data folder's name
    (site / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    shutil.rmtree(runs / ALPACA)
    rebuilt = build_site(runs, site, DATA)
    assert rebuilt.kept == [MT_BENCH] and rebuilt.built == []
    assert sorted(p.name for p in (site / "data").iterdir()) == ["mine", folder(MT_BENCH)]
    assert all((site / name).read_text(encoding="utf-8") == t for name, t in mine.items())
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_a_data_folder_the_manifest_does_not_list_is_never_overwritten(
    runs: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    build_site(runs, site, DATA)
    shutil.copytree(runs / MT_BENCH, runs / "mt_bench" / "other")
    theirs = site / "data" / folder("mt_bench/other") / "rows.js"
    theirs.parent.mkdir()
    theirs.write_text("theirs", encoding="utf-8")
    with pytest.raises(ConfigError, match="was not written by the browser"):
        build_site(runs, site, DATA)
    assert theirs.read_text(encoding="utf-8") == "theirs"


def test_a_site_built_before_manifests_were_marked_is_rebuilt(runs: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    build_site(runs, site, DATA)
    manifest = json.loads((site / MANIFEST).read_text(encoding="utf-8"))
    legacy = {"layout": 2, "runs": manifest["runs"]}  # as builds wrote it before
    (site / MANIFEST).write_text(json.dumps(legacy), encoding="utf-8")
    shutil.rmtree(runs / ALPACA)
    assert build_site(runs, site, DATA).built == [MT_BENCH]
    assert [p.name for p in (site / "data").iterdir()] == [folder(MT_BENCH)]


# --- the browser's benchmark data --------------------------------------------------------------


def test_the_browser_reads_the_data_the_run_read(runs: Path, tmp_path: Path) -> None:
    """Without `data_dir`, the browser downloaded again (offline: no categories)."""
    built = build_site(runs, tmp_path / "site", Data())
    assert built.lacking == []
    tags = [row["tags"] for row in rows(tmp_path / "site", MT_BENCH)]
    assert tags == [["writing"], ["writing"]]  # questions 81 and 82


def test_a_run_shown_without_its_data_says_so_and_is_rebuilt_once_it_is_there(
    runs: Path, tmp_path: Path
) -> None:
    recorded_data_dir(runs, MT_BENCH, str(tmp_path / "moved"))
    site = tmp_path / "site"
    first = build_site(runs, site, Data())
    (line,) = first.lacking
    assert line.startswith(f"{MT_BENCH}: shown without its categories (mt_bench/question.jsonl")
    assert str(tmp_path / "moved") in line and "data_dir=" in line
    assert [row["tags"] for row in rows(site, MT_BENCH)] == [[], []]
    again = build_site(runs, site, Data())
    assert again.built == [] and again.lacking == [line]  # still said while it lacks them
    with_data = build_site(runs, site, Data(str(SHARED_DATA)))
    assert with_data.built == [MT_BENCH] and with_data.lacking == []
    assert [row["tags"] for row in rows(site, MT_BENCH)] == [["writing"], ["writing"]]


# --- the report's folder -----------------------------------------------------------------------


def test_a_report_folder_holding_a_users_files_is_refused(runs: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("README.md", "todo.md", "budget.csv", "cat.png"):
        (notes / name).write_text(name, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"report.out_dir=.*notes is not a report folder"):
        write_report(runs, notes)
    assert {p.name: p.read_text() for p in notes.iterdir()} == {
        n: n for n in ("README.md", "todo.md", "budget.csv", "cat.png")
    }


def test_a_report_lists_what_it_wrote_and_a_rebuild_removes_only_that(
    runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    write_report(runs, out)
    written = json.loads((out / MARKER).read_text(encoding="utf-8"))["files"]
    assert "index.md" in written and "table2b_mt_bench.csv" in written
    assert sorted(written) == sorted(p.name for p in out.iterdir() if p.name != MARKER)
    (out / "mine.md").write_text("mine", encoding="utf-8")
    shutil.rmtree(runs / MT_BENCH)
    write_report(runs, out)
    assert not (out / "table2b_mt_bench.csv").exists()
    assert (out / "mine.md").read_text(encoding="utf-8") == "mine"


def test_a_report_made_before_the_marker_is_rebuilt(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(runs, out)
    (out / MARKER).unlink()  # as reports were written before
    (out / "mine.md").write_text("mine", encoding="utf-8")  # listed under "other files"
    write_report(runs, out)
    shutil.rmtree(runs / MT_BENCH)
    (out / MARKER).unlink()
    write_report(runs, out)
    assert not (out / "table2b_mt_bench.csv").exists()
    assert (out / "mine.md").read_text(encoding="utf-8") == "mine"
