"""A one-node SLURM cluster for the scale-out tests, started and stopped by the test itself.

Debian's `slurm-wlm` daemons and `munge` (`make slurm` installs them), run as root: slurmctld and
slurmd for one node with this machine's CPUs and memory (`slurmd -C`), `proctrack/linuxproc` and
`task/none` (no cgroups needed), a munge key made on the spot, and a partition named `cpu`, as
the README's recipe asks for. The Hydra launcher's submitit learns how a job ended from `sacct`,
and `sacct` answers only from a slurmdbd (with `accounting_storage/none` it says "accounting
storage is disabled", and submitit waits on a cancelled job for ever): so a slurmdbd runs too, on
a throwaway MariaDB (`--skip-grant-tables`, loopback only).

Everything the cluster writes is in its own folder (config, munge key and socket, state, spool,
logs, the database), on free loopback ports; nothing under /etc, /run or /var is touched. Every
process of the cluster, daemons and jobs alike, carries the cluster's `SLURM_CONF` in its
environment: that is how `stop` finds what is left and checks that nothing is.

Settings that differ from Slurm's defaults, to keep the tests short (each named where it is set):
a cancelled job is killed 2 s after its SIGTERM (which submitit ignores) instead of 30 s; a
requeued job may start again after 6 s instead of 121 s; the scheduler looks at pending jobs
every second instead of every minute; a job lost with its node is noticed at the node's
registration once it is 12 s old instead of 20 s.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

NODE = "moa-node"
PARTITION = "cpu"
CLUSTER = "moatest"
DAEMONS = ("munged", "mungekey", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "sacct", "sacctmgr", "scancel", "scontrol", "sinfo", "squeue")
LOGS = {
    "munged": "munge/munged.log",
    "mariadbd": "db/error.log",
    "slurmdbd": "log/slurmdbd.log",
    "slurmctld": "log/slurmctld.log",
    "slurmd": "log/slurmd.log",
}
# Where Debian puts the daemons: root's PATH has them, a user's may not.
SBIN = ("/usr/sbin", "/sbin")


def missing() -> list[str]:
    """The programs the cluster needs that this machine lacks."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=path) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the SLURM test cluster: waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@dataclass
