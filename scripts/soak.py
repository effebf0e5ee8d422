"""Soak: a full-size run and its judging, under a high fault rate, SIGKILLed at random moments,
its key revoked for a while and its cache's disk filled up, must end exactly as a clean run ends,
without repeating a finished call or leaving a torn file.

AlpacaEval's 805 instructions go through MoA 6 -> 6 -> 1 (10,465 calls) and the AlpacaEval judge
(805 calls) by the real `moa-bench task=run` command and the real OpenAI-compatible provider, to
a loopback fake server that faults a share of requests with every transient kind it knows (429
with and without Retry-After, 500, 503, dropped connections, hangs, malformed bodies, bodies cut
short, empty choices). The endpoints keep their default `max_attempts`; only the waits are short
(backoffs of 10-50 ms, 0.5 s per attempt: the server's hangs last 1 s), so that it ends in
minutes. Between the runs, each killed after a random number of requests, at a random moment of
start-up or while judging:
- the key is revoked: the server answers 401 to everything until the run it stopped has ended
  and a restart has been refused too, then accepts the key again;
- the cache's filesystem (a small tmpfs, mounted in a user namespace: `unshare -rm`) is filled
  up until the run stops on its own (exit 4), then freed.
Then the run is repeated until it ends well (degraded answers are redone on the next run). A
clean run against a fault-free server gives the outputs, verdicts and calls to compare with.

Usage: `.venv/bin/python scripts/soak.py [--fault-rate 0.3] [--kills 8] [--seed 6]`.
It prints its findings and exits non-zero if any check failed.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.kit
from eval.benchmarks.alpaca_eval import load_alpaca_eval
from eval.rundir import RunDir, read_lines
from moa.ledger import read_ledger
from moa.limits import EndpointLimits
from tests.kit.cli import (
    MOA_BENCH,
    SHARED_DATA,
    endpoint_overrides,
    environment,
    outputs,
    run_dir,
    torn_files,
)
from tests.kit.fakeserver import (
    FakeServer,
    FaultPlan,
    ModelProfile,
    RequestLog,
    in_flight,
    request_id,
    serve_in_thread,
)

PROFILE = ModelProfile(min_tokens=5, max_tokens=40)
TIMEOUT_S = 0.5  # per attempt; the server's hangs last 1 s
REVOKED = FaultPlan(rates={"401": 1.0})
DISK_SIZE = "64m"  # the tmpfs the soaked run's cache lives on (the whole cache takes ~6 MB)
FULL = "database or disk is full"  # SQLite's message
STOPPED = "together"  # the endpoint of the proposers and aggregator: the key revoked in generation
IN_NAMESPACE = "MOA_SOAK_IN_NAMESPACE"  # set when this script runs inside `unshare -rm`
VERDICT = ("instruction", "output_1", "generator_1", "output_2", "generator_2", "preference")


def soak_command(root: Path, url: str, cache: Path) -> list[str]:
    """A whole AlpacaEval run (generation, then judging), its files under `root`, both of the
    paper's endpoints (proposers and aggregator on `together`, the judge on `openai`) at `url`
    with their default max_attempts."""
    return [
        MOA_BENCH,
        f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}",
        f"cache.path={cache}",
        "benchmark=alpaca_eval",
        "moa=moa",
        "task=run",
        *endpoint_overrides(url, timeout_s=TIMEOUT_S),
    ]


def is_judge(entry: RequestLog) -> bool:
    """The AlpacaEval judge's requests are the ones that ask for logprobs."""
    return bool(entry.params.get("logprobs"))


