"""A changed preset's own name: a run of another configuration never takes the preset's place.

`moa=moa_lite moa.aggregator=x` is not MoA-Lite. Left with the preset's name it would write into
MoA-Lite's run directory (refusing, later, the real MoA-Lite there) and read as MoA-Lite. So,
unless the command names the variant (`moa.name=`) or the name already tells the runs apart
(`single_${.aggregator}`, an experiment's `fig4_${.mode}_l${.layers}`), a `moa` section that
differs from its preset's as written gets the preset's name with a digest of the section.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping
from typing import Any, cast

from hydra.core.hydra_config import HydraConfig
from omegaconf import Container, OmegaConf

from eval.settings import CONF_DIR
from moa.errors import ConfigError

# What the digest is marked with in the name, e.g. `moa_lite_changed-1f2e3d4c`.
MARK = "_changed-"


def changed_name(section: Mapping[str, Any], preset: Mapping[str, Any]) -> str:
    """The naming rule: the variant's name, unless it is its preset's own name over a changed
    section (any setting but the name differs from the preset's as written); then the name with
    a digest of the section, the same for the same change, so that its runs resume."""
    name = str(section.get("name"))
    ours = {k: v for k, v in section.items() if k != "name"}
    theirs = {k: v for k, v in preset.items() if k != "name"}
    if name != str(preset.get("name")) or ours == theirs:
        return name
    digest = hashlib.sha1(json.dumps(ours, sort_keys=True, default=str).encode()).hexdigest()
    return f"{name}{MARK}{digest[:8]}"


def preset_of(moa: Mapping[str, Any]) -> str | None:
    """The `moa` preset a config was composed from: Hydra's choice in the app; for a config
    composed by a program, the preset its name names, if there is one."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("moa")
        return None if choice is None else str(choice)
    name = str(moa.get("name"))
    return name if (CONF_DIR / "moa" / f"{name}.yaml").is_file() else None


def named_by_command() -> bool:
    """Whether the command line sets `moa.name` (in any form of override)."""
    if not HydraConfig.initialized():
        return False
    overrides = HydraConfig.get().overrides.task
    return any(o.lstrip("+~").split("=", 1)[0] == "moa.name" for o in overrides)


def preset_section(preset: str) -> dict[str, Any]:
    """The preset's `moa` section as written, resolved. Read from its file and those its
    `defaults` name, merged as Hydra merges a group's own defaults (theirs first, then its own
    keys): composing the whole config again would add half a second to every run's start."""
    root = OmegaConf.create({"moa": _written(preset)})
    return cast(dict[str, Any], OmegaConf.to_container(root.moa, resolve=True))


def _written(preset: str) -> Container:
    path = CONF_DIR / "moa" / f"{preset}.yaml"
    node = OmegaConf.load(path)
    if not isinstance(node, MutableMapping):  # a list, not a section
        raise ConfigError(f"{path}: not a mapping of settings")
    defaults = list(node.pop("defaults", []))
    if "_self_" not in defaults:
        defaults.append("_self_")
    parts = [node if str(d) == "_self_" else _written(str(d)) for d in defaults]
    return OmegaConf.merge(*parts)


def name_variant(moa: Mapping[str, Any]) -> str | None:
    """The name a changed preset runs under (`changed_name`), for the door to give the `moa`
    section so its run directory follows; None when the name stays."""
    preset = preset_of(moa)
    if preset is None or named_by_command():
        return None
    name = changed_name(moa, preset_section(preset))
    return None if name == str(moa.get("name")) else name
