"""The guard of an output folder that is rebuilt from scratch (the report's, the browser's): it
is written only when empty or when it holds what an earlier build of the same kind wrote, so
that no rebuild overwrites or deletes a file it did not write."""

from __future__ import annotations

from pathlib import Path

from moa.errors import ConfigError


def refuse_unless_ours(out_dir: Path, setting: str, what: str, ours: bool) -> None:
    """Refuses, in one line, to write a `what` (the report, the browser) into a folder that
    holds files but none of an earlier `what` (`ours`): rebuilding it would overwrite or delete
    files it did not write."""
    if ours or not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    raise ConfigError(
        f"{setting}={out_dir} is not a {what} folder: it holds files the {what} did not write, "
        f"and the {what} writes only into an empty folder or its own: choose another"
    )
