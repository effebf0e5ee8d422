"""What every judge kind does with a spec (`eval.judges.spec`), and the benchmark it judges.

A kind runs its judge into its reference tool's native file and reads that file back into typed
verdicts: for a run (`judge`), for the plan (`plan`, the very requests and nothing else), for
`task=rescore`, for the report's intervals and the run browser. It also answers for the judge
when the `scripted` fake is asked (`scripted_answer`): the fake asks the judges it is given, so
no judge teaches a module-level registry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from eval.benchmarks.base import Instance
from eval.judges.readings import Verdict
from eval.judges.spec import JudgeSpec
from moa.errors import ConfigError
from moa.types import ChatMessage, Completion, GenerateConfig

if TYPE_CHECKING:
    from eval.benchmarks.data import Data
    from eval.rundir import InstanceResult, RunDir, RunMetrics
    from moa.client import ModelClient
    from moa.mixture import MixtureSpec
    from moa.types import Generator


class Judged(Protocol):
    """What a judge reads of the benchmark it judges: its data and instances."""

    @property
    def data(self) -> Data: ...

    def load(self) -> list[Instance]: ...

    def generation(self) -> Callable[[Instance], GenerateConfig]: ...

    def categories_here(self) -> dict[str, str]: ...


class JudgeKind:
    """One kind of judge. Subclasses name the spec values they run in `runs` (a field absent
    there may take any value) and implement the rest."""

    kind: ClassVar[str]
    runs: ClassVar[Mapping[str, tuple[Any, ...]]] = {}

    def __init__(self, spec: JudgeSpec, benchmark: Judged) -> None:
        for key, allowed in self.runs.items():
            value = getattr(spec, key)
            if value not in allowed:
                raise ConfigError(
                    f"judge spec {spec.name!r}: {key}={value!r} is not one the {self.kind} "
                    f"kind runs ({', '.join(map(repr, allowed))})"
                )
        self.spec = spec
        self.benchmark = benchmark

    def model(self, judges: Mapping[str, Any]) -> str:
        """The judge config's model for this judge (a catalogue name or an address)."""
        model = judges.get(self.spec.model_key)
        if model is None:
            raise ConfigError(
                f"the judge config names no model for {self.spec.model_key!r} (the model_key "
                f"of judge spec {self.spec.name!r})"
            )
        return str(model)

    async def judge(
        self,
        client: ModelClient,
        address: str,
        run: RunDir,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        results: Sequence[InstanceResult],
    ) -> dict[str, Any]:
        """Judges the finished instances into the native file; returns the metrics."""
        raise NotImplementedError

    async def plan(
        self,
        generator: Generator,
        address: str,
        mixture: MixtureSpec,
        instances: Sequence[Instance],
        outputs: Sequence[Sequence[str] | None],
    ) -> None:
        """Sends through `generator` the very requests `judge` would send for these outputs (one
        list per instance, a turn each; None for an instance that failed, which is not judged),
        and nothing else: no file is written and no answer read (`task=plan`)."""
        raise NotImplementedError

    def extractor(self) -> Callable[[str], str | None] | None:
        """How the judge reads a final answer out of a text, for the `vote` agent kind; None
        for a judge that reads none (each answer's whole text then votes)."""
        return None

    def calls(self, instance: Instance) -> int:
        """The calls judging one finished instance takes, for the judging progress bar."""
        return 1

    def reads(self, path: Path) -> bool:
        """Whether `path` is this judge's native file, for `task=rescore`."""
        return False

    def rescore(self, path: Path) -> dict[str, Any]:
        """The metrics of a native file with its verdicts parsed again; no model is called."""
        raise NotImplementedError

    def instance_scores(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, float]:
        """Per-instance (or per instance and turn) scores, for intervals and paired differences,
        from the native file of `run` (judged as `metrics` say; `finished` are its answered
        instances). A file that does not hold what judging them writes is a `RunFileError`."""
        return {}

    def verdicts(
        self, run: RunDir, metrics: RunMetrics, finished: Mapping[str, InstanceResult]
    ) -> dict[str, Verdict]:
        """Per instance id, its verdict for the run browser, read as `instance_scores` reads."""
        return {}

    def headline(self, metrics: Mapping[str, Any]) -> float:
        """The one number the report ranks a run by; NaN for a run not wholly judged."""
        return float("nan")

    def scripted_answer(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        rng: random.Random,
        tokens: int,
    ) -> str | Completion | None:
        """The `scripted` fake's answer when the request is this judge's (else None), built from
        the judge's own templates so that a template change cannot silently break offline runs."""
        return None
