"""The README's scale-out recipe on a real one-node SLURM cluster (`tests/kit/slurm.py`): a Hydra
multirun as SLURM jobs through submitit, each job with its own cache and a copy of it in its run
directory, the copies merged, then the report; and what a cluster does to jobs: one cancelled
(scancel), a node that restarts, one preempted or at its time limit (submitit's SIGUSR2 requeue).

The jobs call the loopback OpenAI-compatible server in this process, which counts every request.
The node has this machine's CPUs and each job asks for 2 (`conf/hydra/launcher/slurm.yaml`): on a
2-core machine the jobs of a sweep run one after another.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kit.cli import (
    MOA_BENCH,
    ROOT,
    SHARED_DATA,
    endpoint_overrides,
    environment,
    outputs,
    read_jsonl,
    run,
)
from tests.kit.fakeserver import CLIENT_LAG_S, FakeServer, ModelProfile, RequestLog, serve_in_thread
from tests.kit.slurm import NODE, Cluster, missing, slurm_cluster, wait_until

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data"),
]

VARIANTS = ("moa", "moa_lite", "moa_gpt4o")
LIMIT = 3  # AlpacaEval instances per job
QUICK = ModelProfile(min_tokens=5, max_tokens=30)
# 1 s a call, one instance at a time: a job calls for some seconds (MoA: 9), so a failure lands
# mid-run and a cancelled job does not finish in the 2 s Slurm gives it before SIGKILL.
SLOW = ModelProfile(ttft_s=1.0, min_tokens=5, max_tokens=30)
# The README's recipe (Scale-out): the launcher, and each job's cache on its node's disk with a
# copy in its run directory.
LAUNCHER = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=cpu"]
OWN_CACHES = [
    "cache.path=${oc.env:TMPDIR,/tmp}/moa-bench/${moa.name}.sqlite",
    "cache.copy_to=${run_dir}/calls.sqlite",
]
GENERATE_ONLY = ["task=generate", "judge=none", "concurrency=1"]
# slurmctld counts a batch job as lost when its node registers without it and it is older than
# BatchStartTimeout (2 s here) + 10 s.
NODE_LOST_S = 13
JOB_LINE = re.compile(rf"SLURM job (\d+(?:_\d+)?) on {NODE}(?:, restart (\d+))?$")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster runs its daemons as root (CI's test run is root)")
    if absent := missing():
        pytest.skip(f"{', '.join(absent)} missing: `make slurm` installs them")
    with slurm_cluster() as running:
        yield running


def sweep(
    root: Path, url: str, variants: tuple[str, ...], *overrides: str, slurm: bool = True
) -> list[str]:
    """The recipe's multirun (as SLURM jobs, or one after another in this process) on an
    AlpacaEval subset, generated and judged, its files under `root`, the paper's endpoints
    pointed at the loopback server."""
    return [
        MOA_BENCH, *(LAUNCHER if slurm else ["-m"]), f"moa={','.join(variants)}", *overrides,
        "benchmark=alpaca_eval", f"benchmark.limit={LIMIT}", f"data_dir={SHARED_DATA}",
        f"results_dir={root / 'runs'}", *endpoint_overrides(url),
    ]  # fmt: skip


def submit(cluster: Cluster, root: Path, args: list[str]) -> subprocess.Popen[str]:
    """The sweep started from this machine, the node's local disk being `root/node` ($TMPDIR,
    which sbatch passes on to the jobs with the rest of the environment)."""
    env = cluster.env(environment(TMPDIR=str(root / "node")))
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    """The sweep's exit code and stderr, once it ends."""
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr


def mid_run(cluster: Cluster, server: FakeServer, calls: int) -> str:
    """The running job, once the server has answered `calls` calls of the sweep."""
    wait_until(lambda: sum(r.ended > 0 for r in server.log) >= calls, f"{calls} calls", 120)
    return min(cluster.jobs("R"))  # the first of the sweep's jobs still running


def run_dirs(results: Path) -> dict[str, Path]:
    """Each variant's run directory."""
    return {d.name.split("~")[0]: d for d in (results / "alpaca_eval").iterdir()}


def ledger(rundir: Path) -> list[dict[str, Any]]:
    """The run's calls, generation's and the judge's."""
    return [row for name in ("calls.jsonl", "judge_calls.jsonl") if (rundir / name).exists()
            for row in read_jsonl(rundir / name)]  # fmt: skip


def jobs_logged(rundir: Path) -> list[tuple[str, int]]:
    """(SLURM job id, restart) of each time a job ran this run, from its `cli.log`."""
    lines = (rundir / "cli.log").read_text(encoding="utf-8").splitlines()
    found = [JOB_LINE.search(line) for line in lines]
    return [(m.group(1), int(m.group(2) or 0)) for m in found if m]


def states(cluster: Cluster, job: str) -> list[str]:
    """The state each run of `job` ended in, as sacct has it once the job has left the queue."""
    cluster.wait_idle()

    def runs() -> list[str]:
        return [row["State"] for row in cluster.accounting(job) if row["JobID"] == job]

    wait_until(lambda: runs()[-1] not in ("PENDING", "RUNNING", "COMPLETING"), f"job {job}'s end")
    return runs()


