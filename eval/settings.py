"""The door: the composed Hydra config resolved once into typed, frozen `Settings`.

Everything a run will touch is checked here, before any model is called: unknown models or
endpoints, missing API keys, malformed presets, out-of-range settings and API keys written into
the config instead of the environment all end as one `ConfigError` line. Below the door
(`eval.cli`, `eval.api`) nothing sees Hydra's `DictConfig`: the commands, generation and the
plan take `Settings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from eval.benchmarks.data import Data
from eval.mixture_config import build_mixture, check_name, segment
from eval.run_filter import RunFilter
from eval.rundir import repeat_suffix, run_folder, subset_suffix
from moa.budget import Budget
from moa.cache import CacheMode, CallCache
from moa.catalogue import Catalogue, endpoint_bills
from moa.client import ModelClient
from moa.context import POLICIES
from moa.errors import ConfigError
from moa.ledger import Ledger
from moa.limits import EndpointLimits
from moa.limits import check_number as _number
from moa.mixture import MixtureSpec
from moa.redact import holds_secret, redact_config

if TYPE_CHECKING:
    from moa.providers.scripted import Responder

# The Hydra configs live at the repository root, beside the packages (an editable install).
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# What `run_dir` is made of: the variant's name (checked: one folder), `@<provider_override>`
# and the subset's mark (`eval.rundir`); Hydra's run directory is refused if it is not ours.
OmegaConf.register_new_resolver("variant", check_name, replace=True)
OmegaConf.register_new_resolver("run_folder", run_folder, replace=True)
OmegaConf.register_new_resolver("suffix", lambda v: f"@{v}" if v else "", replace=True)
OmegaConf.register_new_resolver("subset", subset_suffix, replace=True)
OmegaConf.register_new_resolver("repeat", repeat_suffix, replace=True)
# What presets written as layers of agents are made of (`conf/moa/`): a model as part of a name,
# the first n proposers, and how many layers a preset has, in either form
# (`eval.mixture_config`).
OmegaConf.register_new_resolver("segment", segment, replace=True)
OmegaConf.register_new_resolver("first", lambda items, n: list(items)[: int(n)], replace=True)
OmegaConf.register_new_resolver(
    "depth", lambda layers: layers if isinstance(layers, int) else len(layers), replace=True
)


def to_dict(node: Any) -> dict[str, Any]:
    if isinstance(node, DictConfig):
        return cast(dict[str, Any], OmegaConf.to_container(node, resolve=True))
    return dict(node)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")


# Limits for which 0 can only be a mistake (not "no limit"): refused rather than read as default.
_NOT_ZERO = ("max_concurrency", "max_attempts", "timeout_s")


def check_endpoint(name: str, spec: Any) -> None:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"endpoints.{name} must be a mapping of settings, got {spec!r}")
    for key in spec:
        if holds_secret(str(key)):
            raise ConfigError(
                f"endpoints.{name}.{key}: API keys are read from the environment only; "
                "set api_key_env to the name of the variable that holds it"
            )
    for key in _NOT_ZERO:
        if spec.get(key) == 0:
            raise ConfigError(
                f"endpoints.{name}.{key}=0 would allow no call: give at least 1, or leave it "
                f"out for the default ({getattr(EndpointLimits(), key)})"
            )
    EndpointLimits.from_spec(name, spec)
    endpoint_bills(name, spec)


def check_config(cfg: Mapping[str, Any]) -> None:
    """The settings a run depends on, checked before anything is built or called."""
    _number("concurrency", cfg.get("concurrency", 1), integer=True)
    if cfg.get("concurrency") == 0:
        raise ConfigError("concurrency=0: at least one instance must be in flight")
    _choice("on_proposer_error", cfg.get("on_proposer_error", "drop"), ("drop", "fail"))
    _choice("context_overflow", cfg.get("context_overflow", "trim"), POLICIES)
    _choice("on_degraded", cfg.get("on_degraded", "retry"), ("retry", "accept"))
    budget = cfg.get("budget") or {}
    _number("budget.max_usd", budget.get("max_usd"), optional=True)
    _number("budget.max_calls", budget.get("max_calls"), integer=True, optional=True)
    limit = (cfg.get("benchmark") or {}).get("limit")
    _number("benchmark.limit", limit, integer=True, optional=True)
    if limit == 0:
        raise ConfigError("benchmark.limit=0 selects no instance: give at least 1, or null for all")
    for name, spec in dict(cfg["endpoints"]).items():
        check_endpoint(name, spec)


def build_catalogue(cfg: Mapping[str, Any]) -> Catalogue:
    """The catalogue of a resolved config (a run's saved `config.yaml` too), once the whole
    config has passed `check_config`."""
    check_config(cfg)
    return Catalogue(
        models=dict(cfg["catalogue"]),
        endpoints=list(cfg["endpoints"].keys()),
        provider_override=cfg.get("provider_override"),
    )


def repeat_of(cfg: Mapping[str, Any]) -> int:
    """Which run of a repeated variant this is (`repeat`, 1 to `repeats`)."""
    repeat = cfg.get("repeat", 1)
    _number("repeat", repeat, integer=True)
    if repeat < 1:
        raise ConfigError(f"repeat={repeat}: runs are counted from 1")
    return int(repeat)


def repeats_of(cfg: Mapping[str, Any]) -> int:
    """How many runs of the variant the command asks for (`repeats`)."""
    repeats = cfg.get("repeats", 1)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"repeats={repeats!r}: give the number of runs, at least 1")
    return repeats


def judge_repeats(repeats: Any) -> int:
    """How many times each answer is judged (`judge.repeats`)."""
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ConfigError(f"judge.repeats={repeats!r}: give the judgments per answer, at least 1")
    return repeats


def share_of(name: str, share: Any) -> float:
    """A share between 0 and 1 (`judge.swap_share`)."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{name}={share!r}: give a share between 0 and 1")
    return float(share)


