"""The model catalogue: what a short model name means, what it costs and how big it is.

Names like `qwen110b` resolve to an address `endpoint/model` plus the facts the budget analysis
needs (price per million tokens, active parameters, context length). A `provider_override`
re-routes every address to one endpoint, e.g. `scripted` for offline runs, keeping those facts.

Catalogue prices are what a call would cost; it is paid only on an endpoint that bills
(`endpoint_bills`): its `bills` setting, else its provider's default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from moa.errors import ConfigError

REPLAY = "replay"
# An endpoint's setting that says whether its calls cost money; `ModelClient` reads it, it is no
# provider option and never enters a cache key.
BILLS = "bills"
# Providers that never bill unless an endpoint says `bills: true`. Any other provider bills by
# default: `openai` may be Together or OpenAI as well as a self-hosted server (which then says
# `bills: false`), and a provider this module does not know may charge.
FREE_PROVIDERS = frozenset({"scripted", "local", REPLAY})


@dataclass(frozen=True)
class ModelEntry:
    name: str
    address: str  # endpoint/model
    price_in: float | None = None  # USD per million input tokens
    price_out: float | None = None  # USD per million output tokens
    active_params_b: float | None = None  # billions, for the TFLOPs estimate
    context_length: int | None = None
    max_concurrency: int | None = None  # per-model cap on top of the endpoint's

    @property
    def endpoint(self) -> str:
        return self.address.split("/", 1)[0]

    @property
    def model_id(self) -> str:
        return self.address.split("/", 1)[1]

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """Nominal USD at catalogue prices; NaN when the price is unknown."""
        if self.price_in is None or self.price_out is None:
            return math.nan
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1e6


def endpoint_bills(endpoint: str, spec: Mapping[str, Any]) -> bool:
    """Whether calls sent to an endpoint are paid for: its `bills` setting, else its provider's
    default (see `FREE_PROVIDERS`). A `bills` that is not true, false or null is a ConfigError."""
    value = spec.get(BILLS)
    if value is None:
        return str(spec.get("provider", "openai")) not in FREE_PROVIDERS
    if not isinstance(value, bool):
        raise ConfigError(f"endpoints.{endpoint}.{BILLS}={value!r} must be true or false")
    return value


def unbilled_endpoints(specs: Mapping[str, Mapping[str, Any]]) -> frozenset[str]:
    """The endpoints whose calls cost nothing, of those configured."""
    return frozenset(name for name, spec in specs.items() if not endpoint_bills(name, spec))


def split_address(address: str) -> tuple[str, str]:
    endpoint, sep, model = address.partition("/")
    if not sep or not endpoint or not model:
        raise ConfigError(f"model address {address!r} is not of the form endpoint/model")
    return endpoint, model


class Catalogue:
    """Resolves names and addresses; knows which endpoints exist."""

    def __init__(
        self,
        models: Mapping[str, Mapping[str, Any]],
        endpoints: Iterable[str],
        provider_override: str | None = None,
    ) -> None:
        self.endpoints = frozenset(endpoints)
        self.provider_override = provider_override or None
        if self.provider_override and self.provider_override not in self.endpoints:
            raise ConfigError(
                f"provider_override={self.provider_override!r} is not an endpoint "
                f"(known: {', '.join(sorted(self.endpoints))})"
            )
        self._by_name: dict[str, ModelEntry] = {}
        self._by_address: dict[str, ModelEntry] = {}
        for name, spec in models.items():
            entry = self._reroute(ModelEntry(name=name, **dict(spec)))
            split_address(entry.address)
            self._by_name[name] = entry
            self._by_address.setdefault(entry.address, entry)

    def _reroute(self, entry: ModelEntry) -> ModelEntry:
        """Replayed outputs stay replayed: they are real data and cost nothing already."""
        if self.provider_override is None or entry.endpoint == REPLAY:
            return entry
        return replace(entry, address=f"{self.provider_override}/{entry.model_id}")

    def resolve(self, name_or_address: str) -> ModelEntry:
        """A catalogue name, or an `endpoint/model` address on a known endpoint."""
        if name_or_address in self._by_name:
            return self._by_name[name_or_address]
        if "/" not in name_or_address:
            fields = "address:<endpoint>/<model id>,price_in:...,price_out:..."
            form = f"+catalogue.{name_or_address}={{{fields}}}"
            raise ConfigError(
                f"unknown model {name_or_address!r}: not in the catalogue "
                f"(known: {', '.join(sorted(self._by_name))}) and not an endpoint/model address; "
                f"to add it, override '{form}' (USD per million tokens) or add it to "
                "conf/catalogue/*.yaml"
            )
        endpoint, _ = split_address(name_or_address)
        if endpoint not in self.endpoints:
            raise ConfigError(
                f"model {name_or_address!r}: unknown endpoint {endpoint!r} "
                f"(known: {', '.join(sorted(self.endpoints))})"
            )
        entry = self._reroute(ModelEntry(name=name_or_address, address=name_or_address))
        return self._by_address.get(entry.address, entry)

    def on_endpoint(self, endpoint: str) -> list[ModelEntry]:
        """The catalogue's models routed to `endpoint`, in catalogue order."""
        return [e for e in self._by_name.values() if e.endpoint == endpoint]

    def by_address(self, address: str) -> ModelEntry:
        entry = self._by_address.get(address)
        return entry if entry is not None else ModelEntry(name=address, address=address)