def in_flight(log: list[RequestLog], start: float, end: float) -> int:
    """Requests a job's end between `start` and `end` may have cut off: not yet answered at
    some moment then, or answered but perhaps unsaved."""
    return sum(r.started <= end and r.ended + CLIENT_LAG_S >= start for r in log)


def check_repaid(server: FakeServer, results: Path, start: float, end: float) -> None:
    """Only in-flight calls were paid again: no call a ledger records as paid was paid twice,
    and the requests no ledger records (answers cut off, or saved to the cache a moment
    before the end) are at most those in flight when the job ended."""
    rows = [row for rundir in run_dirs(results).values() for row in ledger(rundir)]
    for rundir in run_dirs(results).values():
        paid = Counter(row["key"] for row in ledger(rundir) if not row["cached"])
        assert max(paid.values()) == 1, rundir.name
    unrecorded = len(server.log) - sum(not row["cached"] for row in rows)
    assert 0 <= unrecorded <= in_flight(server.log, start, end)


def test_the_recipe_runs_as_slurm_jobs_merges_and_reports(cluster: Cluster, tmp_path: Path) -> None:
    server = FakeServer(default=QUICK)
    merged = tmp_path / "merged.sqlite"
    with serve_in_thread(server) as url:
        args = sweep(tmp_path, url, VARIANTS, *OWN_CACHES)
        code, stderr = finish(submit(cluster, tmp_path, args))
        assert code == 0, stderr[-3000:]
        paid = len(server.log)
        merge = run(
            [MOA_BENCH, "task=cache_merge", f"cache.path={merged}",
             f"cache_merge.sources=[{tmp_path}/runs/*/*/calls.sqlite]"],
            env=environment(COLUMNS="1000"),
        )  # fmt: skip
        # The same sweep, later and on one machine, on the merged cache.
        again = sweep(tmp_path / "again", url, VARIANTS, f"cache.path={merged}", slurm=False)
        rerun = run(again, timeout=300)
    runs = run_dirs(tmp_path / "runs")
    # Each variant ran as a task of one SLURM job array, on the node, to its end.
    logged = {variant: jobs_logged(rundir) for variant, rundir in runs.items()}
    assert all(len(jobs) == 1 for jobs in logged.values()), logged
    ids = {jobs[0][0] for jobs in logged.values()}
    assert len(ids) == len(VARIANTS) and len({job.split("_")[0] for job in ids}) == 1
    for job in ids:
        assert states(cluster, job) == ["COMPLETED"]
        assert {row["NodeList"] for row in cluster.accounting(job)} == {NODE}
    assert all(len(outputs(tmp_path, variant)) == LIMIT for variant in VARIANTS)
    # The server answered exactly the calls the jobs' ledgers paid, each job each call once;
    # the variants share calls (MoA-Lite is MoA's first layer), and with a cache each, each job
    # paid for its own.
    rows = [row for rundir in runs.values() for row in ledger(rundir)]
    assert paid == sum(not row["cached"] for row in rows)
    for rundir in runs.values():
        assert max(Counter(r["key"] for r in ledger(rundir) if not r["cached"]).values()) == 1
    keys = {row["key"] for row in rows}
    assert paid > len(keys)
    # The merged cache has every call once; on it the same sweep is all cache hits.
    assert merge.returncode == 0, merge.stderr[-2000:]
    added = f"{merged}: {len(keys)} answers added from {len(VARIANTS)} cache(s); checksums verified"
    assert added in merge.stdout.splitlines()
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    repeated = [
        row for rundir in run_dirs(tmp_path / "again" / "runs").values() for row in ledger(rundir)
    ]
    assert len(repeated) == len(rows) and all(row["cached"] for row in repeated)
    assert len(server.log) == paid
    # The report holds the three variants, each wholly judged.
    report = run([MOA_BENCH, "task=report", f"results_dir={tmp_path / 'runs'}",
                  f"report.out_dir={tmp_path / 'report'}"])  # fmt: skip
    assert report.returncode == 0, report.stderr[-2000:]
    assert f"{len(VARIANTS)} judged run(s) from" in report.stdout
    # Table 2(a) holds each variant's row on the subset: its n, wholly judged.
    lines = [line for line in report.stdout.splitlines() if line.startswith("| ")]
    for variant in VARIANTS:
        assert any(
            line.startswith(f"| {variant}~first{LIMIT} |")
            and f" | first{LIMIT} | {LIMIT} | yes |" in line
            for line in lines
        ), lines


