"""A loopback OpenAI-compatible chat server for tests and benchmarks (needs the `dev` extra).

It models what matters for a harness: per-model latency (time to first token plus a time per
output token), per-model concurrency limits (requests past one wait their turn, or, with
`reject_above`, are refused with a 429 at once, as a provider's rate limit does), deterministic
output lengths, and injected faults
(429 with and without Retry-After, one far too long to wait, 500/503, dropped connections, a body
cut short of its Content-Length, hangs, malformed JSON, empty choices, context-length 400s, 401s
and 403s, one that echoes most of the key sent) and answers a client must flag (empty content,
`finish_reason: "length"`, no `usage`). A plan can change after so many requests
(`FaultPlan.after`). Every request is logged with its timing for assertions.

Run it in a thread for tests (`serve_in_thread`) or as a process for benchmarks
(`python -m tests.kit.fakeserver --config '{...}'`, which prints its base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULT_KINDS = (
    "400",
    "429",
    "429_retry_after",
    "500",
    "503",
    "drop",
    "timeout",
    "malformed",
    "empty",
    "context",
    "short_body",  # a 200 whose body stops short of its Content-Length, then the connection closes
    "429_long_retry_after",  # a 429 whose Retry-After is `FaultPlan.long_retry_after_s`
    "401",
    "401_key_prefix",  # a 401 that echoes the first `FaultPlan.key_echo_chars` of the key sent
    "403",
    # Answers, not errors: served as usual but for this.
    "empty_content",  # `content: ""`
    "length",  # `finish_reason: "length"`: an answer cut at max_tokens
    "no_usage",  # the body has no `usage`
    "surrogate",  # the content holds a lone surrogate, `"\\ud83d"` (valid JSON, no UTF-8 form)
)
# The kinds a client must retry, and that a retried call must survive unchanged.
TRANSIENT = (
    "429",
    "429_retry_after",
    "500",
    "503",
    "drop",
    "timeout",
    "malformed",
    "empty",
    "short_body",
)
# The kinds that are served as an answer, with something in it a client must notice.
ANSWER_FAULTS = ("empty_content", "length", "no_usage", "surrogate")
_BODY_FAULTS = ("timeout", "malformed", "empty", "short_body", *ANSWER_FAULTS)
_TIMING_FIELDS = ("model", "started", "ended", "status", "fault", "tokens", "seen_in_flight")
CLIENT_LAG_S = 0.2  # an answer the server sent this long before a kill may still be unsaved


@dataclass
class ModelProfile:
    ttft_s: float = 0.0
    per_token_s: float = 0.0
    max_concurrency: int | None = None
    min_tokens: int = 20
    max_tokens: int = 200
    context_tokens: int | None = None  # prompts longer than this get a context-length 400
    fail_status: int | None = None  # answer every request with this HTTP error
    # More requests in flight than this (for this model) get a 429 at once instead of a turn,
    # with `reject_retry_after_s` as their Retry-After if set.
    reject_above: int | None = None
    reject_retry_after_s: float | None = None
    ignores_n: bool = False  # one choice per answer, whatever `n` asks (as some servers do)
    verdict: str = ""  # appended to every answer: a judge's verdict (`[[A>B]]`) to parse


@dataclass
class FaultPlan:
    """`script` faults are served first, one per request; then each kind fires at its rate.

    With `switch_after`, the plan serves that many requests (those the server answers itself,
    not `reject_above` refusals), then `then` takes over (a clean plan if None): a key revoked
    in mid-run is `FaultPlan.after(20, FaultPlan(rates={"401": 1}))`."""

    rates: dict[str, float] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    seed: int = 0
    retry_after_s: float = 0.2
    hang_s: float = 30.0
    long_retry_after_s: float = 86_400.0  # a day: past any client's patience
    key_echo_chars: int = 19  # of the key sent, echoed by "401_key_prefix"
    switch_after: int | None = None
    then: FaultPlan | None = None

    def __post_init__(self) -> None:
        """A misspelt kind would otherwise never fire, and a fault test would pass untested."""
        unknown = (set(self.rates) | set(self.script)) - {*FAULT_KINDS, "ok"}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if isinstance(self.then, Mapping):  # from the JSON of `main`'s --config
            self.then = FaultPlan(**self.then)

    @classmethod
    def after(cls, n: int, plan: FaultPlan, first: FaultPlan | None = None) -> FaultPlan:
        """`first` (a clean plan if None) for `n` requests, then `plan`."""
        return dataclasses.replace(first or cls(), switch_after=n, then=plan)

    @classmethod
    def transient(cls, share: float, seed: int) -> FaultPlan:
        """`share` of requests faulted, evenly over every transient kind, with short waits:
        Retry-After 50 ms, hangs of 1 s (past a 0.5 s timeout, and no longer)."""
        rate = 1 - (1 - share) ** (1 / len(TRANSIENT))
        return cls(rates=dict.fromkeys(TRANSIENT, rate), seed=seed, retry_after_s=0.05, hang_s=1.0)


@dataclass
class RequestLog:
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    started: float
    ended: float = 0.0
    status: int = 0
    fault: str | None = None  # an injected fault, "401", or "over_limit" (`reject_above`)
    tokens: int = 0  # output tokens served
    seen_in_flight: int = 0  # this model's requests in flight when it came, itself included


def request_id(entry: RequestLog) -> str:
    """What tells one call from another: a retry of a call sends the same request again."""
    return json.dumps([entry.model, entry.messages, entry.params], sort_keys=True)


def in_flight(log: Iterable[RequestLog], at: float) -> int:
    """Requests a kill at `at` may have cut off: unanswered, or answered but perhaps unsaved."""
    return sum(r.started <= at <= r.ended + CLIENT_LAG_S for r in log)


def output_tokens(profile: ModelProfile, body: Mapping[str, Any]) -> int:
    """A deterministic length per request, capped by its max_tokens."""
    digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).digest()
    span = max(profile.max_tokens - profile.min_tokens, 0)
    n = profile.min_tokens + int.from_bytes(digest[:4], "big") % (span + 1)
    cap = body.get("max_tokens")
    return min(n, int(cap)) if cap else n


def prompt_tokens(messages: list[dict[str, str]]) -> int:
    return sum(len(m.get("content", "")) for m in messages) // 4 + 1


class FakeServer:
    def __init__(
        self,
        profiles: Mapping[str, ModelProfile] | None = None,
        default: ModelProfile | None = None,
        faults: FaultPlan | None = None,
        api_key: str | None = None,
    ) -> None:
        """With `api_key`, any other key gets a 401 that echoes it in full, as a careless
        server might: the worst case for keeping keys out of a run's files."""
        self.api_key = api_key
        self.serves: set[str] = set()  # model ids `/v1/models` lists besides the profiled ones
        # Model ids shut down: not listed, and answered `404 model_not_found`, as OpenAI does.
        self.gone: set[str] = set()
        self.shutdown: dict[str, str] = {}  # model id: the `shutdown_date` its listing carries
        self.profiles = dict(profiles or {})
        self.default = default or ModelProfile()
        self.faults = faults or FaultPlan()
        self.log: list[RequestLog] = []
        self._rng = random.Random(self.faults.seed)
        self._served = 0  # requests the current plan has served (`FaultPlan.switch_after`)
        self._sems: dict[str, asyncio.Semaphore] = {}
        self.active: dict[str, int] = {}  # requests accepted and not yet answered, per model
        self.peak_active: dict[str, int] = {}

    def switch(self, plan: FaultPlan) -> None:
        """From the next request on, faults come from `plan` (a key revoked now, and later
        back), as `FaultPlan.after` does at a count. Safe from another thread: a request being
        decided meanwhile gets its fault from one plan or the other."""
        self._rng = random.Random(plan.seed)
        self._served = 0
        self.faults = plan

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/_log", self.timings)
        return app

    async def models(self, request: web.Request) -> web.Response:
        """`/v1/models`: the models it has a profile for (`serves` adds others)."""
        ids = sorted({*self.profiles, *self.serves} - self.gone)
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "fake"} for i in ids]
        for item in data:
            if item["id"] in self.shutdown:
                item["shutdown_date"] = self.shutdown[item["id"]]
        return web.json_response({"object": "list", "data": data})

    async def timings(self, request: web.Request) -> web.Response:
        """The log without messages, for a benchmark that runs the server as a process."""
        rows = [{k: getattr(e, k) for k in _TIMING_FIELDS} for e in self.log]
        return web.json_response(rows)

    def _fault(self) -> str | None:
        plan = self.faults
        if plan.switch_after is not None and self._served >= plan.switch_after:
            self.faults = plan.then or FaultPlan()
            self._rng = random.Random(self.faults.seed)
            self._served = 0
        self._served += 1
        if self.faults.script:
            kind = self.faults.script.pop(0)
            return None if kind == "ok" else kind
        for kind, rate in self.faults.rates.items():
            if self._rng.random() < rate:
                return kind
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        profile = self.profiles.get(model, self.default)
        entry = RequestLog(
            model=model,
            messages=body.get("messages", []),
            params={k: v for k, v in body.items() if k not in ("model", "messages")},
            started=time.monotonic(),
        )
        self.log.append(entry)
        active = self.active.get(model, 0)
        entry.seen_in_flight = active + 1
        response: web.StreamResponse
        try:
            if model in self.gone:
                entry.fault = "gone"
                message = f"The model `{model}` does not exist or you do not have access to it."
                response = _error_json(404, message, "model_not_found")
            elif profile.reject_above is not None and active >= profile.reject_above:
                entry.fault = "over_limit"
                response = _over_limit(profile.reject_above, profile.reject_retry_after_s)
            else:
                self.active[model] = active + 1
                self.peak_active[model] = max(self.peak_active.get(model, 0), active + 1)
                try:
                    response = await self._respond(request, body, profile, entry)
                finally:
                    self.active[model] -= 1
        finally:
            entry.ended = time.monotonic()
        entry.status = response.status
        return response

    async def _respond(
        self,
        request: web.Request,
        body: Mapping[str, Any],
        profile: ModelProfile,
        entry: RequestLog,
    ) -> web.StreamResponse:
        sent_key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and sent_key != self.api_key:
            entry.fault = "401"
            return _error_json(401, f"Incorrect API key provided: {sent_key}.", "invalid_api_key")
        fault = str(profile.fail_status) if profile.fail_status else self._fault()
        too_long = profile.context_tokens is not None and (
            prompt_tokens(entry.messages) > profile.context_tokens
        )
        if fault is None and too_long:
            fault = "context"
        entry.fault = fault
        if fault is not None and fault not in _BODY_FAULTS:
            return await self._error(request, fault, sent_key)
        if fault == "timeout":
            await asyncio.sleep(self.faults.hang_s)
        sem = self._semaphore(entry.model, profile)
        async with sem or contextlib.nullcontext():
            n = entry.tokens = output_tokens(profile, body)
            await asyncio.sleep(profile.ttft_s + n * profile.per_token_s)
        if fault == "malformed":
            return web.Response(text='{"id": "x", "choices": [', content_type="application/json")
        count = 1 if profile.ignores_n else int(body.get("n") or 1)  # OpenAI's `n`
        choices = (
            []
            if fault == "empty"
            else [self._choice(body, n, i, profile.verdict) for i in range(count)]
        )
        if fault == "empty_content":
            choices[0]["message"]["content"] = ""
        elif fault == "length":
            choices[0]["finish_reason"] = "length"
        elif fault == "surrogate":  # half of an emoji's pair: json.dumps writes it as an escape
            choices[0]["message"]["content"] += " \ud83d"
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": entry.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens(entry.messages),
                "completion_tokens": 0 if fault == "empty_content" else n * count,
                "total_tokens": prompt_tokens(entry.messages) + n * count,
            },
        }
        if fault == "no_usage":
            del answer["usage"]
        if fault == "short_body":
            return await _short_body(request, json.dumps(answer).encode())
        if body.get("stream"):
            return await _streamed(request, answer)
        return web.json_response(answer)

    def _semaphore(self, model: str, profile: ModelProfile) -> asyncio.Semaphore | None:
        if profile.max_concurrency is None:
            return None
        if model not in self._sems:
            self._sems[model] = asyncio.Semaphore(profile.max_concurrency)
        return self._sems[model]

    def _choice(
        self, body: Mapping[str, Any], n: int, index: int = 0, verdict: str = ""
    ) -> dict[str, Any]:
        drawn = json.dumps(body, sort_keys=True) + (f"#{index}" if index else "")
        digest = hashlib.sha256(drawn.encode()).hexdigest()
        text = f"answer {digest[:12]}: " + " ".join(["word"] * max(n - 3, 0)) + verdict
        choice: dict[str, Any] = {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
            "logprobs": None,
        }
        if body.get("logprobs"):
            p_m = int(digest[12:16], 16) / 0xFFFF * 0.9 + 0.05
            pairs = sorted([("m", _log(p_m)), ("M", _log(1 - p_m))], key=lambda t: -t[1])
            k = int(body.get("top_logprobs") or 1)
            top = [{"token": t, "logprob": lp, "bytes": None} for t, lp in pairs[:k]]
            choice["message"]["content"] = pairs[0][0]
            choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        return choice

    async def _error(self, request: web.Request, fault: str, sent_key: str) -> web.StreamResponse:
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if fault == "context":
            return _error_json(
                400,
                "This model's maximum context length is exceeded. Please reduce your prompt.",
                "context_length_exceeded",
            )
        if fault == "429_retry_after":
            return _error_json(
                429, "rate limited", "rate_limit", {"Retry-After": f"{self.faults.retry_after_s}"}
            )
        if fault == "429_long_retry_after":
            wait = {"Retry-After": f"{self.faults.long_retry_after_s:g}"}
            return _error_json(429, "rate limited: come back tomorrow", "rate_limit", wait)
        if fault == "401":
            return _error_json(401, "Invalid authentication", "invalid_api_key")
        if fault == "401_key_prefix":
            shown = sent_key[: self.faults.key_echo_chars]
            return _error_json(401, f"Incorrect API key provided: {shown}...", "invalid_api_key")
        if fault == "403":
            return _error_json(403, "Forbidden: this key may not use this API", "forbidden")
        return _error_json(int(fault), f"injected {fault}", None)


