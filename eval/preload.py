"""Imports a later step needs, started in a thread while this one waits on the network.

Judging is a few thousand requests in flight and little CPU; what follows its answers (alpaca-eval's
parsers and metrics, the statistics' scipy, statsmodels and pandas) takes seconds to import, which
would otherwise stop the event loop at the first answer or come after the last one. A module that
fails to import here is imported again where it is needed, and fails there, with its error."""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable


def preload(
    *modules: str, load: Callable[[str], object] = importlib.import_module
) -> threading.Thread:
    """Imports `modules` (with `load`) in a daemon thread, in order; returns it, started."""

    def run() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                load(name)

    thread = threading.Thread(target=run, name="preload", daemon=True)
    thread.start()
    return thread
