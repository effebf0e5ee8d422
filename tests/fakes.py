"""A fake judge for the judge tests: answers by a key found in the judge prompt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moa.types import CallOutcome, CallRecord, ChatMessage, Completion, GenerateConfig


@dataclass(frozen=True)
class Call:
    model: str
    messages: list[ChatMessage]
    config: GenerateConfig
    tags: dict[str, str]


class FakeJudge:
    """A `Generator` whose answer is the first entry whose key occurs in the last message.

    A string answers as a completion of `input_tokens` + `output_tokens`; None is a failed call
    carrying `error`, as the client would record it. A prompt that no key occurs in fails the
    test with an AssertionError that shows the prompt and the keys."""

    def __init__(
        self,
        answers: Mapping[str, Completion | str | None],
        *,
        error: str = "permanent 400: bad request",
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
    ) -> None:
        self.answers = answers
        self.error = error
        self.tokens = (input_tokens, output_tokens)
        self.cost_usd = cost_usd
        self.calls: list[Call] = []

    async def generate(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        *,
        sample: int = 0,
        tags: Mapping[str, str] | None = None,
    ) -> CallOutcome:
        self.calls.append(Call(model, list(messages), config, dict(tags or {})))
        prompt = messages[-1]["content"]
        key = next((k for k in self.answers if k in prompt), None)
        if key is None:
            excerpt = prompt if len(prompt) <= 200 else f"{prompt[:120]} ... {prompt[-60:]}"
            raise AssertionError(
                f"FakeJudge has no answer for {excerpt!r}: none of its keys "
                f"{list(self.answers)} occurs in it"
            )
        answer = self.answers[key]
        if isinstance(answer, str):
            answer = Completion(answer, *self.tokens)
        record = CallRecord(key="k", model=model, sample=sample, cost_usd=self.cost_usd)
        if answer is None:
            record.error = self.error
        return CallOutcome(answer, record)
