"""Typed access to the installed `alpaca_eval` package, so our judge runs its code, not a copy.

Importing `alpaca_eval` sets the root logger to INFO (`alpaca_eval.annotators.base` does so at
import time) and pulls in datasets, sklearn and patsy; we therefore import it lazily, once, and
put the root logger's level back.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping, Sequence
from importlib import resources
from types import ModuleType
from typing import Any, cast

import yaml


@functools.cache
def _module(name: str) -> ModuleType:
    root = logging.getLogger()
    level = root.level
    try:
        return importlib.import_module(name)
    finally:
        root.setLevel(level)


def read_evaluator_file(*parts: str) -> str:
    """A file under `alpaca_eval/evaluators_configs/`, read from the installed package."""
    _module("alpaca_eval")
    path = resources.files("alpaca_eval").joinpath("evaluators_configs", *parts)
    return path.read_text(encoding="utf-8")


def annotator_config(name: str) -> dict[str, Any]:
    """The annotator's entry in its `configs.yaml`, as alpaca_eval's `load_configs` reads it."""
    configs = yaml.safe_load(read_evaluator_file(name, "configs.yaml"))
    return cast(dict[str, Any], configs[name])


def make_prompt(template: str, fields: Mapping[str, str]) -> str:
    """`alpaca_eval.utils.make_prompts` for one row: first-occurrence replacement, in order."""
    import pandas as pd

    utils = _module("alpaca_eval.utils")
    prompts, _ = utils.make_prompts(df=pd.DataFrame([dict(fields)]), template=template)
    return cast(str, prompts[0])


def prompt_to_chatml(prompt: str) -> list[dict[str, str]]:
    return cast(list[dict[str, str]], _module("alpaca_eval.utils").prompt_to_chatml(prompt))


def random_seeded_choice(seed: str, choices: Sequence[Any]) -> Any:
    return _module("alpaca_eval.utils").random_seeded_choice(seed=seed, choices=list(choices))


def package_version() -> str:
    """What `SingleAnnotator` records as each call's `version`: `alpaca_eval==0.6.6`."""
    utils = _module("alpaca_eval.utils")
    return cast(str, utils.get_multi_package_version(["alpaca_eval"]))


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
