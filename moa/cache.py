"""The content-addressed call cache: one SQLite file, safe for several processes at once.

A key hashes exactly what can change an answer (endpoint identity, model, messages, decoding
parameters, sample index) and nothing that cannot (API keys, concurrency or rate limits), so a
crashed, repeated or overlapping run never pays twice for the same call.

The same file holds the claims on calls under way (`moa.claims`), so that overlapping processes
do not pay twice for a call that none of them has finished yet either.

Integrity. Each row carries the sha256 of its stored completion JSON (its UTF-8 bytes). Caches
written before that column existed get it in place when first opened for writing (`ALTER TABLE
calls ADD COLUMN`, which rewrites nothing); their rows are trusted on first read if they parse,
and that read's commit stores their checksum (a read-only process reads such a file as it is).
A row whose checksum does not match, or that does not parse, is a miss: it is logged and
counted (`corrupt`), and the call made again replaces it.
A file that SQLite cannot read is refused at once with `CacheUnreadable`, naming the file.
A file on a network filesystem (NFS, Lustre...) is refused before it is opened with
`CacheOnNetworkFilesystem`: WAL's locks and shared memory do not work between hosts there.

Faults. A commit that fails (a full disk, an I/O error) loses nothing: its answers stay pending
in memory, are appended to a journal beside the file (`journal_paths`; if that cannot be written
either, to one in the temporary directory), and every later commit retries them. From then on
`claim` refuses every new call with `CacheWriteError`, so a run stops paying for answers it could
not keep; the calls in flight finish and are kept the same way. `close` tries once more and
raises `CacheWriteError`, one line saying what was kept where and how many answers, if any, could
be kept nowhere. The next process that opens the file for writing replays the journals into it
before anything else (a read-only one leaves them be).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moa.errors import ConfigError
from moa.jsonl import to_json_text
from moa.mounts import network_filesystem
from moa.types import ChatMessage, Completion, GenerateConfig

log = logging.getLogger(__name__)


class CacheMode(enum.StrEnum):
    OFF = "off"
    READ = "read"  # use what is there, store nothing new
    WRITE = "write"  # store every answer, never reuse (a forced refresh)
    READ_WRITE = "read_write"

    @property
    def reads(self) -> bool:
        return self in (CacheMode.READ, CacheMode.READ_WRITE)

    @property
    def writes(self) -> bool:
        return self in (CacheMode.WRITE, CacheMode.READ_WRITE)


# the canonical JSON of `call_key`, its encoder built once (`json.dumps` builds one per call)
_KEY_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def call_key(
    endpoint: str,
    model: str,
    messages: Sequence[ChatMessage],
    config: GenerateConfig,
    sample: int,
) -> str:
    """sha256 of a canonical JSON of the request; stable across processes and versions."""
    payload = {
        "endpoint": endpoint,
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "config": config.as_dict(),
        "sample": sample,
    }
    return hashlib.sha256(_KEY_JSON(payload).encode()).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL,
    sha256 TEXT  -- of completion's UTF-8 bytes; NULL in rows stored before checksums existed
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,  -- host:pid:token of the process making the call
    expires REAL NOT NULL  -- epoch seconds; the owner renews the lease while it lives
) WITHOUT ROWID
"""
_COLUMNS = {"key", "model", "completion", "created"}  # what every version's calls table has


class CacheUnreadable(ConfigError):
    """The file is not a call cache SQLite can read: refused when it is opened (or read)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path} is not a readable moa-bench call cache ({reason}): move it aside and run "
            "again; its calls will be made again"
        )


class CacheOnNetworkFilesystem(ConfigError):
    """The cache's directory is on a network filesystem: refused before any call is made."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__(
            f"the call cache {path} is on a network filesystem ({kind}), where SQLite's WAL "
            "mode corrupts it once two hosts use it: put it on a local disk (e.g. "
            "cache.path=/tmp/moa-bench/calls.sqlite, or under $TMPDIR), one per host or job, "
            "and merge them afterwards with task=cache_merge (README: Scale-out)"
        )


class CacheWriteError(Exception):
    """The cache could not store answers, so no new call is made. Not a call failure: nothing
    was sent. The message is one line: what happened, what was kept where, what to do."""


Dead = Callable[[str], bool]  # whether a claim's owner is known to have died
COMMIT_DELAY_S = 0.002  # how long writes gather before their commit, in an event loop


