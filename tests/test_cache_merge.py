"""Caches of a sweep's jobs on several hosts: a cache on a network filesystem is refused before
any call, each job keeps its own on local disk and leaves a copy (`cache.copy_to`), and
`task=cache_merge` makes them one cache on which the same sweep is all cache hits."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from eval.cli import dispatch
from eval.errors import nested_too_deeply
from moa.cache import CacheOnNetworkFilesystem, CallCache
from moa.cache_merge import copy_cache, merge_caches
from moa.errors import ConfigError
from moa.ledger import read_ledger
from moa.mounts import filesystem_type, network_filesystem
from moa.types import Completion
from tests.kit.cli import MOA_BENCH, ROOT, environment, scripted_config


def mountinfo(*mounts: tuple[str, str]) -> str:
    """A /proc/self/mountinfo text with these (mount point, type) lines under a local root."""
    lines = ["22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw"]
    for n, (point, kind) in enumerate(mounts):
        escaped = point.replace(" ", "\\040")
        lines.append(f"{30 + n} 22 0:{50 + n} / {escaped} rw shared:{n + 2} - {kind} srv:/x rw")
    return "\n".join(lines) + "\n"


def test_the_filesystem_is_that_of_the_longest_mount_point() -> None:
    table = mountinfo(("/shared", "nfs4"), ("/shared/local scratch", "xfs"), ("/lus", "lustre"))
    assert filesystem_type(Path("/shared/runs/calls.sqlite"), table) == "nfs4"
    assert network_filesystem(Path("/shared/local scratch/c.sqlite"), table) is None
    assert network_filesystem(Path("/sharedx/c.sqlite"), table) is None  # not under /shared
    assert network_filesystem(Path("/lus"), table) == "lustre"
    assert network_filesystem(Path("/tmp/c.sqlite"), table) is None


def test_a_cache_on_a_network_filesystem_is_refused_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "mountinfo"
    fake.write_text(mountinfo((str(tmp_path / "nfs"), "nfs")))
    monkeypatch.setattr("moa.mounts.MOUNTINFO", fake)
    with pytest.raises(CacheOnNetworkFilesystem, match=r"network filesystem \(nfs\)") as caught:
        CallCache(tmp_path / "nfs" / "cache" / "calls.sqlite")
    message = str(caught.value)
    assert "\n" not in message and "cache.path=/tmp/" in message and "task=cache_merge" in message
    assert not (tmp_path / "nfs").exists()  # nothing made there
    cfg = scripted_config(tmp_path, f"cache.path={tmp_path / 'nfs' / 'c.sqlite'}", "prompt=hi")
    with pytest.raises(ConfigError, match="network filesystem"):
        asyncio.run(dispatch(cfg))
    assert not list(tmp_path.glob("runs/**/calls.jsonl"))  # refused before any call


def test_merging_keeps_the_targets_answer_and_leaves_corrupt_rows_out(tmp_path: Path) -> None:
    a, b, target = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "t.sqlite"
    for path, answers in ((a, {"k1": "one", "k2": "two"}), (b, {"k2": "deux", "k3": "three"})):
        cache = CallCache(path)
        for key, text in answers.items():
            cache.put(key, "m", Completion(text, 1, 1))
        cache.close()
    with sqlite3.connect(b) as db:  # a bit flipped in k3's stored answer
        db.execute("UPDATE calls SET completion = replace(completion, 'three', 'thr3e')")
    first, second = merge_caches(target, [a, b])
    assert (first.added, first.present, first.differing, first.corrupt) == (2, 0, 0, 0)
    assert (second.added, second.present, second.differing, second.corrupt) == (0, 0, 1, 1)
    again = merge_caches(target, [a])[0]
    assert (again.added, again.present) == (0, 2)
    cache = CallCache(target)
    assert [getattr(cache.get(k), "text", None) for k in ("k1", "k2", "k3")] == ["one", "two", None]
    cache.close()
    with pytest.raises(ConfigError, match="is the target cache itself"):
        merge_caches(target, [target])
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"junk\.sqlite is not a readable"):
        merge_caches(target, [tmp_path / "junk.sqlite"])


def test_copies_on_a_network_filesystem_are_merged_without_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = CallCache(tmp_path / "node" / "calls.sqlite")
    job.put("k1", "m", Completion("one", 1, 1))
    copy = tmp_path / "nfs" / "run" / "calls.sqlite"
    copy_cache(job.path, copy)  # while the job's cache is still open
    job.close()
    fake = tmp_path / "mountinfo"
    fake.write_text(mountinfo((str(tmp_path / "nfs"), "nfs4")))
    monkeypatch.setattr("moa.mounts.MOUNTINFO", fake)
    assert merge_caches(tmp_path / "local" / "calls.sqlite", [copy])[0].added == 1
    assert not copy.with_name(copy.name + "-shm").exists()  # read immutable: no WAL files
    copy.with_name(copy.name + "-wal").write_bytes(b"x")
    with pytest.raises(ConfigError, match="write-ahead log beside it on a network filesystem"):
        merge_caches(tmp_path / "local" / "calls.sqlite", [copy])


def sweep(tmp_path: Path, results: str, *overrides: str) -> list[dict[str, object]]:
    """MoA and MoA-Lite (they share layer 1) as two joblib jobs on the scripted fake."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    done = subprocess.run(
        [
            MOA_BENCH, "-m", "hydra/launcher=parallel", "moa=moa,moa_lite",
            "provider_override=scripted", "benchmark=alpaca_eval", "benchmark.limit=4",
            "judge=none", "task=generate", f"data_dir={ROOT.parent / 'shared' / 'data'}",
            f"results_dir={tmp_path / results}", *overrides,
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return [row for p in sorted((tmp_path / results).glob("*/*/calls.jsonl"))
            for row in read_ledger(p)]  # fmt: skip


def test_two_jobs_caches_merged_then_the_sweep_is_all_cache_hits(
    tmp_path: Path, shared_data: Path
) -> None:
    local = tmp_path / "node-local"  # each job's own cache; the copy goes to its run directory
    first = sweep(tmp_path, "runs", f"cache.path={local}/" + "${moa.name}.sqlite",
                  "cache.copy_to=${run_dir}/calls.sqlite")  # fmt: skip
    assert first and not any(row["cached"] for row in first)
    merged = tmp_path / "merged.sqlite"
    done = subprocess.run(
        [MOA_BENCH, "task=cache_merge", f"cache.path={merged}",
         f"cache_merge.sources=[{tmp_path}/runs/*/*/calls.sqlite]"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=environment(COLUMNS="1000"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    keys = {row["key"] for row in first}
    assert len(first) > len(keys)  # the jobs made their shared calls each (deterministic here)
    lines = done.stdout.splitlines()
    assert f"{merged}: {len(keys)} answers added from 2 cache(s); checksums verified" in lines
    assert sum("0 differing" in line and "0 corrupt" in line for line in lines) == 2
    again = sweep(tmp_path, "again", f"cache.path={merged}")
    assert len(again) == len(first) and all(row["cached"] for row in again)


def _foreign(path: Path, rows: list[tuple[object, ...]]) -> None:
    """A calls table as another tool might have left it: no checksums, no NOT NULL."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE calls (key TEXT, model TEXT, completion TEXT, created REAL)")
        db.executemany("INSERT INTO calls VALUES (?, ?, ?, ?)", rows)
    db.close()


def test_rows_with_nulls_in_a_foreign_cache_are_left_out_as_corrupt(tmp_path: Path) -> None:
    good = Completion("fine", 1, 1).to_json()
    source, target = tmp_path / "foreign.sqlite", tmp_path / "t.sqlite"
    _foreign(
        source,
        [
            ("k1", "m", None, 0.0),  # the audit's: a NULL completion
            (None, "m", '{"text": "no key"}', 0.0),
            ("k3", None, '{"text": "no model"}', 0.0),
            ("k4", "m", json.dumps(good), 0.0),
        ],
    )
    (merged,) = merge_caches(target, [source])
    assert (merged.added, merged.present, merged.differing, merged.corrupt) == (1, 0, 0, 3)
    cache = CallCache(target)
    assert len(cache) == 1 and cache.get("k4") == Completion("fine", 1, 1)
    cache.close()


def test_a_source_that_breaks_in_mid_merge_is_one_line_and_stores_nothing(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "torn.sqlite", tmp_path / "t.sqlite"
    answer = json.dumps(Completion("x" * 200, 1, 1).to_json())
    _foreign(source, [(f"k{i}", "m", answer, 0.0) for i in range(3000)])
    data = bytearray(source.read_bytes())
    data[40960 : 40960 + 4096] = b"\xff" * 4096  # a page in the middle of the table
    source.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as caught:
        merge_caches(target, [source])
    assert str(caught.value) == (
        f"cache_merge: {source} could not be merged (database disk image is malformed); "
        "nothing of it was stored"
    )
    cache = CallCache(target)
    assert len(cache) == 0
    cache.close()


def test_a_config_nested_too_deeply_to_read_is_one_line(tmp_path: Path) -> None:
    """Python's recursion limit stops the config readers (PyYAML, Hydra's override grammar,
    OmegaConf) somewhere between 100 and 1,000 levels deep; the audit's were 5,000 deep."""
    deep = "[" * 5000 + "]" * 5000
    (tmp_path / "deep.yaml").write_text(f"cache_merge:\n  sources: {deep}\n", encoding="utf-8")
    shallower = "[" * 150 + "]" * 150  # read by PyYAML, too deep for OmegaConf's nodes
    (tmp_path / "less.yaml").write_text(f"cache_merge:\n  sources: {shallower}\n")
    merge = ["task=cache_merge", f"cache.path={tmp_path / 'c.sqlite'}"]
    cases = {
        "an override": [*merge, f"cache_merge.sources={deep}"],
        "a config file": ["-cd", str(tmp_path), "-cn", "deep", *merge],
        "a config file or override": ["-cd", str(tmp_path), "-cn", "less", *merge],
    }
    for what, args in cases.items():
        done = subprocess.run(
            [MOA_BENCH, *args], env=environment(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr == (
            f"moa-bench: error: {what} nests its values too deeply to be read (Python's "
            "recursion limit): flatten it\n"
        )
    assert not (tmp_path / "c.sqlite").exists()


def test_a_recursion_of_our_own_is_not_taken_for_deep_input() -> None:
    def down(n: int) -> int:
        return down(n + 1)

    with pytest.raises(RecursionError) as caught:
        down(0)
    assert nested_too_deeply(caught.value) is None
