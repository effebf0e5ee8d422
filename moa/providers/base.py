"""The one model protocol every provider implements, and the registry that names them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from moa.errors import ConfigError
from moa.types import ChatMessage, Completion, GenerateConfig


class ModelAPI(Protocol):
    """A backend that turns one chat request into one completion, or raises `ModelError`.

    Providers do no retrying, caching or accounting: `moa.client.ModelClient` owns those.
    """

    @property
    def identity(self) -> str:
        """What the cache key uses for "which endpoint": it must change when answers would."""
        ...

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


class BatchingAPI(ModelAPI, Protocol):
    """A backend that can also draw several samples of one request in one call (`n`), for an
    endpoint whose config says `supports_n: true`. It returns one completion per sample, in
    order, with the call's usage split between them: the prompt's tokens all on the first (the
    prompt was sent and billed once), the answer tokens each on its own; fewer when the server
    sent fewer (it ignores `n`: `ModelClient` then draws the rest one per request)."""

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]: ...


ProviderFactory = Callable[[str, Mapping[str, Any]], ModelAPI]
"""Builds a provider from an endpoint's name and its config section."""

_REGISTRY: dict[str, ProviderFactory] = {}
# The built-in providers, each by the module that defines it: only the one an endpoint names is
# imported (its @register_provider fills `_REGISTRY`), so a scripted or replay run never loads
# the `openai` SDK (about a second of start-up), which `openai` and `local` need.
_BUILTIN = {
    "openai": "moa.providers.openai_compat",
    "local": "moa.providers.local",
    "replay": "moa.providers.replay",
    "scripted": "moa.providers.scripted",
}


def register_provider(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Names a factory: `@register_provider("mine")`, imported before the client is built, lets
    an endpoint say `provider: mine`."""

    def decorate(factory: ProviderFactory) -> ProviderFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def create_provider(kind: str, endpoint: str, options: Mapping[str, Any]) -> ModelAPI:
    if kind not in _REGISTRY and kind in _BUILTIN:
        importlib.import_module(_BUILTIN[kind])
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted({*_REGISTRY, *_BUILTIN}))
        raise ConfigError(
            f"endpoint {endpoint!r}: unknown provider {kind!r} (known: {known})"
        ) from None
    return factory(endpoint, options)