def test_a_cancelled_job_is_finished_by_submitting_the_sweep_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    server = FakeServer(default=SLOW)
    variants = ("moa", "moa_lite")
    with serve_in_thread(server) as url:
        args = sweep(tmp_path, url, variants, *OWN_CACHES, *GENERATE_ONLY)
        first = submit(cluster, tmp_path, args)
        job = mid_run(cluster, server, calls=8)
        cancelled = time.monotonic()
        cluster.run("scancel", job)
        wait_until(lambda: job not in cluster.jobs(), "the cancelled job's end")
        ended = time.monotonic()
        code, stderr = finish(first)
        cluster.wait_idle()  # the sweep's other job runs to its end
        runs = run_dirs(tmp_path / "runs")
        done = {v: len(outputs(tmp_path, v)) if any(runs[v].glob("model_outputs.json")) else 0
                for v in variants}  # fmt: skip
        before = {variant: len(ledger(rundir)) for variant, rundir in runs.items()}
        requests = len(server.log)
        again, again_stderr = finish(submit(cluster, tmp_path, args))
    (line,) = [line for line in stderr.splitlines() if line.startswith("moa-bench:")]
    assert "Traceback" not in stderr
    assert code == 1 and line.startswith(f"moa-bench: SLURM job {job} ended without a result "
                                         "(state: CANCELLED by 0; its log: ")  # fmt: skip
    assert line.endswith(f"run the same command to finish the sweep (finished instances are "
                         f"kept): {shlex.join(['moa-bench', *args[1:]])}")  # fmt: skip
    assert again == 0, again_stderr[-3000:]
    assert states(cluster, job)[0].startswith("CANCELLED")
    assert all(len(outputs(tmp_path, variant)) == LIMIT for variant in variants)
    # Each run was run by two jobs; the resubmitted sweep paid only for the cancelled job's
    # unfinished calls: nothing for the job that had finished.
    (cut,) = [v for v, rundir in runs.items() if jobs_logged(rundir)[0][0] == job]
    assert [n for v, n in done.items() if v != cut] == [LIMIT] and done[cut] < LIMIT
    assert all(len(jobs_logged(rundir)) == 2 for rundir in runs.values())
    new = {
        v: [r for r in ledger(rundir)[before[v] :] if not r["cached"]] for v, rundir in runs.items()
    }
    assert len(server.log) - requests == len(new[cut]) > 0
    assert not [rows for variant, rows in new.items() if variant != cut and rows]
    check_repaid(server, tmp_path / "runs", cancelled, ended)


def test_a_job_lost_with_its_node_is_requeued_and_resumes(cluster: Cluster, tmp_path: Path) -> None:
    server = FakeServer(default=SLOW)
    with serve_in_thread(server) as url:
        sweep_ = submit(
            cluster, tmp_path, sweep(tmp_path, url, ("moa",), *OWN_CACHES, *GENERATE_ONLY)
        )
        job = mid_run(cluster, server, calls=8)
        killed = time.monotonic()
        cluster.kill_node()
        # Down long enough for slurmctld to count the job as lost when the node registers again.
        time.sleep(NODE_LOST_S)
        cluster.start_node()
        code, stderr = finish(sweep_)
    assert code == 0, stderr[-3000:]
    rundir = run_dirs(tmp_path / "runs")["moa"]
    assert jobs_logged(rundir) == [(job, 0), (job, 1)]  # the same job, run again by Slurm
    assert states(cluster, job) == ["NODE_FAIL", "COMPLETED"]
    assert len(outputs(tmp_path, "moa")) == LIMIT
    check_repaid(server, tmp_path / "runs", killed, killed)


@pytest.mark.parametrize("case", ["preempted", "timed-out"])
def test_submitit_requeues_a_signalled_job_which_resumes(
    cluster: Cluster, tmp_path: Path, case: str
) -> None:
    """Slurm signals a job it will preempt with SIGTERM then SIGUSR2, and a job near its time
    limit with SIGUSR2 (`signal_delay_s` before it); submitit then checkpoints the job (the
    Hydra launcher resubmits the same job function) and requeues it. With a 10-minute limit,
    submitit counts any SIGUSR2 as a time-out (one of `max_num_timeout`)."""
    server = FakeServer(default=SLOW)
    limit = ["hydra.launcher.timeout_min=10"] if case == "timed-out" else []
    with serve_in_thread(server) as url:
        args = sweep(tmp_path, url, ("moa",), *OWN_CACHES, *GENERATE_ONLY, *limit)
        sweep_ = submit(cluster, tmp_path, args)
        job = mid_run(cluster, server, calls=8)
        signalled = time.monotonic()
        if case == "preempted":
            cluster.run("scancel", "--signal=TERM", job)
        cluster.run("scancel", "--signal=USR2", job)
        wait_until(lambda: job not in cluster.jobs("R"), "the signalled job's stop")
        stopped = time.monotonic()
        code, stderr = finish(sweep_)
    assert code == 0, stderr[-3000:]
    rundir = run_dirs(tmp_path / "runs")["moa"]
    assert jobs_logged(rundir) == [(job, 0), (job, 1)]
    log = (rundir / "cli.log").read_text(encoding="utf-8")
    assert f"this job is {case}" in log and f"Requeued job {job}" in log
    assert any(row["cached"] for row in ledger(rundir))  # the calls made before, from the cache
    assert states(cluster, job) == ["REQUEUED", "COMPLETED"]
    assert len(outputs(tmp_path, "moa")) == LIMIT
    check_repaid(server, tmp_path / "runs", signalled, stopped)
