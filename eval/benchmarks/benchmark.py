"""What every benchmark provides: its data and its native files, nothing about judging.

A benchmark loads its instances, says how each is decoded and writes the native output files
its reference tool reads (`model_outputs.json`, FastChat's answer jsonl, FLASK's outputs). Its
judge is a spec (`conf/judge_spec/`, named by the benchmark's YAML) run by a judge kind
(`eval.judges.kinds`); `eval.evaluation` puts the two together for a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks.base import Instance
from eval.benchmarks.data import Data
from moa.types import GenerateConfig

if TYPE_CHECKING:
    from eval.rundir import InstanceResult, RunDir


class Benchmark:
    """One benchmark. Subclasses set `name` (the benchmark config's `name`) and implement the
    rest; `settings` is the benchmark's config section as a plain mapping."""

    name: ClassVar[str]
    # The end-of-run summary lists every instance (for small sets such as the demo's).
    table_per_instance: ClassVar[bool] = False
    # The benchmark files the browser's verdicts read, each with what it shows from them. The
    # browser reads them where they are on this machine (`Data.local`) and never downloads.
    view_data: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Mapping[str, Any], data: Data) -> None:
        self.settings = settings
        self.data = data

    def load(self) -> list[Instance]:
        """The whole benchmark, in its own order."""
        raise NotImplementedError

    def generation(self) -> Callable[[Instance], GenerateConfig]:
        """The decoding settings per instance, from the benchmark config's `generation`."""
        default = self.default_generation()
        return lambda instance: default

    def default_generation(self) -> GenerateConfig:
        gen = self.settings["generation"]
        return GenerateConfig(
            temperature=float(gen["temperature"]), max_tokens=int(gen["max_tokens"])
        )

    def recorded_prompt(self) -> dict[str, str] | None:
        """The prompt around each instance (`template`, `system`) for `run.json`, where the
        benchmark has one of its own; the others send the instances as they are."""
        return None

    def output_path(self, run: RunDir, variant: str) -> Path:
        raise NotImplementedError

    def write_outputs(
        self,
        run: RunDir,
        variant: str,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> Path:
        """Writes the finished instances, in benchmark order; failed ones are left out (and
        counted by the caller), never filled with placeholder text."""
        raise NotImplementedError

    def categories_here(self) -> dict[str, str]:
        """Each instance's category from the files listed in `view_data`, where they are on
        this machine; none without them (the browser says so, and downloads nothing)."""
        return {}
