"""Turns the composed Hydra config into the engine's objects, validating it on the way.

Everything a run will touch is checked here, before any model is called: unknown models or
endpoints, missing API keys, malformed presets, out-of-range settings and API keys written into
the config instead of the environment all end as one `ConfigError` line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import DictConfig, OmegaConf

from eval.mixture_config import build_mixture, check_name, segment
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
from moa.redact import holds_secret

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


def check_config(cfg: DictConfig) -> None:
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
    for name, spec in to_dict(cfg.endpoints).items():
        check_endpoint(name, spec)


def build_catalogue(cfg: DictConfig) -> Catalogue:
    """The catalogue, once the whole config has passed `check_config`."""
    check_config(cfg)
    return Catalogue(
        models=to_dict(cfg.catalogue),
        endpoints=list(cfg.endpoints.keys()),
        provider_override=cfg.get("provider_override"),
    )


def build_spec(cfg: DictConfig, catalogue: Catalogue) -> MixtureSpec:
    """The configured preset with the run's failure policies, as run `repeat` draws it."""
    spec = build_mixture(
        to_dict(cfg.moa),
        catalogue,
        on_proposer_error=str(cfg.on_proposer_error),
        context_overflow=str(cfg.get("context_overflow", "trim")),
    )
    return spec.repeated(repeat_of(cfg))


def repeat_of(cfg: DictConfig) -> int:
    """Which run of a repeated variant this is (`repeat`, 1 to `repeats`)."""
    repeat = cfg.get("repeat", 1)
    _number("repeat", repeat, integer=True)
    if repeat < 1:
        raise ConfigError(f"repeat={repeat}: runs are counted from 1")
    return int(repeat)


def build_budget(cfg: DictConfig, run_dir: Path | None) -> Budget:
    """The caps, minus what earlier runs of the run directory spent (every `*calls.jsonl`)."""
    budget = cfg.get("budget") or {}
    max_usd, max_calls = budget.get("max_usd"), budget.get("max_calls")
    if run_dir is None or (max_usd is None and max_calls is None):
        return Budget(max_usd, max_calls)
    return Budget.from_ledgers(max_usd, max_calls, sorted(run_dir.glob("*calls.jsonl")))


def build_client(
    cfg: DictConfig,
    catalogue: Catalogue,
    ledger_path: Path | None,
    judges: Sequence[Responder] = (),
) -> ModelClient:
    """The client of the configured endpoints; `judges` are what a `scripted` endpoint asks
    when a request may be a judge's (the judge being run: `JudgeKind.scripted_answer`)."""
    mode = str(cfg.cache.mode)
    try:
        cache_mode = CacheMode(mode)
    except ValueError:
        known = ", ".join(m.value for m in CacheMode)
        raise ConfigError(f"cache.mode={mode!r} is not one of {known}") from None
    endpoints = {
        name: {**spec, "judges": tuple(judges)} if spec.get("provider") == "scripted" else spec
        for name, spec in to_dict(cfg.endpoints).items()
    }
    return ModelClient(
        endpoint_specs=endpoints,
        catalogue=catalogue,
        cache=CallCache(Path(str(cfg.cache.path)).expanduser(), cache_mode),
        ledger=Ledger(ledger_path),
        budget=build_budget(cfg, None if ledger_path is None else ledger_path.parent),
    )


async def check_endpoints(cfg: DictConfig, catalogue: Catalogue, addresses: Sequence[str]) -> None:
    """The endpoints of models a later step will call (the judge's, after generation) built and
    closed again, and their prices checked against the caps: a missing key or a bad endpoint is
    refused before the run's first call or download, not once generation has been paid for."""
    client = build_client(cfg, catalogue, ledger_path=None)
    try:
        client.preflight(addresses)
    finally:
        await client.aclose()
