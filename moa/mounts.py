"""Which filesystem a path is on, from the mount table: the call cache refuses a network
filesystem, where SQLite's WAL cannot work (its locks and shared memory are per host, so
processes on two hosts can corrupt the file)."""

from __future__ import annotations

import os
import re
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
# Filesystems shared between hosts. FUSE ones are named `fuse.<program>`.
NETWORK_FILESYSTEMS = frozenset(
    "nfs nfs4 cifs smb3 smbfs lustre beegfs gpfs ceph glusterfs 9p afs ocfs2 gfs2 pvfs2 "
    "orangefs panfs wekafs fuse.sshfs fuse.glusterfs fuse.ceph-fuse fuse.cephfs fuse.s3fs "
    "fuse.gcsfuse fuse.rclone fuse.juicefs fuse.beegfs".split()
)
_ESCAPE = re.compile(r"\\([0-7]{3})")  # the kernel writes a space in a path as \040


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m[1], 8)), field)


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem `path` (which need not exist yet) is on: that of the
    longest mount point above it (the last mounted, of equal ones). `mountinfo` is a
    /proc/self/mountinfo text; None reads this process's. None when no table can be read."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        point = _unescape(fields[4])
        kind = fields[fields.index("-", 6) + 1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), kind)
    return None if best is None else best[1]


def network_filesystem(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the network filesystem `path` is on, or None for a local one."""
    kind = filesystem_type(path, mountinfo)
    return kind if kind in NETWORK_FILESYSTEMS else None
