"""How a failed call is recorded: whatever a call ends with becomes one `ModelError`, and that
error becomes the `error` and `error_kind` of its ledger record.

Providers raise `ModelError` for the failures they know how to classify (an HTTP status, a
dropped connection, a malformed body). Anything else they let out (a provider bug, an SDK
surprise) still has to end as a recorded error, not as a crash of the run.
"""

from __future__ import annotations

from collections.abc import Callable

from moa.types import CallRecord, ErrorKind, ModelError


def describe_exception(exc: BaseException) -> str:
    """`Type: message`, as an unexpected exception is recorded."""
    return f"{type(exc).__name__}: {exc}"


def as_model_error(
    exc: Exception,
    *,
    kind: ErrorKind = ErrorKind.PERMANENT,
    scrub: Callable[[str], str] | None = None,
) -> ModelError:
    """The `ModelError` a call that raised `exc` ends with.

    A `ModelError` keeps its class, kind, status and Retry-After (it is `exc` itself unless
    `scrub` rewrites its message); any other exception becomes a `kind` error described as
    `Type: message`. `scrub` rewrites the message (`moa.redact` takes API keys out with it).
    """
    if isinstance(exc, ModelError):
        if scrub is None:
            return exc
        return type(exc)(exc.kind, scrub(str(exc)), status=exc.status, retry_after=exc.retry_after)
    message = describe_exception(exc)
    return ModelError(kind, message if scrub is None else scrub(message))


def record_failure(record: CallRecord, exc: ModelError) -> None:
    """Writes a failed call's error into its ledger record."""
    record.error, record.error_kind = exc.describe(), exc.kind.value


# What providers say, with a 404, of a model they do not serve: OpenAI's code, the wording of
# vLLM's, Together's and OpenAI's messages.
_GONE_MARKERS = ("model_not_found", "does not exist", "unable to access model", "no such model")


def model_gone(exc: ModelError) -> bool:
    """A 404 saying the model is not served: no request for it can succeed in this run."""
    return exc.status == 404 and any(m in str(exc).lower() for m in _GONE_MARKERS)