class Disk:
    """A tmpfs of `DISK_SIZE` at `path`, when this process may mount one (in a user namespace);
    `fill` takes every byte left, `free` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.real = os.environ.get(IN_NAMESPACE) == "1"  # never mount outside of one
        if self.real:
            mount = ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "none", str(path)]
            self.real = subprocess.run(mount, capture_output=True, check=False).returncode == 0
        self.filler = path / "filler"

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for chunk in (1 << 20, 4096, 1):
                block = bytes(chunk)
                while True:
                    try:
                        if os.write(fd, block) < chunk:
                            break
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", str(self.path)], capture_output=True, check=False)


@dataclass
class Run:
    step: str
    exit: int | None = None  # None: SIGKILLed (or past --run-timeout)
    stdout: str = ""
    stderr: str = ""
    killed_at: float | None = None
    ended_at: float = 0.0


@dataclass
class Soak:
    root: Path
    args: argparse.Namespace
    server: FakeServer
    url: str
    disk: Disk
    rng: random.Random
    runs: list[Run] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # steps whose run ended before its moment
    torn: list[str] = field(default_factory=list)
    revoked: tuple[float, float] = (0.0, 0.0)  # when the key was revoked, and when it came back
    filled: list[float] = field(default_factory=list)  # when the disk was filled
    clock: float = field(default_factory=lambda: time.time() - time.monotonic())
    _seen: int = 0
    _judged: int = 0

    @property
    def cache(self) -> Path:
        return self.disk.path / "calls.sqlite"

    def judge_requests(self) -> int:
        log = self.server.log
        end = len(log)
        self._judged += sum(is_judge(e) for e in log[self._seen : end])
        self._seen = end
        return self._judged

    def start(self, step: str) -> tuple[subprocess.Popen[bytes], Run]:
        n = len(self.runs)
        run = Run(step)
        self.runs.append(run)
        env = environment(TMPDIR=str(self.root / "tmp"))
        with (self.root / f"{n}.out").open("wb") as out, (self.root / f"{n}.err").open("wb") as err:
            proc = subprocess.Popen(
                soak_command(self.root, self.url, self.cache), env=env, stdout=out, stderr=err
            )
        return proc, run

    def wait_until(self, proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
        """Whether `ready` came true while the run was still running."""
        deadline = time.monotonic() + self.args.run_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.005)
        return False

    def end(self, proc: subprocess.Popen[bytes], run: Run, *, kill: bool = False) -> Run:
        """Kills the run now (`kill`), or waits for it to end (killed past --run-timeout)."""
        if kill and proc.poll() is None:
            run.killed_at = time.monotonic()
            proc.send_signal(signal.SIGKILL)
        elif kill:
            self.missed.append(run.step)
        try:
            proc.wait(timeout=self.args.run_timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        run.exit = None if run.killed_at is not None or proc.returncode < 0 else proc.returncode
        run.ended_at = time.monotonic()
        n = self.runs.index(run)
        run.stdout = (self.root / f"{n}.out").read_text(encoding="utf-8", errors="replace")
        run.stderr = (self.root / f"{n}.err").read_text(encoding="utf-8", errors="replace")
        self.torn += torn_files(run_dir(self.root), self.cache)
        return run

    def later(self, low: int, high: int) -> Callable[[], bool]:
        """True once the server has had `low` to `high` (at random) more requests."""
        target = len(self.server.log) + self.rng.randint(low, high)
        return lambda: len(self.server.log) >= target

    def step(self, step: str) -> None:
        proc, run = self.start(step)
        if step == "start-up":  # data loading, preflight or the first calls
            time.sleep(self.rng.uniform(0.2, 3.0))
            self.end(proc, run, kill=True)
        elif step == "requests":
            self.wait_until(proc, self.later(200, 1500))
            self.end(proc, run, kill=True)
        elif step == "judging":
            target = self.judge_requests() + self.rng.randint(20, 400)
            self.wait_until(proc, lambda: self.judge_requests() >= target)
            self.end(proc, run, kill=True)
        elif step == "revoked key":
            if not self.wait_until(proc, self.later(300, 1500)):
                self.missed.append(step)
            revoked = time.monotonic()
            self.server.switch(REVOKED)
            self.end(proc, run)
            self.end(*self.start(step))  # a restart while the key is still refused
            self.server.switch(FaultPlan.transient(self.args.fault_rate, self.args.seed + 1))
            self.revoked = (revoked, time.monotonic())
        elif step == "full disk":
            if not self.wait_until(proc, self.later(300, 1500)):
                self.missed.append(step)
            self.filled.append(time.monotonic())
            self.disk.fill()
            try:
                self.end(proc, run)
            finally:
                self.disk.free()
        else:
            self.end(proc, run)

    def degraded(self) -> int:
        return sum(r.degraded for r in RunDir(run_dir(self.root)).finished().values())


def schedule(kills: int) -> list[str]:
    """The kills (at start-up every third, the last while judging), with the revoked key after
    the first quarter of them and the full disk after half."""
    steps = ["start-up" if k % 3 == 2 else "requests" for k in range(kills)]
    if steps:
        steps[-1] = "judging"
    steps.insert(max(kills // 4, 1), "revoked key")
    steps.insert(kills // 2 + 1, "full disk")
    return steps


def clean_run(root: Path) -> tuple[FakeServer, float]:
    server = FakeServer(default=PROFILE)
    root.mkdir(parents=True)
    started = time.monotonic()
    with serve_in_thread(server) as url:
        subprocess.run(
            soak_command(root, url, root / "calls.sqlite"),
            env=environment(),
            check=True,
            capture_output=True,
            timeout=900,
        )
    return server, time.monotonic() - started


def soak(root: Path, args: argparse.Namespace) -> tuple[Soak, float]:
    server = FakeServer(default=PROFILE, faults=FaultPlan.transient(args.fault_rate, args.seed))
    (root / "tmp").mkdir(parents=True)
    disk = Disk(root / "disk")
    started = time.monotonic()
    try:
        with serve_in_thread(server) as url:
            state = Soak(root, args, server, url, disk, random.Random(args.seed))
            for step in schedule(args.kills):
                if step == "full disk" and not disk.real:
                    continue
                state.step(step)
            for _ in range(args.final_runs):
                state.step("to the end")
                if state.runs[-1].exit == 0 and not state.degraded():
                    break
    finally:
        disk.close()
    return state, time.monotonic() - started


def verdicts(root: Path) -> list[list[Any]]:
    rows = json.loads((run_dir(root) / "annotations.json").read_text(encoding="utf-8"))
    return [[row.get(k) for k in VERDICT] for row in rows]


def ledgers(root: Path) -> list[dict[str, Any]]:
    directory = run_dir(root)
    return [
        *read_ledger(directory / "calls.jsonl"),
        *read_ledger(directory / "judge_calls.jsonl"),
    ]


def final_calls(root: Path) -> dict[str, list[tuple[str, int, str | None]]]:
    """Per instance, the calls behind its outputs, layer by layer: model, sample and answer
    (the fake server's answer names a digest of its request). Not cache keys: those name the
    endpoint's URL, another port for the clean run."""
    finished = RunDir(run_dir(root)).finished()
    return {i: [(c.model, c.sample, c.text) for c in r.trace.calls()] for i, r in finished.items()}


def troubled_instructions(root: Path) -> list[str]:
    """The instructions of every instance that, in any run, lost a proposal (so that what came
    after it was asked with fewer references, or judged on another answer)."""
    ids = set()
    for _, row in read_lines(run_dir(root) / "traces.jsonl"):
        turns = row.get("trace", {}).get("turns", [])
        if any(c.get("error") for turn in turns for layer in turn["layers"] for c in layer):
            ids.add(str(row["id"]))
    return [i.turns[0] for i in load_alpaca_eval(data_dir=SHARED_DATA) if i.id in ids]


def about(entry: RequestLog, instructions: Iterable[str]) -> bool:
    texts = [m.get("content", "") for m in entry.messages]
    return any(i in t for i in instructions for t in texts)


def cache_events(root: Path, clock: float) -> tuple[float | None, int]:
    """From the run directory's cli.log: when the cache's first commit failed (on this
    process's monotonic clock, `clock` being time.time() - time.monotonic()), and how many
    journaled answers the next run stored."""
    failed, stored = None, 0
    for line in (run_dir(root) / "cli.log").read_text(encoding="utf-8").splitlines():
        stamp = line[1:24]
        if "a commit failed" in line and failed is None:
            at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            failed = at - clock
        elif match := re.search(r": (\d+) answers? kept in \S+ (are|is) stored now", line):
            stored += int(match.group(1))
    return failed, stored


def first_sent(log: Iterable[RequestLog], start: float, end: float) -> int:
    """The calls (distinct requests) first sent between `start` and `end`."""
    first: dict[str, float] = {}
    for entry in log:
        first.setdefault(request_id(entry), entry.started)
    return sum(start < t < end for t in first.values())


def error_kind(record: dict[str, Any], attempts: int) -> str:
    error = str(record["error"])
    if record.get("unsent") or "refused the key" in error or "401" in error:
        return "key refused"
    if record.get("error_kind") == "transient" and record["attempts"] >= attempts:
        return "attempts used up"
    return "other"


def say(text: str, indent: str = "  ") -> None:
    """A finding, wrapped at 100 columns (never inside a word or at a hyphen)."""
    print(
        textwrap.fill(
            text,
            100,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    )


def report(expected: FakeServer, clean_s: float, got: Soak, soak_s: float) -> bool:
    args, root, log = got.args, got.root, got.server.log
    clean_root = root.parent / "clean"
    attempts = EndpointLimits.max_attempts
    kills = [r for r in got.runs if r.killed_at is not None]
    judging_kills = sum(r.step == "judging" for r in kills)
    revoked_runs = [r for r in got.runs if r.step == "revoked key"]
    full_runs = [r for r in got.runs if r.step == "full disk"]
    last = got.runs[-1]

    faults = Counter(r.fault for r in log if r.fault is not None and r.fault != "401")
    refusals = sum(r.fault == "401" for r in log)
    clean_ids = {request_id(r) for r in expected.log}
    sent = {request_id(r): r for r in log}
    missing = clean_ids - set(sent)
    troubled = troubled_instructions(root)
    extra = [sent[i] for i in set(sent) - clean_ids]
    unexplained = [e for e in extra if not about(e, troubled)]
    answered = Counter(request_id(r) for r in log if r.status == 200 and r.fault is None)
    repeated = sum(n - 1 for n in answered.values())
    cut_off = sum(in_flight(log, r.killed_at) for r in kills if r.killed_at is not None)
    records = ledgers(root)
    paid = Counter(r["key"] for r in records if not r["cached"] and r["error"] is None)
    paid_again = sum(n - 1 for n in paid.values())
    retries = sum(r["attempts"] - 1 for r in records if not r["cached"] and r["attempts"])
    errors = Counter(error_kind(r, attempts) for r in records if r["error"] is not None)
    back = got.revoked[1]
    refused_after = sum(r.fault == "401" and r.started > back for r in log)
    journals = [*(root / "tmp").glob("*.pending.jsonl"), *got.disk.path.glob("*.pending.jsonl")]
    full_line = full_runs[0].stderr if full_runs else ""
    stopped = f"moa-bench: the call cache at {got.cache} could not be written ({FULL}), so the "

    finished = RunDir(run_dir(root)).finished()
    ended_well = last.exit == 0 and len(finished) == len(outputs(clean_root))
    landed = len(kills) == args.kills and judging_kills >= 1 and not got.missed
    key_stops = all(r.exit == 1 and f"endpoint {STOPPED} refused the key" in r.stdout
                    for r in revoked_runs)  # fmt: skip
    key_back = len(revoked_runs) == 2 and key_stops and refusals > 0 and refused_after == 0
    full_stop = len(full_runs) == 1 and full_runs[0].exit == 4 and full_line.count("\n") == 1
    checks = {
        "the last run exited 0; no instance failed or degraded": ended_well and not got.degraded(),
        f"all {args.kills} kills landed mid-run ({judging_kills} while judging)": landed,
        "revoked key: the run and its restart stopped (exit 1, endpoint named); then carried on": (
            key_back
        ),
        "full disk: the run stopped in one line (exit 4); the next stored its journal": (
            got.disk.real and full_stop and full_line.startswith(stopped) and not journals
        ),
        "outputs identical to the clean run": outputs(root) == outputs(clean_root),
        "judge verdicts identical to the clean run": verdicts(root) == verdicts(clean_root),
        "the calls behind the outputs are the clean run's": (
            final_calls(root) == final_calls(clean_root)
        ),
        "the same distinct calls as the clean run (others only around a dropped proposal)": (
            not missing and not unexplained
        ),
        "no call answered twice unless in flight at a kill": repeated <= cut_off,
        "the ledger pays twice only what was answered twice": paid_again <= repeated,
        f"every call error is the revoked key's or used up its {attempts} attempts": (
            errors["other"] == 0
        ),
        "no torn file after any run": not got.torn,
        "no half-written temporary file left": not list(run_dir(root).rglob(".*.tmp")),
    }

    kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(faults.items()))
    faulted = faults.total()
    steps = Counter(r.step for r in got.runs)
    say(
        f"soak: {len(outputs(clean_root))} AlpacaEval instances x MoA 6->6->1, then judged "
        f"({len(clean_ids):,} distinct calls), by `moa-bench task=run` through the openai "
        f"provider; {args.fault_rate:.0%} transient faults; default max_attempts ({attempts}), "
        f"backoffs 10-50 ms, {TIMEOUT_S:g} s per attempt",
        "",
    )
    say(
        f"runs: {len(got.runs)}: {len(kills)} SIGKILLed ({steps['start-up']} at start-up, "
        f"{judging_kills} while judging), {len(revoked_runs)} on a revoked key, "
        f"{len(full_runs)} on a full disk, {steps['to the end']} to the end"
    )
    say(
        f"requests: {len(log):,}; faulted {faulted:,} ({faulted / len(log):.1%}: {kinds}); "
        f"401s while revoked {refusals}; retries in the ledger: {retries:,}"
    )
    codes = ", ".join(str(r.exit) for r in revoked_runs + full_runs)
    kept = full_line.partition("so the run stopped making calls: ")[2].partition(";")[0]
    kept = kept.replace(f"{root / 'tmp'}/", "$TMPDIR/")
    say(f"exit codes on the revoked key and the full disk: {codes}; the exit 4 line: {kept}")
    failed_at, stored = cache_events(root, got.clock)
    if failed_at is not None and full_runs:
        late = first_sent(log, failed_at, full_runs[0].ended_at)
        say(
            f"full disk: the next run stored {stored:,} journaled answers; calls first sent "
            f"after the failed commit: {late:,}"
        )
    say(
        f"distinct calls: {len(set(sent) & clean_ids):,} of the clean run's {len(clean_ids):,}"
        f", {len(extra)} other{'' if len(extra) == 1 else 's'} "
        f"({len(extra) - len(unexplained)} around a dropped proposal); "
        f"answered twice: {repeated} (in flight at the kills: {cut_off}); paid twice: {paid_again}"
    )
    shown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(errors.items())) or "none"
    say(
        f"call errors in the ledgers: {errors.total():,} ({shown}); "
        f"time: clean run {clean_s:.0f} s, soak {soak_s:.0f} s"
    )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if last.exit != 0:
        print(last.stderr.strip())
    if not got.disk.real:
        say("(no tmpfs could be mounted: the full disk needs unprivileged user namespaces)")
    passed = all(checks.values())
    print(f"result: {'PASS' if passed else 'FAIL'}")
    return passed


