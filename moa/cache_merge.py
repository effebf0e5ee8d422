"""Call caches of jobs on several hosts, made into one: each job keeps its cache on local disk
(`moa.mounts`: never WAL over a network filesystem), `copy_cache` leaves a copy of it where the
others can read it, and `merge_caches` makes the union of such copies in one cache.

A copy is SQLite's `VACUUM INTO`: one consistent file in rollback-journal mode, written whole
beside its destination, then renamed, so it can go to a network filesystem and be read there
by a merge with no lock at all (`immutable=1`).

The merge is ATTACH and INSERT OR IGNORE, in one transaction per source. Every row of a source
is checked first (a key, a model, a time, its checksum, and that it parses as an answer); a
corrupt one is left out and counted. A key the target has already is kept as it is; if the
answers differ (the same request sampled in two jobs that did not share a cache: two valid
draws), the target's is kept and they are counted as differing, so the runs already made on the
target stay as they were.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from moa.cache import CacheUnreadable, CallCache, checksum, journal_paths, stored_answer
from moa.errors import ConfigError
from moa.mounts import network_filesystem

_COLUMNS = {"key", "model", "completion", "created"}


@dataclass(frozen=True)
class Merged:
    """What one source added to the target."""

    source: Path
    added: int
    present: int  # the same answer was there already
    differing: int  # another answer to the same request was there: the target's is kept
    corrupt: int  # checksum or content wrong: left out

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.added} added, {self.present} already there, "
            f"{self.differing} differing (the target's kept), {self.corrupt} corrupt (left out)"
        )


def copy_cache(source: Path, destination: Path) -> None:
    """A consistent copy of the cache at `source` (in use or not), in place of `destination`."""
    if not source.is_file():
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(source, timeout=60.0) as db:
        db.execute("VACUUM INTO ?", (str(partial),))
    db.close()
    os.replace(partial, destination)


def _uri(source: Path) -> str:
    """How a source is opened: read-only; on a network filesystem immutable (no locks), which
    only a finished, copied cache allows (no write-ahead log beside it)."""
    path = quote(str(source.resolve()))
    if network_filesystem(source.parent) is None:
        return f"file:{path}?mode=ro"
    wal = source.with_name(source.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise ConfigError(
            f"{source} has a write-ahead log beside it on a network filesystem: it was not "
            "closed cleanly; run any moa-bench command with cache.path on it from its host, "
            "or copy it with cache.copy_to"
        )
    return f"file:{path}?immutable=1"


def _check(source: Path, target: Path) -> None:
    if not source.is_file():
        raise ConfigError(f"cache_merge.sources: {source} is not a file")
    if source.resolve() == target.resolve():
        raise ConfigError(f"cache_merge.sources: {source} is the target cache itself")
    if any(journal.exists() for journal in journal_paths(source)):
        raise ConfigError(
            f"{source} has answers kept in a journal that it could not store: run any "
            f"moa-bench command with cache.path={source} once to store them, then merge"
        )


def merge_caches(target: Path, sources: Sequence[Path]) -> list[Merged]:
    """Merges every source into the cache at `target` (created if need be), one transaction
    each; then checks the target. A source that is not a cache is refused before any merge."""
    for source in sources:
        _check(source, target)
    CallCache(target).close()  # creates, migrates, replays journals; refuses a network disk
    db = sqlite3.connect(f"file:{quote(str(target.resolve()))}", uri=True, timeout=60.0)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=60000")
        db.create_function("digest", 1, _digest, deterministic=True)
        db.create_function("answer", 1, _answer, deterministic=True)
        merged = [_merge_one(db, source) for source in sources]
        (bad,) = db.execute(
            "SELECT COUNT(*) FROM calls WHERE sha256 IS NOT NULL"
            " AND sha256 != digest(CAST(completion AS BLOB))"
        ).fetchone()
        if bad or db.execute("PRAGMA quick_check").fetchone() != ("ok",):
            raise CacheUnreadable(target, f"{bad} rows fail their checksum after the merge")
    finally:
        db.close()
    return merged


def _digest(stored: bytes | None) -> str | None:
    """A row's checksum, for SQL; NULL for a NULL completion (a foreign file may hold one)."""
    return None if stored is None else checksum(bytes(stored))


def _answer(stored: bytes | None) -> bool:
    """Whether a row's completion parses as an answer, for SQL."""
    return stored is not None and stored_answer(bytes(stored)) is not None


def _merge_one(db: sqlite3.Connection, source: Path) -> Merged:
    try:
        db.execute("ATTACH DATABASE ? AS src", (_uri(source),))
    except sqlite3.Error as exc:
        raise CacheUnreadable(source, str(exc)) from None
    try:
        try:
            columns = {str(row[1]) for row in db.execute("PRAGMA src.table_info(calls)")}
        except sqlite3.DatabaseError as exc:
            raise CacheUnreadable(source, str(exc)) from None
        if not columns >= _COLUMNS:
            raise CacheUnreadable(source, "it has no calls table of a call cache")
        claimed = "sha256" if "sha256" in columns else "NULL"
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TEMP TABLE incoming AS SELECT key, model, completion, created,"
                f" digest(CAST(completion AS BLOB)) AS sha256, {claimed} AS claimed"
                " FROM src.calls"
            )
            corrupt = db.execute(
                "DELETE FROM incoming WHERE key IS NULL OR model IS NULL OR created IS NULL"
                " OR (claimed IS NOT NULL AND claimed IS NOT sha256)"
                " OR NOT answer(CAST(completion AS BLOB))"
            ).rowcount
            present, differing = db.execute(
                "SELECT COALESCE(SUM(same), 0), COALESCE(SUM(1 - same), 0) FROM ("
                " SELECT COALESCE(c.sha256, digest(CAST(c.completion AS BLOB))) = i.sha256"
                " AS same FROM incoming i JOIN main.calls c ON c.key = i.key)"
            ).fetchone()
            added = db.execute(
                "INSERT OR IGNORE INTO main.calls (key, model, completion, created, sha256)"
                " SELECT key, model, completion, created, sha256 FROM incoming"
            ).rowcount
            (total,) = db.execute("SELECT COUNT(*) FROM incoming").fetchone()
            if added + present + differing != total:  # each row is exactly one of these
                raise CacheUnreadable(source, "its rows could not be accounted for")
            db.execute("DROP TABLE temp.incoming")
            db.commit()
        except sqlite3.Error as exc:  # a page of the source that cannot be read, most likely
            raise ConfigError(
                f"cache_merge: {source} could not be merged ({exc}); nothing of it was stored"
            ) from None
        finally:
            if db.in_transaction:
                db.rollback()
    finally:
        db.execute("DETACH DATABASE src")
    return Merged(source, added, int(present), int(differing), corrupt)


def expand(patterns: Sequence[str]) -> list[Path]:
    """Source paths, each a path or a glob (`results/runs/*/*/calls.sqlite`), in order."""
    paths: list[Path] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            root = Path("/") if Path(pattern).is_absolute() else Path()
            found = sorted(root.glob(pattern.lstrip("/")))
            if not found:
                raise ConfigError(f"cache_merge.sources: nothing matches {pattern}")
            paths += found
        else:
            paths.append(Path(pattern).expanduser())
    return paths
