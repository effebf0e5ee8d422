"""Throughput benchmark: the real `moa-bench` CLI against a loopback server with a latency model.

The fake server (`tests.kit.fakeserver`) runs as its own process, so its CPU is not the
harness's. Each model gets a time to first token, a time per output token and a concurrency
limit, and the catalogue tells the client the same per-model limits, as one would for a real
provider. Each run is one `moa-bench` subprocess with a fresh cache, measured with `os.wait4`
(CPU and peak RSS of exactly that process). The bound is what no scheduler could beat under
the latency model:

  max( max over models of (sum of its call durations / its concurrency),
       max over instances of (sum over turns and layers of the layer's slowest call) )

Efficiency is bound / wall time of the whole command, start-up included; it is also shown over
the span from the first request to the last answer. A benchmark is first run on one instance:
that CPU is the command's fixed cost, and the rest, per further call, is the harness's CPU per
call. Every run also shows its start-up: from the process's launch to the server's first request.

The `rate_limit` run is a provider whose real limit is lower than configured: the server takes
`--true-limit` requests per model at once and answers 429 to any more, at once, while the config
says 32. It runs `--rate-limit-instances` AlpacaEval instances, must end with no failed instance,
and its bound is computed at the true limit. It is compared with the same run configured at the
true limit (what a user who knew it would get): that is the learning's cost.

The `judge` run is `task=judge` of 805 AlpacaEval outputs (`scripts/bench_judge.py`), with
`alpaca_eval evaluate` judging the same ones beside it; `plan` and `demo` time whole commands
(`scripts/bench_tasks.py`); `--official DIR` runs the official MoA beside the `prompt` run
(`scripts/bench_official.py`); the `openai` SDK alone, no harness, gives the floor under the
start-up and CPU-per-call targets (`scripts/bench_sdk.py`). With `--before DIR`, every run is
made first with the CLI of the checkout in DIR, then with this one's, and each figure prints as
a `before -> after` pair. Each checkout's own packages are compiled to bytecode first, as a
user's first run leaves them (`bench_kit.compile_tree`).

The targets checked at the end (`scripts/bench_report.py`) are the ones of the throughput,
endpoint-trust and fixed-cost issues (start-up to the first request, CPU per call, a slow start
under an unknown limit, judging, the plan and the demo), each printed with its figure.

Usage: `.venv/bin/python scripts/bench_throughput.py` (`--help` for the latency model knobs).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_judge import JUDGE, judge_run
from bench_kit import (
    DEFAULT_MODELS,
    PROMPT,
    ROOT,
    SHARED_DATA,
    Measured,
    Profile,
    chain_bound,
    cli_argv,
    compile_tree,
    layers_by_time,
    ledger_of,
    models_by_id,
    read_jsonl,
    run_measured,
    server_log,
    start_server,
    timed_row,
    write_conf,
)
from bench_official import official_peer
from bench_report import FLOORED, sdk_line, show, verdicts
from bench_sdk import sdk_floor
from bench_tasks import task_run

# Each run's latencies are scaled so that it takes most of a minute: long enough that the
# CLI's fixed start-up is a small part of it, short enough to rerun at will.
DEFAULT_SCALES = {
    "alpaca_eval": 0.8, "mt_bench": 4.0, "prompt": 4.0, "rate_limit": 1.5, "judge": 5.0,
}  # fmt: skip
RUNS = ("alpaca_eval", "mt_bench", "prompt", "rate_limit", "judge", "plan")
OPTIONAL_RUNS = ("demo",)  # minutes of the embedded model: only when `--runs` names it


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--runs",
        default=",".join(RUNS),
        help=f"comma-separated subset of {RUNS + OPTIONAL_RUNS} (default: all but {OPTIONAL_RUNS})",
    )
    p.add_argument("--data-dir", default=str(SHARED_DATA))
    p.add_argument("--moa", default="moa", help="the moa= preset (default: 6 -> 6 -> 1)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=TTFT,PER_TOKEN,CONCURRENCY",
        help="override one catalogue model's latency model (repeatable)",
    )
    p.add_argument("--min-tokens", type=int, default=20, help="shortest answer, in tokens")
    p.add_argument("--max-tokens", type=int, default=200, help="longest answer, in tokens")
    p.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="RUN=FACTOR",
        help=f"multiplies one run's latencies (defaults: {DEFAULT_SCALES})",
    )
    p.add_argument("--concurrency", type=int, help="instances in flight (default: the config's)")
    p.add_argument(
        "--true-limit",
        type=int,
        default=16,
        help="rate_limit run: requests per model the server takes at once (429 above)",
    )
    p.add_argument("--rate-limit-instances", type=int, default=64, help="rate_limit run: instances")
    p.add_argument("--override", action="append", default=[], help="extra Hydra override")
    p.add_argument("--keep", type=Path, help="keep the run directories here")
    p.add_argument(
        "--pythonpath",
        type=Path,
        help="run the CLI from another checkout of the project instead of this one",
    )
    p.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="make every run first with the CLI of this checkout (e.g. `git worktree add DIR "
        "<commit>`), then with this one's, and show each figure as a before -> after pair",
    )
    p.add_argument(
        "--peer-threads",
        type=int,
        default=32,
        help="judge run: the threads of `alpaca_eval evaluate` judging the same outputs",
    )
    p.add_argument(
        "--official",
        type=Path,
        metavar="DIR",
        help="prompt run: also a checkout of the official MoA (togethercomputer/MoA) on one query",
    )
    p.add_argument(
        "--official-python",
        type=Path,
        help="the Python that runs the official MoA (with its `together` SDK; default: this one)",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p.parse_args(argv)


def profiles_from(args: argparse.Namespace) -> dict[str, Profile]:
    table = dict(DEFAULT_MODELS)
    for spec in args.model:
        name, _, values = spec.partition("=")
        ttft, per_token, concurrency = values.split(",")
        table[name] = (float(ttft), float(per_token), int(concurrency))
    return {n: Profile(t, p, c) for n, (t, p, c) in table.items()}


def scaled(profiles: dict[str, Profile], factor: float) -> dict[str, Profile]:
    return {
        n: Profile(p.ttft_s * factor, p.per_token_s * factor, p.max_concurrency)
        for n, p in profiles.items()
    }


def bench_run(
    name: str,
    args: argparse.Namespace,
    profiles: dict[str, Profile],
    work: Path,
    pythonpath: Path,
) -> dict[str, Any]:
    """One run on a fresh server and cache. A benchmark first runs one instance alone: its CPU
    is the CLI's fixed cost (start-up, loading, writing), and what the full run adds per call
    is the harness's marginal CPU per call."""
    by_id = models_by_id(profiles)
    limited = name == "rate_limit"
    # the rate_limit run's bound is at the server's true limit, not the configured one
    truth = {
        n: Profile(p.ttft_s, p.per_token_s, args.true_limit) if limited else p
        for n, p in profiles.items()
    }
    by_id_profile = {model_id: truth[n] for model_id, n in by_id.items()}
    conf_dir = work / "conf"
    write_conf(conf_dir, profiles)
    server, url = start_server(profiles, by_id, args, args.true_limit if limited else None)
    bench = "alpaca_eval" if limited else name
    try:
        if name == "prompt":
            target = [f"prompt={PROMPT!r}"]
        elif limited:
            target = ["benchmark=alpaca_eval", f"benchmark.limit={args.rate_limit_instances}"]
        else:
            target = [f"benchmark={name}"]
        one: Measured | None = None
        if name not in ("prompt", "rate_limit"):
            one_argv = cli_argv(url, conf_dir, work / "one", profiles, args)
            one = run_measured([*one_argv, *target, "benchmark.limit=1"], ROOT, pythonpath)
        skip = len(server_log(url))
        argv = [*cli_argv(url, conf_dir, work, profiles, args), *target]
        measured = run_measured(argv, ROOT, pythonpath, may_fail=limited)
        log = server_log(url)[skip:]
    finally:
        server.terminate()
        server.wait()
    if name == "prompt":
        chain = sum(
            max(by_id_profile[r["model"]].duration(r["tokens"]) for r in layer)
            for layer in layers_by_time(log)
        )
        match = re.search(r"(\d+) calls \((\d+) cached\)", measured.stdout)
        calls, cached = (int(match[1]), int(match[2])) if match else (len(log), 0)
    else:
        ledger = ledger_of(work, bench)
        chain = chain_bound(ledger, by_id_profile)
        calls, cached = len(ledger), sum(r["cached"] for r in ledger)
    row = timed_row(name, measured, log, by_id_profile, chain, calls, cached)
    if limited:
        instances = read_jsonl(next(work.glob(f"{bench}/*/traces.jsonl")))
        row["true_limit"] = args.true_limit
        row["configured_limit"] = max(p.max_concurrency for p in profiles.values())
        row["instances"] = len(instances)
        row["failed_instances"] = sum(1 for r in instances if r["error"] or not r["outputs"])
        row["failed_calls"] = sum(1 for r in ledger if r["error"])
        row["refusals"] = sum(1 for r in log if r["status"] == 429)
        row["exit_code"] = measured.exit_code
        # the same run by a user who knew the limit: configured at it, nothing refused
        known = work / "known"
        write_conf(known / "conf", truth)
        server, url = start_server(truth, by_id, args)
        try:
            argv = [*cli_argv(url, known / "conf", known, truth, args), *target]
            reference = run_measured(argv, ROOT, pythonpath)
        finally:
            server.terminate()
            server.wait()
        row["known_limit_wall_s"] = reference.wall_s
        row["known_limit_efficiency"] = row["bound_s"] / reference.wall_s
    if one is not None:
        one_calls = len(ledger_of(work / "one", name))
        row["fixed_cpu_s"] = one.cpu_s
        row["marginal_cpu_ms_per_call"] = (
            1000 * (measured.cpu_s - one.cpu_s) / max(calls - one_calls, 1)
        )
    return row


