"""Worker processes that answer one JSON line per request, each answer bounded in wall time.

Work that may not finish (sympy on an adversarial expression) cannot run on the event loop, and
a thread cannot be stopped; signals belong to the main thread. So it runs in child processes
spoken to over pipes: a request that overruns its time has its process killed, and the slot
starts a fresh one on its next request. A process reports `ready` once it has imported what it
needs, and the time limit only counts from the request, never the start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

READY = "ready"  # the first line a worker prints
START_S = 120.0  # importing sympy on a loaded machine; a hung start is still an error
LINE_BYTES = 2**20
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])  # where `eval` is importable from


class WorkerError(Exception):
    """A worker process died, or did not start: the harness's failure, not the answer's."""


class Overran(Exception):
    """A request took longer than its time limit; its worker was killed."""


class WorkerPool:
    """At most `size` processes of `python -m <module> <args>`; use as an async context."""

    def __init__(self, module: str, args: Sequence[str], size: int) -> None:
        self._argv = [sys.executable, "-m", module, *args]
        self._slots: asyncio.Queue[asyncio.subprocess.Process | None] = asyncio.Queue()
        for _ in range(size):
            self._slots.put_nowait(None)
        self._live: set[asyncio.subprocess.Process] = set()

    async def __aenter__(self) -> WorkerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ask(self, request: Any, timeout_s: float) -> Any:
        proc = await self._slots.get()
        try:
            if proc is None or proc.returncode is not None:
                proc = await self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                await proc.stdin.drain()
                line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
            except TimeoutError:
                raise Overran(f"no answer within {timeout_s:g} s") from None
            except ConnectionError:  # its end of the pipe closed: it has died
                line = b""
            if not line:
                raise WorkerError(f"a worker process ({self._argv[2]}) died mid-request")
            return json.loads(line)
        except BaseException:
            if proc is not None:
                await self._kill(proc)
            proc = None
            raise
        finally:
            self._slots.put_nowait(proc)

    async def _start(self) -> asyncio.subprocess.Process:
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT_ROOT, path]))}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                env=env,
                limit=LINE_BYTES,
            )
        except OSError as exc:
            raise WorkerError(f"a worker process ({self._argv[2]}) could not start: {exc}") from exc
        self._live.add(proc)
        assert proc.stdout is not None
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), START_S)
        except TimeoutError:
            ready = b""
        if ready.strip() != READY.encode():
            await self._kill(proc)
            raise WorkerError(f"a worker process ({self._argv[2]}) did not start")
        return proc

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it has just ended by itself
                proc.kill()
        await proc.wait()
        self._live.discard(proc)

    async def aclose(self) -> None:
        for proc in list(self._live):
            await self._kill(proc)
