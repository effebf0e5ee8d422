"""The call cache: what the key covers, persistence, several processes writing at once, and
integrity: checksums (migrated in place into older files), corrupt rows, unreadable files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest

from moa.cache import CacheMode, CacheUnreadable, CallCache, call_key
from moa.catalogue import Catalogue
from moa.client import ModelClient
from moa.errors import ConfigError
from moa.types import ChatMessage, Completion, GenerateConfig
from tests.kit.cli import MOA_BENCH, run

MESSAGES: list[ChatMessage] = [{"role": "user", "content": "hi"}]
CONFIG = GenerateConfig(temperature=0.7, max_tokens=10)


def test_key_covers_what_changes_an_answer() -> None:
    base = call_key("openai:https://x/v1", "m", MESSAGES, CONFIG, 0)
    assert base == call_key("openai:https://x/v1", "m", list(MESSAGES), CONFIG, 0)
    variants = [
        call_key("openai:https://y/v1", "m", MESSAGES, CONFIG, 0),
        call_key("openai:https://x/v1", "m2", MESSAGES, CONFIG, 0),
        call_key("openai:https://x/v1", "m", [{"role": "user", "content": "hi!"}], CONFIG, 0),
        call_key("openai:https://x/v1", "m", [{"role": "system", "content": "hi"}], CONFIG, 0),
        call_key("openai:https://x/v1", "m", MESSAGES, CONFIG.merged(temperature=0.0), 0),
        call_key("openai:https://x/v1", "m", MESSAGES, CONFIG.merged(max_tokens=11), 0),
        call_key("openai:https://x/v1", "m", MESSAGES, CONFIG.merged(top_logprobs=5), 0),
        call_key("openai:https://x/v1", "m", MESSAGES, CONFIG, 1),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CallCache(path)
    cache.put("k", "m", Completion("text", 3, 1, "stop"))
    cache.close()
    again = CallCache(path, CacheMode.READ)
    assert again.get("k") == Completion("text", 3, 1, "stop")
    assert again.get("missing") is None


def _writer(path: str, worker: int, count: int) -> None:
    cache = CallCache(path)
    for i in range(count):
        # half the keys are shared by every worker, half are the worker's own
        key = f"shared-{i}" if i % 2 == 0 else f"own-{worker}-{i}"
        if cache.get(key) is None:
            cache.put(key, "m", Completion(f"{key}", 1, 1, "stop"))
    cache.close()


def test_several_processes_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    CallCache(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, 200)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    cache = CallCache(path, CacheMode.READ)
    assert len(cache) == 100 + 4 * 100
    assert all(
        cache.get(f"shared-{i}") == Completion(f"shared-{i}", 1, 1, "stop")
        for i in range(0, 200, 2)
    )


# What `moa.cache` wrote before each row had a checksum: a file of that schema must keep working.
SCHEMA_BEFORE_CHECKSUMS = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,  -- host:pid:token of the process making the call
    expires REAL NOT NULL  -- epoch seconds; the owner renews the lease while it lives
) WITHOUT ROWID
"""


def store_as_before(path: Path, rows: dict[str, Completion]) -> None:
    """Rows as the code before checksums stored them (its INSERT, its JSON)."""
    with contextlib.closing(sqlite3.connect(path)) as db:  # closed: the WAL goes in the file
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA_BEFORE_CHECKSUMS)
        db.executemany(
            "INSERT OR REPLACE INTO calls (key, model, completion, created) VALUES (?, ?, ?, ?)",
            [
                (key, "m", json.dumps(c.to_json(), ensure_ascii=False), 1.0)
                for key, c in rows.items()
            ],
        )
        db.commit()


def checksums(path: Path) -> dict[str, str | None]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT key, sha256 FROM calls").fetchall())


