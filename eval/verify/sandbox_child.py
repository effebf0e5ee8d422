"""What runs inside the sandbox's process: the walls first, then the program, then one report.

`sandbox.py` starts this file as `python -I -S -B sandbox_child.py` in a throwaway working
directory with an empty environment, writes the request on its stdin (`marshal`, which needs no
import: start-up is most of a check's cost) and reads a three-line report from its stdout:
status, walls (`;`-separated), reason. It imports nothing but the standard library, so the code
under test sees no project module on its path. Before the program runs, in this order:

- the network: a new network namespace (no interface but a loopback that is down), made as root
  directly and otherwise inside a new user namespace, where the kernel allows one;
- resource limits: address space, CPU seconds, file size, open files, no core files, and no new
  process or thread (`RLIMIT_NPROC` 0);
- as root, the process becomes uid/gid 65534 (`nobody`) with no groups, so that no capability
  lifts those limits;
- Landlock (Linux 5.13+): reads only beneath the Python library and the system's shared
  libraries (which extension modules load), writes only beneath the working directory, no TCP
  bind or connect (ABI 4+), no signal to or abstract socket of a process outside (ABI 6+).
  Without Landlock the child refuses to run the program: nothing weaker walls a filesystem;
- an audit hook that refuses sockets, new processes, signals and ctypes, so that a refusal reads
  as one clear reason (`PermissionError: the sandbox refuses socket.__new__`) even where the
  kernel's walls would have stopped the call anyway.

The program then runs as CRUXEval's `utils_execute.unsafe_execute` runs it: `exec` in fresh
globals, standard streams swallowed, an interval timer raising after the time limit; anything
raised counts as failed. The report channel is a file descriptor the program could reach: the
walls protect the host, not the verdict from an answer written to forge it (neither does the
reference's, whose result list lives in the same process).
"""

from __future__ import annotations

import ctypes
import io
import marshal
import math
import os
import resource
import signal
import struct
import sys
from types import FrameType

NOBODY = 65534
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
# Landlock's system calls have these numbers on every architecture (the unified table).
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
READ_FILE, READ_DIR = 1 << 2, 1 << 3
SHARED_LIBRARIES = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
)
# Audit events that a CRUXEval function has no use for (prefixes).
REFUSED = (
    "socket.__new__",
    "os.fork",
    "os.forkpty",
    "os.posix_spawn",
    "os.spawn",
    "os.exec",
    "os.system",
    "subprocess.Popen",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "ctypes.",
)
REASON_CHARS = 300

_libc = ctypes.CDLL(None, use_errno=True)


class OutOfTime(Exception):
    """Raised by the interval timer inside the program, as the reference's `TimeoutException`."""


class Sink(io.TextIOBase):
    """Standard streams for the program: writes vanish, reads fail (as the reference's)."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        return len(s)

    def readable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> str:
        raise OSError("standard input is closed in the sandbox")

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        raise OSError("standard input is closed in the sandbox")


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


def isolate_network() -> bool:
    """A network namespace of our own; False where the kernel refuses one."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if _libc.unshare(flags) != 0:
        return False
    if uid != 0:  # map ourselves, so that files we create keep our owner
        maps = (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1"))
        for name, text in maps:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    return True


def limit_resources(seconds: float, memory_bytes: int, file_bytes: int, open_files: int) -> None:
    cpu = math.ceil(seconds) + 1
    for which, soft, hard in (
        (resource.RLIMIT_AS, memory_bytes, memory_bytes),
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_FSIZE, file_bytes, file_bytes),
        (resource.RLIMIT_NOFILE, open_files, open_files),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))


