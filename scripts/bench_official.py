"""The official MoA (github.com/togethercomputer/MoA) answering one query on the loopback server,
beside the `prompt` run: its `advanced-moa.py` (three layers, like `moa=moa`; the only one-query
path that takes its base URL from the environment, TOGETHER_BASE_URL, through the `together` SDK).
Its model names are Together's, so every model it calls gets the server's default profile: the
prompt run's slowest model's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench_kit import Profile, layers_by_time, run_measured, server_log, start_server

SCRIPT = "advanced-moa.py"


def official_peer(args: argparse.Namespace, slowest: Profile, work: Path) -> dict[str, Any]:
    """Its wall time, start-up and efficiency against its own chain (a layer's slowest call)."""
    name = f"official MoA ({SCRIPT})"
    script = Path(args.official) / SCRIPT
    if not script.exists():
        return {"name": name, "error": f"no {script}"}
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_server({}, {}, args, default=slowest)
    try:
        python = args.official_python or sys.executable
        # the `together` SDK (3.x) takes the host root: its paths begin with /v1
        env = {"TOGETHER_BASE_URL": url.removesuffix("/v1"), "TOGETHER_API_KEY": "sk-bench-0000"}
        measured = run_measured([str(python), str(script)], work, may_fail=True, env=env)
        log = server_log(url)
    finally:
        server.terminate()
        server.wait()
    if measured.exit_code != 0 or not log:
        last = measured.stdout.strip().splitlines()[-1:] or ["no output"]
        return {"name": name, "error": f"exit code {measured.exit_code}: {last[0][:200]}"}
    chain = sum(max(slowest.duration(r["tokens"]) for r in layer) for layer in layers_by_time(log))
    return {
        "name": name,
        "wall_s": measured.wall_s,
        "to_first_request_s": min(r["started"] for r in log) - measured.launched,
        "requests": len(log),
        "cpu_s": measured.cpu_s,
        "efficiency": chain / measured.wall_s,
    }
