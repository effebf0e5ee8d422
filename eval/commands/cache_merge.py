"""`task=cache_merge` and `cache.copy_to`: call caches of several hosts brought together."""

from __future__ import annotations

from eval.commands.output import say
from eval.settings import Settings
from moa.errors import ConfigError


async def cache_merge_task(settings: Settings) -> int:
    """`task=cache_merge`: the union of `cache_merge.sources` in `cache.path`, a line each."""
    from moa.cache_merge import expand, merge_caches

    sources = expand(list(settings.cache_merge_sources))
    if not sources:
        raise ConfigError("task=cache_merge needs cache_merge.sources=[a.sqlite,b.sqlite,...]")
    target = settings.cache.path
    merged = merge_caches(target, sources)
    for one in merged:
        say(f"merged {one}")
    added = sum(m.added for m in merged)
    say(f"{target}: {added} answers added from {len(merged)} cache(s); checksums verified")
    return 0


def keep_copy(settings: Settings) -> None:
    """`cache.copy_to`: a copy of the cache after the task, e.g. from a job's local disk to
    the run directory, for `task=cache_merge` (README: Scale-out)."""
    if settings.cache.copy_to is not None and settings.task != "cache_merge":
        from moa.cache_merge import copy_cache

        copy_cache(settings.cache.path, settings.cache.copy_to)
