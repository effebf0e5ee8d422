"""Sampling for the embedded model with llama.cpp's multi-sequence decoding: the draws of one
request share one prompt evaluation and then advance one token each per decode, which costs a
small model little more than one draw alone (`InProcess.generate_n`).

It runs on its own llama.cpp context of the weights `Llama` loaded, with logits for the sampled
positions only: `Llama` keeps `logits_all=True` (a logit row per prompt token, copied out) for
the calls that ask for logprobs, the judge's. The prompt, the sampler chain and the stops are
those `Llama.create_chat_completion` uses, so an answer means what it meant.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from moa.types import ChatMessage, Completion, ErrorKind, GenerateConfig, ModelError

# `create_chat_completion`'s sampling defaults, for what a request leaves unset.
TOP_K = 40
TOP_P = 0.95
MIN_P = 0.05
TEMPERATURE = 0.2

# Sequences decoded together (the context's `n_seq_max`); more draws go in groups.
MAX_SEQUENCES = 8
N_BATCH = 512


@dataclass
class _Draw:
    """One sequence: its sampler (seeded by its sample) and what it has generated."""

    sampler: Any  # llama_sampler_p
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish: str | None = None


class DrawDecoder:
    """A llama.cpp context on `llama`'s weights that samples several sequences of one prompt."""

    def __init__(self, llama: Llama, n_ctx: int, n_threads: int) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = N_BATCH
        params.n_ubatch = N_BATCH
        params.n_seq_max = MAX_SEQUENCES
        params.kv_unified = True  # the draws share the prompt's cells and the whole window
        params.n_threads = params.n_threads_batch = n_threads
        ctx = llama_cpp.llama_init_from_model(llama.model, params)
        if ctx is None:
            raise RuntimeError("llama.cpp could not create a context for the draws")
        self._ctx = ctx
        self._n_ctx = n_ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._batch = llama_cpp.llama_batch_init(N_BATCH, 0, MAX_SEQUENCES)
        self._llama = llama
        eos = llama.token_eos()
        self._format = Jinja2ChatFormatter(  # as `Llama` builds its handler from the weights
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=self._text(eos),
            bos_token=self._text(llama.token_bos()),
            stop_token_ids=[eos],
        )

    def _text(self, token: int) -> str:
        return llama_cpp.llama_vocab_get_text(self._vocab, token).decode() if token != -1 else ""

    def prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt's tokens, as the chat handler of `Llama` makes them."""
        chat: list[Any] = [dict(m) for m in messages]  # llama.cpp's message TypedDicts
        rendered = self._format(messages=chat)
        tokens: list[int] = self._llama.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        return tokens

    def draw(
        self,
        messages: Sequence[ChatMessage],
        config: GenerateConfig,
        seeds: Sequence[int],
    ) -> list[Completion]:
        """One completion per seed, the prompt's tokens counted on the first only."""
        prompt = self.prompt(messages)
        if len(prompt) >= self._n_ctx:
            raise ModelError(
                ErrorKind.CONTEXT_OVERFLOW,
                f"Requested tokens ({len(prompt)}) exceed context window of {self._n_ctx}",
                status=400,
            )
        room = self._n_ctx - len(prompt)
        budget = min(config.max_tokens, room) if config.max_tokens else room
        group = max(1, min(MAX_SEQUENCES, room // max(budget, 1)))
        out: list[Completion] = []
        for start in range(0, len(seeds), group):
            out += self._group(prompt, config, seeds[start : start + group], budget)
        return [
            Completion(c.text, len(prompt) if i == 0 else 0, c.output_tokens, c.finish_reason)
            for i, c in enumerate(out)
        ]

    def _group(
        self, prompt: list[int], config: GenerateConfig, seeds: Sequence[int], budget: int
    ) -> list[Completion]:
        llama_cpp.llama_memory_clear(self._memory, True)
        draws = [_Draw(self._sampler(config, seed)) for seed in seeds]
        try:
            last = self._evaluate(prompt)
            for seq in range(1, len(draws)):
                llama_cpp.llama_memory_seq_cp(self._memory, 0, seq, -1, -1)
            at = dict.fromkeys(range(len(draws)), last)  # live sequence -> its logits' row
            stops = [s.encode() for s in config.stop or ()]
            while at:
                for seq, row in at.items():
                    self._step(draws[seq], row, budget, stops)
                live = [seq for seq in at if draws[seq].finish is None]
                self._fill(
                    [(draws[s].tokens[-1], len(prompt) + len(draws[s].tokens) - 1, s) for s in live]
                )
                at = {seq: row for row, seq in enumerate(live)}
                if at:
                    self._decode()
        finally:
            for d in draws:
                llama_cpp.llama_sampler_free(d.sampler)
        return [
            Completion(d.text.decode("utf-8", errors="ignore"), 0, len(d.tokens), d.finish)
            for d in draws
        ]

    def _step(self, draw: _Draw, row: int, budget: int, stops: list[bytes]) -> None:
        """Samples the sequence's next token and ends it at EOS, a stop string or its budget."""
        token = llama_cpp.llama_sampler_sample(draw.sampler, self._ctx, row)
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            draw.finish = "stop"
            return
        draw.tokens.append(token)
        draw.text += self._piece(token)
        for stop in stops:
            if (cut := draw.text.find(stop)) >= 0:
                draw.text = draw.text[:cut]
                draw.finish = "stop"
                return
        if len(draw.tokens) >= budget:
            draw.finish = "length"

    def _evaluate(self, prompt: list[int]) -> int:
        """Decodes the prompt as sequence 0; the row of its last token's logits."""
        for start in range(0, len(prompt), N_BATCH):
            chunk = prompt[start : start + N_BATCH]
            self._fill([(t, start + i, 0) for i, t in enumerate(chunk)], last_only=True)
            self._decode()
        return (len(prompt) - 1) % N_BATCH

    def _fill(self, entries: Sequence[tuple[int, int, int]], last_only: bool = False) -> None:
        """Puts (token, position, sequence) entries into the batch, with logits for each (or
        for the last only)."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = not last_only or i == len(entries) - 1

    def _decode(self) -> None:
        code = llama_cpp.llama_decode(self._ctx, self._batch)
        if code != 0:
            raise ModelError(
                ErrorKind.CONTEXT_OVERFLOW if code == 1 else ErrorKind.PERMANENT,
                f"llama_decode returned {code}",
                status=400,
            )

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _sampler(self, config: GenerateConfig, seed: int) -> Any:
        """`Llama`'s chain for these settings (its no-op penalties left out), seeded."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        temperature = TEMPERATURE if config.temperature is None else config.temperature
        if temperature == 0.0:
            links = [llama_cpp.llama_sampler_init_greedy()]
        else:
            links = [
                llama_cpp.llama_sampler_init_top_k(TOP_K),
                llama_cpp.llama_sampler_init_top_p(
                    TOP_P if config.top_p is None else config.top_p, 1
                ),
                llama_cpp.llama_sampler_init_min_p(MIN_P, 1),
                llama_cpp.llama_sampler_init_temp(temperature),
                llama_cpp.llama_sampler_init_dist(seed),
            ]
        for link in links:
            llama_cpp.llama_sampler_chain_add(chain, link)
        return chain

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
