"""Run untrusted Python (a model's CRUXEval answer inside an assertion) without harm to the host.

Each program gets a process of its own, started from the event loop without blocking it: a fresh
interpreter (`-I -S -B`, empty environment) in a throwaway directory, walled in by
`sandbox_child.py` (network namespace, resource limits, no new processes, Landlock, root
dropped). The parent bounds its wall time at the limit plus one second, as the reference's
`p.join(timeout + 1)` does, then kills its process group; it reads at most a few KiB of what the
child writes, and removes the directory whatever happened. Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from moa.errors import ConfigError

CHILD = Path(__file__).with_name("sandbox_child.py")
GRACE_S = 1.0  # past the child's own timer, as the reference joins its process
REPORT_BYTES = 8192  # a report is three short lines; the rest of a flood is read and dropped
STDERR_BYTES = 2048
MIN_MEMORY_BYTES = 64 * 2**20
MIN_OPEN_FILES = 16  # the child's own descriptors, opened before its limit applies

Status = Literal["passed", "failed", "timed out", "crashed", "error"]


@dataclass(frozen=True)
class Limits:
    """What one program may use. The time is CRUXEval's (`check_correctness(..., 3)`)."""

    seconds: float = 3.0
    memory_bytes: int = 512 * 2**20
    file_bytes: int = 16 * 2**20
    open_files: int = 64

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ConfigError(f"sandbox: `seconds` must be above 0, got {self.seconds}")
        if self.memory_bytes < MIN_MEMORY_BYTES:
            raise ConfigError(
                f"sandbox: `memory_bytes` must be at least {MIN_MEMORY_BYTES} (64 MiB), the least "
                f"an interpreter runs in, got {self.memory_bytes}"
            )
        if self.file_bytes < 0 or self.open_files < MIN_OPEN_FILES:
            raise ConfigError(
                f"sandbox: `file_bytes` must be 0 or more and `open_files` at least "
                f"{MIN_OPEN_FILES}, got {self.file_bytes} and {self.open_files}"
            )


@dataclass(frozen=True)
class Outcome:
    """How a program ended: `passed` (it ran to its end), `failed` (it raised), `timed out`,
    `crashed` (the process died without a report), or `error` (no sandbox could be built: the
    harness's failure, not the program's). `walls` names the walls that held around it."""

    status: Status
    reason: str
    walls: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Sandbox:
    """Runs programs, at most `concurrency` at once (default: one per CPU core)."""

    def __init__(self, limits: Limits | None = None, *, concurrency: int | None = None) -> None:
        self.limits = limits or Limits()
        self._slots = asyncio.Semaphore(concurrency or os.cpu_count() or 1)

    async def run(self, program: str) -> Outcome:
        async with self._slots:
            return await run_python(program, self.limits)


async def run_python(program: str, limits: Limits) -> Outcome:
    request = (program, limits.seconds, limits.memory_bytes, limits.file_bytes, limits.open_files)
    workdir = tempfile.mkdtemp(prefix="moa-sandbox-")
    try:
        return await _supervise(workdir, marshal.dumps(request), limits.seconds)
    finally:
        _remove(workdir)


async def _supervise(workdir: str, request: bytes, seconds: float) -> Outcome:
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-B",
            str(CHILD),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir,
            env={},
            start_new_session=True,  # its own process group, killed as one
        )
    except OSError as exc:  # out of processes or descriptors: the host's state, not the answer's
        return Outcome("error", f"the sandbox process could not start: {exc}", ())
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(request)
    proc.stdin.close()
    reading = asyncio.gather(
        _read_capped(proc.stdout, REPORT_BYTES), _read_capped(proc.stderr, STDERR_BYTES)
    )
    try:
        report, err = await asyncio.wait_for(reading, seconds + GRACE_S)
        await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return Outcome("timed out", f"timed out after {seconds:g} s (killed)", ())
    except BaseException:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
        raise
    return _outcome(report, err, proc.returncode)


def _kill_group(pid: int) -> None:
    """Kills the sandbox's process group; one that ended meanwhile (its leader already reaped by
    asyncio's child watcher, the group empty) is gone, as wanted."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk[: max(0, limit - len(kept))]
    return bytes(kept)


def _outcome(report: bytes, err: bytes, returncode: int | None) -> Outcome:
    lines = report.decode(errors="replace").split("\n")
    if len(lines) > 3 and lines[0] in get_args(Status):
        walls = tuple(filter(None, lines[1].split(";")))
        return Outcome(cast(Status, lines[0]), lines[2], walls)
    last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    detail = f": {last[0][:200]}" if last[0] else ""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGXCPU":
            return Outcome("timed out", "stopped at its CPU-time limit", ())
        return Outcome("crashed", f"killed by {name}{detail}", ())
    return Outcome("crashed", f"exited with code {returncode} without a report{detail}", ())


def _remove(workdir: str) -> None:
    """Remove the throwaway directory even where the program took its own permissions away."""

    def writable_again(func: Callable[..., Any], path: str, exc: object) -> None:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        func(path)

    shutil.rmtree(workdir, onerror=writable_again)