def in_namespace() -> None:
    """Runs this script again in its own user and mount namespace, where it may mount the tmpfs
    it fills up; where that is not allowed, it goes on here (and says so)."""
    if os.environ.get(IN_NAMESPACE) or shutil.which("unshare") is None:
        return
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode == 0:
        script = str(Path(__file__).resolve())
        argv = ["unshare", "-rm", sys.executable, script, *sys.argv[1:]]
        sys.stdout.flush()
        os.execvpe("unshare", argv, {**os.environ, IN_NAMESPACE: "1"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of requests faulted")
    parser.add_argument("--kills", type=int, default=8, help="SIGKILLs before the final run")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--final-runs", type=int, default=4, help="at most, to end well")
    parser.add_argument("--run-timeout", type=float, default=600, help="seconds, per run")
    parser.add_argument("--keep", action="store_true", help="keep the runs' files, and say where")
    args = parser.parse_args()
    in_namespace()
    tmp = Path(tempfile.mkdtemp(prefix="moa-soak-"))
    try:
        expected, clean_s = clean_run(tmp / "clean")
        got, soak_s = soak(tmp / "soak", args)
        passed = report(expected, clean_s, got, soak_s)
    finally:
        if args.keep:
            print(f"the runs' files (the soaked run's cache was on the tmpfs, now gone): {tmp}")
        else:
            shutil.rmtree(tmp)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