def test_a_cache_from_before_checksums_is_migrated_in_place_and_keeps_its_hits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite"
    keys = [call_key("openai:https://x/v1", "m", MESSAGES, CONFIG, n) for n in range(3)]
    old = {key: Completion(f"answer {n} — é", 3, 1, "stop") for n, key in enumerate(keys)}
    store_as_before(path, old)
    read_only = CallCache(path, CacheMode.READ)  # reads it as it is, writes nothing
    assert read_only.get(keys[0]) == old[keys[0]]
    read_only.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert "sha256" not in {row[1] for row in db.execute("PRAGMA table_info(calls)")}

    cache = CallCache(path)  # opened for writing: the column is added, no row rewritten
    assert checksums(path) == dict.fromkeys(keys)
    assert cache.get(keys[0]) == old[keys[0]] and cache.get(keys[1]) == old[keys[1]]
    cache.put("new", "m", Completion("new"))
    cache.close()
    sums = checksums(path)
    stored = json.dumps(old[keys[0]].to_json(), ensure_ascii=False).encode()
    assert sums[keys[0]] == hashlib.sha256(stored).hexdigest()  # trusted on first read
    assert sums[keys[1]] is not None and sums["new"] is not None
    assert sums[keys[2]] is None  # never read yet: still trusted as it is

    store_as_before(path, {"older-code": Completion("still writes here")})  # old code, new file
    again = CallCache(path, CacheMode.READ)
    assert all(again.get(key) == completion for key, completion in old.items())
    assert again.get("older-code") == Completion("still writes here") and again.corrupt == 0
    again.close()


def flip(path: Path, before: bytes, after: bytes) -> None:
    """Alters bytes inside a stored answer, leaving SQLite's pages intact."""
    data = path.read_bytes()
    assert data.count(before) == 1 and len(before) == len(after)
    path.write_bytes(data.replace(before, after))


@pytest.mark.parametrize("altered", [b"On 'ho'", b"On '\xff\xff'"], ids=["letter", "not-utf8"])
async def test_a_corrupt_answer_is_a_miss_and_its_call_is_made_again(
    tmp_path: Path, altered: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.sqlite"
    spec = {"provider": "scripted"}

    def client() -> ModelClient:
        return ModelClient({"scripted": spec}, Catalogue({}, ["scripted"]), CallCache(path))

    first = client()
    answer = (await first.generate("scripted/m", MESSAGES, CONFIG)).completion
    await first.aclose()
    assert answer is not None and answer.text.startswith("[m #0] On 'hi'")
    flip(path, b"[m #0] On 'hi'", b"[m #0] " + altered)

    second = client()
    with caplog.at_level(logging.WARNING, logger="moa.cache"):
        outcome = await second.generate("scripted/m", MESSAGES, CONFIG)
    assert not outcome.record.cached and outcome.completion == answer  # made again, not served
    assert outcome.record.tags["cache"] == "corrupt entry, called again"
    assert second.cache.corrupt == 1
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "moa.cache"]
    key = outcome.record.key
    assert f"call cache {path}: the stored answer of call {key} is corrupt" in warning
    await second.aclose()

    third = CallCache(path, CacheMode.READ)  # the bad row was replaced
    assert third.get(key) == answer and third.corrupt == 0
    third.close()


def test_a_row_from_before_checksums_that_does_not_parse_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store_as_before(path, {"k": Completion("fine")})
    flip(path, b'"text": "fine"', b'"text"; "fine"')
    cache = CallCache(path)
    assert cache.get("k") is None and cache.corrupt == 1
    cache.close()


def unreadable(path: Path, reason: str) -> str:
    return (
        f"{path} is not a readable moa-bench call cache ({reason}): move it aside and run "
        "again; its calls will be made again"
    )


def test_a_file_that_is_not_a_cache_is_refused_in_one_line(tmp_path: Path) -> None:
    real = tmp_path / "real.sqlite"
    cache = CallCache(real)
    for i in range(50):
        cache.put(f"k{i}", "m", Completion(f"answer {i} " + "word " * 100))
    cache.close()
    garbage = tmp_path / "random.sqlite"
    garbage.write_bytes(random.Random(0).randbytes(5000))
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(real.read_bytes()[:1000])
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE calls (id INTEGER, name TEXT)")
    cases = [
        (garbage, "file is not a database"),
        (truncated, "database disk image is malformed"),
        (other, "its calls table is not a call cache's"),
    ]
    for path, reason in cases:
        for mode in (CacheMode.READ_WRITE, CacheMode.READ):
            with pytest.raises(CacheUnreadable) as refused:
                CallCache(path, mode)
            assert str(refused.value) == unreadable(path, reason)
            assert isinstance(refused.value, ConfigError)  # the CLI: one line, exit 2


def test_the_cli_refuses_a_garbage_cache_before_any_call(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"\x00garbage" * 200)
    args = [
        MOA_BENCH,
        "prompt=hi",
        "provider_override=scripted",
        f"results_dir={tmp_path / 'runs'}",
        f"cache.path={cache}",
    ]
    done = run(args)
    assert done.returncode == 2
    assert done.stderr == f"moa-bench: error: {unreadable(cache, 'file is not a database')}\n"
