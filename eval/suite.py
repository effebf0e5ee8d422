"""Sweeps as lists of resolved settings, for the plan: what `-m` would launch, without launching.

An experiment's sweep lives in its `hydra.sweeper.params`; we expand it with Hydra's own override
parser (so ranges and choice syntax mean what they mean to the launcher) and compose each point.
Composing is most of the plan's cost, so points that choose the same config groups share one
composition, which each point's value overrides then change as Hydra applies them, and with two
CPUs two forked processes compose the experiments between them.
"""

from __future__ import annotations

import functools
import gc
import itertools
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, OmegaConf

from eval.settings import Settings, resolve
from moa.errors import ConfigError

EXPERIMENTS = (
    "table2", "baselines", "table3", "table4", "figure3", "figure4", "figure5", "aggregators",
    "paper_outputs",
)  # fmt: skip
# Experiment files beyond the paper: `plan.experiments=[name]` plans one, `all` leaves them out.
BEYOND_THE_PAPER = ("arena_hard", "self_moa_verifiable")


def sweep_points(params: dict[str, str]) -> list[list[str]]:
    """Every combination of a sweeper's `params` as override lists, in launch order."""
    parser = OverridesParser.create()
    axes = []
    for key, value in params.items():
        (override,) = parser.parse_overrides([f"{key}={value}"])
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        axes.append([f"{key}={v}" for v in values])
    return [list(point) for point in itertools.product(*axes)]


def _is_group(key: str, groups: dict[str, bool]) -> bool:
    """Whether an override's key names a config group (it changes what is composed); `groups`
    keeps the answers of one composition's keys (listing a group's folder reads the disk)."""
    known = groups.get(key)
    if known is None:
        parent, _, name = key.rpartition("/")
        loader = GlobalHydra.instance().config_loader()
        known = groups[key] = name in loader.list_groups(parent)
    return known


def compose_points(base_overrides: Sequence[str], experiments: Iterable[str]) -> list[Settings]:
    """The settings of every sweep point of every experiment, each composed and resolved as its
    own command would be (GlobalHydra must be initialised)."""
    names = list(experiments)
    for name in names:
        if name not in (*EXPERIMENTS, *BEYOND_THE_PAPER):
            known = ", ".join((*EXPERIMENTS, *BEYOND_THE_PAPER))
            raise ConfigError(f"unknown experiment {name!r} (known: {known})")
    base = [o for o in base_overrides if not o.startswith(("+experiment=", "task="))]
    compose_one = functools.partial(_compose_experiment, base)
    if len(names) > 1 and cpus() > 1:
        try:
            return _composed_in_two(compose_one, names)
        except Exception:  # composed again here, to raise the error as it is: an error from a
            pass  # child has lost its causes, which say what is wrong
    return [point for name in names for point in compose_one(name)]


def _composed_in_two(
    compose_one: Callable[[str], list[Settings]], names: Sequence[str]
) -> list[Settings]:
    """Composing is pure CPU, most of a sweep's plan, and each experiment stands alone: two
    forked copies of this process (Hydra initialised as here) compose them between them, each
    taking the next. Each freezes what it was forked with, so that its collections neither walk
    it nor copy its pages."""
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=fork, initializer=gc.freeze) as pool:
        return [point for points in pool.map(compose_one, names) for point in points]


def cpus() -> int:
    """The CPUs this process may share its work with by forking: those it may run on (Linux),
    but 1 (no fork) where another thread runs, as in an embedding program's process: a fork
    copies no thread, and may copy a lock one of them held."""
    if not hasattr(os, "sched_getaffinity") or threading.active_count() > 1:
        return 1
    return len(os.sched_getaffinity(0))


def _compose_experiment(base: Sequence[str], name: str) -> list[Settings]:
    """One experiment's points, in launch order: its head is composed for its sweep, then each
    point that chooses other config groups, its plain `key=value` overrides set after."""
    parser = OverridesParser.create()
    groups: dict[str, bool] = {}
    configs = []
    head = compose("config", [*base, f"+experiment={name}"], return_hydra_config=True)
    params = {str(k): str(v) for k, v in head.hydra.sweeper.params.items()}
    composed: dict[tuple[str, ...], DictConfig] = {}
    for point in sweep_points(params):
        parsed = parser.parse_overrides(point)
        # a plain `key=value` is set after composing; anything else is composed with
        shared = [
            o.type == OverrideType.CHANGE
            and not _is_group(o.key_or_group, groups)
            and not isinstance(o.value(), dict | list)  # merged, not set: composed with
            for o in parsed
        ]
        structural = tuple(o for o, s in zip(point, shared, strict=True) if not s)
        if structural not in composed:
            composed[structural] = compose("config", [*base, f"+experiment={name}", *structural])
        cfg = composed[structural]  # its points set the same keys: no copy needed
        for override, applied in zip(parsed, shared, strict=True):
            if applied:
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        configs.append(resolve(cfg))
    return configs