def journal_paths(path: Path) -> tuple[Path, Path]:
    """Where answers the cache file could not take are kept until a process stores them: beside
    it, else in the temporary directory (often another filesystem than a full one)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return (
        path.with_name(path.name + ".pending.jsonl"),
        Path(tempfile.gettempdir()) / f"moa-bench-{digest}.pending.jsonl",
    )


def checksum(stored: bytes) -> str:
    return hashlib.sha256(stored).hexdigest()


def stored_answer(stored: bytes | str) -> Completion | None:
    """A stored row's answer; None when it does not parse as one (a corrupt row). One stored
    with a lone surrogate (before answers were checked when received) comes mended."""
    try:
        text = stored.decode() if isinstance(stored, bytes) else stored
        return Completion.from_json(json.loads(text)).mended()
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass
class _Answer:
    model: str
    stored: str  # the completion's JSON, as it goes in the file
    completion: Completion
    created: float
    claim_owner: str | None


@dataclass
class _ClaimRequest:
    key: str
    owner: str
    expires: float
    dead: Dead
    future: asyncio.Future[Completion | str | None]


def _kind(exc: BaseException) -> str:
    """'full', 'corrupt' or 'other', from SQLite's error name or, failing that, its message."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "full"
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or text in (
        "file is not a database",
        "database disk image is malformed",
    ):
        return "corrupt"
    return "other"


def _are(count: int) -> str:
    return "1 answer is" if count == 1 else f"{count} answers are"


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _append(journal: Path, data: bytes) -> None:
    """Appends whole lines under an exclusive lock (a replay takes it too); a write that fails
    half-way is cut back, so the journal never holds a torn line but possibly the last one."""
    while True:
        fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                there = os.stat(journal)
            except FileNotFoundError:
                continue  # replayed and removed while this waited for the lock: a new one
            if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                continue
            start = mine.st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
            return
        finally:
            os.close(fd)