def drop_root(workdir: str, library: dict[str, int]) -> None:
    """Become `nobody`. The Python library may lie where `nobody` cannot walk (pyenv under
    /root), so imports go on through its directories already open, as `/proc/self/fd/N`."""
    os.chown(workdir, NOBODY, NOBODY)
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))  # /proc/self is ours again
    routes = {path: f"/proc/self/fd/{fd}" for path, fd in library.items()}

    def reroute(path: str) -> str:
        for start, route in routes.items():
            if path == start or path.startswith(start + os.sep):
                return route + path[len(start) :]
        return path

    sys.path[:] = [reroute(p) for p in sys.path]
    for module in list(sys.modules.values()):  # packages already imported, for their submodules
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [reroute(p) for p in search]


def landlock(workdir: int, readable: list[tuple[int, int]]) -> list[str]:
    """Restrict this process for good; returns the walls built ([] without Landlock)."""
    abi = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 1:
        return []
    fs = (1 << 13) - 1  # ABI 1: execute, write, read, read dir, remove, make *
    fs |= (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 0b11 if abi >= 4 else 0  # bind and connect TCP
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    attr = ctypes.create_string_buffer(struct.pack("=QQQ", fs, net, scoped)[:size], size)
    ruleset = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, size, 0))
    try:
        for fd, access in [*readable, (workdir, fs)]:
            rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
            _check(
                _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0)
            )
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0))
    finally:
        os.close(ruleset)
    walls = [f"landlock filesystem (ABI {abi})"]
    return walls + (["landlock tcp"] if net else []) + (["landlock signals"] if scoped else [])


def refuse(event: str, args: tuple[object, ...]) -> None:
    if event.startswith(REFUSED):
        raise PermissionError(f"the sandbox refuses {event}")


def build_walls(seconds: float, memory_bytes: int, file_bytes: int, open_files: int) -> list[str]:
    """Every wall, in order; raises when one that must hold cannot be built."""
    workdir = os.getcwd()
    # opened while every path can still be walked: for Landlock's rules and, as root, for the
    # imports (a zip on the path would not be readable)
    own = os.open(workdir, os.O_PATH | os.O_CLOEXEC)
    library = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p in sys.path if os.path.isdir(p)}
    readable = [(fd, READ_FILE | READ_DIR) for fd in library.values()]
    for path in filter(os.path.exists, SHARED_LIBRARIES):
        access = READ_FILE | (READ_DIR if os.path.isdir(path) else 0)
        readable.append((os.open(path, os.O_PATH | os.O_CLOEXEC), access))
    walls = ["network namespace"] if isolate_network() else []
    limit_resources(seconds, memory_bytes, file_bytes, open_files)
    walls.append("rlimits")
    if os.getuid() == 0:
        drop_root(workdir, library)
        walls.append(f"uid {NOBODY}")
    built = landlock(own, readable)
    if not built:
        raise OSError("Landlock is not available in this kernel (Linux 5.13+ with it enabled)")
    sys.addaudithook(refuse)
    return [*walls, *built, "audit hook"]


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def run(program: str, seconds: float) -> tuple[str, str]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise OutOfTime

    sys.stdin = sys.stdout = sys.stderr = Sink()
    signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            exec(compile(program, "<check>", "exec"), {})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except OutOfTime:
        return "timed out", f"timed out after {seconds:g} s"
    except BaseException as exc:
        return "failed", describe(exc)
    return "passed", ""


def main() -> None:
    program, seconds, *limits = marshal.loads(sys.stdin.buffer.read())
    report = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # fd 2 stays with the parent: a fatal interpreter error is the crash reason
    os.close(null)
    try:
        walls = build_walls(seconds, *limits)
    except (OSError, ValueError) as exc:  # ValueError: a limit the kernel will not set
        status, reason, walls = "error", f"the sandbox could not be built: {describe(exc)}", []
    else:
        status, reason = run(program, seconds)
    lines = [status, ";".join(walls), " ".join(reason.splitlines())]
    os.write(report, "".join(line + "\n" for line in lines).encode(errors="replace"))
    os._exit(0)  # no atexit handler the program registered runs


if __name__ == "__main__":
    main()
