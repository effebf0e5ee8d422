"""Typed access to the installed `alpaca_eval` package, so our judge runs its code, not a copy.

Importing `alpaca_eval` costs seconds (its `analyze` pulls in scipy.stats, and datasets), sets
the root logger to INFO (`alpaca_eval.annotators.base` does so at import time); so what a judge
needs before its first request is had without importing it: the evaluator files are read as the
package's data, located by `importlib.util.find_spec` (which runs none of its code), and the
few string helpers that build a request (`make_prompts` for one row, `prompt_to_chatml`,
`random_seeded_choice`) are rendered here as upstream does, which the parity tests check
against upstream's own functions to the byte. The parsers and metrics stay upstream's: the
package is imported once, in a thread while the first requests are out (`load_parsers`), and
the root logger's level put back.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import yaml

_PACKAGE = "alpaca_eval"
_START, _END = "<|im_start|>", "<|im_end|>"  # `prompt_to_chatml`'s defaults


_IMPORTING = threading.Lock()  # one import at a time: each puts the root logger's level back


class _LevelBefore(logging.Filter):
    """Passes a record only at the level its logger had before the package's import set the
    root logger to INFO: the import runs in a thread, beside requests that log at INFO."""

    def __init__(self, root_level: int) -> None:
        super().__init__()
        self.root_level = root_level

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger.level == logging.NOTSET:
            logger = logger.parent
        level = self.root_level if logger is None or logger is logging.root else logger.level
        return record.levelno >= level


@functools.cache
def _module(name: str) -> ModuleType:
    with _IMPORTING:
        root = logging.getLogger()
        level = root.level
        guard = _LevelBefore(level)
        handlers = list(root.handlers)
        for handler in handlers:
            handler.addFilter(guard)
        try:
            return importlib.import_module(name)
        finally:
            root.setLevel(level)
            for handler in handlers:
                handler.removeFilter(guard)


def load_parsers() -> None:
    """Imports the package's parsers and metrics: seconds, so a judge runs it in a thread while
    its first requests are out, rather than on the event loop at the first answer."""
    _module(f"{_PACKAGE}.completion_parsers")
    _module(f"{_PACKAGE}.metrics")


@functools.cache
def _package_dir() -> Path:
    """Where the installed package's files are, found without running its `__init__`."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {_PACKAGE} package is not installed", name=_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def read_evaluator_file(*parts: str) -> str:
    """A file under `alpaca_eval/evaluators_configs/`, read from the installed package."""
    return _package_dir().joinpath("evaluators_configs", *parts).read_text(encoding="utf-8")


def annotator_config(name: str) -> dict[str, Any]:
    """The annotator's entry in its `configs.yaml`, as alpaca_eval's `load_configs` reads it."""
    configs = yaml.safe_load(read_evaluator_file(name, "configs.yaml"))
    return cast(dict[str, Any], configs[name])


@functools.cache
def _template_fields(template: str) -> tuple[str, ...]:
    """The `{field}`s of a template in first-occurrence order, as `make_prompts` finds them."""
    found = Counter(re.findall(r"{([^ \s]+?)}", template))
    if any(n != 1 for n in found.values()):
        raise ValueError(f"All placeholders should be repeated batch_size=1 times but {found}.")
    return tuple(found)


def make_prompt(template: str, fields: Mapping[str, str]) -> str:
    """`alpaca_eval.utils.make_prompts` for one row of strings, without the DataFrame it builds
    (a third of a millisecond a prompt): each field's first occurrence replaced, in template
    order, one after the other (a value holding a later `{field}` gets it replaced, as upstream)."""
    prompt = template
    for name in _template_fields(template):
        prompt = prompt.replace("{" + name + "}", str(fields[name]), 1)
    return prompt


def prompt_to_chatml(prompt: str) -> list[dict[str, str]]:
    """`alpaca_eval.utils.prompt_to_chatml`: the chat messages of a prompt in ChatML markup,
    a `system name=x` header giving a system message with those keys."""
    prompt = prompt.strip()
    if not (prompt.startswith(_START) and prompt.endswith(_END)):
        raise ValueError(f"not a ChatML prompt (from {_START} to {_END}): {prompt[:80]!r}")
    messages = []
    for part in prompt.split(_START)[1:]:
        header, body = part.split("\n", 1)
        role = header.strip()
        content = body.split(_END, 1)[0].strip()
        extra: dict[str, str] = {}
        if role.startswith("system") and role != "system":
            pairs = (word.split("=", 1) for word in role.split("system", 1)[-1].split(" ") if word)
            extra = {key: value for key, value in pairs}
            role = "system"
        messages.append({"content": content, "role": role, **extra})
    return messages


def random_seeded_choice(seed: str, choices: Sequence[Any]) -> Any:
    """`alpaca_eval.utils.random_seeded_choice`: one of `choices`, drawn with a string seed."""
    return random.Random(seed).choices(list(choices), k=1)[0]


@functools.cache
def package_version() -> str:
    """What `SingleAnnotator` records as each call's `version`: `alpaca_eval==0.6.6`."""
    return f"{_PACKAGE}=={importlib.metadata.version(_PACKAGE)}"


def logprob_parser(completion: Mapping[str, Any], **kwargs: Any) -> list[float]:
    parsed = _module("alpaca_eval.completion_parsers").logprob_parser(dict(completion), **kwargs)
    return [float(x) for x in parsed]


def ranking_parser(completion: str, **kwargs: Any) -> list[float]:
    parsed = _module("alpaca_eval.completion_parsers").ranking_parser(completion, **kwargs)
    return [float(x) for x in parsed]


def get_winrate(annotations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return cast(dict[str, Any], _module("alpaca_eval.metrics").get_winrate(list(annotations)))


def get_length_controlled_winrate(
    annotations: Sequence[Mapping[str, Any]], positions: Sequence[int]
) -> dict[str, Any]:
    """alpaca_eval's LC metric; `save_weights_dir=None` so it does not write into site-packages.

    Its GLM looks each row's instruction difficulty up by the row's index, taken as the
    instruction's position in AlpacaEval: the rows are given as a frame indexed by `positions`,
    so a subset (`ids`, `categories`, reordered) gets its own instructions' difficulty, not that
    of the first rows of the set."""
    import pandas as pd

    metrics = _module("alpaca_eval.metrics")
    frame = pd.DataFrame(list(annotations), index=list(positions))
    out = metrics.get_length_controlled_winrate(frame, save_weights_dir=None)
    return cast(dict[str, Any], out)


def hub_download_kwargs() -> dict[str, Any]:
    """The arguments alpaca_eval's GLM passes to `hf_hub_download`, so we fill the same cache."""
    constants = _module("alpaca_eval.constants")
    return {
        "repo_id": "tatsu-lab/alpaca_eval",
        "repo_type": "dataset",
        "token": constants.DATASETS_TOKEN,
        "force_download": constants.DATASETS_FORCE_DOWNLOAD,
        "cache_dir": constants.DEFAULT_CACHE_DIR,
    }
