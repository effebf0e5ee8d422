"""The judge kinds by name, each imported only when a spec asks for it: `pairwise` pulls in
alpaca-eval and pandas, which a one-prompt run never needs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from eval.judges.kind import Judged, JudgeKind
from eval.judges.spec import JudgeSpec, load_spec, spec_name
from moa.errors import ConfigError

KINDS = {
    "pairwise": "eval.judges.pairwise",
    "single": "eval.judges.single",
    "rubric": "eval.judges.rubric",
    "exact": "eval.judges.exact",
    "pairwise_baseline": "eval.judges.pairwise_baseline",
}


def run_spec(spec: JudgeSpec, benchmark: Judged) -> JudgeKind:
    """The judge `spec` describes, over `benchmark`, run by the kind it names."""
    if spec.kind not in KINDS:
        raise ConfigError(
            f"judge spec {spec.name!r}: unknown kind {spec.kind!r} (known: {', '.join(KINDS)})"
        )
    kind: type[JudgeKind] = importlib.import_module(KINDS[spec.kind]).KIND
    return kind(spec, benchmark)


def judge_for(settings: Mapping[str, Any], benchmark: Judged) -> JudgeKind:
    """The judge a benchmark's config section names (`judge_spec`)."""
    return run_spec(load_spec(spec_name(settings)), benchmark)
