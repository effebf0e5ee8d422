"""`scripted`: a deterministic fake model for offline runs and tests at full benchmark size.

Its answer is a pure function of (model, messages, sample): the same request always gets the same
answer, and different proposers, samples or prompts get different ones. It answers the LLM
ranker with a pick. It asks the judges it is given (its endpoint's `judges` option, set where the
client is built for judging) whether a request is theirs: each judge answers from its own
templates, so this module knows no judge's wording and holds no registry of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from moa.prompts import RANK_AND_SELECT, RANK_TOP_K
from moa.providers.base import register_provider
from moa.types import ChatMessage, Completion, GenerateConfig

_WORDS = (
    "the answer considers each part of the question carefully and explains the key idea "
    "with a short example before it summarises the result in plain words for the reader"
).split(" ")
# A judge's responder: given the request, the call's seeded generator and its input tokens, an
# answer (text, or a whole completion) when the request is that judge's, else None.
Responder = Callable[
    [Sequence[ChatMessage], GenerateConfig, random.Random, int], str | Completion | None
]
_TOP_K_HEAD = RANK_TOP_K.partition("{k}")[2][:60]  # what every top-k ranker prompt holds


def _rng(model: str, messages: Sequence[ChatMessage], sample: int) -> random.Random:
    blob = json.dumps([model, [[m["role"], m["content"]] for m in messages], sample])
    return random.Random(hashlib.sha256(blob.encode()).digest())


def _count(system: str) -> int:
    """How many numbered responses a ranker's prompt shows."""
    return len(re.findall(r"^\d+\. ", system, re.MULTILINE))


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class Scripted:
    def __init__(self, latency_s: float = 0.0, judges: Sequence[Responder] = ()) -> None:
        self.latency_s = latency_s
        self.judges = tuple(judges)

    @property
    def identity(self) -> str:
        return "scripted:v2"

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        sample: int,
    ) -> Completion:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        rng = _rng(model, messages, sample)
        input_tokens = sum(_tokens(m["content"]) for m in messages)
        text: str | Completion | None = None
        for responder in self.judges:
            if (text := responder(messages, config, rng, input_tokens)) is not None:
                break
        if isinstance(text, Completion):
            return text
        if text is None:
            text = self._answer(rng, model, messages, sample)
        if config.max_tokens is not None and _tokens(text) > config.max_tokens:
            text = text[: config.max_tokens * 4]
        return Completion(text, input_tokens, _tokens(text), "stop")

    async def generate_n(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        samples: Sequence[int],
    ) -> list[Completion]:
        """Each sample's answer as `generate` gives it, the prompt counted once (on the first)."""
        drawn = await asyncio.gather(*(self.generate(model, messages, config, s) for s in samples))
        return [drawn[0], *(dataclasses.replace(c, input_tokens=0) for c in drawn[1:])]

    def _answer(
        self,
        rng: random.Random,
        model: str,
        messages: Sequence[ChatMessage],
        sample: int,
    ) -> str:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        if RANK_AND_SELECT in system:
            return str(rng.randint(1, max(_count(system), 1)))
        if _TOP_K_HEAD in system:  # the best k, in a random order
            count = _count(system)
            return ", ".join(str(i) for i in rng.sample(range(1, count + 1), count))
        question = messages[-1]["content"].strip().splitlines()[0][:80] if messages else ""
        body = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(15, 160)))
        return f"[{model} #{sample}] On '{question}': {body}."

    async def aclose(self) -> None:
        return None


@register_provider("scripted")
def _build(endpoint: str, options: Mapping[str, Any]) -> Scripted:
    return Scripted(
        latency_s=float(options.get("latency_s", 0.0)), judges=tuple(options.get("judges", ()))
    )
