"""What sending a model's draws of one request as one request (`supports_n`) saves.

Runs the real `moa-bench` CLI against the loopback fake server (`tests.kit.fakeserver`, which
honours OpenAI's `n`) for `self_moa` and Table 3's `single_proposer` (n = 6) on the first
AlpacaEval instructions, once one draw per request and once with `supports_n=true`, each on a
fresh cache, and prints per run: the requests the server got, the prompt tokens it billed, the
answer tokens, and the wall time. Then it runs the one-by-one configuration again on the batched
run's cache, to show every draw is found there (0 requests).

Usage: `.venv/bin/python scripts/bench_batching.py [--limit 40]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from tests.kit.cli import command, environment, run
from tests.kit.fakeserver import FakeServer, ModelProfile, prompt_tokens, serve_in_thread

PRESETS = (("self_moa", ()), ("single_proposer", ("moa.n=6",)))


def measure(
    root: Path, url: str, server: FakeServer, *overrides: str
) -> tuple[int, int, int, float]:
    """Requests, billed prompt tokens, answer tokens and seconds of one run."""
    before = len(server.log)
    started = time.perf_counter()
    done = run(command(root, url, *overrides), environment(), timeout=1800)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"moa-bench failed: {done.stderr[-2000:]}")
    sent = server.log[before:]
    prompt = sum(prompt_tokens(e.messages) for e in sent)
    answers = sum(e.tokens * int(e.params.get("n") or 1) for e in sent)
    return len(sent), prompt, answers, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=40, help="AlpacaEval instructions")
    args = parser.parse_args()
    server = FakeServer(default=ModelProfile(ttft_s=0.05, per_token_s=0.0005))
    with serve_in_thread(server) as url, tempfile.TemporaryDirectory() as tmp:
        for preset, extra in PRESETS:
            base = (f"moa={preset}", f"benchmark.limit={args.limit}", *extra)
            rows = {}
            for batching in ("false", "true"):
                root = Path(tmp) / f"{preset}-{batching}"
                flag = f"++endpoints.together.supports_n={batching}"
                rows[batching] = measure(root, url, server, *base, flag)
            again = measure(Path(tmp) / f"{preset}-true", url, server, *base)
            print(f"{preset} ({args.limit} AlpacaEval instructions):")
            for batching, (requests, prompt, answers, seconds) in rows.items():
                how = "n per request" if batching == "true" else "one draw per request"
                print(
                    f"  {how:22s} {requests:6,} requests  {prompt:10,} prompt tokens billed  "
                    f"{answers:9,} answer tokens  {seconds:6.1f} s"
                )
            saved = 1 - rows["true"][1] / rows["false"][1]
            print(f"  prompt tokens saved: {saved:.0%}; one draw per request on the batched "
                  f"run's cache: {again[0]} requests")  # fmt: skip


if __name__ == "__main__":
    main()
