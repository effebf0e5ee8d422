"""Writes the run browser: a static site that opens from `file://` with no server.

The index page is rendered by Jinja2 (autoescaped) with the runs' index rows in it. Each run's
records go into JavaScript files that hand their data to the page (`MOA.put(path, data)`),
which loads them on demand by adding a `<script>` tag: Chromium refuses `fetch()` of local
files, not scripts. A run's instances are split into chunks, so an instance opens by loading
its chunk alone. A manifest keeps each run's directory fingerprint (`RunDir.fingerprint`): a
rebuild rewrites only the runs whose files changed, removes those that are gone, and renders
the index again.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from eval.errors import describe
from eval.report import DAMAGE, Skipped, refuse_foreign, run_dirs
from eval.rundir import write_atomic
from eval.tasks import Data
from eval.view.records import RunView, read_run, run_key

# What the manifest's records mean; a change of the records' layout bumps it (all rebuilt).
LAYOUT = 3
MANIFEST = "manifest.json"
DATA = "data"
ASSETS = ("view.js", "view.css")


@dataclass
class Site:
    """What a build wrote: the index page, the runs it (re)built and kept, and those skipped."""

    index: Path
    built: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def folder(key: str) -> str:
    """A run's data folder: its key made safe for a URL path, plus a digest so that two keys
    never share one."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}-{digest}"


def _script(path: str, data: Any) -> str:
    """A data file: one call handing `data` to the page. ASCII JSON is a valid JavaScript
    literal in any page encoding."""
    return f"MOA.put({json.dumps(path)},{json.dumps(data, separators=(',', ':'))});\n"


def _write_run(out_dir: Path, view: RunView, chunk: int) -> dict[str, Any]:
    """Writes a run's rows, search text and instance chunks; returns its index row."""
    name = folder(view.key)
    target = out_dir / DATA / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for n, row in enumerate(view.rows):
        row["chunk"] = n // chunk
    starts = range(0, len(view.rows), chunk)
    chunks = {f"c{k}": view.instances[s : s + chunk] for k, s in enumerate(starts)}
    files = {"rows": view.rows, "search": view.search, **chunks}
    for stem, data in files.items():
        (target / f"{stem}.js").write_text(_script(f"{name}/{stem}", data), encoding="utf-8")
    return {**view.entry, "folder": name}


def _manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data["runs"] if isinstance(data, dict) and data.get("layout") == LAYOUT else {}


def _render(entries: list[dict[str, Any]], skipped: list[Skipped], results_dir: Path) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eval.view", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    benchmarks: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        benchmarks.setdefault(entry["benchmark"], []).append(entry)
    return env.get_template("index.html.j2").render(
        benchmarks=benchmarks,
        skipped=skipped,
        results_dir=str(results_dir),
        index={"runs": entries},
    )


def build_site(results_dir: Path, out_dir: Path, data: Data, chunk: int = 25) -> Site:
    """Writes the browser of every run under `results_dir` into `out_dir`, rebuilding only
    the runs whose directories changed since the last build there."""
    refuse_foreign(out_dir, "view.out_dir", "site", "the browser rewrites its folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _manifest(out_dir)
    site = Site(out_dir / "index.html")
    runs: dict[str, Any] = {}
    for name, run in run_dirs(results_dir):
        try:
            key = run_key(run, name)
            stamp = run.fingerprint()
            old = previous.get(key)
            if old and old["fingerprint"] == stamp and (out_dir / DATA / folder(key)).is_dir():
                runs[key] = old
                site.kept.append(key)
                continue
            entry = _write_run(out_dir, read_run(run, data, name), chunk)
        except DAMAGE as exc:
            site.skipped.append(Skipped(run.path, describe(exc)))
            continue
        runs[key] = {"fingerprint": stamp, "entry": entry}
        site.built.append(key)
    wanted = {folder(k) for k in runs}
    if (out_dir / DATA).is_dir():
        for stale in (out_dir / DATA).iterdir():
            if stale.name not in wanted:
                shutil.rmtree(stale, ignore_errors=True)
    assets = out_dir / "assets"
    assets.mkdir(exist_ok=True)
    for name in ASSETS:
        text = resources.files("eval.view").joinpath("static", name).read_text(encoding="utf-8")
        write_atomic(assets / name, text)
    entries = [runs[k]["entry"] for k in sorted(runs)]
    write_atomic(site.index, _render(entries, site.skipped, results_dir))
    manifest = {"layout": LAYOUT, "runs": runs}
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, separators=(",", ":")) + "\n")
    return site


def main(cfg: DictConfig, console: Console) -> int:
    """`moa-bench task=view`: builds the site and says where it is and what it did."""
    started = time.perf_counter()
    out_dir = Path(str(cfg.view.out_dir))
    data = Data(cfg.data_dir, cfg.data_cache_dir)
    site = build_site(Path(str(cfg.results_dir)), out_dir, data, int(cfg.view.chunk))
    for skipped in site.skipped:
        console.print(f"[yellow]{escape(str(skipped))}")
    console.print(
        f"{len(site.built)} run(s) built, {len(site.kept)} unchanged, in "
        f"{time.perf_counter() - started:.1f} s: open {escape(str(site.index.resolve()))}"
    )
    return 0