def _detect(difference: Any) -> float | None:
    """`plan.detect`: a nonzero difference, or none."""
    if difference is None:
        return None
    if isinstance(difference, bool) or not isinstance(difference, int | float) or not difference:
        raise ConfigError(f"plan.detect={difference!r}: give the difference to detect, not 0")
    return float(difference)


def _cache_mode(mode: Any) -> CacheMode:
    try:
        return CacheMode(str(mode))
    except ValueError:
        known = ", ".join(m.value for m in CacheMode)
        raise ConfigError(f"cache.mode={mode!r} is not one of {known}") from None


def _path(value: Any) -> Path | None:
    return Path(str(value)).expanduser() if value else None


def _strings(value: Any) -> tuple[str, ...] | None:
    """A list setting as strings (ids may be written as numbers); None when unset."""
    return None if value is None else tuple(str(v) for v in value)


@dataclass(frozen=True)
class BenchmarkSettings:
    """`benchmark:`; `section` is the whole section, as the benchmark's task reads it."""

    name: str
    section: Mapping[str, Any]
    generation: Mapping[str, Any]
    limit: int | None
    ids: tuple[str, ...] | None
    categories: tuple[str, ...] | None

    def selection(self) -> dict[str, Any] | None:
        """The instance selection a run was asked for (as `run.json` records it), None for
        the whole benchmark."""
        chosen = {
            "categories": None if self.categories is None else list(self.categories),
            "ids": None if self.ids is None else list(self.ids),
            "limit": self.limit,
        }
        return {k: v for k, v in chosen.items() if v is not None} or None


@dataclass(frozen=True)
class JudgeSettings:
    """`judge:`; `section` is what a benchmark's task reads its judge model from."""

    enabled: bool
    section: Mapping[str, Any]
    repeats: int = 1  # each answer judged this many times (`eval.judge_repeats`)
    swap_share: float = 0.0  # pairwise judges: the share of pairs judged in both orders


@dataclass(frozen=True)
class CacheSettings:
    path: Path
    mode: CacheMode
    copy_to: Path | None  # a copy of the cache after the task (README: Scale-out)


@dataclass(frozen=True)
class BudgetSettings:
    max_usd: float | None
    max_calls: int | None


@dataclass(frozen=True)
class ReportSettings:
    out_dir: Path
    reference: str
    runs: RunFilter


@dataclass(frozen=True)
class ViewSettings:
    out_dir: Path
    chunk: int


@dataclass(frozen=True)
class PlanSettings:
    experiments: tuple[str, ...] | str | None  # names, or "all" for the paper's whole suite
    output_tokens: int
    detect: float | None = None  # a difference to plan a paired comparison for (`power_plan`)
    power: float = 0.8


@dataclass(frozen=True)
class Settings:
    """One composed config, validated and resolved: what every command runs on."""

    task: str  # the command (`task=`)
    prompt: str | None
    catalogue: Catalogue
    catalogue_addresses: tuple[str, ...]  # as written, before any `provider_override`
    endpoints: Mapping[str, Mapping[str, Any]]
    spec: MixtureSpec  # the variant, as run `repeat` draws it
    benchmark: BenchmarkSettings
    judge: JudgeSettings
    data: Data
    results_dir: Path
    run_dir: Path
    repeat: int
    repeats: int
    concurrency: int
    on_degraded: str
    cache: CacheSettings
    budget: BudgetSettings
    report: ReportSettings
    view: ViewSettings
    plan: PlanSettings
    rescore_path: Path  # `None` when unset, refused by the command as no file
    models_endpoints: tuple[str, ...] | None
    cache_merge_sources: tuple[str, ...]
    preflight: Mapping[str, Any]  # `preflight:` (`eval.preflight`)
    calibrate: Mapping[str, Any]  # `calibrate:` (`eval.calibrate.command`)
    redacted: Mapping[str, Any]  # the resolved config with secrets masked
    overrides: tuple[str, ...] = ()  # the command's own, for the plan's sweeps

    @cached_property
    def config_yaml(self) -> str:
        """`redacted` as a run saves it; written when asked, as a plan resolves dozens of points
        and writing it is most of resolving one."""
        return OmegaConf.to_yaml(OmegaConf.create(dict(self.redacted)))


