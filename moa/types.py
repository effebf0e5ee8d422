"""Plain data shared by every layer: requests, completions, errors and call records.

Everything here is JSON-serialisable so that it can be cached, traced and ledgered as is.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: str
    content: str


@dataclass(frozen=True)
class GenerateConfig:
    """Decoding parameters: exactly the ones that can change an answer (and so the cache key)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Non-default fields only, so adding a field later leaves old cache keys valid."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def request_params(self) -> dict[str, Any]:
        """The set parameters as an OpenAI chat-completions request spells them."""
        params: dict[str, Any] = {
            name: value
            for name in ("temperature", "max_tokens", "top_p", "seed")
            if (value := getattr(self, name)) is not None
        }
        if self.stop:
            params["stop"] = list(self.stop)
        if self.logprobs:
            params["logprobs"] = True
            if self.top_logprobs is not None:
                params["top_logprobs"] = self.top_logprobs
        return params

    def merged(self, **changes: Any) -> GenerateConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its alternatives, as OpenAI's `logprobs.content[i]`."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


# The finish reason of an answer cut off at its max_tokens (OpenAI's, vLLM's, llama.cpp's).
TRUNCATED = "length"


def encodable(text: str) -> bool:
    """Whether `text` has a UTF-8 form: no UTF-16 surrogate code point in it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def mend(text: str) -> str:
    """`text` with split surrogate pairs joined and each lone surrogate (which valid JSON can
    hold, as `"\\ud83d"`, but UTF-8 cannot) replaced by U+FFFD."""
    if encodable(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass(frozen=True)
class Completion:
    """An answer. `tokens_estimated`: the endpoint sent no usage (or one that cannot be right),
    so the token counts are `moa.tokens` estimates, which err high. `repaired`: its text or
    logprob tokens held lone surrogates, replaced by U+FFFD (`mended`)."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    tokens_estimated: bool = False
    repaired: bool = False

    @property
    def truncated(self) -> bool:
        """Cut off at its max_tokens (`finish_reason: "length"`)."""
        return self.finish_reason == TRUNCATED

    @property
    def empty(self) -> bool:
        """No text at all, or only white space (every answer is stripped before it is used)."""
        return not self.text.strip()

    def mended(self) -> Completion:
        """This answer, its text and logprob tokens mended (`mend`) and marked `repaired` if any
        had no UTF-8 form: as received, it could be neither sent on nor written to a file."""
        tokens = [s for t in self.logprobs or () for s in (t.token, *(a for a, _ in t.top))]
        if all(encodable(s) for s in (self.text, *tokens)):
            return self
        logprobs = self.logprobs and tuple(
            TokenLogprob(mend(t.token), t.logprob, tuple((mend(a), b) for a, b in t.top))
            for t in self.logprobs
        )
        return dataclasses.replace(self, text=mend(self.text), logprobs=logprobs, repaired=True)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "finish_reason": self.finish_reason,
        }
        if self.tokens_estimated:  # only then: a cached answer's stored form stays as it was
            out["tokens_estimated"] = True
        if self.repaired:  # likewise
            out["repaired"] = True
        if self.logprobs is not None:
            out["logprobs"] = [
                {"token": t.token, "logprob": t.logprob, "top": [list(p) for p in t.top]}
                for t in self.logprobs
            ]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Completion:
        logprobs = data.get("logprobs")
        return cls(
            text=data["text"],
            input_tokens=data.get("input_tokens", 0),
            output_tokens=data.get("output_tokens", 0),
            finish_reason=data.get("finish_reason"),
            tokens_estimated=bool(data.get("tokens_estimated", False)),
            repaired=bool(data.get("repaired", False)),
            logprobs=None
            if logprobs is None
            else tuple(
                TokenLogprob(t["token"], t["logprob"], tuple((a, b) for a, b in t["top"]))
                for t in logprobs
            ),
        )


class ErrorKind(enum.StrEnum):
    TRANSIENT = "transient"  # worth retrying: 429, 5xx, timeouts, dropped connections, bad bodies
    PERMANENT = "permanent"  # retrying cannot help: 400, auth, unknown model
    CONTEXT_OVERFLOW = "context_overflow"  # a 400 that says the prompt is too long


class ModelError(Exception):
    """A provider's failure, classified so the wrapper knows whether to retry."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.kind is ErrorKind.TRANSIENT

    def describe(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.kind.value}{status}: {self}"


class NotSent(ModelError):
    """A failure before the request reached a server (a refused connection, every replica
    drained): nothing can have been answered or paid, so it may go elsewhere at once, and an
    endpoint that has never answered and gets only these is unreachable (`moa.client`)."""


@dataclass
class CallRecord:
    """One line of the call ledger: what a call cost, whether it was cached, how it ended.

    `cost_usd` is the call at catalogue prices (NaN for an unpriced model), 0 on an endpoint that
    does not bill (`moa.catalogue.endpoint_bills`: a stand-in on `local` is not the model it is
    named after, nor priced as it); it was paid only when `billed`: the call was sent to an
    endpoint that bills, not answered from the cache. Ledgers written before `billed` existed lack
    it: their calls were billed exactly when not cached.

    The answer's marks (kept whatever the policies did with it, so a call that failed because
    its answer was cut still says so): `finish_reason` as the endpoint said it, `truncated` (cut
    off at max_tokens), `empty` (no text but white space), `tokens_estimated` (the endpoint sent
    no usage: the tokens, so the cost, are `moa.tokens` estimates, which err high), `repaired`
    (lone surrogates in it replaced by U+FFFD: `Completion.mended`). `unsent`: the
    call failed without a request, because its endpoint had refused the key (`ModelClient` sends
    it nothing more). The tokens and cost include those of answers a policy discarded (an empty
    one retried): they were paid all the same. Older ledgers lack these fields: read them as
    their defaults.
    """

    key: str
    model: str
    sample: int
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    attempts: int = 0
    error: str | None = None
    error_kind: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    billed: bool = False
    finish_reason: str | None = None
    truncated: bool = False
    empty: bool = False
    tokens_estimated: bool = False
    unsent: bool = False
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        # Every field is flat but `tags`: much cheaper than `dataclasses.asdict`, once per call.
        return {**vars(self), "tags": dict(self.tags)}


@dataclass(frozen=True)
class CallOutcome:
    """What the wrapper hands back: a completion or an error, never both, plus its record."""

    completion: Completion | None
    record: CallRecord

    @property
    def ok(self) -> bool:
        return self.completion is not None

    @property
    def text(self) -> str:
        if self.completion is None:
            raise ModelError(ErrorKind.PERMANENT, f"no answer: {self.record.error}")
        return self.completion.text


class Generator(Protocol):
    """The call surface that the mixture and the judges use; `moa.client.ModelClient` implements it.

    `model` is an address `endpoint/model`; `sample` tells apart repeated draws of one request.
    `tags` label the call in the ledger (e.g. `{"role": "judge"}`) and never enter the cache key.
    """

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome: ...
