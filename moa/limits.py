"""An endpoint's limits: the keys of its config that `ModelClient` reads itself, their defaults,
and the check of their values, which ends as one `ConfigError` line.

Limits never enter a cache key. Every other key of an endpoint's config (but `provider`) goes to
its provider as an option.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moa.errors import ConfigError


def check_number(name: str, value: Any, *, integer: bool = False, optional: bool = False) -> None:
    """Refuses a setting `name` that is not a number >= 0 (an integer, with `integer`)."""
    if value is None and optional:
        return
    typed = isinstance(value, int) or (isinstance(value, float) and not integer)
    if isinstance(value, bool) or not typed or value < 0:
        what = "an integer" if integer else "a number"
        raise ConfigError(
            f"{name}={value!r} must be {what} >= 0" + (" or null" if optional else "")
        )


@dataclass(frozen=True)
class EndpointLimits:
    """What `ModelClient` enforces per endpoint. A key left out, null or 0 takes the default;
    for `rpm` and `tpm` that is no limit."""

    max_concurrency: int = 16  # calls in flight at once
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute, at the `moa.tokens` estimate
    # Per call, the first one included; a rate-limit refusal that lowers the model's learned
    # concurrency is not counted (`moa.scheduling.AdaptiveSlots`).
    max_attempts: int = 10
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 600.0  # per attempt
    # A Retry-After longer than this ends the call at once, with an error that says so.
    retry_after_max_s: float = 300.0

    @classmethod
    def from_spec(cls, endpoint: str, spec: Mapping[str, Any]) -> EndpointLimits:
        """The limits an endpoint's config sets; a bad value is a `ConfigError` naming
        `endpoints.<endpoint>.<key>`."""
        values: dict[str, Any] = {}
        for key, value in spec.items():
            if key not in _INTEGER:
                continue
            integer = _INTEGER[key]
            check_number(f"endpoints.{endpoint}.{key}", value, integer=integer, optional=True)
            if value:  # null or 0: the default
                values[key] = int(value) if integer else float(value)
        return cls(**values)


# Each limit's key, and whether it must be an integer (read off its annotation).
_INTEGER = {f.name: str(f.type).startswith("int") for f in dataclasses.fields(EndpointLimits)}
LIMIT_KEYS: tuple[str, ...] = tuple(_INTEGER)
