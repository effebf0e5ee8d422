"""A judge described as data: `conf/judge_spec/<name>.yaml`, named by a benchmark's YAML.

The spec says what the judge is (its kind, the judge config's entry naming its model, where its
template comes from, how messages are laid out, its decoding, how a verdict is parsed, its
swap policy, its baseline, its native file and how verdicts become a metric); a judge kind
(`eval.judges.kinds`) runs it. Each kind declares the values it can run, so a spec asking for
anything else is refused in one line before any call is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from moa.errors import ConfigError

SPEC_DIR = Path(__file__).resolve().parents[2] / "conf" / "judge_spec"
BENCHMARK_DIR = SPEC_DIR.parent / "benchmark"


@dataclass(frozen=True)
class JudgeSpec:
    name: str
    kind: str
    model_key: str
    template: Mapping[str, Any]
    messages: str
    decoding: str | Mapping[str, Any]
    verdict: str
    swap: Mapping[str, Any]
    metric: str
    native_file: str | None = None
    baseline: str | None = None
    check: str | None = None  # the `exact` kind's grader (`eval.verify`)

    def source(self, key: str) -> str:
        """A template field the kind needs, or a one-line refusal naming the spec."""
        value = self.template.get(key)
        if value is None:
            raise ConfigError(f"judge spec {self.name!r}: template.{key} is missing")
        return str(value)


def read_spec(path: Path) -> JudgeSpec:
    """The spec in `path`; an unknown or missing field is a one-line ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"judge spec {path}: unreadable ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"judge spec {path}: not a mapping")
    known = {f.name for f in fields(JudgeSpec)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"judge spec {path}: unknown field(s) {', '.join(unknown)}")
    try:
        return JudgeSpec(name=path.stem, **raw)
    except TypeError as exc:
        raise ConfigError(f"judge spec {path}: {exc}") from None


def load_spec(name: str) -> JudgeSpec:
    path = SPEC_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SPEC_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown judge spec {name!r} (known: {known})")
    return read_spec(path)


def spec_name(benchmark: Mapping[str, Any]) -> str:
    """The judge spec a benchmark's config section names (`judge_spec`); for a section holding
    only the name (a run read back from its directory), its YAML in `conf/benchmark/`."""
    named = benchmark.get("judge_spec")
    if named is None:
        path = BENCHMARK_DIR / f"{benchmark['name']}.yaml"
        on_file = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
        named = (on_file or {}).get("judge_spec")
    if named is None:
        raise ConfigError(f"benchmark {benchmark['name']!r} names no judge_spec")
    return str(named)
