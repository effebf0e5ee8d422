"""The benchmark tasks, by name: `eval.tasks.<name>` defines the task of benchmark `<name>`.

Adding a benchmark is one module here (a `Task` subclass named in its `TASK`) and one YAML file
in `conf/benchmark/`. Task modules are imported only when asked for: the judges they join pull
in `alpaca_eval` and `pandas`, which a one-prompt run never needs.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eval.tasks.base import Data, Task
from moa.errors import ConfigError

__all__ = ["Data", "Task", "known", "task_class", "task_for", "task_reading"]


def known() -> list[str]:
    """Every benchmark name that has a task module."""
    here = str(Path(__file__).parent)
    return sorted(m.name for m in pkgutil.iter_modules([here]) if m.name != "base")


def task_class(name: str) -> type[Task]:
    if name not in known():
        raise ConfigError(f"unknown benchmark {name!r} (known: {', '.join(known())})")
    cls: type[Task] = importlib.import_module(f"eval.tasks.{name}").TASK
    return cls


def task_for(settings: Mapping[str, Any], data: Data | None = None) -> Task:
    """The task of a benchmark config section (its `name` picks the module)."""
    return task_class(str(settings["name"]))(settings, data or Data())


def task_reading(path: Path) -> Task:
    """The task whose judge writes files like `path`, for re-scoring it."""
    for name in known():
        cls = task_class(name)
        if cls.reads(path):
            return cls({"name": name}, Data())
    raise ConfigError(
        f"rescore.path={path}: not a judge file moa-bench knows (an alpaca-eval "
        "annotations.json, a FastChat *_single.jsonl or a FLASK review .jsonl)"
    )
