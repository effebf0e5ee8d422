"""A `moa:` config section as a `moa.mixture.MixtureSpec`: the general form and its short form.

The general form lists the layers, each a list of agents, first to last; the last layer is one
agent, whose answer is the output:

    layers:
      - [{models: [qwen1.5-110b, dbrx], samples: 2, temperature: 0.9}]
      - [{model: qwen1.5-110b, kind: rank, top_k: 2}]
      - [{model: gpt-4o, kind: aggregate, template_file: prompts/fuse.txt}]

An agent entry names one `model` (or `models`, one agent each), `samples` (draws of it, told
apart by sample index), a `kind` (propose, aggregate, rank, critique) or a `strategy` (a
callable's dotted path, `moa.strategy`, with its `options` and `strategy_timeout_s`, its bound
on one turn; it replaces the kind), `top_k` (rank), its own decoding (`temperature`,
`max_tokens`, `top_p`, `seed`, `stop`) over the benchmark's, and prompts: `system` and
`template` (what heads the injected answers), each inline or from a `*_file`. Kinds default to
`propose`, and `aggregate` for the last layer.

The short form, which the paper's sweeps use: `layers: <L>` (counting the aggregator's layer, as
the paper does) with `proposers`, `samples`, `n_proposers`, `aggregator` and `mode` (aggregate
or rank) means L - 1 identical layers of the proposers, then the aggregator. Overriding
`moa.layers=3` on a preset written in the general form turns it into the short form of the
preset's own `proposers` and `aggregator`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.records import AgentRecord
from moa.agents import AGENT_KINDS, KINDS, REPEAT_STRIDE, STRATEGY_TIMEOUT_S, Agent
from moa.catalogue import Catalogue
from moa.errors import ConfigError
from moa.mixture import MixtureSpec
from moa.strategy import load_strategy, source_fingerprint
from moa.types import GenerateConfig

DECODING = ("temperature", "max_tokens", "top_p", "seed", "stop")
_PROMPTS = ("system", "template")
_AGENT_KEYS = (
    "model", "models", "samples", "kind", "strategy", "options", "strategy_timeout_s", "top_k",
    *_PROMPTS, *(f"{p}_file" for p in _PROMPTS), *DECODING,
)  # fmt: skip
# What stands for '/' where a preset names itself after a model (`${segment:${.aggregator}}`):
# no model address or catalogue name holds it, so two models never share a variant name.
SLASH = "+"


def segment(text: Any) -> str:
    """A model (`replay/Together-MoA`) as part of a variant's name (`replay+Together-MoA`);
    text without '/' is returned as it is, so names already made stay the same."""
    return str(text).replace("/", SLASH)


def check_name(name: Any) -> str:
    """A variant's name, if it can name a run directory: one folder under
    `<results_dir>/<benchmark>/`, where the report and the browser look for runs (a name with
    '/' or '..' would put the run elsewhere, or outside `results_dir`). Else one line."""
    text = str(name)
    if text and not text.startswith(".") and text.isprintable() and not set(text) & {"/", "\\"}:
        return text
    hint = f" (a model's address is written with {SLASH!r} for '/')" if "/" in text else ""
    raise ConfigError(
        f"moa.name={text!r} cannot name a run directory: a variant's name is one folder name, "
        f"not empty, not starting with '.', without '/', '\\' or control characters{hint}"
    )


def build_mixture(moa: Mapping[str, Any], catalogue: Catalogue, **settings: Any) -> MixtureSpec:
    """The `moa:` section (general or short form) as layers of agents; `settings` are the
    run's failure policies (`MixtureSpec` fields)."""
    name = check_name(moa.get("name"))
    layers = moa.get("layers", 1)
    if isinstance(layers, Sequence) and not isinstance(layers, str):
        entries = [_layer_entries(name, depth, layer) for depth, layer in enumerate(layers, 1)]
    else:
        entries = short_form(name, moa, int(layers))
    if not entries:
        raise ConfigError(f"moa preset {name!r}: layers is empty")
    built = []
    for depth, layer in enumerate(entries, start=1):
        final = depth == len(entries)
        agents = [a for e in layer for a in _agents(name, depth, final, e, catalogue)]
        _check_layer(name, depth, final, agents)
        built.append(tuple(agents))
    return MixtureSpec(name=name, layers=tuple(built), **settings)


