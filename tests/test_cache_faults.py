"""The call cache on a full disk: the first failed commit stops new calls, no answer is lost
(pending in memory, then in a journal that the next run replays first), and the command line
says so in one line. The disk is full by injection (every write fails with SQLite's own
message), by SQLite's page limit, and for real on a tiny tmpfs where a user namespace allows."""

from __future__ import annotations

import asyncio
import errno
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import moa.cache
from eval.errors import EXIT_CACHE, reported
from moa.cache import CacheMode, CacheWriteError, CallCache, checksum, journal_paths
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.ledger import Ledger, read_ledger
from moa.providers.base import register_provider
from moa.types import CallOutcome, ChatMessage, Completion, GenerateConfig
from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment

CONFIG = GenerateConfig(temperature=0.7, max_tokens=10)
FULL = "database or disk is full"  # SQLite's message for SQLITE_FULL
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "ALTER")


class Disk:
    """While `full`, every write to a cache file fails as SQLite fails on a full disk."""

    def __init__(self) -> None:
        self.full = False

    def check(self, sql: str) -> None:
        if self.full and sql.lstrip().upper().startswith(WRITES):
            raise sqlite3.OperationalError(FULL)


@pytest.fixture(autouse=True)
def own_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fallback journals go to the test's own temporary directory."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    disk = Disk()
    connect = sqlite3.connect

    class Connection(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            disk.check(sql)
            return super().execute(sql, parameters)

        def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
            rows = list(parameters)
            if rows:
                disk.check(sql)
            return super().executemany(sql, rows)

    def faulty(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, factory=Connection, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", faulty)
    return disk


class Gated:
    """Answers once `gate` is open; `sent` lists every prompt that reached it."""

    identity = "gated:v1"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[str] = []

    async def generate(
        self, model: str, messages: Sequence[ChatMessage], config: GenerateConfig, sample: int
    ) -> Completion:
        prompt = messages[-1]["content"]
        self.sent.append(prompt)
        await self.gate.wait()
        return Completion(f"the answer to {prompt}", 5, 3, "stop")

    async def aclose(self) -> None:
        return None


GATED: list[Gated] = []


@register_provider("test-cache-faults-gated")
def _gated(endpoint: str, options: Any) -> Gated:
    return GATED[-1]


@pytest.fixture
def gated() -> Iterator[Gated]:
    GATED.append(Gated())
    yield GATED[-1]
    GATED.clear()


def make_client(path: Path, ledger: Path | None = None) -> ModelClient:
    # a full-width start (no slow start): the tests hold many calls in flight at once
    spec = {"provider": "test-cache-faults-gated", "max_concurrency": 64, "start_concurrency": 64}
    return ModelClient({"gated": spec}, Catalogue({}, ["gated"]), CallCache(path), Ledger(ledger))


async def ask(client: ModelClient, prompt: str) -> CallOutcome:
    return await client.generate("gated/m", [{"role": "user", "content": prompt}], CONFIG)


async def fill_up(client: ModelClient, gated: Gated, disk: Disk, flying: int) -> None:
    """One answer stored; then `flying` calls are under way when the disk fills up."""
    gated.gate.set()
    assert (await ask(client, "before")).completion is not None
    client.cache.commit()
    gated.gate.clear()
    calls = [asyncio.create_task(ask(client, f"q{i}")) for i in range(flying)]
    while len(gated.sent) < 1 + flying:
        await asyncio.sleep(0.001)
    disk.full = True
    gated.gate.set()
    outcomes = await asyncio.gather(*calls)
    assert all(o.completion is not None for o in outcomes)  # the calls in flight end well
    with pytest.raises(CacheWriteError):  # their group commit fails (if it has not yet)
        client.cache.commit()


def message(path: Path, kept: str, advice: str = "free space and run the same command") -> str:
    return (
        f"the call cache at {path} could not be written ({FULL}), so the run stopped making "
        f"calls: {kept}; {advice}"
    )


async def test_a_full_disk_stops_new_calls_and_loses_no_answer(
    tmp_path: Path, disk: Disk, gated: Gated
) -> None:
    path, ledger = tmp_path / "calls.sqlite", tmp_path / "calls.jsonl"
    client = make_client(path, ledger)
    await fill_up(client, gated, disk, flying=5)
    journal = journal_paths(path)[0]
    with pytest.raises(CacheWriteError) as refused:
        await ask(client, "after")
    assert str(refused.value) == message(path, f"5 answers are kept in {journal}")
    assert "after" not in gated.sent  # refused before it was sent
    with pytest.raises(CacheWriteError) as stopped:
        await client.aclose()
    assert str(stopped.value) == message(path, f"5 answers are kept in {journal}")
    records = list(read_ledger(ledger))  # closed, though the cache's close raised
    assert len(records) == 6 and not any(r["error"] for r in records)  # no call failed
    stored = CallCache(path, CacheMode.READ)
    assert len(stored) == 1  # the file has only the first answer
    stored.close()

    disk.full = False  # space is freed: the next run stores the journal before anything else
    again = make_client(path)
    assert not journal.exists() and len(again.cache) == 6
    for prompt in ["before", *(f"q{i}" for i in range(5))]:
        outcome = await ask(again, prompt)
        assert outcome.record.cached and outcome.completion is not None
        assert outcome.completion.text == f"the answer to {prompt}"
    assert len(gated.sent) == 6  # nothing was paid twice
    await again.aclose()


async def test_without_a_journal_the_answers_wait_in_memory_for_a_later_commit(
    tmp_path: Path, disk: Disk, gated: Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(journal: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(journal))

    monkeypatch.setattr(moa.cache, "_append", no_space)
    path = tmp_path / "calls.sqlite"
    client = make_client(path)
    await fill_up(client, gated, disk, flying=3)
    with pytest.raises(CacheWriteError) as refused:
        await ask(client, "after")
    assert str(refused.value) == message(
        path, "3 answers are kept in memory until the cache closes"
    )
    assert client.cache.get("nothing") is None and len(gated.sent) == 4
    disk.full = False  # space came back before the run ended: the last commit keeps them all
    with pytest.raises(CacheWriteError) as stopped:
        await client.aclose()
    assert str(stopped.value) == message(path, "no answer was lost")
    assert len(CallCache(path, CacheMode.READ)) == 4


async def test_answers_no_journal_takes_are_counted_as_lost(
    tmp_path: Path, disk: Disk, gated: Gated, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(journal: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(journal))

    monkeypatch.setattr(moa.cache, "_append", no_space)
    path = tmp_path / "calls.sqlite"
    client = make_client(path)
    await fill_up(client, gated, disk, flying=3)
    with pytest.raises(CacheWriteError) as stopped:
        await client.aclose()
    lost = (
        "3 answers are lost (no journal could be written either: No space left on device); "
        "their calls will be made again"
    )
    assert str(stopped.value) == message(path, lost)


async def test_the_journal_falls_back_to_the_temporary_directory(
    tmp_path: Path, disk: Disk, gated: Gated, own_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = moa.cache._append
    path = tmp_path / "calls.sqlite"
    beside, elsewhere = journal_paths(path)
    assert elsewhere.parent == own_tmp

    def beside_is_full(journal: Path, data: bytes) -> None:
        if journal == beside:
            raise OSError(errno.ENOSPC, "No space left on device", str(journal))
        append(journal, data)

    monkeypatch.setattr(moa.cache, "_append", beside_is_full)
    client = make_client(path)
    await fill_up(client, gated, disk, flying=2)
    with pytest.raises(CacheWriteError) as stopped:
        await client.aclose()
    assert str(stopped.value) == message(path, f"2 answers are kept in {elsewhere}")
    assert elsewhere.stat().st_mode & 0o777 == 0o600  # answers are nobody else's to read
    disk.full = False
    again = CallCache(path)
    assert not elsewhere.exists() and len(again) == 3
    again.close()


@pytest.mark.parametrize("mode", [CacheMode.READ_WRITE, CacheMode.WRITE])
async def test_every_writing_mode_refuses_new_calls_after_a_failed_commit(
    tmp_path: Path, disk: Disk, mode: CacheMode
) -> None:
    cache = CallCache(tmp_path / "calls.sqlite", mode)
    assert await cache.claim("k", "me", 60.0, lambda owner: False) is None
    disk.full = True
    cache.put("k", "m", Completion("answer"))
    with pytest.raises(CacheWriteError):
        cache.commit()
    with pytest.raises(CacheWriteError, match="1 answer is kept in "):
        await cache.claim("k2", "me", 60.0, lambda owner: False)
    with pytest.raises(CacheWriteError):
        cache.close()


async def test_claims_that_cannot_be_released_at_the_end_are_only_logged(
    tmp_path: Path, disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    assert await cache.claim("k", "me", 60.0, lambda owner: False) is None
    cache.put("k", "m", Completion("answer"), claim_owner="me")
    cache.commit()
    cache.release("me")
    disk.full = True
    cache.close()  # every answer is stored: the claims lapse once this process has ended
    assert "claims left to lapse (database or disk is full)" in caplog.text


def test_a_journal_is_replayed_only_once_there_is_room(tmp_path: Path, disk: Disk) -> None:
    path = tmp_path / "calls.sqlite"
    cache = CallCache(path)
    disk.full = True
    for i in range(2):  # outside an event loop every put commits, and raises
        with pytest.raises(CacheWriteError):
            cache.put(f"k{i}", "m", Completion(f"answer {i}"))
    with pytest.raises(CacheWriteError):
        cache.close()
    journal = journal_paths(path)[0]
    with pytest.raises(CacheWriteError) as refused:  # still full: refused, journal kept
        CallCache(path)
    assert str(refused.value) == (
        f"the call cache at {path} could not be written ({FULL}): 2 answers are kept in "
        f"{journal}; free space and run the same command"
    )
    assert journal.exists()
    disk.full = False
    cache = CallCache(path)
    assert cache.get("k1") == Completion("answer 1") and not journal.exists()
    cache.close()


def test_a_torn_or_altered_journal_line_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    CallCache(path).close()
    stored = json.dumps(Completion("kept").to_json())
    good = {"key": "k", "model": "m", "completion": stored, "created": 1.0}
    good["sha256"] = checksum(stored.encode())
    altered = {**good, "key": "k2", "completion": stored.replace("kept", "kelp")}
    lines = [json.dumps(good), json.dumps(altered), json.dumps({**good, "key": "k3"})[:40]]
    journal_paths(path)[0].write_text("\n".join(lines), encoding="utf-8")
    cache = CallCache(path)
    assert cache.get("k") == Completion("kept") and len(cache) == 1
    cache.close()


def test_sqlites_own_full_error_at_its_page_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No injected error: SQLite itself refuses to grow the file past `max_page_count`."""
    connect = sqlite3.connect

    def small(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 16")
        return db

    monkeypatch.setattr(sqlite3, "connect", small)
    path = tmp_path / "calls.sqlite"
    cache = CallCache(path)
    stored: list[str] = []
    with pytest.raises(CacheWriteError):
        for i in range(100):
            stored.append(f"k{i}")
            cache.put(f"k{i}", "m", Completion(f"answer {i} " + "word " * 400))
    failed = len(stored)
    with pytest.raises(CacheWriteError):  # a call that was in flight: kept all the same
        cache.put("in-flight", "m", Completion("finished after the failure"))
    stored.append("in-flight")
    with pytest.raises(CacheWriteError) as stopped:
        cache.close()
    journal = journal_paths(path)[0]
    assert str(stopped.value) == message(path, f"2 answers are kept in {journal}")
    monkeypatch.setattr(sqlite3, "connect", connect)  # room again
    again = CallCache(path, CacheMode.READ_WRITE)
    assert failed > 1 and all(again.get(key) is not None for key in stored)
    again.close()


def test_the_command_line_reports_it_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["moa-bench", "task=generate"])
    text = message(Path("/c/calls.sqlite"), "3 answers are kept in /c/calls.sqlite.pending.jsonl")
    with pytest.raises(SystemExit) as ended, reported():
        raise CacheWriteError(text)
    assert ended.value.code == EXIT_CACHE == 4
    assert capsys.readouterr().err == f"moa-bench: {text}: moa-bench task=generate\n"


def _user_namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.skipif(not _user_namespaces(), reason="needs unprivileged user namespaces")
def test_a_real_full_disk_stops_the_run_in_one_line_and_the_resume_pays_nothing_twice(
    tmp_path: Path, own_tmp: Path
) -> None:
    """A tmpfs of 8 MiB, all but 160 KiB of it taken by a filler file; the filler is removed
    between the two runs."""
    fs = tmp_path / "fs"
    fs.mkdir()
    args = [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={fs / 'calls.sqlite'}",
        "benchmark=alpaca_eval",
        "moa=moa",
        "task=generate",
        "provider_override=scripted",
        "benchmark.limit=16",
        "concurrency=2",
    ]
    run = " ".join(f"'{a}'" for a in args)
    script = (
        f"mount -t tmpfs -o size=8m none '{fs}' || exit 99\n"
        f"head -c {8 * 1024 * 1024 - 160 * 1024} /dev/zero > '{fs}/filler'\n"
        f"{run} > '{tmp_path}/out1' 2> '{tmp_path}/err1'; echo $? > '{tmp_path}/rc1'\n"
        f"rm '{fs}/filler'\n"
        f"{run} > '{tmp_path}/out2' 2> '{tmp_path}/err2'; echo $? > '{tmp_path}/rc2'\n"
    )
    env = environment(TMPDIR=str(own_tmp))
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script], env=env, capture_output=True, timeout=300
    )
    if done.returncode == 99:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    first = (tmp_path / "err1").read_text(encoding="utf-8")
    assert (tmp_path / "rc1").read_text().strip() == str(EXIT_CACHE), first
    assert first.count("\n") == 1 and "Traceback" not in first
    assert first.startswith(
        f"moa-bench: the call cache at {fs / 'calls.sqlite'} could not be written ({FULL}), "
        "so the run stopped making calls: "
    )
    assert "; free space and run the same command: moa-bench " in first
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()
    (ledger,) = (tmp_path / "runs").glob("alpaca_eval/*/calls.jsonl")
    paid = Counter(r["key"] for r in read_ledger(ledger) if not r["cached"])
    assert paid and max(paid.values()) == 1  # no answer was paid for twice
