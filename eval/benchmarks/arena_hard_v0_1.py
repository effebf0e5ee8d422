"""Arena-Hard-Auto v0.1 (`benchmark=arena_hard_v0.1`): 500 prompts, gpt-4-0314 the baseline."""

from __future__ import annotations

from eval.benchmarks.arena_hard import ArenaHard


class ArenaHardV01(ArenaHard):
    name = "arena_hard_v0.1"
    bench = "arena-hard-v0.1"
    size = 500


BENCHMARK = ArenaHardV01
