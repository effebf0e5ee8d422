"""Any OpenAI-compatible chat endpoint (OpenAI, Together, vLLM, Ollama, llama.cpp) via `openai`.

Calls go through the SDK's `AsyncOpenAI` client on its aiohttp transport, as a plain `post` of
`/chat/completions` whose body we parse ourselves: the SDK's typed `create` re-walks every
message to validate it and builds a pydantic model of the answer, which cost about four times
the CPU per call (measured with `scripts/bench_throughput.py`). The SDK's own retries are off:
`ModelClient` retries, times and caps every call; here we translate failures into `ModelError`.

A failed connection says what failed, from the errors the SDK's `APIConnectionError` wraps
(aiohttp's, then the socket's): "connection refused by <base_url>" (transient: the server may be
starting), "cannot resolve host <host> (DNS)" (permanent, unless the resolver said to try again),
"response body cut short" (transient: the connection closed before the body its Content-Length
announced), else the SDK's error type and its innermost cause's.

An answer without `usage` (some self-hosted servers, some proxies) gets `moa.tokens` estimates
of its prompt and its text, marked `tokens_estimated`, so it is still priced and counted against
a budget; so does one whose usage cannot be right (no prompt tokens, or no output tokens for a
text).
"""

from __future__ import annotations

import email.utils
import errno
import functools
import json
import math
import os
import re
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx2
import openai

