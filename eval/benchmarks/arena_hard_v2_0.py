"""Arena-Hard-Auto v2.0 (`benchmark=arena_hard_v2.0`): 500 hard prompts against o3-mini, 250
creative-writing ones against gemini-2.0-flash (`benchmark.categories` picks either)."""

from __future__ import annotations

from eval.benchmarks.arena_hard import ArenaHard


class ArenaHardV20(ArenaHard):
    name = "arena_hard_v2.0"
    bench = "arena-hard-v2.0"
    size = 750


BENCHMARK = ArenaHardV20
