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

The targets checked at the end are the ones of the throughput, endpoint-trust and fixed-cost
issues (start-up to the first request, CPU per call, a slow start under an unknown limit).

Usage: `.venv/bin/python scripts/bench_throughput.py` (`--help` for the latency model knobs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from tests.kit.cli import MOA_BENCH, ROOT, SHARED_DATA, point_endpoints, read_jsonl

# Per catalogue model: time to first token (s), time per output token (s), concurrency.
# qwen1.5-110b, which MoA calls three times per turn (proposer twice, aggregator), is the
# bottleneck, as a provider's largest model would be.
DEFAULT_MODELS = {
    "qwen1.5-110b": (0.30, 0.0040, 32),
    "qwen1.5-72b": (0.25, 0.0030, 32),
    "wizardlm-2-8x22b": (0.25, 0.0030, 32),
    "llama-3-70b": (0.20, 0.0025, 32),
    "mixtral-8x22b": (0.20, 0.0030, 32),
    "dbrx": (0.20, 0.0025, 32),
    "gpt-4o": (0.30, 0.0020, 32),
}
# Each run's latencies are scaled so that it takes most of a minute: long enough that the
# CLI's fixed start-up is a small part of it, short enough to rerun at will.
DEFAULT_SCALES = {"alpaca_eval": 0.8, "mt_bench": 4.0, "prompt": 4.0, "rate_limit": 1.5}
RUNS = ("alpaca_eval", "mt_bench", "prompt", "rate_limit")
PROMPT = "Explain in three sentences why the sky is blue."


@dataclass(frozen=True)
class Profile:
    ttft_s: float
    per_token_s: float
    max_concurrency: int

    def duration(self, tokens: int) -> float:
        return self.ttft_s + tokens * self.per_token_s


@dataclass
class Measured:
    launched: float
    ended: float
    cpu_s: float
    peak_rss_mb: float
    stdout: str
    exit_code: int = 0

    @property
    def wall_s(self) -> float:
        return self.ended - self.launched


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {RUNS}")
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
        help="run the CLI from another checkout of the project (a before/after comparison)",
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


def catalogue_models() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "conf" / "catalogue" / "paper.yaml").read_text())
    return {str(k): dict(v) for k, v in data.items()}


def start_server(
    profiles: dict[str, Profile],
    by_id: dict[str, str],
    args: argparse.Namespace,
    reject_above: int | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """The fake server keyed by model id, its limits the catalogue's: requests past one wait
    their turn; or, with `reject_above`, it takes that many per model and refuses more (429)."""
    limit = {"reject_above": reject_above} if reject_above else None
    conf = {
        "profiles": {
            model_id: {
                "ttft_s": profiles[name].ttft_s,
                "per_token_s": profiles[name].per_token_s,
                **(limit or {"max_concurrency": profiles[name].max_concurrency}),
                "min_tokens": args.min_tokens,
                "max_tokens": args.max_tokens,
            }
            for model_id, name in by_id.items()
        }
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kit.fakeserver", "--config", json.dumps(conf)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def write_conf(conf_dir: Path, profiles: dict[str, Profile]) -> None:
    """A `catalogue=bench` option: the paper's catalogue plus each model's concurrency."""
    models = catalogue_models()
    for name, entry in models.items():
        if name in profiles:
            entry["max_concurrency"] = profiles[name].max_concurrency
    (conf_dir / "catalogue").mkdir(parents=True, exist_ok=True)
    (conf_dir / "catalogue" / "bench.yaml").write_text(yaml.safe_dump(models))


def cli_argv(
    url: str, conf_dir: Path, work: Path, profiles: dict[str, Profile], args: argparse.Namespace
) -> list[str]:
    """`moa-bench` with the paper's catalogue pointed at the fake server, results in `work`."""
    total = sum(p.max_concurrency for p in profiles.values())
    argv = [
        MOA_BENCH,
        f"hydra.searchpath=[file://{conf_dir}]",
        "catalogue=bench",
        f"results_dir={work}",
        f"cache.path={work}/calls.sqlite",
        f"data_dir={args.data_dir}",
        f"moa={args.moa}",
        "judge=none",
        "task=generate",
        # the paper's two providers, both the fake server, capped at the models' total: the
        # per-model caps bind
        *point_endpoints(url, api_key_env="null", max_concurrency=total),
    ]
    if args.concurrency:
        argv.append(f"concurrency={args.concurrency}")
    return argv + [str(o) for o in args.override]


def run_measured(
    argv: list[str], cwd: Path, pythonpath: Path | None = None, may_fail: bool = False
) -> Measured:
    """One subprocess; `wait4` gives its own CPU and peak RSS, not the server's. It must exit 0
    unless `may_fail` (a run whose failures are counted)."""
    env = dict(os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {}))
    with tempfile.TemporaryFile("w+") as out:
        launched = time.monotonic()  # the server logs this clock too (CLOCK_MONOTONIC)
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, text=True
        )
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.monotonic()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0 and not may_fail:
        sys.exit(f"moa-bench failed ({proc.returncode}): {' '.join(argv)}\n{text[-3000:]}")
    return Measured(
        launched=launched,
        ended=ended,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        stdout=text,
        exit_code=proc.returncode,
    )