class Cluster:
    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (this process's environment by default) pointed at the cluster: for its
        commands, and for whatever submits jobs (sbatch passes its environment on to the job)."""
        base = os.environ if base is None else base
        path = os.pathsep.join([*SBIN, base.get("PATH", "")])
        return {**base, "PATH": path, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, timeout: float = 60.0) -> str:
        """A SLURM command's output; a failure raises with its stderr."""
        done = subprocess.run(
            args, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def jobs(self, state: str | None = None) -> list[str]:
        """The jobs (array tasks as `12_0`) pending or running, or in `state` (squeue's -t)."""
        states = ["-t", state] if state else []
        return self.run("squeue", "-h", "-r", *states, "-o", "%i").split()

    def accounting(self, job: str) -> list[dict[str, str]]:
        """sacct's rows for `job` (its steps too, and each earlier run of a requeued job)."""
        out = self.run("sacct", "-D", "-P", "-j", job, "-o", "JobID,State,NodeList")
        head, *rows = out.splitlines()
        return [dict(zip(head.split("|"), row.split("|"), strict=True)) for row in rows]

    def wait_idle(self, timeout: float = 180.0) -> None:
        """Until no job is queued or running."""
        wait_until(lambda: not self.jobs(), "an empty queue", timeout)

    # The daemons, in the order they start.

    def start(self) -> None:
        self.root.chmod(0o755)  # munged wants its socket's folder open to all
        for sub in ("munge", "db", "db/tmp", "state", "spool", "log"):
            (self.root / sub).mkdir()
        self.ports = {name: free_port() for name in ("db", "dbd", "ctld", "d")}
        self._munge()
        self._database()
        self._write_config()
        self._spawn("slurmdbd", "slurmdbd", "-D")
        self._await("slurmdbd", lambda: listening(self.ports["dbd"]))
        self._spawn("slurmctld", "slurmctld", "-D")
        self._await("slurmctld", lambda: listening(self.ports["ctld"]))
        self.start_node()
        self._await("slurmd", self._accounted)  # the node idle, the cluster known to slurmdbd

    def _munge(self) -> None:
        munge = self.root / "munge"
        subprocess.run(
            ["mungekey", "--create", f"--keyfile={munge / 'munge.key'}"],
            env=self.env(),
            check=True,
            capture_output=True,
        )
        self._spawn(
            "munged",
            "munged", "--foreground", f"--key-file={munge / 'munge.key'}",
            f"--socket={munge / 'munge.socket'}", f"--pid-file={munge / 'munged.pid'}",
            f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}",
        )  # fmt: skip
        self._await("munged", (munge / "munge.socket").exists)

    def _database(self) -> None:
        """An empty MariaDB for slurmdbd alone: no system tables (no grants to check, so no
        `mariadb-install-db`, which takes seconds), nothing synced to disk."""
        db = self.root / "db"
        (db / "data").mkdir()
        self._spawn(
            "mariadbd",
            "mariadbd", "--no-defaults", "--user=root", f"--datadir={db / 'data'}",
            "--skip-grant-tables", "--skip-name-resolve", "--bind-address=127.0.0.1",
            f"--port={self.ports['db']}", f"--socket={db / 'mysqld.sock'}",
            f"--pid-file={db / 'mysqld.pid'}", f"--tmpdir={db / 'tmp'}",
            f"--log-error={db / 'error.log'}", "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=4M", "--innodb-data-file-path=ibdata1:4M:autoextend",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
        )  # fmt: skip
        self._await("mariadbd", lambda: listening(self.ports["db"]))

    def _write_config(self) -> None:
        r, p = self.root, self.ports
        # The machine's CPUs, sockets and memory as slurmd itself reads them.
        hardware = self.run("slurmd", "-C").splitlines()[0].split(" ", 1)[1]
        auth = f"AuthInfo=socket={r / 'munge' / 'munge.socket'}"
        (r / "slurm.conf").write_text(
            "\n".join([
                f"ClusterName={CLUSTER}",
                f"SlurmctldHost={socket.gethostname().split('.')[0]}(127.0.0.1)",
                f"SlurmctldPort={p['ctld']}",
                f"SlurmdPort={p['d']}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                # a requeued job waits cred_expire + 1 s before it may start again
                f"{auth},cred_expire=5",
                f"StateSaveLocation={r / 'state'}",
                f"SlurmdSpoolDir={r / 'spool'}",
                f"SlurmctldPidFile={r / 'log' / 'slurmctld.pid'}",
                f"SlurmdPidFile={r / 'log' / 'slurmd.pid'}",
                f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU_Memory",
                "MpiDefault=none",
                "AccountingStorageType=accounting_storage/slurmdbd",
                "AccountingStorageHost=127.0.0.1",
                f"AccountingStoragePort={p['dbd']}",
                # the munge socket slurmctld and sacct authenticate to slurmdbd with
                f"AccountingStoragePass={r / 'munge' / 'munge.socket'}",
                "ReturnToService=2",  # a node back from a restart takes jobs again
                "KillWait=2",
                "SchedulerParameters=sched_interval=1,bf_interval=1",
                "BatchStartTimeout=2",
                f"NodeName={NODE} NodeAddr=127.0.0.1 {hardware}",
                f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
                "",
            ])
        )  # fmt: skip
        dbd = r / "slurmdbd.conf"  # slurmdbd reads it beside slurm.conf, and only if 0600
        dbd.write_text(
            "\n".join([
                "AuthType=auth/munge",
                auth,
                f"DbdHost={socket.gethostname().split('.')[0]}",
                "DbdAddr=127.0.0.1",
                f"DbdPort={p['dbd']}",
                "SlurmUser=root",
                f"LogFile={r / 'log' / 'slurmdbd.log'}",
                f"PidFile={r / 'log' / 'slurmdbd.pid'}",
                "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1",
                f"StoragePort={p['db']}",
                "StorageUser=root",
                "StorageLoc=slurm_acct_db",
                "",
            ])
        )  # fmt: skip
        dbd.chmod(0o600)

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.daemons[name] = subprocess.Popen(
            args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def _await(self, name: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
        """Until `ready`; if the daemon ends first, or a minute passes, raises with the end of
        its logs (the cluster's folder is removed after)."""
        daemon, deadline = self.daemons[name], time.monotonic() + timeout
        while not ready():
            if daemon.poll() is not None or time.monotonic() > deadline:
                why = "not ready" if daemon.returncode is None else f"exit {daemon.returncode}"
                logs = [self.root / "log" / f"{name}.out", self.root / LOGS[name]]
                tail = [line for log in logs if log.exists()
                        for line in log.read_text(errors="replace").splitlines()[-5:]]  # fmt: skip
                raise RuntimeError(f"the SLURM test cluster's {name}: {why}; " + " | ".join(tail))
            time.sleep(0.2)

    def _accounted(self) -> bool:
        try:
            node = self.run("sinfo", "-h", "-n", NODE, "-o", "%T").strip()
            clusters = self.run("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster")
        except RuntimeError:  # not up yet
            return False
        return node == "idle" and CLUSTER in clusters.split()

    # The node.

    def start_node(self) -> None:
        self._spawn("slurmd", "slurmd", "-D", "-N", NODE)
        self._await("slurmd", lambda: listening(self.ports["d"]))

    def kill_node(self) -> list[int]:
        """What a node's crash does: slurmd, every slurmstepd and every job process on it
        killed at once (SIGKILL). Returns their pids."""
        procs = self.processes()
        on_node = []
        for pid in procs:
            up = pid
            while up in procs and procs[up][0] not in ("slurmd", "slurmstepd"):
                up = procs[up][1]
            if up in procs:
                on_node.append(pid)
        for pid in on_node:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.daemons.pop("slurmd").wait(10)
        return on_node

    # What runs, and stopping it.

    def processes(self) -> dict[int, tuple[str, int]]:
        """Every live process of this cluster (daemons, job steps, jobs, and whatever submitted
        them), by pid: its name and its parent's pid. Found by the cluster's `SLURM_CONF` in
        its environment, so another cluster's processes, or another user's, are never touched."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if mark in environ:
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                state, parent = stat[stat.rindex(")") + 2 :].split()[:2]
                if state != "Z":
                    found[int(entry.name)] = (name, int(parent))
        return found

    def stop(self) -> None:
        """Every daemon stopped (SIGTERM, then SIGKILL after 20 s), then any job process left
        killed; raises if anything of the cluster still runs."""
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            if (daemon := self.daemons.pop(name, None)) is not None:
                daemon.terminate()
                try:
                    daemon.wait(20)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(10)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.processes(), "the end of every process", timeout=20)


@contextlib.contextmanager
def slurm_cluster() -> Iterator[Cluster]:
    """A running cluster in a new temporary folder; stopped and removed afterwards."""
    cluster = Cluster(Path(tempfile.mkdtemp(prefix="moa-slurm-")))
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(cluster.root, ignore_errors=True)
