"""Any OpenAI-compatible chat endpoint (OpenAI, Together, vLLM, Ollama, llama.cpp) via `openai`.

Calls go through the SDK's `AsyncOpenAI` client on its aiohttp transport, as a plain `post` of
`/chat/completions` whose body we parse ourselves: the SDK's typed `create` re-walks every
message to validate it and builds a pydantic model of the answer, which cost about four times
the CPU per call (measured with `scripts/bench_throughput.py`). The SDK's own retries are off:
`ModelClient` retries, times and caps every call; here we translate failures into `ModelError`.

A failed connection says what failed, from the errors the SDK's `APIConnectionError` wraps
(aiohttp's, then the socket's): "connection refused by <base_url>" (transient: the server may be
starting), "cannot resolve host <host> (DNS)" (permanent, unless the resolver said to try again),
else the SDK's error type and its innermost cause's.
"""

from __future__ import annotations

import email.utils
import errno
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai

from moa.errors import ConfigError
from moa.failures import describe_exception
from moa.providers.base import register_provider
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError, TokenLogprob

_POOL = 100_000  # connections per endpoint: more than any concurrency limit will allow
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "too many tokens",
    "prompt is too long",
)
# A 429 that no wait will cure: the account is out of credit, or the request alone is more
# than the tokens-per-minute limit (OpenAI's words for both).
_NEVER_429_MARKERS = ("insufficient_quota", "request too large")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(parsed.timestamp() - time.time(), 0.0)


def classify(status: int, body: bytes, headers: Mapping[str, str]) -> ModelError:
    """An HTTP error status as a `ModelError` kind, with the provider's own message."""
    message = _status_message(status, body)
    if status == 429 and any(m in message.lower() for m in _NEVER_429_MARKERS):
        return ModelError(ErrorKind.PERMANENT, message, status=status)
    if status == 429 or status >= 500 or status in (408, 409):
        return ModelError(
            ErrorKind.TRANSIENT, message, status=status, retry_after=retry_after_seconds(headers)
        )
    lowered = message.lower()
    if status in (400, 413, 422) and any(m in lowered for m in _CONTEXT_MARKERS):
        return ModelError(ErrorKind.CONTEXT_OVERFLOW, message, status=status)
    return ModelError(ErrorKind.PERMANENT, message, status=status)


def _status_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500] or f"HTTP {status}"
    inner = data.get("error", data) if isinstance(data, Mapping) else data
    if isinstance(inner, Mapping) and inner.get("message"):
        code = inner.get("code")
        return f"{inner['message']}" + (f" ({code})" if code else "")
    if isinstance(inner, str):
        return inner
    return text.strip()[:500]


def connection_error(exc: BaseException, base_url: str) -> ModelError:
    """What a failed connection was, found by walking the chain of errors `exc` wraps. Only
    types and the URL are shown: some errors' messages print the request's headers."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    innermost = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror) or _named(cause, "ClientConnectorDNSError"):
            host = urlsplit(base_url).hostname or base_url
            again = getattr(cause, "errno", None) == socket.EAI_AGAIN
            kind = ErrorKind.TRANSIENT if again else ErrorKind.PERMANENT
            return ModelError(kind, f"cannot resolve host {host} (DNS)")
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return ModelError(ErrorKind.TRANSIENT, f"connection refused by {_shown(base_url)}")
        innermost = cause
        cause = cause.__cause__ or cause.__context__
    inner = f" ({type(innermost).__name__})" if innermost is not exc else ""
    return ModelError(ErrorKind.TRANSIENT, f"connection failed: {type(exc).__name__}{inner}")


def _named(exc: BaseException, name: str) -> bool:
    """`exc` is an instance of a class called `name` (aiohttp's, without importing aiohttp)."""
    return any(c.__name__ == name for c in type(exc).__mro__)


def _shown(url: str) -> str:
    """`url` without any user name or password in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def _malformed(reason: object) -> ModelError:
    return ModelError(ErrorKind.TRANSIENT, f"malformed response body: {reason}")


def parse_completion(data: Any, config: GenerateConfig) -> Completion:
    """A chat.completion body as a `Completion`; a body that is not one is worth another try."""
    if not isinstance(data, Mapping):
        raise _malformed("not a JSON object")
    choices = data.get("choices")
    if not choices:
        raise ModelError(ErrorKind.TRANSIENT, "response has no choices")
    try:
        choice = choices[0]
        text = choice["message"].get("content")
        if text is None:
            raise ModelError(ErrorKind.TRANSIENT, "response has no message content")
        logprobs: tuple[TokenLogprob, ...] | None = None
        content = (choice.get("logprobs") or {}).get("content") if config.logprobs else None
        if content is not None:
            logprobs = tuple(
                TokenLogprob(
                    t["token"],
                    t["logprob"],
                    tuple((a["token"], a["logprob"]) for a in t.get("top_logprobs") or ()),
                )
                for t in content
            )
        usage = data.get("usage") or {}
        return Completion(
            text=str(text),
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
            logprobs=logprobs,
        )
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise _malformed(describe_exception(exc)) from None


class OpenAICompatible:
    def __init__(self, endpoint: str, base_url: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        # No connection cap here: `ModelClient`'s semaphores cap the calls, and a smaller pool
        # would silently cap them lower. Not `max_connections=None`: the aiohttp transport then
        # keeps aiohttp's own default of 100 connections (the throughput bench saw it).
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=api_key,
            max_retries=0,
            timeout=None,  # `ModelClient` times every attempt
            http_client=openai.DefaultAioHttpClient(limits=httpx2.Limits(max_connections=_POOL)),
        )

    @property
    def identity(self) -> str:
        return f"openai:{self.base_url}"

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        # `sample` only tells the cache apart; the API draws a fresh sample per request anyway.
        params = {"model": model, "messages": list(messages), **config.request_params()}
        try:
            response = await self._client.post(
                "/chat/completions", body=params, cast_to=httpx2.Response
            )
            raw = await response.aread()
        except openai.APIStatusError as exc:
            raise classify(exc.status_code, exc.response.content, exc.response.headers) from None
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            # refused, unresolvable, reset, dropped mid-body
            raise connection_error(exc, self.base_url) from None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise _malformed(exc) from None
        return parse_completion(data, config)

    async def aclose(self) -> None:
        await self._client.close()


@register_provider("openai")
def _build(endpoint: str, options: Mapping[str, Any]) -> OpenAICompatible:
    base_url = options.get("base_url")
    if not base_url:
        raise ConfigError(f"endpoint {endpoint!r}: base_url is not set")
    key_env = options.get("api_key_env")
    if key_env:
        api_key = os.environ.get(str(key_env))
        if not api_key:
            raise ConfigError(
                f"endpoint {endpoint!r} needs an API key: set the environment variable {key_env}"
            )
    else:
        api_key = "none"  # local servers ignore it; some want the header all the same
    return OpenAICompatible(endpoint, str(base_url), api_key)
