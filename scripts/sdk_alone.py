"""The `openai` SDK alone, no harness: `n` chat completions to one model at `concurrency`, on
the SDK's lightest request path (the one `moa.providers.openai_compat` takes: a prepared URL,
the body as bytes, the raw response read and parsed with `json`) or on `chat.completions.create`
(the path most programs write). The bench (`scripts/bench_sdk.py`) times it as the floor under
the harness's start-up and CPU per call. Only the standard library and `openai` are imported,
so its start-up is the SDK's own.

Usage: `python scripts/sdk_alone.py URL MODEL N CONCURRENCY {post,create}`."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx2  # the SDK's HTTP library, imported by it anyway
import openai


async def main(url: str, model: str, n: int, concurrency: int, path: str) -> None:
    client = openai.AsyncOpenAI(
        base_url=url, api_key="sk-bench-0000", max_retries=0, timeout=None,
        http_client=openai.DefaultAioHttpClient(),
    )  # fmt: skip
    base = client.base_url
    chat_url = str(base.copy_with(raw_path=base.raw_path + b"chat/completions"))
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        messages = [{"role": "user", "content": f"Question {i}: why is the sky blue?"}]
        async with slots:
            if path == "create":
                reply = await client.chat.completions.create(
                    model=model, messages=messages, temperature=0.7, max_tokens=2048
                )
                assert reply.choices[0].message.content
                return
            body = {"model": model, "messages": messages, "temperature": 0.7, "max_tokens": 2048}
            response = await client.post(
                chat_url,
                content=json.dumps(body, separators=(",", ":")).encode(),
                cast_to=httpx2.Response,
            )
            assert json.loads(await response.aread())["choices"][0]["message"]["content"]

    await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()


if __name__ == "__main__":
    url, model, n, concurrency, path = sys.argv[1:]
    asyncio.run(main(url, model, int(n), int(concurrency), path))
