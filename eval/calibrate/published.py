"""The paper judge's published AlpacaEval judgments: the pairs a substitute judge re-judges.

alpaca-eval publishes, per model, GPT-4 Turbo's `annotations.json` (both outputs, the raw
completion, the preference). They are read from `data_dir` (`alpaca_eval/annotations/`, the
layout of `../shared/data`) or fetched from alpaca-eval's repository at the pinned commit of
`eval.benchmarks.fetch`, where a hash of the file is known.
"""

from __future__ import annotations

from eval.benchmarks import DataError
from eval.benchmarks.fetch import fetch
from eval.judges import alpaca_eval as ae
from moa.errors import ConfigError

ANNOTATIONS = "alpaca_eval/annotations/{model}.weighted_alpaca_eval_gpt4_turbo.json"


def published(
    model: str, limit: int | None, data_dir: str | None, cache_dir: str | None
) -> list[ae.Annotation]:
    """The first `limit` judgments of `model` that carry a preference, in the published order."""
    try:
        path = fetch(ANNOTATIONS.format(model=model), data_dir=data_dir, cache_dir=cache_dir)
    except DataError as exc:
        raise ConfigError(f"calibrate.models: {model}: {exc}") from None
    rows = [a for a in ae.read_annotations(path) if a.preference is not None]
    return rows[:limit] if limit else rows
