"""The sandbox that runs CRUXEval's assertions: each harmful program is stopped, scored wrong with
its reason, and leaves the host and the run as they were (the next program still passes)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eval.verify.cruxeval import CruxEvalScorer
from eval.verify.sandbox import CHILD, Limits, Outcome, Sandbox
from moa.errors import ConfigError

HARMLESS = "def f(x):\n    return x\nassert f(1) == 1"


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The sandbox's throwaway directories go here, so that the test sees them all removed."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    assert list(root.iterdir()) == []  # every throwaway directory removed


def sandbox_processes() -> list[int]:
    """Our descendants still running the child script (none may outlive its run)."""
    parents: dict[int, int] = {}
    running: set[int] = set()
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(CHILD).encode() in cmdline:
            running.add(pid)

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return sorted(pid for pid in running if ours(pid))


async def run_and_recover(sandbox: Sandbox, program: str) -> Outcome:
    outcome = await sandbox.run(program)
    assert (await sandbox.run(HARMLESS)).passed  # the run goes on
    assert sandbox_processes() == []
    return outcome


async def test_a_harmless_program_passes_inside_every_wall(scratch: Path) -> None:
    outcome = await Sandbox().run(HARMLESS + "\nopen('own.txt', 'w').write('its own directory')")
    assert outcome.status == "passed", outcome
    assert {"rlimits", "audit hook"} <= set(outcome.walls)
    assert any(wall.startswith("landlock filesystem") for wall in outcome.walls)
    if os.geteuid() == 0:  # as root a network namespace and another uid are always possible
        assert {"network namespace", "uid 65534"} <= set(outcome.walls)


async def test_a_failed_assertion_and_an_exception_are_failures() -> None:
    sandbox = Sandbox()
    outcome = await sandbox.run("assert 1 == 2")
    assert (outcome.status, outcome.reason) == ("failed", "AssertionError")
    outcome = await sandbox.run("def f(x):\n    return x[3]\nassert f([1]) == 1")
    assert (outcome.status, outcome.reason) == ("failed", "IndexError: list index out of range")


async def test_a_socket_is_refused_and_reaches_nothing(scratch: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}))"
        outcome = await run_and_recover(Sandbox(), code)
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected
    assert outcome.status == "failed"
    assert outcome.reason == "PermissionError: the sandbox refuses socket.__new__"


async def test_writing_or_deleting_outside_its_directory_fails(
    scratch: Path, tmp_path: Path
) -> None:
    target, keep = tmp_path / "escaped.txt", tmp_path / "keep.txt"
    keep.write_text("mine")
    sandbox = Sandbox()
    written = await run_and_recover(sandbox, f"open({str(target)!r}, 'w').write('x')")
    deleted = await run_and_recover(sandbox, f"import os\nos.remove({str(keep)!r})")
    assert (written.status, deleted.status) == ("failed", "failed")
    assert written.reason.startswith("PermissionError: [Errno 13] Permission denied")
    assert deleted.reason.startswith("PermissionError: [Errno 13] Permission denied")
    assert not target.exists() and keep.read_text() == "mine"


async def test_forking_without_end_is_stopped_by_the_hook_and_by_the_kernel(scratch: Path) -> None:
    sandbox = Sandbox()
    bomb = await run_and_recover(sandbox, "import os\nwhile True:\n    os.fork()")
    assert bomb.reason == "PermissionError: the sandbox refuses os.fork"
    # no audit event guards _posixsubprocess or threads: the process-count limit does
    unaudited = (
        "import _posixsubprocess, os\nr, w = os.pipe()\nwhile True:\n"
        "    _posixsubprocess.fork_exec(['/bin/true'], [b'/bin/true'], True, (), None, None,"
        " -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, -1, -1, None, False)"
    )
    kernel = await run_and_recover(sandbox, unaudited)
    assert kernel.reason == "BlockingIOError: [Errno 11] Resource temporarily unavailable"
    threads = await run_and_recover(
        sandbox, "import threading\nwhile True:\n    threading.Thread(target=len).start()"
    )
    assert threads.reason == "RuntimeError: can't start new thread"


async def test_allocating_without_end_stops_at_the_memory_limit(scratch: Path) -> None:
    sandbox = Sandbox(Limits(memory_bytes=256 * 2**20))
    outcome = await run_and_recover(
        sandbox, "grow = []\nwhile True:\n    grow.append(b' ' * 2**24)"
    )
    assert (outcome.status, outcome.reason) == ("failed", "MemoryError")


async def test_looping_forever_times_out_and_a_loop_that_swallows_the_timeout_is_killed(
    scratch: Path,
) -> None:
    sandbox = Sandbox(Limits(seconds=1))
    started = time.monotonic()
    looping = asyncio.create_task(run_and_recover(sandbox, "while True:\n    pass"))
    while not sandbox_processes():  # seen while it runs: the check after it is not vacuous
        await asyncio.sleep(0.05)
    plain = await looping
    assert (plain.status, plain.reason) == ("timed out", "timed out after 1 s")
    stubborn = (  # it catches the timer's exception and goes on
        "while True:\n    try:\n        while True:\n            x = 1\n"
        "    except BaseException:\n        pass"
    )
    killed = await run_and_recover(sandbox, stubborn)
    assert (killed.status, killed.reason) == ("timed out", "timed out after 1 s (killed)")
    assert time.monotonic() - started < 30  # generous: 1 s and 2 s, on a loaded machine


async def test_a_process_that_dies_without_a_report_crashed(scratch: Path) -> None:
    outcome = await run_and_recover(Sandbox(), "import os\nos._exit(0)")
    assert (outcome.status, outcome.reason) == ("crashed", "exited with code 0 without a report")


async def test_harm_is_scored_wrong_with_its_reason(scratch: Path) -> None:
    limits = Limits(seconds=1)
    code = "def f(x):\n    while x:\n        pass\n    return x"
    outputs = CruxEvalScorer("output", sandbox=Sandbox(limits))  # the prediction runs
    answer = "assert f(0) == __import__('socket').socket()"
    verdict = await outputs.score(answer, code=code, input="0", output="0")
    assert (verdict.verdict, verdict.extracted) == ("wrong", "__import__('socket').socket()")
    assert verdict.why == "failed: PermissionError: the sandbox refuses socket.__new__"
    inputs = CruxEvalScorer("input", sandbox=Sandbox(limits))  # f runs on the prediction
    verdict = await inputs.score("assert f(1) == 0", code=code, input="0", output="0")
    assert (verdict.verdict, verdict.extracted) == ("wrong", "f(1)")
    assert verdict.why == "timed out: timed out after 1 s"


async def test_a_sandbox_that_cannot_be_built_is_an_error_not_a_wrong_answer(scratch: Path) -> None:
    sandbox = Sandbox(Limits(open_files=2**31))  # more than the kernel allows
    outcome = await sandbox.run(HARMLESS)
    assert outcome.status == "error"
    assert outcome.reason == (
        "the sandbox could not be built: ValueError: not allowed to raise maximum limit"
    )
    scorer = CruxEvalScorer("output", sandbox=sandbox)
    verdict = await scorer.score(
        "assert f(1) == 1", code="def f(x):\n    return x", input="1", output="1"
    )
    assert (verdict.verdict, verdict.why) == ("error", outcome.reason)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"seconds": 0}, "sandbox: `seconds` must be above 0, got 0"),
        ({"memory_bytes": 2**20}, "sandbox: `memory_bytes` must be at least 67108864 (64 MiB)"),
        ({"open_files": 3}, "sandbox: `file_bytes` must be 0 or more and `open_files` at least 16"),
    ],
)
def test_limits_out_of_range_are_refused_in_one_line(
    limits: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        Limits(**limits)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)


async def test_a_sandbox_process_that_cannot_start_is_an_error(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def out_of_processes(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", out_of_processes)
    assert await Sandbox().run(HARMLESS) == Outcome(
        "error",
        "the sandbox process could not start: [Errno 11] Resource temporarily unavailable",
        (),
    )