def _journal_lines(data: bytes) -> list[tuple[str, str, str, float, str]]:
    """A journal's intact entries, as rows of `calls`: a line that does not parse or whose
    checksum fails (torn by a crash) is left out."""
    rows = []
    for line in data.splitlines():
        try:
            entry = json.loads(line)
            stored = str(entry["completion"])
            if checksum(stored.encode()) != entry["sha256"] or stored_answer(stored) is None:
                continue
            key, model, created = str(entry["key"]), str(entry["model"]), float(entry["created"])
            rows.append((key, model, stored, created, str(entry["sha256"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return rows


class CallCache:
    """Completed calls only: failures are never stored, so a resumed run retries them.

    WAL mode lets readers and one writer work at once across processes; `synchronous=NORMAL`
    keeps every committed row through a process kill (only an OS crash can lose the last ones).
    In an event loop, writes are group-committed: those of the next `COMMIT_DELAY_S` share one
    transaction, because a commit per write cost more CPU than the rest of the cache. A kill can
    lose the answers of those last milliseconds; this process's reads see them at once. An answer
    leaves the pending ones only once it is committed (see the module's docstring for faults).
    """

    def __init__(self, path: Path | str, mode: CacheMode = CacheMode.READ_WRITE) -> None:
        self.mode = mode
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._answers: dict[str, _Answer] = {}  # pending: not committed yet
        self._writes: list[tuple[str, tuple[object, ...]]] = []
        self._requests: list[_ClaimRequest] = []
        self._checksums: dict[str, tuple[str, bytes]] = {}  # to store for rows read without one
        self._scheduled = False
        self._error: Exception | None = None
        self._broken: BaseException | None = None  # why the first failed commit failed
        self._journaled: dict[str, Path] = {}  # pending answers that are in a journal too
        self._journal_error: BaseException | None = None  # why the last journal write failed
        self._reported = False
        self._corrupt: set[str] = set()
        self._checked = True  # whether the file has the checksum column
        if mode is not CacheMode.OFF:
            if (kind := network_filesystem(self.path.parent)) is not None:
                raise CacheOnNetworkFilesystem(self.path, kind)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
            if mode.writes:
                try:
                    self._replay(opening=True)
                except BaseException:
                    self._db.close()
                    self._db = None
                    raise

    def _open(self) -> sqlite3.Connection:
        """Connects, creates or migrates the tables; refuses a file that is not a cache."""
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=60000")
            db.executescript(_SCHEMA)
            db.commit()
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(calls)")}
            if not columns >= _COLUMNS:
                raise CacheUnreadable(self.path, "its calls table is not a call cache's")
            if "sha256" not in columns:
                self._checked = self.mode.writes and self._migrate(db)
            return db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if _kind(exc) == "corrupt":
                raise CacheUnreadable(self.path, _why(exc)) from None
            advice = "free space" if _kind(exc) == "full" else "fix that"
            raise CacheWriteError(
                f"the call cache at {self.path} could not be opened ({_why(exc)}): "
                f"{advice} and run the same command"
            ) from None
        except BaseException:
            if db is not None:
                db.close()
            raise

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> bool:
        """Adds the checksum column to a cache written before it: in place, old rows kept."""
        db.execute("BEGIN IMMEDIATE")
        try:
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(calls)")}
            if "sha256" not in columns:  # another process may have just done it
                db.execute("ALTER TABLE calls ADD COLUMN sha256 TEXT")
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return True

    def get(self, key: str) -> Completion | None:
        if self._db is None or not self.mode.reads:
            return None
        with self._lock, self._reading():
            found = self._lookup(key)
        return found if isinstance(found, Completion) else None

    def put(
        self, key: str, model: str, completion: Completion, claim_owner: str | None = None
    ) -> None:
        """Stores an answer; `claim_owner`'s claim on it goes in the same commit. After a failed
        commit it is still kept (see the module's docstring); outside an event loop, where each
        put commits, that failure is raised here. An answer with no UTF-8 form is stored mended
        (`Completion.mended`)."""
        self._raise_deferred()
        if self._db is None or not self.mode.writes:
            return
        completion = completion.mended()
        stored = to_json_text(completion.to_json())
        answer = _Answer(model, stored, completion, time.time(), claim_owner)
        with self._lock:
            self._answers[key] = answer
            self._journaled.pop(key, None)  # a journal holds an older answer, if any
        self._commit_soon()

    @property
    def claims(self) -> bool:
        """Claims only make sense where answers are both stored and reused."""
        return self._db is not None and self.mode is CacheMode.READ_WRITE

    @property
    def corrupt(self) -> int:
        """How many stored answers were found corrupt (and treated as misses)."""
        return len(self._corrupt)

    def found_corrupt(self, key: str) -> bool:
        return key in self._corrupt

    def peek(self, key: str, dead: Dead) -> Completion | str | None:
        """The stored answer; else the owner of a live claim on `key`; else None. A claim is
        stale once its lease has run out or `dead(its owner)`."""
        if not self.claims:
            return None
        with self._lock, self._reading():
            return self._lookup(key, dead)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read that finds the file corrupt refuses it, as opening it would have."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if _kind(exc) == "corrupt":
                raise CacheUnreadable(self.path, _why(exc)) from None
            raise

    def refuse_if_broken(self) -> None:
        """`CacheWriteError` once a commit has failed: a call that claimed before it and waited
        for a slot since must not be sent either, as its answer could not be kept."""
        if self._broken is not None:
            with self._lock:
                raise CacheWriteError(self._message(closing=False))

    async def claim(
        self, key: str, owner: str, lease_s: float, dead: Dead
    ) -> Completion | str | None:
        """As `peek`; but where that would find neither answer nor live claim, the claim becomes
        `owner`'s (None). Decided in the next commit, under the write lock: nobody can store or
        claim in between. (No look first: callers have just missed the cache.)

        Every caller about to make a call comes here first, whatever the mode: once a commit has
        failed, this raises `CacheWriteError` instead, so that no new call is made."""
        if self._broken is not None:
            with self._lock:
                raise CacheWriteError(self._message(closing=False))
        if not self.claims:
            return None
        future: asyncio.Future[Completion | str | None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._requests.append(_ClaimRequest(key, owner, time.time() + lease_s, dead, future))
        self._commit_soon()
        return await future

    def release(self, owner: str, key: str | None = None) -> None:
        """Drops `owner`'s claim on `key`, or all of its claims."""
        if key is None:
            self._write("DELETE FROM claims WHERE owner = ?", (owner,))
        else:
            self._write("DELETE FROM claims WHERE owner = ? AND key = ?", (owner, key))

    def renew(self, owner: str, lease_s: float) -> None:
        self._write("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + lease_s, owner))

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        if not self.claims:
            return
        with self._lock:
            self._writes.append((sql, args))
        self._commit_soon()

    def _lookup(self, key: str, dead: Dead | None = None) -> Completion | str | None:
        """Under the lock: an answer (pending or stored), or with `dead` a live claim's owner."""
        assert self._db is not None
        if (answer := self._answers.get(key)) is not None:
            return answer.completion
        checked = "sha256" if self._checked else "NULL"
        row = self._db.execute(
            f"SELECT CAST(completion AS BLOB), {checked} FROM calls WHERE key = ?", (key,)
        ).fetchone()
        if row is not None and (found := self._verified(key, row[0], row[1])) is not None:
            return found
        if dead is None:
            return None
        held = self._db.execute(
            "SELECT owner, expires FROM claims WHERE key = ?", (key,)
        ).fetchone()
        if held is not None and held[1] > time.time() and not dead(held[0]):
            return str(held[0])
        return None

    def _verified(self, key: str, stored: bytes, expected: str | None) -> Completion | None:
        """A stored row's answer, or None (a miss) when it is corrupt."""
        digest = checksum(stored)
        mismatch = expected is not None and digest != expected
        completion = None if mismatch else stored_answer(stored)
        if completion is None:
            if key not in self._corrupt:
                self._corrupt.add(key)
                why = "its checksum does not match" if mismatch else "unreadable"
                log.warning(
                    "call cache %s: the stored answer of call %s is corrupt (%s); it is not "
                    "used, and the call is made again",
                    self.path, key, why,
                )  # fmt: skip
            return None
        if expected is None and self._checked and self.mode.writes:
            self._checksums[key] = (digest, stored)  # trusted on first read: stored next commit
        return completion

    def _commit_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        if not self._scheduled:
            self._scheduled = True
            loop.call_later(COMMIT_DELAY_S, self._commit_in_loop)

    def _commit_in_loop(self) -> None:
        try:
            self.commit()
        except CacheWriteError:  # kept: `claim` refuses new calls, `close` reports it
            pass
        except Exception as exc:  # nobody awaits this callback: the next put or close raises it
            self._error = exc

    def _raise_deferred(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def commit(self) -> None:
        """Everything pending in one transaction; then each claim request gets its answer. If
        it fails, the answers stay pending (and go to a journal) and `CacheWriteError` is
        raised: to the claim requests, and here."""
        with self._lock:
            self._scheduled = False
            if self._db is None:
                return
            answers = self._answers
            writes, self._writes = self._writes, []
            requests = [r for r in self._requests if not r.future.cancelled()]
            self._requests = []
            checksums, self._checksums = self._checksums, {}
            if not (answers or writes or requests or checksums):
                return
            db = self._db
            found: list[Completion | str | None] = []
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(
                        "INSERT OR REPLACE INTO calls (key, model, completion, created, sha256)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [
                            (key, a.model, a.stored, a.created, checksum(a.stored.encode()))
                            for key, a in answers.items()
                        ],
                    )
                    db.executemany(
                        "DELETE FROM claims WHERE key = ? AND owner = ?",
                        [(key, a.claim_owner) for key, a in answers.items() if a.claim_owner],
                    )
                    db.executemany(
                        "UPDATE calls SET sha256 = ? WHERE key = ? AND sha256 IS NULL"
                        " AND CAST(completion AS BLOB) = ?",
                        [(digest, key, stored) for key, (digest, stored) in checksums.items()],
                    )
                    for sql, args in writes:
                        db.execute(sql, args)
                    for r in requests:
                        found.append(self._lookup(r.key, r.dead))
                        if found[-1] is None:
                            db.execute(
                                "INSERT OR REPLACE INTO claims (key, owner, expires)"
                                " VALUES (?, ?, ?)",
                                (r.key, r.owner, r.expires),
                            )
                    db.commit()
                finally:
                    if db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            db.rollback()
            except sqlite3.Error as exc:
                self._writes = writes + self._writes  # claim releases and renewals: retried
                error = self._failed(exc)
                for r in requests:
                    r.future.set_exception(error)
                raise error from None
            except BaseException as exc:
                for r in requests:
                    r.future.set_exception(exc)
                raise
            self._answers = {}
            self._journaled.clear()  # journals still hold them: the next replay is a no-op
        for r, result in zip(requests, found, strict=True):
            r.future.set_result(result)

    def _failed(self, exc: BaseException) -> CacheWriteError:
        """Under the lock, after a failed commit: the cache is broken for good in this process,
        and the pending answers not yet in a journal go to one."""
        if self._broken is None:
            self._broken = exc
            log.error("call cache %s: a commit failed (%s); no new call is made", self.path, exc)
        self._keep()
        return CacheWriteError(self._message(closing=False))

    def _keep(self) -> None:
        """Under the lock: appends the pending answers no journal has yet to the first journal
        that takes them; those none takes stay in memory only."""
        todo = {k: a for k, a in self._answers.items() if k not in self._journaled}
        if not todo:
            return
        entries = (
            {"key": k, "model": a.model, "completion": a.stored, "created": a.created,
             "sha256": checksum(a.stored.encode())}
            for k, a in todo.items()
        )  # fmt: skip
        data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()
        for journal in journal_paths(self.path):
            try:
                _append(journal, data)
            except OSError as exc:
                self._journal_error = exc
                continue
            for k in todo:
                self._journaled[k] = journal
            return

    def _replay(self, opening: bool) -> None:
        """Stores the answers of every journal (of any process) and removes the journal, under
        its lock. Opening, a replay that fails leaves the journal and refuses the file."""
        assert self._db is not None
        for journal in journal_paths(self.path):
            try:
                fd = os.open(journal, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    there = os.stat(journal)
                except FileNotFoundError:
                    continue  # replayed meanwhile
                mine = os.fstat(fd)
                if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                    continue
                with open(fd, "rb", closefd=False) as stream:
                    rows = _journal_lines(stream.read())
                try:
                    with self._lock:
                        self._store_rows(rows)
                except sqlite3.Error as exc:
                    if not opening:
                        return
                    advice = "free space" if _kind(exc) == "full" else "fix that"
                    raise CacheWriteError(
                        f"the call cache at {self.path} could not be written ({_why(exc)}): "
                        f"{_are(len(rows))} kept in {journal}; {advice} and run the same "
                        "command"
                    ) from None
                os.unlink(journal)
                if opening and rows:
                    log.warning(
                        "call cache %s: %d answers kept in %s are stored now",
                        self.path, len(rows), journal,
                    )  # fmt: skip
            finally:
                os.close(fd)

    def _store_rows(self, rows: list[tuple[str, str, str, float, str]]) -> None:
        assert self._db is not None
        if not rows:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO calls (key, model, completion, created, sha256)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.commit()
        finally:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.rollback()

    def _message(self, closing: bool) -> str:
        """Under the lock: the one line `CacheWriteError` says once the cache is broken."""
        assert self._broken is not None
        journals = Counter(self._journaled.values())
        kept = [f"{_are(n)} kept in {journal}" for journal, n in journals.items()]
        alone = len(self._answers) - sum(journals.values())
        if alone and closing:
            why = "" if self._journal_error is None else f": {_why(self._journal_error)}"
            kept.append(
                f"{_are(alone)} lost (no journal could be written either{why}); "
                "their calls will be made again"
            )
        elif alone:
            kept.append(f"{_are(alone)} kept in memory until the cache closes")
        advice = {
            "full": "free space and run the same command",
            "corrupt": f"move {self.path} aside and run the same command; its calls will be "
            "made again",
        }.get(_kind(self._broken), "fix that and run the same command")
        return (
            f"the call cache at {self.path} could not be written ({_why(self._broken)}), so the "
            f"run stopped making calls: {', '.join(kept) or 'no answer was lost'}; {advice}"
        )

    def __len__(self) -> int:
        if self._db is None:
            return 0
        with contextlib.suppress(CacheWriteError):
            self.commit()
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM calls").fetchone()
        return int(count)

    def close(self) -> None:
        """Commits what is pending. If a commit ever failed: tries it once more, and the
        journals too, then raises `CacheWriteError` (once) saying what was kept where. (Unless
        only this last commit failed, and it held no answer: then the claims it would have
        released lapse once this process has ended, and that is only logged.)"""
        if self._db is not None:
            broken = self._broken is not None
            with contextlib.suppress(CacheWriteError):
                self.commit()
            if not broken and self._broken is not None and not self._answers:
                log.warning("call cache %s: claims left to lapse (%s)", self.path, self._broken)
                self._reported = True
            if self._broken is not None and not self._answers:
                # all stored on a later try (the failed ones journaled what they had): tidy up
                with contextlib.suppress(sqlite3.Error, OSError, CacheWriteError):
                    self._replay(opening=False)
            self._db.close()
            self._db = None
        if self._broken is not None and not self._reported:
            self._reported = True
            with self._lock:
                raise CacheWriteError(self._message(closing=True))
        self._raise_deferred()