def short_form(name: str, moa: Mapping[str, Any], layers: int) -> list[list[dict[str, Any]]]:
    """`layers`, `proposers`, `samples`, `n_proposers`, `aggregator`, `mode` as layer entries."""
    samples = int(moa.get("samples", 1))
    proposers = [str(p) for p in moa.get("proposers") or []]
    if moa.get("n_proposers") is not None:
        proposers = proposers[: int(moa["n_proposers"])]
    mode = str(moa.get("mode", "aggregate"))
    if layers < 1 or samples < 1:
        raise ConfigError(f"moa preset {name!r}: layers and samples must be >= 1")
    if layers > 1 and not proposers:
        raise ConfigError(f"moa preset {name!r}: {layers} layers need proposers")
    if mode not in ("aggregate", "rank"):
        raise ConfigError(f"moa preset {name!r}: mode must be aggregate or rank")
    if mode == "rank" and layers < 2:
        raise ConfigError(f"moa preset {name!r}: the ranker needs proposals to rank")
    layer = [{"models": proposers, "samples": samples}]
    final = [{"model": str(moa["aggregator"]), "kind": mode}]
    return [layer for _ in range(layers - 1)] + [final]


def _layer_entries(name: str, depth: int, layer: Any) -> list[dict[str, Any]]:
    if isinstance(layer, Mapping):  # one agent written without its list
        layer = [layer]
    if not isinstance(layer, Sequence) or isinstance(layer, str) or not layer:
        raise ConfigError(f"moa preset {name!r}: layer {depth} must be a list of agents")
    for entry in layer:
        if not isinstance(entry, Mapping):
            raise ConfigError(f"moa preset {name!r}: layer {depth}: {entry!r} is not an agent")
    return [dict(e) for e in layer]


def _agents(
    name: str, depth: int, final: bool, entry: Mapping[str, Any], catalogue: Catalogue
) -> list[Agent]:
    where = f"moa preset {name!r}, layer {depth}"
    for key in entry:
        if key not in _AGENT_KEYS:
            close = difflib.get_close_matches(str(key), _AGENT_KEYS, n=1)
            hint = (
                f"did you mean {close[0]}?" if close else f"an agent has: {', '.join(_AGENT_KEYS)}"
            )
            raise ConfigError(f"{where}: {key} is not an agent setting ({hint})")
    if ("model" in entry) == ("models" in entry):
        raise ConfigError(f"{where}: an agent names one `model` or a list of `models`")
    models = [entry["model"]] if "model" in entry else list(entry["models"] or [])
    samples = _positive(where, "samples", entry.get("samples", 1))
    if samples > REPEAT_STRIDE:  # run 2 of a repeated variant draws from REPEAT_STRIDE on
        raise ConfigError(f"{where}: samples={samples}, at most {REPEAT_STRIDE}")
    strategy = entry.get("strategy")
    # A strategy replaces the agent's kind: `moa.layers.1.0.strategy=...` on a preset's agent.
    kind = "strategy" if strategy else str(entry.get("kind", "aggregate" if final else "propose"))
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind={kind!r} is not one of {', '.join(KINDS)}")
    if kind == "strategy" and not strategy:
        raise ConfigError(f"{where}: kind=strategy needs `strategy`, the callable's dotted path")
    options = entry.get("options") or {}
    source = None
    if strategy:
        loaded = load_strategy(str(strategy))  # importable, now, before any call
        if (validate := getattr(loaded, "validate", None)) is not None:
            validate(dict(options))
        source = source_fingerprint(str(strategy), loaded)
    timeout = _strategy_timeout(where, kind, entry.get("strategy_timeout_s"))
    decoding = {k: entry[k] for k in DECODING if entry.get(k) is not None}
    try:
        GenerateConfig(**decoding)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if "stop" in decoding:
        decoding["stop"] = tuple(str(s) for s in decoding["stop"])
    base = Agent(
        model="",
        kind=kind,
        decoding=tuple(sorted(decoding.items())),
        system=_prompt(where, entry, "system"),
        template=_prompt(where, entry, "template"),
        top_k=_positive(where, "top_k", entry.get("top_k", 1)),
        strategy=None if strategy is None else str(strategy),
        source_sha256=source,
        options=tuple(sorted(dict(options).items())),
        strategy_timeout_s=timeout,
    )
    agents = []
    for model in models:
        resolved = catalogue.resolve(str(model))
        for sample in range(samples):
            agents.append(
                dataclasses.replace(
                    base,
                    model=resolved.address,
                    sample=sample,
                    context_length=resolved.context_length,
                )
            )
    return agents


