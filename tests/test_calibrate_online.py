"""`task=calibrate` online: every model whose published AlpacaEval judgments ../shared/data holds
is fetched from alpaca-eval's repository at the pinned commit, checked against its sha256."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.benchmarks import fetch as fetch_mod
from eval.calibrate.published import ANNOTATIONS, published
from moa.errors import ConfigError
from tests.kit.cli import SHARED_DATA
from tests.test_benchmarks import FakeNetwork

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
SUFFIX = ".weighted_alpaca_eval_gpt4_turbo.json"
MODELS = sorted(
    p.name.removesuffix(SUFFIX) for p in (SHARED_DATA / "alpaca_eval" / "annotations").iterdir()
)


def test_every_published_model_downloads_at_the_pinned_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(MODELS) == 13
    network = FakeNetwork()
    monkeypatch.setattr(fetch_mod, "HTTP", network)
    for model in MODELS:
        source = fetch_mod.SOURCES[ANNOTATIONS.format(model=model)]
        assert isinstance(source, fetch_mod.UrlSource)
        assert source.url == (
            "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/"
            f"cd543a149df89434d8a54582c0151c0b945c3d20/results/{model}/"
            "weighted_alpaca_eval_gpt4_turbo/annotations.json"
        )
        network.files[source.url] = (SHARED_DATA / ANNOTATIONS.format(model=model)).read_bytes()
    for model in MODELS:
        online = published(model, 5, None, str(tmp_path))
        assert online == published(model, 5, str(SHARED_DATA), None)
    assert len(network.urls) == 13


def test_a_changed_upstream_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = fetch_mod.SOURCES[ANNOTATIONS.format(model="claude-2")]
    assert isinstance(source, fetch_mod.UrlSource)
    monkeypatch.setattr(fetch_mod, "HTTP", FakeNetwork({source.url: b"[]"}))
    with pytest.raises(ConfigError, match=r"calibrate\.models: claude-2: .*cannot be downloaded"):
        published("claude-2", 5, None, str(tmp_path))
    assert not (tmp_path / ANNOTATIONS.format(model="claude-2")).exists()
