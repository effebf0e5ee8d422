"""Keeping API keys out of everything a run writes or prints.

Keys come from the environment only: an endpoint names its variable (`api_key_env`). An error
can still carry one: some servers echo the key they were sent in a 401 message (OpenAI echoes a
masked one), and an HTTP library's exception may print the request's headers. So the errors of
every endpoint that holds a key are scrubbed before they reach a ledger, a trace or a terminal.

Scrubbing takes out any part of a secret long enough to matter, not just the whole: a server that
echoes the first 19 of a key's 26 characters gives away most of it. A fragment is masked when it
is at least `fragment_length` characters of the secret (half of it, and 8 at the least).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from moa.failures import as_model_error
from moa.providers.base import ModelAPI
from moa.served import ServedModel
from moa.types import ChatMessage, Completion, GenerateConfig

MASK = "<redacted>"
# A key a server masked before echoing it, as OpenAI does: `sk-proj-ab********wxyz`.
_MASKED_KEY = re.compile(r"[\w-]*\*{4,}[\w-]*")
# A name may hold a secret when one of its words ends in one of these, in any case:
# `TOGETHER_API_KEY`, `apikey`, `HF_TOKEN`, `AUTHTOKEN`, `client_secret`, `PGPASSWORD`. Words
# are split at anything but letters and digits, so `max_tokens` and `tokenizer` are not secrets.
_SECRET_ENDINGS = ("key", "token", "secret", "password")
_WORD_SEPARATOR = re.compile(r"[^a-z0-9]+")
_NAMES_VARIABLE = "_env"  # `api_key_env: TOGETHER_API_KEY` names the variable that holds the key
_SHORTEST_SECRET = 8  # shorter values ("none", "1") would scrub ordinary words


def is_secret_name(name: str) -> bool:
    """Whether a name (an environment variable's, a config key) says that its value is a secret."""
    return any(w.endswith(_SECRET_ENDINGS) for w in _WORD_SEPARATOR.split(name.lower()))


def names_variable(key: str) -> bool:
    """Whether a config key (`*_env`) holds the name of an environment variable, not a value."""
    return key.endswith(_NAMES_VARIABLE)


def holds_secret(key: str) -> bool:
    """Whether a config key's value may be a secret: its name says so, and it is no `*_env` key.
    Such a key is refused in an endpoint's config, and its value blanked in a saved config."""
    return is_secret_name(key) and not names_variable(key)


def redact_config(node: Any) -> Any:
    """A config as plain containers (`OmegaConf.to_container`), with the value of every key that
    `holds_secret` replaced by `MASK`, at any depth."""
    if isinstance(node, Mapping):
        return {k: MASK if holds_secret(str(k)) else redact_config(v) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_config(v) for v in node]
    return node


def secrets_of(spec: Mapping[str, Any]) -> list[str]:
    """The values of the environment variables an endpoint's config names (its `*_env` keys)."""
    names = [str(v) for k, v in spec.items() if names_variable(str(k)) and v]
    return [value for name in names if len(value := os.environ.get(name, "")) >= _SHORTEST_SECRET]


def environment_secrets() -> list[str]:
    """Values of every environment variable whose name says it holds a secret."""
    return [
        value
        for name, value in os.environ.items()
        if is_secret_name(name) and len(value) >= _SHORTEST_SECRET
    ]


def fragment_length(secret: str) -> int:
    """The shortest part of `secret` that `scrub` masks: half of it, and 8 characters at the
    least (the whole of a shorter secret)."""
    return min(len(secret), max(_SHORTEST_SECRET, -(-len(secret) // 2)))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every fragment of a secret (`fragment_length`) and every key a server masked
    before echoing replaced by `MASK`."""
    found = _Fragments.of(tuple(secrets)).spans(text)
    if found:
        parts, at = [], 0
        for start, end in found:
            parts += [text[at:start], MASK]
            at = end
        text = "".join([*parts, text[at:]])
    return _MASKED_KEY.sub(MASK, text)


class _Fragments:
    """Finds the fragments of a set of secrets in a text, built once per set.

    Each secret is cut into aligned pieces of about half its fragment length, so that any
    fragment holds at least one whole piece: a text is searched for the pieces (`str.find`, at C
    speed; most texts hold none), and around each piece found the match is grown both ways as far
    as the text goes on agreeing with the secret."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        # (piece, where it starts in the secret, the secret, the shortest fragment to mask)
        self.pieces: list[tuple[str, int, str, int]] = []
        for secret in dict.fromkeys(s for s in secrets if s):
            shortest = fragment_length(secret)
            size = (shortest + 1) // 2  # any `shortest` characters hold one whole piece
            for at in range(0, len(secret) - size + 1, size):
                self.pieces.append((secret[at : at + size], at, secret, shortest))

    @staticmethod
    @functools.lru_cache(maxsize=64)
    def of(secrets: tuple[str, ...]) -> _Fragments:
        return _Fragments(secrets)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """The stretches of `text` to mask, sorted and merged."""
        spans: list[tuple[int, int]] = []
        for piece, offset, secret, shortest in self.pieces:
            hit = text.find(piece)
            while hit >= 0:
                start, end = hit, hit + len(piece)
                before = offset
                while start > 0 and before > 0 and text[start - 1] == secret[before - 1]:
                    start, before = start - 1, before - 1
                after = offset + len(piece)
                while end < len(text) and after < len(secret) and text[end] == secret[after]:
                    end, after = end + 1, after + 1
                if end - start >= shortest:
                    spans.append((start, end))
                hit = text.find(piece, hit + 1)
        spans.sort()
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


class Redacting:
    """A provider whose errors never carry its endpoint's key."""

    def __init__(self, inner: ModelAPI, secrets: Sequence[str]) -> None:
        self.inner = inner
        self.secrets = tuple(secrets)

    @property
    def identity(self) -> str:
        return self.inner.identity

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        try:
            return await self.inner.generate(model, messages, config, sample)
        except Exception as exc:  # as ModelClient would record it, but scrubbed first
            raise as_model_error(exc, scrub=lambda text: scrub(text, self.secrets)) from None

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """The inner provider's batched draws (`moa.providers.base.BatchingAPI`), scrubbed."""
        inner = getattr(self.inner, "generate_n", None)
        if inner is None:
            raise AttributeError("generate_n")
        try:
            drawn: list[Completion] = await inner(model, messages, config, samples)
        except Exception as exc:
            raise as_model_error(exc, scrub=lambda text: scrub(text, self.secrets)) from None
        return drawn

    async def list_models(self) -> list[ServedModel]:
        """The inner provider's model list, where it has one, its errors scrubbed too."""
        lister = getattr(self.inner, "list_models", None)
        if lister is None:
            raise AttributeError("list_models")
        try:
            models: list[ServedModel] = await lister()
        except Exception as exc:
            raise as_model_error(exc, scrub=lambda text: scrub(text, self.secrets)) from None
        return models

    async def aclose(self) -> None:
        await self.inner.aclose()


def redacting(api: ModelAPI, spec: Mapping[str, Any]) -> ModelAPI:
    """`api` itself when its endpoint holds no key, else `api` behind a `Redacting` wrapper."""
    secrets = secrets_of(spec)
    return Redacting(api, secrets) if secrets else api