from moa.errors import ConfigError
from moa.failures import describe_exception
from moa.limits import ReplicaSettings
from moa.providers.base import register_provider
from moa.providers.replicas import Replicas
from moa.served import ServedModel
from moa.tokens import estimate_prompt, estimate_tokens
from moa.types import (
    ChatMessage,
    Completion,
    ErrorKind,
    GenerateConfig,
    ModelError,
    NotSent,
    TokenLogprob,
)

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
_RECEIVED = re.compile(r"received (\d+) of (\d+) bytes")  # aiohttp's ContentLengthError


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms`, or `retry-after` as seconds or an HTTP date; None for a value that is
    none of these ("nan" included). Infinity stays: it is longer than any `retry_after_max_s`."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000.0
        except ValueError:
            pass
        else:
            if not math.isnan(seconds):
                return max(seconds, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
        except (TypeError, ValueError):
            return None
        return None if parsed is None else max(parsed.timestamp() - time.time(), 0.0)
    return None if math.isnan(seconds) else max(seconds, 0.0)


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
            return NotSent(ErrorKind.TRANSIENT, f"connection refused by {_shown(base_url)}")
        if _named(cause, "ContentLengthError"):
            # its message is aiohttp's own, with byte counts only: safe to show them
            counts = _RECEIVED.search(str(cause))
            got = f" (received {counts[1]} of {counts[2]} bytes)" if counts else ""
            return ModelError(
                ErrorKind.TRANSIENT,
                f"response body cut short: the connection closed before its Content-Length{got}",
            )
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


def parse_completion(
    data: Any, config: GenerateConfig, messages: Sequence[ChatMessage] = ()
) -> Completion:
    """A chat.completion body as a `Completion`; a body that is not one is worth another try.
    Missing usage is estimated from `messages` (the request's) and the text (module docstring)."""
    return parse_completions(data, config, messages, 1)[0]


def parse_completions(
    data: Any, config: GenerateConfig, messages: Sequence[ChatMessage], n: int
) -> list[Completion]:
    """The first `n` choices of a body, the usage split as `BatchingAPI` says: the prompt on
    the first, the answer tokens in proportion to each choice's estimated length. Fewer than
    `n` when the server sent fewer (one that ignores `n`): the caller decides what that means."""
    if not isinstance(data, Mapping):
        raise _malformed("not a JSON object")
    choices = data.get("choices")
    if not choices:
        raise ModelError(ErrorKind.TRANSIENT, "response has no choices")
    try:
        parsed = [_choice(c, config) for c in choices[:n]]
        usage = data.get("usage")
        if not isinstance(usage, Mapping):
            usage = {}
        input_tokens = _count(usage.get("prompt_tokens"))
        output_tokens = _count(usage.get("completion_tokens"))
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise _malformed(describe_exception(exc)) from None
    estimated = False
    if input_tokens is None or (input_tokens == 0 and messages):
        input_tokens, estimated = estimate_prompt(messages), True
    lengths = [estimate_tokens(text) for text, _, _ in parsed]
    if output_tokens is None or (output_tokens == 0 and any(lengths)):
        shares, estimated = lengths, True
    else:
        shares = _split(output_tokens, lengths)
    return [
        Completion(
            text=text,
            input_tokens=input_tokens if i == 0 else 0,
            output_tokens=share,
            finish_reason=finish,
            logprobs=logprobs,
            tokens_estimated=estimated,
        )
        for i, ((text, finish, logprobs), share) in enumerate(zip(parsed, shares, strict=True))
    ]


def _choice(
    choice: Any, config: GenerateConfig
) -> tuple[str, Any, tuple[TokenLogprob, ...] | None]:
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
    return str(text), choice.get("finish_reason"), logprobs


def _split(total: int, lengths: Sequence[int]) -> list[int]:
    """`total` in whole shares proportional to `lengths` (equal when all are 0), summing to it."""
    if len(lengths) == 1:
        return [total]
    weights = lengths if any(lengths) else [1] * len(lengths)
    shares = [total * w // sum(weights) for w in weights]
    shares[-1] += total - sum(shares)
    return shares


def _count(value: Any) -> int | None:
    """A usage count, None when the server left it out (a non-number is a malformed body)."""
    return None if value is None else int(value)


# The SDK's own encoder's settings (`openai._utils._json`), built once: `json.dumps` builds an
# encoder per call.
_BODY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _json_body(params: Mapping[str, Any]) -> bytes:
    """The request body as the SDK's own encoder writes it, byte for byte for plain JSON
    values: the SDK sends bytes as they are, without its encoder's walk."""
    return _BODY_JSON(params).encode()


# Each request's options as the client already has them (no retries, no timeout, no extra
# headers), given so that the SDK does not deep-copy its "not given" defaults for every request
# (~9 us a call). The SDK copies this mapping's values into each request's options.
_REQUEST_OPTIONS: openai.RequestOptions = {"max_retries": 0, "timeout": None, "headers": {}}


def _by_id(model: ServedModel) -> str:
    return model.id


@functools.cache
def tls_context(secure: bool) -> ssl.SSLContext:
    """One TLS context for every endpoint's client. For `https://`, the one httpx2 builds by
    default: it loads the system's certificates, tens of milliseconds, so once per process. A
    plain `http://` server (vLLM on loopback) never uses one: it gets a context that verifies
    as strictly but trusts no certificate, so nothing is loaded, and a redirect to `https://`
    fails closed instead of going unverified."""
    return httpx2.create_ssl_context() if secure else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def identity_of(base_url: str) -> str:
    """What a cache key names for a server at `base_url`."""
    return f"openai:{base_url.rstrip('/')}"


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
            http_client=openai.DefaultAioHttpClient(
                limits=httpx2.Limits(max_connections=_POOL),
                verify=tls_context(urlsplit(self.base_url).scheme != "http"),
            ),
        )
        # The URL the SDK would merge from its base URL per request, merged once its own way:
        # an absolute URL skips that work on every call.
        base = self._client.base_url
        self._chat_url = str(base.copy_with(raw_path=base.raw_path + b"chat/completions"))

    @property
    def identity(self) -> str:
        return identity_of(self.base_url)

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        # `sample` only tells the cache apart; the API draws a fresh sample per request anyway.
        return (await self._post(model, messages, config, 1))[0]

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """One request with `n`, one choice per sample (`BatchingAPI`)."""
        return await self._post(model, messages, config, len(samples))

    async def _post(
        self, model: str, messages: Sequence[ChatMessage], config: GenerateConfig, n: int
    ) -> list[Completion]:
        params = {"model": model, "messages": list(messages), **config.request_params()}
        if n > 1:
            params["n"] = n
        try:
            response = await self._client.post(
                self._chat_url,
                content=_json_body(params),
                cast_to=httpx2.Response,
                options=_REQUEST_OPTIONS,
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
        return parse_completions(data, config, messages, n)

    async def list_models(self) -> list[ServedModel]:
        """The models the endpoint serves (`GET /models`), by id, with what the list says of
        each (a shutdown date, prices: `moa.served`)."""
        try:
            page = await self._client.models.list()
        except openai.APIStatusError as exc:
            raise classify(exc.status_code, exc.response.content, exc.response.headers) from None
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            raise connection_error(exc, self.base_url) from None
        return sorted((ServedModel.from_listing(m.model_dump()) for m in page.data), key=_by_id)

    async def aclose(self) -> None:
        await self._client.close()


@register_provider("openai")
def _build(endpoint: str, options: Mapping[str, Any]) -> OpenAICompatible | Replicas:
    """One server at `base_url`, or replicas of one at `base_urls` (`moa.providers.replicas`).

    Replicas' cache keys name `base_url` when it is set beside `base_urls`, else the first of
    `base_urls`: the keys a single-URL endpoint made stay valid when it gains replicas, and do
    not depend on which replica answers. (Set `base_url` to the old first URL before replacing
    the first replica, or its keys change.)"""
    urls = options.get("base_urls")
    base_url = options.get("base_url")
    if urls is not None and (
        isinstance(urls, str) or not urls or not all(isinstance(u, str) and u for u in urls)
    ):
        raise ConfigError(f"endpoint {endpoint!r}: base_urls must be a list of URLs")
    if not base_url and not urls:
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
    if not urls:
        return OpenAICompatible(endpoint, str(base_url), api_key)
    if len(set(urls)) != len(urls):
        raise ConfigError(f"endpoint {endpoint!r}: base_urls lists a URL twice")
    settings = ReplicaSettings.from_spec(endpoint, options)
    return Replicas(
        endpoint,
        identity_of(str(base_url or urls[0])),
        [(str(u), OpenAICompatible(endpoint, str(u), api_key)) for u in urls],
        max_concurrency=settings.max_concurrency,
        max_failures=settings.max_failures,
        cooldown_s=settings.cooldown_s,
    )
