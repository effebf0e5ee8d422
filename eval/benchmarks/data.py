"""Where a benchmark's files come from: an offline folder, else the download cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.benchmarks.fetch import default_cache_dir, fetch


@dataclass(frozen=True)
class Data:
    """Where benchmark files come from: an offline folder, else the download cache."""

    data_dir: str | None = None
    cache_dir: str | None = None

    def path(self, relpath: str) -> Path:
        return fetch(relpath, data_dir=self.data_dir, cache_dir=self.cache_dir)

    @property
    def root(self) -> Path:
        """The folder the files are in, laid out alike either way: the data_dir, else the cache."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def local(self, relpath: str) -> Path | None:
        """`relpath` where it is on this machine, or None: nothing is downloaded."""
        path = self.root / relpath
        return path if path.is_file() else None