def resolve(cfg: DictConfig, overrides: Sequence[str] = ()) -> Settings:
    """The one place the composed config is read: validated, then built into `Settings`."""
    plain = to_dict(cfg)
    catalogue = build_catalogue(plain)
    spec = build_mixture(
        plain["moa"],
        catalogue,
        on_proposer_error=str(plain["on_proposer_error"]),
        context_overflow=str(plain.get("context_overflow", "trim")),
    ).repeated(repeat_of(plain))
    bench, judge = plain["benchmark"], plain.get("judge") or {}
    cache, budget = plain["cache"], plain.get("budget") or {}
    report, view, plan = plain["report"], plain["view"], plain["plan"]
    data_dir, cache_dir = plain.get("data_dir"), plain.get("data_cache_dir")
    experiments = plan.get("experiments")
    return Settings(
        task=str(plain["task"]),
        prompt=None if plain.get("prompt") is None else str(plain["prompt"]),
        catalogue=catalogue,
        catalogue_addresses=tuple(str(m["address"]) for m in plain["catalogue"].values()),
        endpoints=plain["endpoints"],
        spec=spec,
        benchmark=BenchmarkSettings(
            name=str(bench["name"]),
            section=bench,
            generation=bench["generation"],
            limit=bench.get("limit"),
            ids=_strings(bench.get("ids")),
            categories=_strings(bench.get("categories")),
        ),
        judge=JudgeSettings(
            bool(judge.get("enabled", False)),
            judge,
            repeats=judge_repeats(judge.get("repeats", 1)),
            swap_share=share_of("judge.swap_share", judge.get("swap_share", 0.0)),
        ),
        data=Data(
            None if data_dir is None else str(data_dir),
            None if cache_dir is None else str(cache_dir),
        ),
        results_dir=Path(str(plain["results_dir"])),
        run_dir=Path(str(plain["run_dir"])),
        repeat=repeat_of(plain),
        repeats=repeats_of(plain),
        concurrency=int(plain["concurrency"]),
        on_degraded=str(plain.get("on_degraded", "retry")),
        cache=CacheSettings(
            Path(str(cache["path"])).expanduser(),
            _cache_mode(cache.get("mode", CacheMode.READ_WRITE.value)),
            _path(cache.get("copy_to")),
        ),
        budget=BudgetSettings(budget.get("max_usd"), budget.get("max_calls")),
        report=ReportSettings(
            Path(str(report["out_dir"])), str(report["reference"]), RunFilter.from_settings(report)
        ),
        view=ViewSettings(Path(str(view["out_dir"])), int(view["chunk"])),
        plan=PlanSettings(
            experiments if experiments in (None, "all") else _strings(experiments),
            int(plan["output_tokens"]),
            detect=_detect(plan.get("detect")),
            power=share_of("plan.power", plan.get("power", 0.8)),
        ),
        rescore_path=Path(str((plain.get("rescore") or {}).get("path"))),
        models_endpoints=_strings((plain.get("models") or {}).get("endpoints")),
        cache_merge_sources=tuple(str(s) for s in (plain.get("cache_merge") or {}).get("sources")
                                  or ()),
        preflight=plain.get("preflight") or {},
        calibrate=plain.get("calibrate") or {},
        redacted=redact_config(plain),
        overrides=tuple(overrides),
    )  # fmt: skip


def build_budget(settings: Settings, run_dir: Path | None) -> Budget:
    """The caps, minus what earlier runs of the run directory spent (every `*calls.jsonl`)."""
    max_usd, max_calls = settings.budget.max_usd, settings.budget.max_calls
    if run_dir is None or (max_usd is None and max_calls is None):
        return Budget(max_usd, max_calls)
    return Budget.from_ledgers(max_usd, max_calls, sorted(run_dir.glob("*calls.jsonl")))


def build_client(
    settings: Settings, ledger_path: Path | None, judges: Sequence[Responder] = ()
) -> ModelClient:
    """The client of the configured endpoints; `judges` are what a `scripted` endpoint asks
    when a request may be a judge's (the judge being run: `JudgeKind.scripted_answer`)."""
    endpoints = {
        name: {**spec, "judges": tuple(judges)} if spec.get("provider") == "scripted" else spec
        for name, spec in settings.endpoints.items()
    }
    return ModelClient(
        endpoint_specs=endpoints,
        catalogue=settings.catalogue,
        cache=CallCache(settings.cache.path, settings.cache.mode),
        ledger=Ledger(ledger_path),
        budget=build_budget(settings, None if ledger_path is None else ledger_path.parent),
    )


async def check_endpoints(settings: Settings, addresses: Sequence[str]) -> None:
    """The endpoints of models a later step will call (the judge's, after generation) built and
    closed again, and their prices checked against the caps: a missing key or a bad endpoint is
    refused before the run's first call or download, not once generation has been paid for."""
    client = build_client(settings, ledger_path=None)
    try:
        client.preflight(addresses)
    finally:
        await client.aclose()
