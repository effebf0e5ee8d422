"""The verifiable track's sources pinned: GSM8K and CRUXEval by commit and sha256, MATH-500 by
the Hub's revision and a digest of the rows that decide a score (issue 25).

No network: the Hub download is a fake that copies (or rewrites) the real file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eval.benchmarks import DataError
from eval.benchmarks import fetch as fetch_mod
from eval.benchmarks.fetch import fetch
from eval.benchmarks.row_digest import rows_sha256

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"real benchmark files not found at {SHARED} (the read-only ../shared/data copies)",
)
MATH = "math500/test.jsonl"
COMMIT = re.compile(r"/[0-9a-f]{40}/")


def _math_source() -> fetch_mod.HubSource:
    source = fetch_mod.SOURCES[MATH]
    assert isinstance(source, fetch_mod.HubSource)
    return source


def _rows(rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> str:
    lines = (SHARED / MATH).read_text(encoding="utf-8").splitlines()
    return "".join(json.dumps(rewrite(json.loads(line))) + "\n" for line in lines)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fake Hub serving `served["text"]` and recording each call's arguments."""
    served: dict[str, Any] = {"calls": []}

    def download(**kwargs: Any) -> str:
        served["calls"].append(kwargs)
        out = Path(kwargs["local_dir"]) / kwargs["filename"]
        out.write_text(served["text"], encoding="utf-8")
        return str(out)

    monkeypatch.setattr(fetch_mod, "hf_hub_download", download)
    return served


def test_every_track_source_is_pinned() -> None:
    for relpath in ("gsm8k/test.jsonl", "cruxeval/cruxeval.jsonl"):
        source = fetch_mod.SOURCES[relpath]
        assert isinstance(source, fetch_mod.UrlSource)
        assert COMMIT.search(source.url), source.url  # a full commit id, not a branch
        assert len(source.sha256) == 64
    source = _math_source()
    assert source.revision is not None and len(source.revision) == 40
    assert len(source.rows_sha256) == 64
    assert set(source.row_fields) == {"unique_id", "problem", "answer", "subject", "level"}


@needs_data
def test_the_math_digest_is_that_of_the_prm800k_copy() -> None:
    source = _math_source()
    assert rows_sha256(SHARED / MATH, source.row_fields) == source.rows_sha256
    # ../shared/data/README.md: prm800k's git-lfs object, kept loadable offline via data_dir.
    digest = hashlib.sha256((SHARED / MATH).read_bytes()).hexdigest()
    assert digest == "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132"
    assert fetch(MATH, data_dir=SHARED) == SHARED / MATH


@needs_data
def test_the_hub_copy_may_differ_in_bytes_but_not_in_rows(
    hub: dict[str, Any], tmp_path: Path
) -> None:
    """Key order, escaping and dropped fields (the solution) do not matter; the pin is sent."""
    hub["text"] = _rows(
        lambda row: dict(reversed([(k, row[k]) for k in _math_source().row_fields]))
    )
    path = fetch(MATH, cache_dir=tmp_path)
    assert path == tmp_path / MATH
    assert hub["calls"][0]["repo_id"] == "HuggingFaceH4/MATH-500"
    assert hub["calls"][0]["revision"] == _math_source().revision
    fetch(MATH, cache_dir=tmp_path)
    assert len(hub["calls"]) == 1  # the cached copy is checked and kept


@needs_data
@pytest.mark.parametrize(
    "change",
    [
        lambda row: (
            {**row, "answer": row["answer"] + "1"}
            if row["unique_id"].endswith("/1265.json")
            else row
        ),
        lambda row: {**row, "level": row["level"] % 5 + 1},
        lambda row: {k: v for k, v in row.items() if k != "subject"},
    ],
    ids=["answer", "level", "missing-subject"],
)
def test_a_changed_row_is_refused_in_one_line(
    hub: dict[str, Any], tmp_path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    hub["text"] = _rows(change)
    with pytest.raises(DataError) as error:
        fetch(MATH, cache_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert "do not match the pinned digest" in message
    assert "pass data_dir=... or connect once to download" in message
    assert sorted(p.name for p in (tmp_path / "math500").iterdir()) == []


@needs_data
def test_a_changed_cached_copy_is_downloaded_again(hub: dict[str, Any], tmp_path: Path) -> None:
    cached = tmp_path / MATH
    cached.parent.mkdir(parents=True)
    cached.write_text(_rows(lambda row: {**row, "problem": "What is 1+1?"}), encoding="utf-8")
    hub["text"] = (SHARED / MATH).read_text(encoding="utf-8")
    fetch(MATH, cache_dir=tmp_path)
    assert len(hub["calls"]) == 1
    assert cached.read_bytes() == (SHARED / MATH).read_bytes()