def run_once(
    name: str,
    args: argparse.Namespace,
    profiles: dict[str, Profile],
    work: Path,
    pythonpath: Path,
    peers: bool,
) -> dict[str, Any]:
    """One run with the CLI of the checkout at `pythonpath`; with `peers`, the other programs
    doing the same work on the same server (the after only: they do not change with our code)."""
    work.mkdir(parents=True, exist_ok=True)
    if name == "judge":
        return judge_run(args, {JUDGE: profiles[JUDGE]}, work, pythonpath, peer=peers)
    if name in ("plan", "demo"):
        return task_run(name, args, work, pythonpath)
    generation = {n: p for n, p in profiles.items() if n != JUDGE}
    row = bench_run(name, args, generation, work, pythonpath)
    if name == "prompt" and peers and args.official:
        slowest = max(generation.values(), key=lambda p: p.duration(args.max_tokens))
        row["peer"] = official_peer(args, slowest, work / "official")
    return row


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.runs.split(",")
    if unknown := set(names) - {*RUNS, *OPTIONAL_RUNS}:
        sys.exit(f"unknown runs {sorted(unknown)}; known: {RUNS + OPTIONAL_RUNS}")
    profiles = profiles_from(args)
    scales = dict(DEFAULT_SCALES)
    for spec in args.scale:
        run, _, factor = spec.partition("=")
        scales[run] = float(factor)
    after_tree = args.pythonpath or ROOT
    for tree in (args.before, after_tree):  # both measured as after a first run
        if tree is not None:
            compile_tree(tree)
    rows: dict[str, dict[str, Any]] = {}
    before: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as tmp:
        base = args.keep or Path(tmp)
        for name in names:
            run_profiles = scaled(profiles, scales.get(name, 1.0))
            if args.before:
                work = base / name / "before"
                before[name] = run_once(name, args, run_profiles, work, args.before, peers=False)
            work = base / name / "after" if args.before else base / name
            rows[name] = run_once(name, args, run_profiles, work, after_tree, peers=True)
            print(show(rows[name], before.get(name)), flush=True)
    floor = None
    if FLOORED & set(names):
        floor = sdk_floor(args)
        print(sdk_line(floor), flush=True)
    passed = True
    for verdict in verdicts(rows, before if args.before else None, floor):
        print(verdict.line())
        passed &= verdict.ok
    if args.json:
        figures = {"after": rows, "before": before or None, "sdk": floor}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
