"""The `judge` run: `task=judge` of AlpacaEval's 805 outputs (gpt-4o's published ones, replayed
into a run directory first, free and offline) by the paper's judge on the loopback server, and
`alpaca_eval evaluate` judging the same outputs against the same server beside it.

The judge answers one token, so its bound is its total service time over its concurrency; the
efficiency is over the whole command (start-up, reading the evaluator files, rendering the
prompts and writing the annotations included)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench_kit import (
    ROOT,
    Profile,
    catalogue_models,
    cli_argv,
    read_jsonl,
    run_measured,
    server_log,
    start_server,
    timed_row,
    work_bound,
    write_conf,
)

JUDGE = "gpt-4-turbo"  # judge=paper's AlpacaEval judge (weighted_alpaca_eval_gpt4_turbo)
REPLAYED = "gpt-4o-2024-05-13"  # a published model's outputs: the 805 answers to judge
BASELINE = "alpaca_eval_gpt4_baseline.json"  # the reference outputs, in data_dir/alpaca_eval
PEER = Path(sys.executable).parent / "alpaca_eval"  # installed with the alpaca-eval package


def judge_run(
    args: argparse.Namespace,
    profiles: dict[str, Profile],
    work: Path,
    pythonpath: Path | None,
    peer: bool,
) -> dict[str, Any]:
    """`profiles` holds the judge's alone. With `peer`, `alpaca_eval evaluate` then judges the
    run's `model_outputs.json` on the same server (a fresh annotation cache of its own)."""
    by_id = {str(catalogue_models()[JUDGE]["address"]).split("/", 1)[1]: JUDGE}
    by_id_profile = {model_id: profiles[JUDGE] for model_id in by_id}
    conf_dir = work / "conf"
    write_conf(conf_dir, profiles)
    replay = [
        "benchmark=alpaca_eval",
        f"moa.aggregator=replay/{REPLAYED}",
        f"endpoints.replay.outputs_dir={Path(args.data_dir) / 'alpaca_eval' / 'model_outputs'}",
    ]
    server, url = start_server(profiles, by_id, args)
    try:
        generate = cli_argv(url, conf_dir, work, profiles, args, moa="single")
        run_measured([*generate, *replay], ROOT, pythonpath)
        judge = cli_argv(url, conf_dir, work, profiles, args, moa="single", task="judge")
        measured = run_measured([*judge, *replay, "judge=paper"], ROOT, pythonpath)
        log = server_log(url)
        if peer:
            outputs = next(work.glob("alpaca_eval/*/model_outputs.json"))
            peer_row = evaluate_peer(args, url, outputs, work / "peer", by_id_profile)
    finally:
        server.terminate()
        server.wait()
    ledger = read_jsonl(next(work.glob("alpaca_eval/*/judge_calls.jsonl")))
    chain = max(by_id_profile[r["model"]].duration(r["tokens"]) for r in log)
    cached = sum(r["cached"] for r in ledger)
    row = timed_row("judge", measured, log, by_id_profile, chain, len(ledger), cached)
    if peer:
        row["peer"] = peer_row
    return row


def evaluate_peer(
    args: argparse.Namespace,
    url: str,
    outputs: Path,
    work: Path,
    by_id_profile: dict[str, Profile],
) -> dict[str, Any]:
    """alpaca-eval 0.6.6's own command, its default annotator (the same judge and template) at
    `--peer-threads` threads, its OpenAI client pointed at the server by OPENAI_API_BASE. Its
    annotation cache and leaderboard go to `work`; the plain win rate, as the length-controlled
    one downloads files."""
    name = f"alpaca_eval evaluate ({args.peer_threads} threads)"
    if not PEER.exists():
        return {"name": name, "error": f"no {PEER} (the alpaca-eval package is not installed)"}
    work.mkdir(parents=True, exist_ok=True)
    skip = len(server_log(url))
    argv = [
        str(PEER),
        "evaluate",
        f"--model_outputs={outputs}",
        f"--reference_outputs={Path(args.data_dir) / 'alpaca_eval' / BASELINE}",
        "--annotators_config=weighted_alpaca_eval_gpt4_turbo",
        f"--output_path={work / 'out'}",
        "--precomputed_leaderboard=None",
        f"--caching_path={work / 'annotations_cache.json'}",
        "--fn_metric=get_winrate",
        "--sort_by=win_rate",
    ]
    env = {
        "OPENAI_API_BASE": url,
        "OPENAI_API_KEY": "sk-bench-0000",
        "OPENAI_MAX_CONCURRENCY": str(args.peer_threads),
        "HF_HUB_OFFLINE": "1",
    }
    measured = run_measured(argv, work, may_fail=True, env=env)
    log = server_log(url)[skip:]
    if measured.exit_code != 0 or not log:
        last = measured.stdout.strip().splitlines()[-1:] or ["no output"]
        return {"name": name, "error": f"exit code {measured.exit_code}: {last[0][:200]}"}
    bound = work_bound(log, by_id_profile)
    return {
        "name": name,
        "wall_s": measured.wall_s,
        "to_first_request_s": min(r["started"] for r in log) - measured.launched,
        "requests": len(log),
        "cpu_s": measured.cpu_s,
        "efficiency": bound / measured.wall_s,
    }
