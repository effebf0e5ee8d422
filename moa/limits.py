"""An endpoint's limits and answer policies: the keys of its config that `ModelClient` reads
itself, their defaults, and the check of their values, which ends as one `ConfigError` line.

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
    # Where each model's learned concurrency starts (`moa.scheduling.AdaptiveSlots`, slow
    # start), up to its cap; left out: `moa.scheduling.opening` (half the cap, at least 4).
    start_concurrency: int | None = None
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
    # What to do with an answer cut off at max_tokens (`finish_reason: "length"`) and with an
    # empty one (`ANSWER_POLICIES`). Either is always marked in the ledger and the trace; the
    # policy applies to every call but those of `moa.client.FLAG_ONLY_ROLES` (judges, ranker).
    on_truncated: str = "keep"
    on_empty: str = "keep"

    @classmethod
    def from_spec(cls, endpoint: str, spec: Mapping[str, Any]) -> EndpointLimits:
        """The limits an endpoint's config sets; a bad value is a `ConfigError` naming
        `endpoints.<endpoint>.<key>`."""
        values: dict[str, Any] = {}
        for key, value in spec.items():
            if key in ANSWER_POLICIES:
                choices = ANSWER_POLICIES[key]
                if value is not None and value not in choices:
                    raise ConfigError(
                        f"endpoints.{endpoint}.{key}={value!r} is not one of {', '.join(choices)}"
                    )
                if value:  # null: the default
                    values[key] = str(value)
                continue
            if key not in _INTEGER:
                continue
            integer = _INTEGER[key]
            check_number(f"endpoints.{endpoint}.{key}", value, integer=integer, optional=True)
            if value:  # null or 0: the default
                values[key] = int(value) if integer else float(value)
        urls = spec.get("base_urls")
        if isinstance(urls, list | tuple) and urls and "max_concurrency" not in values:
            # replicas (`moa.providers.replicas`): the endpoint takes what they all take
            values["max_concurrency"] = ReplicaSettings.from_spec(endpoint, spec).max_concurrency
            values["max_concurrency"] *= len(urls)
        return cls(**values)


@dataclass(frozen=True)
class ReplicaSettings:
    """An endpoint's replica settings (`base_urls`), read by its provider: each replica's
    concurrency cap (its own limit is learned below it), the transient failures in a row that
    drain it, and how long it stays drained. With replicas, an endpoint's `max_concurrency`
    left unset is the sum of theirs."""

    max_concurrency: int = EndpointLimits.max_concurrency
    max_failures: int = 3
    cooldown_s: float = 30.0

    @classmethod
    def from_spec(cls, endpoint: str, spec: Mapping[str, Any]) -> ReplicaSettings:
        values: dict[str, Any] = {}
        for field_name in ("max_concurrency", "max_failures", "cooldown_s"):
            key = f"replica_{field_name}"
            value = spec.get(key)
            integer = field_name != "cooldown_s"
            check_number(f"endpoints.{endpoint}.{key}", value, integer=integer, optional=True)
            if value:  # null or 0: the default
                values[field_name] = int(value) if integer else float(value)
        return cls(**values)


# The answer policies and their choices, the default first. "keep": the answer is kept (and
# marked). "fail": the call ends as a recorded error (the answer stays cached: a re-run fails it
# again without paying). "retry" (empty answers only): the same request is sent again, within
# max_attempts, as for a transient error; that helps where a flaky server sometimes answers
# nothing, never where the model does (each empty answer is paid), and it is no choice for a cut
# answer: the same request is cut at the same max_tokens, and re-drawing until one fits would
# bias the samples towards short answers.
ANSWER_POLICIES: dict[str, tuple[str, ...]] = {
    "on_truncated": ("keep", "fail"),
    "on_empty": ("keep", "retry", "fail"),
}
# Each limit's key, and whether it must be an integer (read off its annotation).
_INTEGER = {
    f.name: str(f.type).startswith("int")
    for f in dataclasses.fields(EndpointLimits)
    if f.name not in ANSWER_POLICIES
}
LIMIT_KEYS: tuple[str, ...] = (*_INTEGER, *ANSWER_POLICIES)
