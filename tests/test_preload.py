"""Imports made in a thread while judging waits on the network (`eval.preload`), and
alpaca-eval's import there, which sets the root logger to INFO, leaving the logs as they were."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from eval.judges import alpaca_upstream
from eval.preload import preload


def test_modules_are_imported_in_a_thread_a_failure_left_to_the_importer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    preload("no_such_module_anywhere", "colorsys").join(timeout=60)
    assert "colorsys" in sys.modules
    assert "no_such_module_anywhere" not in sys.modules


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_an_upstream_import_that_sets_the_root_level_logs_nothing_below_the_level_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `alpaca_eval.annotators.base` does at import, with a request logged at INFO (as an
    HTTP client does) meanwhile: not written; a logger with its own INFO level still is."""
    (tmp_path / "noisy_upstream.py").write_text(
        "import logging\n"
        "logging.getLogger().setLevel(logging.INFO)\n"
        "logging.getLogger('httpx').info('HTTP Request: POST')\n"
        "logging.getLogger('ours').info('a run line')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "noisy_upstream", raising=False)
    root, ours, kept = logging.getLogger(), logging.getLogger("ours"), _Kept()
    levels = root.level, ours.level
    root.setLevel(logging.WARNING)
    ours.setLevel(logging.INFO)
    root.addHandler(kept)
    try:
        alpaca_upstream._module("noisy_upstream")
        assert kept.messages == ["a run line"]
        assert root.level == logging.WARNING
        assert kept.filters == []
    finally:
        root.removeHandler(kept)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