def _prompt(where: str, entry: Mapping[str, Any], name: str) -> str | None:
    """An inline prompt, or a file's text (as the run identity then records it)."""
    inline, path = entry.get(name), entry.get(f"{name}_file")
    if inline is not None and path is not None:
        raise ConfigError(f"{where}: give {name} or {name}_file, not both")
    if path is None:
        return None if inline is None else str(inline)
    try:
        return Path(str(path)).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: {name}_file={path}: {exc.strerror or exc}") from None


def _strategy_timeout(where: str, kind: str, value: Any) -> float:
    if value is None:
        return STRATEGY_TIMEOUT_S
    if kind != "strategy":
        raise ConfigError(f"{where}: strategy_timeout_s is for a strategy (this agent: {kind})")
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < math.inf:
        raise ConfigError(f"{where}: strategy_timeout_s={value!r}, must be seconds > 0")
    return float(value)


def _positive(where: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: {name}={value!r}, must be a whole number >= 1")
    return value


def _check_layer(name: str, depth: int, final: bool, agents: list[Agent]) -> None:
    where = f"moa preset {name!r}, layer {depth}"
    if final and len(agents) != 1:
        raise ConfigError(f"{where}: the last layer is one agent, whose answer is the output")
    for agent in agents:
        kind = AGENT_KINDS[agent.kind]
        if depth == 1 and kind.reads_answers:
            raise ConfigError(f"{where}: a {agent.kind} agent needs a previous layer's answers")
        if final and not kind.answers:
            raise ConfigError(f"{where}: a {agent.kind} is not an answer: add a layer after it")
    if repeated := sorted({a.model for a in agents if agents.count(a) > 1}):
        raise ConfigError(
            f"{where}: agents name {', '.join(repeated)} more than once with the same settings; "
            "identical requests would be one call injected twice: to draw a model n times, "
            "name it once with samples: n (moa.samples=n)"
        )


def identity_layers(spec: MixtureSpec) -> tuple[list[list[AgentRecord]], AgentRecord]:
    """The run identity's `layers` and `aggregator`: each agent's model, kind and non-default
    settings (a changed prompt or a user strategy's changed source, `source_sha256`, is a
    different run), with the samples of run 1 (the repeat is a field of its own)."""

    shift = (spec.repeat - 1) * REPEAT_STRIDE  # the identity holds run 1's samples

    def entry(agent: Agent) -> AgentRecord:
        settings = agent.settings(agent.kind)
        return AgentRecord(model=agent.model, sample=agent.sample - shift, kind=agent.kind,
                           **settings)  # fmt: skip

    layers = [[entry(a) for a in layer] for layer in spec.proposer_layers]
    return layers, entry(spec.final)


def describe_spec(spec: MixtureSpec, name: Callable[[str], str]) -> str:
    """What a mixture does, layer by layer (`name(address)` names a model)."""
    parts = []
    for depth, layer in enumerate(spec.proposer_layers, start=1):
        models = [name(a.model) for a in layer]
        if all(a.kind == "propose" for a in layer) and len(set(models)) == 1:
            parts.append(f"layer {depth}: {len(models)} draws of {models[0]}")
        else:
            said = [m + _doing(a) for m, a in zip(models, layer, strict=True)]
            parts.append(f"layer {depth}: {', '.join(said)}")
    final = spec.final
    if final.kind == "rank":
        verb = "picks one of their answers"
    elif final.kind == "strategy":
        verb = f"runs {final.strategy}"
    else:
        verb = "aggregates"
    model = name(final.model)
    parts.append(f"then {model} {verb}" if spec.proposer_layers else f"{model} alone")
    return "; ".join(parts)


def _doing(agent: Agent) -> str:
    if agent.kind == "rank":
        return f" (ranks, passes on {agent.top_k})"
    if agent.kind == "strategy":
        return f" ({agent.strategy})"
    return "" if agent.kind == "propose" else f" ({agent.kind}s)"
