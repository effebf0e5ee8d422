"""What the harness sends and writes, as a comparable snapshot: for a refactoring that must not
change behaviour.

Runs the real `moa-bench task=run` on small subsets of every benchmark and several kinds of
mixture, every model (judges included) answered by the loopback fake server, each run on a cache
of its own so that every request is sent. The snapshot holds, per run, every request the server
received (model, messages and parameters, as sent) and every file the run directory holds but
its logs and traces, with the fields that carry times removed; the traces contribute each
call's cache key. Two snapshots are compared with `--compare A B`: any difference is printed
and the exit code is 1.

Usage: `.venv/bin/python scripts/snapshot_behaviour.py --out before.json`, change the code,
`... --out after.json`, then `... --compare before.json after.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.kit.cli import MOA_BENCH, SHARED_DATA, environment, point_endpoints, run  # noqa: E402
from tests.kit.fakeserver import FakeServer, ModelProfile, serve_in_thread  # noqa: E402

# (name, overrides): every benchmark, and the kinds of layers and finals the presets make.
RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("alpaca_moa", ("benchmark=alpaca_eval", "moa=moa", "benchmark.limit=3")),
    ("alpaca_moa_lite", ("benchmark=alpaca_eval", "moa=moa_lite", "benchmark.limit=4")),
    ("alpaca_ranker", ("benchmark=alpaca_eval", "moa=llm_ranker", "benchmark.limit=3")),
    ("alpaca_rank_fuse", ("benchmark=alpaca_eval", "moa=rank_fuse", "benchmark.limit=3")),
    ("alpaca_self_moa_seq", ("benchmark=alpaca_eval", "moa=self_moa_seq", "benchmark.limit=2")),
    ("alpaca_published", ("benchmark=alpaca_eval", "moa=published_proposers",
                          "benchmark.limit=3")),
    ("mt_bench_moa_lite", ("benchmark=mt_bench", "moa=moa_lite", "benchmark.limit=4")),
    ("mt_bench_math", ("benchmark=mt_bench", "moa=single", "benchmark.categories=[math]",
                       "benchmark.limit=2")),
    ("flask_moa_lite", ("benchmark=flask", "moa=moa_lite", "benchmark.limit=4")),
    ("flask_hard_single", ("benchmark=flask_hard", "moa=single", "benchmark.limit=3")),
    ("demo", ("benchmark=demo", "moa=demo", "provider_override=together")),
)  # fmt: skip
# Fields whose values are times of the run, not what it sent or decided.
VOLATILE = {"tstamp", "date", "time_per_example", "latency_s", "finished_at", "seconds",
            "created", "started", "ended", "preference_date",
            "preference_time_per_example"}  # fmt: skip
# Cache keys hold the endpoint's URL: two snapshots compare their keys on one port.
PORT = 18765
# Files that are logs of the run rather than its outputs (the traces give their keys only).
SKIPPED = {"cli.log", ".lock", "calls.jsonl", "judge_calls.jsonl", "config.yaml"}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _records(path: Path) -> Iterator[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        yield from (json.loads(line) for line in text.splitlines() if line.strip())
    else:
        yield json.loads(text)


def _keys(trace: Any) -> list[str]:
    """Every cache key a trace line holds, wherever its calls sit."""
    if isinstance(trace, dict):
        own = [trace["key"]] if isinstance(trace.get("key"), str) and trace["key"] else []
        return own + [k for v in trace.values() for k in _keys(v)]
    if isinstance(trace, list):
        return [k for v in trace for k in _keys(v)]
    return []


def snapshot_run(run_dir: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = str(path.relative_to(run_dir))
        if path.name in SKIPPED or path.name.startswith("."):
            continue
        if path.name == "traces.jsonl":
            files["cache keys"] = sorted(k for row in _records(path) for k in _keys(row))
        elif path.suffix in (".json", ".jsonl"):
            files[rel] = _digest([_clean(r) for r in _records(path)])
        else:
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def take(out: Path) -> int:
    server = FakeServer(default=ModelProfile(min_tokens=5, max_tokens=40))
    snapshot: dict[str, Any] = {}
    with serve_in_thread(server, PORT) as url, tempfile.TemporaryDirectory() as tmp:
        for name, overrides in RUNS:
            root = Path(tmp) / name
            before = len(server.log)
            done = run(
                [
                    MOA_BENCH, f"data_dir={SHARED_DATA}", f"results_dir={root / 'runs'}",
                    f"cache.path={root / 'calls.sqlite'}", *point_endpoints(url), *overrides,
                ],
                environment(),
                timeout=600,
            )  # fmt: skip
            requests = [
                _digest({"model": r.model, "messages": r.messages, "params": r.params})
                for r in server.log[before:]
            ]
            run_dirs = [p.parent for p in (root / "runs").rglob("run.json")]
            snapshot[name] = {
                "exit": done.returncode,
                "requests": sorted(requests),
                "runs": {str(d.relative_to(root / "runs")): snapshot_run(d) for d in run_dirs},
            }
            print(f"{name}: exit {done.returncode}, {len(requests)} requests, "
                  f"{len(run_dirs)} run(s)")  # fmt: skip
            if done.returncode not in (0, 1):
                print(done.stderr[-2000:])
    out.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    return 0


def compare(a: Path, b: Path) -> int:
    before, after = json.loads(a.read_text()), json.loads(b.read_text())
    differences = 0
    for name in sorted(before.keys() | after.keys()):
        x, y = before.get(name), after.get(name)
        if x is None or y is None:
            print(f"{name}: only in {'after' if x is None else 'before'}")
            differences += 1
            continue
        if x["exit"] != y["exit"]:
            print(f"{name}: exit {x['exit']} -> {y['exit']}")
            differences += 1
        lost, new = set(x["requests"]) - set(y["requests"]), set(y["requests"]) - set(x["requests"])
        if lost or new or len(x["requests"]) != len(y["requests"]):
            print(f"{name}: requests {len(x['requests'])} -> {len(y['requests'])} "
                  f"({len(lost)} no longer sent, {len(new)} new)")  # fmt: skip
            differences += 1
        for run_dir in sorted(x["runs"].keys() | y["runs"].keys()):
            fx, fy = x["runs"].get(run_dir, {}), y["runs"].get(run_dir, {})
            for file in sorted(fx.keys() | fy.keys()):
                if fx.get(file) != fy.get(file):
                    print(f"{name}: {run_dir}/{file} differs")
                    differences += 1
        keys = sum(len(r.get("cache keys", [])) for r in x["runs"].values())
        files = sum(len(r) for r in x["runs"].values())
        print(f"{name}: {len(x['requests'])} requests, {keys} cache keys, {files} files compared")
    print("identical" if not differences else f"{differences} difference(s)")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path)
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare)
    if args.out is None:
        parser.error("--out or --compare")
    return take(args.out)


if __name__ == "__main__":
    raise SystemExit(main())
