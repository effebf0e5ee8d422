"""Cross-process call claims: processes sharing one cache pay once for a call none has finished.

`ModelClient`'s in-flight map shares a call among one process's tasks; a claim in the cache file
shares it among processes (the jobs of a sweep, two runs on one cache). Before it sends a call, a
process claims its key. A process that finds the key claimed polls until the answer is stored;
if the claim goes away without one (the call failed) or goes stale, it claims the key itself.
A claim is stale when its owner is a dead process on this host, or when its lease has run out:
the owner renews the leases of all its claims while it lives, so only a vanished owner's lapse.
SQLite's WAL needs the processes on one host anyway (it does not work over network filesystems).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket

from moa.cache import CallCache
from moa.types import Completion

LEASE_S = 60.0
POLL_FIRST_S = 0.02
POLL_MAX_S = 0.5
_HOST = socket.gethostname()


def is_dead(owner: str) -> bool:
    """Whether a claim's owner (`host:pid:token`) is a process of this host that has ended."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but not ours to signal
        return False
    return False


class Claims:
    """One process's claims on one cache file."""

    def __init__(self, cache: CallCache, lease_s: float = LEASE_S) -> None:
        self.cache = cache
        self.lease_s = lease_s
        self.owner = f"{_HOST}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def claim(self, key: str) -> Completion | None:
        """Another process's answer to `key`, or None once the call is this process's to make.
        Once a commit of the cache has failed, `moa.cache.CacheWriteError` instead: every call
        comes here before it is sent, so none is sent whose answer the cache could not keep."""
        delay = POLL_FIRST_S
        while True:
            try:
                found = await self.cache.claim(key, self.owner, self.lease_s, is_dead)
            except asyncio.CancelledError:  # it may have been granted as the task was cancelled
                self.cache.release(self.owner, key)
                raise
            if found is None:
                if self.cache.claims:
                    self._hold(key)
                return None
            while isinstance(found, str):  # held elsewhere: poll with reads only
                await asyncio.sleep(delay)
                delay = min(2 * delay, POLL_MAX_S)
                found = self.cache.peek(key, is_dead)
            if found is not None:
                return found
            # the claim ended without an answer (that call failed) or went stale: take it

    def store(self, key: str, model: str, completion: Completion) -> None:
        """Stores the answer and drops the claim in one commit."""
        self.cache.put(key, model, completion, claim_owner=self.owner)
        self._held.discard(key)

    def release(self, key: str) -> None:
        """Gives up a claim without an answer (the call failed or was cancelled)."""
        if key in self._held:
            self._held.discard(key)
            self.cache.release(self.owner, key)

    def _hold(self, key: str) -> None:
        self._held.add(key)
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if self._held:
                self.cache.renew(self.owner, self.lease_s)

    async def aclose(self) -> None:
        """Stops renewing and drops every claim still held (none, after a clean run)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._held:
            self.cache.release(self.owner)
            self._held.clear()