def _log(p: float) -> float:
    return math.log(max(p, 1e-12))


async def _short_body(request: web.Request, body: bytes) -> web.StreamResponse:
    """Announces all of `body` in Content-Length, sends half of it, and closes the connection."""
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Length": str(len(body))}
    )
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    assert request.transport is not None
    request.transport.close()
    return response


async def _streamed(request: web.Request, answer: dict[str, Any]) -> web.StreamResponse:
    """The answer as server-sent events, as a client that asked for `stream` reads it: one
    chunk per choice with its whole text, one with its finish reason, then `[DONE]`."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    head = {k: answer[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    for choice in answer["choices"]:
        delta = {"role": "assistant", "content": choice["message"]["content"]}
        parts = ({"delta": delta, "finish_reason": None}, {"delta": {}, "finish_reason": "stop"})
        for part in parts:
            chunk = {**head, "choices": [{"index": choice["index"], **part}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _over_limit(limit: int, retry_after_s: float | None) -> web.Response:
    headers = None if retry_after_s is None else {"Retry-After": f"{retry_after_s:g}"}
    message = f"rate limited: more than {limit} concurrent requests for this model"
    return _error_json(429, message, "rate_limit_exceeded", headers)


def _error_json(
    status: int, message: str, code: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return web.json_response(body, status=status, headers=headers)


async def _stop(runner: web.AppRunner) -> None:
    """Stops serving; requests still hanging (a "timeout" fault) are cut after a second."""
    await runner.cleanup()
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)


@contextlib.contextmanager
def serve_in_thread(server: FakeServer, port: int = 0) -> Iterator[str]:
    """Serves on 127.0.0.1 in a daemon thread, on `port` (0: a free one); yields the `/v1` base
    URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        state["port"] = runner.addresses[0][1]
        state["runner"] = runner
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}/v1"
    finally:
        asyncio.run_coroutine_threadsafe(_stop(state["runner"]), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="{}", help="JSON: profiles, default, faults")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    conf = json.loads(args.config)
    server = FakeServer(
        profiles={k: ModelProfile(**v) for k, v in conf.get("profiles", {}).items()},
        default=ModelProfile(**conf.get("default", {})),
        faults=FaultPlan(**conf.get("faults", {})),
    )

    async def serve() -> None:
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        print(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