def server_log(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_log") as response:
        rows: list[dict[str, Any]] = json.load(response)
    return rows


def work_bound(log: Iterable[dict[str, Any]], by_id_profile: dict[str, Profile]) -> float:
    """The busiest model's total service time over its concurrency."""
    busy: dict[str, float] = defaultdict(float)
    for row in log:
        if row["status"] == 200:  # a refusal takes no service time
            busy[row["model"]] += by_id_profile[row["model"]].duration(row["tokens"])
    return max(
        (t / by_id_profile[m].max_concurrency for m, t in busy.items()),
        default=0.0,
    )


def chain_bound(ledger: Iterable[dict[str, Any]], by_id_profile: dict[str, Profile]) -> float:
    """The longest instance: per turn and layer its slowest call (a cache hit takes no time)."""
    steps: dict[str, dict[tuple[int, int], float]] = defaultdict(dict)
    for row in ledger:
        if row["cached"] or row["error"]:
            continue
        tags = row["tags"]
        layer = int(tags["layer"]) if tags["role"] == "proposer" else 1_000  # the aggregator
        step = (int(tags.get("turn", 1)), layer)
        model_id = row["model"].split("/", 1)[1]
        duration = by_id_profile[model_id].duration(row["output_tokens"])
        per = steps[tags["instance"]]
        per[step] = max(per.get(step, 0.0), duration)
    return max((sum(per.values()) for per in steps.values()), default=0.0)


def layers_by_time(log: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """One query's calls split into layers: a layer starts once the previous one has ended."""
    layers: list[list[dict[str, Any]]] = []
    for row in sorted(log, key=lambda r: r["started"]):
        if not layers or row["started"] >= max(r["ended"] for r in layers[-1]):
            layers.append([])
        layers[-1].append(row)
    return layers


def ledger_of(work: Path, name: str) -> list[dict[str, Any]]:
    return read_jsonl(next(work.glob(f"{name}/*/calls.jsonl")))  # results_dir/bench/variant


def bench_run(
    name: str, args: argparse.Namespace, profiles: dict[str, Profile], work: Path
) -> dict[str, Any]:
    """One run on a fresh server and cache. A benchmark first runs one instance alone: its CPU
    is the CLI's fixed cost (start-up, loading, writing), and what the full run adds per call
    is the harness's marginal CPU per call."""
    models = catalogue_models()
    by_id = {str(models[n]["address"]).split("/", 1)[1]: n for n in profiles if n in models}
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
            one = run_measured([*one_argv, *target, "benchmark.limit=1"], ROOT, args.pythonpath)
        skip = len(server_log(url))
        argv = [*cli_argv(url, conf_dir, work, profiles, args), *target]
        measured = run_measured(argv, ROOT, args.pythonpath, may_fail=limited)
        log = server_log(url)[skip:]
    finally:
        server.terminate()
        server.wait()
    first = min(r["started"] for r in log)
    last = max(r["ended"] for r in log)
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
    work_s = work_bound(log, by_id_profile)
    bound = max(work_s, chain)
    row: dict[str, Any] = {
        "run": name,
        "wall_s": measured.wall_s,
        "to_first_request_s": first - measured.launched,
        "span_s": last - first,
        "after_last_answer_s": measured.ended - last,
        "bound_s": bound,
        "work_bound_s": work_s,
        "chain_bound_s": chain,
        "efficiency": bound / measured.wall_s,
        "span_efficiency": bound / (last - first),
        "requests": len(log),
        "calls": calls,
        "cache_hits": cached,
        "cpu_s": measured.cpu_s,
        "cpu_ms_per_call": 1000 * measured.cpu_s / calls,
        "peak_rss_mb": measured.peak_rss_mb,
    }
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
            reference = run_measured(argv, ROOT, args.pythonpath)
        finally:
            server.terminate()
            server.wait()
        row["known_limit_wall_s"] = reference.wall_s
        row["known_limit_efficiency"] = bound / reference.wall_s
    if one is not None:
        one_calls = len(ledger_of(work / "one", name))
        row["fixed_cpu_s"] = one.cpu_s
        row["marginal_cpu_ms_per_call"] = (
            1000 * (measured.cpu_s - one.cpu_s) / max(calls - one_calls, 1)
        )
    return row


def show(row: dict[str, Any]) -> None:
    lines = [
        f"{row['run']}: wall {row['wall_s']:.2f}s = {row['to_first_request_s']:.2f}s to the "
        f"first request + {row['span_s']:.2f}s of requests + {row['after_last_answer_s']:.2f}s "
        "after the last answer",
        f"  bound {row['bound_s']:.2f}s (work {row['work_bound_s']:.2f}s, chain "
        f"{row['chain_bound_s']:.2f}s): efficiency {row['efficiency']:.3f} "
        f"({row['span_efficiency']:.3f} over the requests' span)",
        f"  {row['calls']} calls, {row['cache_hits']} cache hits, {row['requests']} requests; "
        f"peak RSS {row['peak_rss_mb']:.0f} MB; CPU {row['cpu_s']:.2f}s "
        f"= {row['cpu_ms_per_call']:.3f} ms/call",
    ]
    if "true_limit" in row:
        lines.append(
            f"  server takes {row['true_limit']} per model (429 above), config says "
            f"{row['configured_limit']}: {row['failed_instances']} of {row['instances']} "
            f"instances failed, {row['failed_calls']} calls failed, {row['refusals']} requests "
            f"refused (429); exit code {row['exit_code']}",
        )
        lines.append(
            f"  the same run configured at the true limit: wall {row['known_limit_wall_s']:.2f}s, "
            f"efficiency {row['known_limit_efficiency']:.3f} (learned/known wall "
            f"{row['wall_s'] / row['known_limit_wall_s']:.3f})"
        )
    if "marginal_cpu_ms_per_call" in row:
        lines[-1] += (
            f", of which {row['fixed_cpu_s']:.2f}s fixed (one instance alone): "
            f"{row['marginal_cpu_ms_per_call']:.3f} ms per further call"
        )
    print("\n".join(lines), flush=True)


def verdicts(rows: dict[str, dict[str, Any]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for name in ("alpaca_eval", "mt_bench"):
        if name in rows:
            row = rows[name]
            out.append((f"{name}: efficiency >= 0.9", row["efficiency"] >= 0.9))
            cpu = row["marginal_cpu_ms_per_call"]
            out.append((f"{name}: <= 1.2 ms harness CPU per call (marginal)", cpu <= 1.2))
    if "alpaca_eval" in rows:
        row = rows["alpaca_eval"]
        out.append(("alpaca_eval: peak RSS < 500 MB", row["peak_rss_mb"] < 500))
        start = row["to_first_request_s"]
        out.append(("alpaca_eval: start-up to the first request <= 1.5 s", start <= 1.5))
    if "prompt" in rows:
        row = rows["prompt"]
        out.append(
            ("prompt: query (first request to answer) <= 1.1 x chain",
             row["span_s"] <= 1.1 * row["chain_bound_s"])
        )  # fmt: skip
        out.append(("prompt: start-up to the first request <= 1 s", row["to_first_request_s"] <= 1))
    if "rate_limit" in rows:
        row = rows["rate_limit"]
        out.append(("rate_limit: no failed instance", row["failed_instances"] == 0))
        # a slow start per model: an unknown limit is found without a full-width burst of 429s
        span = row["span_efficiency"]
        out.append(("rate_limit: >= 0.9 of the bound over the requests' span", span >= 0.9))
        ratio = row["wall_s"] / row["known_limit_wall_s"]
        out.append(("rate_limit: wall <= 1.1 x the run configured at the true limit", ratio <= 1.1))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    profiles = profiles_from(args)
    scales = dict(DEFAULT_SCALES)
    for spec in args.scale:
        run, _, factor = spec.partition("=")
        scales[run] = float(factor)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="moa-bench-") as tmp:
        base = args.keep or Path(tmp)
        for name in args.runs.split(","):
            work = base / name
            work.mkdir(parents=True, exist_ok=True)
            rows[name] = bench_run(name, args, scaled(profiles, scales.get(name, 1.0)), work)
            show(rows[name])
    passed = True
    for label, ok in verdicts(rows):
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
        passed &= ok
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
