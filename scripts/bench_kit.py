"""What every run of `scripts/bench_throughput.py` shares: the latency model, the loopback server,
the `moa-bench` command pointed at it, a measured subprocess and the bounds no scheduler beats."""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from tests.kit.cli import MOA_BENCH as MOA_BENCH  # re-exported for the bench's modules
from tests.kit.cli import ROOT as ROOT
from tests.kit.cli import SHARED_DATA as SHARED_DATA
from tests.kit.cli import point_endpoints
from tests.kit.cli import read_jsonl as read_jsonl

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
    "gpt-4-turbo": (0.30, 0.0020, 32),  # the AlpacaEval judge: the `judge` run's only model
}
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


def compile_tree(tree: Path) -> None:
    """Writes the bytecode of a checkout's own packages, as a user's first run would: a run here
    then imports them as it would on its second run anywhere, not compiled from source every
    time (this sandbox sets PYTHONDONTWRITEBYTECODE, and an editable install compiles nothing,
    unlike pip for an installed package)."""
    for package in ("moa", "eval"):
        compileall.compile_dir(tree / package, quiet=1)


def catalogue_models() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((ROOT / "conf" / "catalogue" / "paper.yaml").read_text())
    return {str(k): dict(v) for k, v in data.items()}


def models_by_id(profiles: Mapping[str, Profile]) -> dict[str, str]:
    """The catalogue's names of the profiled models, by the model id the server is asked for."""
    models = catalogue_models()
    return {str(models[n]["address"]).split("/", 1)[1]: n for n in profiles if n in models}


def start_server(
    profiles: dict[str, Profile],
    by_id: dict[str, str],
    args: argparse.Namespace,
    reject_above: int | None = None,
    default: Profile | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """The fake server keyed by model id, its limits the catalogue's: requests past one wait
    their turn; or, with `reject_above`, it takes that many per model and refuses more (429).
    A model it does not know gets `default` (another program's model names)."""
    limit = {"reject_above": reject_above} if reject_above else None

    def served(profile: Profile) -> dict[str, Any]:
        return {
            "ttft_s": profile.ttft_s,
            "per_token_s": profile.per_token_s,
            **(limit or {"max_concurrency": profile.max_concurrency}),
            "min_tokens": args.min_tokens,
            "max_tokens": args.max_tokens,
        }

    conf: dict[str, Any] = {
        "profiles": {model_id: served(profiles[name]) for model_id, name in by_id.items()}
    }
    if default is not None:
        conf["default"] = served(default)
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
    url: str,
    conf_dir: Path,
    work: Path,
    profiles: dict[str, Profile],
    args: argparse.Namespace,
    moa: str | None = None,
    task: str = "generate",
) -> list[str]:
    """`moa-bench` with the paper's catalogue pointed at the fake server, results in `work`;
    `args.moa` unless `moa` is given; no judge unless the task is `judge`."""
    total = sum(p.max_concurrency for p in profiles.values())
    argv = [
        MOA_BENCH,
        f"hydra.searchpath=[file://{conf_dir}]",
        "catalogue=bench",
        f"results_dir={work}",
        f"cache.path={work}/calls.sqlite",
        f"data_dir={args.data_dir}",
        f"moa={moa or args.moa}",
        *(["judge=none"] if task != "judge" else []),
        f"task={task}",
        # the paper's two providers, both the fake server, capped at the models' total: the
        # per-model caps bind
        *point_endpoints(url, api_key_env="null", max_concurrency=total),
    ]
    if args.concurrency:
        argv.append(f"concurrency={args.concurrency}")
    return argv + [str(o) for o in args.override]


def run_measured(
    argv: list[str],
    cwd: Path,
    pythonpath: Path | None = None,
    may_fail: bool = False,
    env: Mapping[str, str] | None = None,
) -> Measured:
    """One subprocess; `wait4` gives its own CPU and peak RSS, not the server's. It must exit 0
    unless `may_fail` (a run whose failures are counted, or a peer that may not run here)."""
    env = {**os.environ, **(env or {}), **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
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
        command = " ".join(argv)
        sys.exit(f"{Path(argv[0]).name} failed ({proc.returncode}): {command}\n{text[-3000:]}")
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


def timed_row(
    name: str,
    measured: Measured,
    log: list[dict[str, Any]],
    by_id_profile: dict[str, Profile],
    chain: float,
    calls: int,
    cached: int,
) -> dict[str, Any]:
    """A run's figures against the server's log: its phases, its bound (the busiest model's
    work or the chain, whichever is longer) and the efficiencies, calls, CPU and memory."""
    first = min(r["started"] for r in log)
    last = max(r["ended"] for r in log)
    work_s = work_bound(log, by_id_profile)
    bound = max(work_s, chain)
    return {
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
        "cpu_ms_per_call": 1000 * measured.cpu_s / max(calls, 1),
        "peak_rss_mb": measured.peak_rss_mb,
    }
