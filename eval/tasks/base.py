"""What every benchmark task provides.

A task joins a benchmark's data (`eval.benchmarks`) to its faithful judge (`eval.judges`): it
loads the instances, says how each is decoded, writes the benchmark's native output files, runs
the judge into the judge's native file, re-scores such a file, gives per-instance scores for the
report's intervals, and teaches the `scripted` fake how its judge answers offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval.benchmarks import Instance
from eval.benchmarks.fetch import default_cache_dir, fetch
from eval.rundir import InstanceResult, RunDir, RunFileError, RunMetrics
from moa.errors import ConfigError
from moa.providers import scripted
from moa.types import GenerateConfig

if TYPE_CHECKING:
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


@dataclass(frozen=True)
class Data:
    """Where benchmark files come from: an offline folder, else the download cache."""

    data_dir: str | None = None
    cache_dir: str | None = None

    def path(self, relpath: str) -> Path:
        return fetch(relpath, data_dir=self.data_dir, cache_dir=self.cache_dir)

    @property
    def root(self) -> Path:
        """The folder the files are in, laid out alike either way: the data_dir, else the cache."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def local(self, relpath: str) -> Path | None:
        """`relpath` where it is on this machine, or None: nothing is downloaded."""
        path = self.root / relpath
        return path if path.is_file() else None


@dataclass(frozen=True)
class Reading:
    """One judge call's result as the run browser (`eval.view`) shows it: a title, its facts in
    words (`score: 8`, `shown first: ours`), the judge's own text, and the prompt it was given
    where the judge file keeps it."""

    title: str
    facts: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the judge said of one instance, in terms the browser needs no benchmark to show.

    `score` is the instance's score as `instance_scores` gives it (summed over turns into one
    number per instance), `outcome` the verdict in a word or number that two runs are said to
    disagree on when it differs, `tags` the categories or skills to filter by, `reference` the
    answer the judge compared against, when it is not the instance's own reference."""

    score: float | None
    outcome: str
    readings: list[Reading]
    tags: list[str] = field(default_factory=list)
    reference: tuple[str, str] | None = None  # (whose, text)


def check_rows(path: Path, found: int, expected: int, what: str) -> None:
    """A judge's native file must hold as many rows as judging the run's answered instances
    writes: fewer or more is a damaged or stale file, named in one line."""
    if found != expected:
        raise RunFileError(
            f"{path}: {found} {what}, but the run's traces call for {expected}: damaged or "
            "stale, judge the run again"
        )


class Task:
    """One benchmark. Subclasses set `name` (the benchmark config's `name`) and implement the
    rest; `settings` is the benchmark's config section as a plain mapping."""

    name: ClassVar[str]
    # The end-of-run summary lists every instance (for small sets such as the demo's).
    table_per_instance: ClassVar[bool] = False
    # The judge compares the mixture with its final model alone (the demo's verdict).
    versus_alone: ClassVar[bool] = False
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

    def judge_model(self, judges: Mapping[str, Any]) -> str:
        """The judge config's model for this benchmark (a catalogue name or an address)."""
        model = judges.get(self.name)
        if model is None:
            raise ConfigError(f"the judge config names no model for benchmark {self.name!r}")
        return str(model)

    async def judge(
        self,
        client: ModelClient,
        judge: str,
        run: RunDir,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        """Judges the finished instances into the judge's native file; returns the metrics."""
        raise NotImplementedError

    async def plan_judge(
        self,
        generator: Generator,
        judge: str,
        spec: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """Sends through `generator` the very requests `judge` would send for these outputs (one
        list per instance, a turn each; None for an instance that failed, which is not judged),
        and nothing else: no file is written and no answer read. `task=plan` (`eval.plan`) runs
        it with a generator that calls no model, to count, price and find in the call cache the
        judge's calls. Not overridden: the plan says that this task's judging is not planned."""
        raise NotImplementedError

    def judge_calls(self, instance: Instance) -> int:
        """The calls judging one finished instance takes, for the judging progress bar."""
        return 1

    @classmethod
    def reads(cls, path: Path) -> bool:
        """Whether `path` is this task's judge file, for `task=rescore`."""
        return False

    def rescore(self, path: Path) -> dict[str, Any]:
        """The metrics of a judge file with its verdicts parsed again; no model is called."""
        raise NotImplementedError

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per-instance (or per instance and turn) scores, for intervals and paired differences,
        from the judge's native file of `run` (judged as `metrics` say; `finished` are its
        answered instances, from its traces). A file that does not hold what judging those
        instances writes is a `RunFileError` naming it (`check_rows`)."""
        return {}

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per instance id, its judge's verdict for the run browser (`eval.view`), read from the
        judge's native file as `instance_scores` reads it."""
        return {}

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """The one number the report ranks a run by; NaN for a run not wholly judged."""
        return float("nan")

    def offline_judge(self) -> scripted.Responder | None:
        """How the `scripted` fake answers this task's judge, built from the judge's own
        templates so that a template change cannot silently break offline runs."""
        return None

    def teach_offline_judge(self) -> None:
        responder = self.offline_judge()
        if responder is not None:
            scripted.answer_judge(self.name, responder)
