"""Writes the run browser: a static site that opens from `file://` with no server.

The index page is rendered by Jinja2 (autoescaped) with the runs' index rows in it. Each run's
records go into JavaScript files that hand their data to the page (`MOA.put(path, data)`),
which loads them on demand by adding a `<script>` tag: Chromium refuses `fetch()` of local
files, not scripts. A run's instances are split into chunks, so an instance opens by loading
its chunk alone. A manifest keeps each run's fingerprint (its directory's, `RunDir.fingerprint`,
and the benchmark files its verdicts read, `Benchmark.view_data`): a rebuild rewrites only the runs
whose fingerprint changed, removes those that are gone, and renders the index again.

The site writes only into an empty folder or one holding its own manifest, and deletes only the
data folders that manifest lists; benchmark files are read where the run read them (its
`config.yaml`'s `data_dir`, else the download cache), else where `data_dir` says, never
downloaded, and a run shown without them says so.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from rich.console import Console
from rich.markup import escape

from eval.benchmarks.data import Data
from eval.errors import describe
from eval.evaluation import benchmark_class
from eval.output_dir import refuse_unless_ours
from eval.rundir import RunDir, write_atomic
from eval.runs import DAMAGE, Skipped, run_dirs
from eval.settings import Settings
from eval.view.records import RunView, read_run, run_key
from moa.errors import ConfigError

# What the manifest's records mean; a change of the records' layout bumps it (all rebuilt).
LAYOUT = 3
MANIFEST = "manifest.json"
WRITER = "moa-bench task=view"  # the manifest's mark: the folder is the browser's
DATA = "data"
ASSETS = ("view.js", "view.css")
# A run's data folder, as `folder` names it: what a manifest may list for deletion.
_FOLDER = re.compile(r"[A-Za-z0-9_.-]+-[0-9a-f]{8}")


@dataclass
class Site:
    """What a build wrote: the index page, the runs it (re)built and kept, and those skipped."""

    index: Path
    built: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    lacking: list[str] = field(default_factory=list)  # runs shown without some data, and why


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


def _manifest(out_dir: Path) -> tuple[dict[str, Any], set[str]]:
    """What an earlier build in `out_dir` recorded: its runs (to keep those unchanged, when
    its layout is this one) and the data folders it wrote (the only ones a build deletes). A
    folder that holds files but no manifest of the browser's is refused."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    ours = isinstance(data, dict) and isinstance(data.get("runs"), dict)
    # A manifest written before it was marked holds exactly these two keys.
    marked = ours and data.get("written_by") == WRITER
    ours = ours and (marked or set(data) == {"layout", "runs"})
    refuse_unless_ours(out_dir, "view.out_dir", "browser", ours)
    if not ours:
        return {}, set()
    runs: dict[str, Any] = data["runs"]
    folders = (data.get("folders") or []) if marked else [folder(k) for k in runs]
    owned = {str(f) for f in folders if _FOLDER.fullmatch(str(f))}
    return (runs if marked and data.get("layout") == LAYOUT else {}), owned


def _write_manifest(out_dir: Path, runs: dict[str, Any], folders: set[str]) -> None:
    manifest = {"written_by": WRITER, "layout": LAYOUT, "runs": runs, "folders": sorted(folders)}
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, separators=(",", ":")) + "\n")


def _recorded(run: RunDir) -> list[str | None] | None:
    """Where the run read its benchmark files (`data_dir`, `data_cache_dir`), as its
    `config.yaml` says."""
    try:
        cfg = yaml.safe_load(run.config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(cfg, dict):
        return None
    return [None if cfg.get(k) is None else str(cfg[k]) for k in ("data_dir", "data_cache_dir")]


def _view_data(run: RunDir) -> Mapping[str, str]:
    identity = run.identity()
    return benchmark_class(identity.benchmark).view_data if identity else {}


def _data_of(files: Mapping[str, str], places: list[Data]) -> tuple[Data, list[Any], str | None]:
    """Where the browser reads a run's benchmark `files` (`Benchmark.view_data`): the first of
    `places` that holds them all (where the run read them, then `data_dir`), else the first;
    each file's state there, for the run's fingerprint (so a run shown without them is rebuilt
    once they are there); and what the run is shown without, and why."""
    data = next((d for d in places if all(d.local(f) for f in files)), places[0])
    state: list[Any] = []
    for relpath in files:
        path = data.local(relpath)
        stat = path.stat() if path else None
        state.append([relpath, str(path), stat.st_size, stat.st_mtime_ns] if stat else [relpath])
    missing = [f for f in files if data.local(f) is None]
    if not missing:
        return data, state, None
    shown = ", ".join(dict.fromkeys(files[f] for f in missing))
    roots = " or ".join(dict.fromkeys(str(d.root) for d in places))
    why = f"{', '.join(missing)} not in {roots}; data_dir=<a folder holding them> gives them"
    return data, state, f"shown without {shown} ({why})"


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


def _record(
    out_dir: Path, run: RunDir, name: str, old: Mapping[str, Any], data: Data, chunk: int
) -> tuple[dict[str, Any], bool]:
    """The manifest's record of `run`, and whether the run was (re)written: its `old` record
    is kept while neither its directory nor the benchmark files its verdicts read changed."""
    stamp, run_data = run.fingerprint(), data
    recorded: list[str | None] | None = None
    state: list[Any] = []
    lacking: str | None = None
    if files := _view_data(run):
        # config.yaml is in the fingerprint: unchanged, it names the same place
        recorded = old.get("recorded") if old.get("run") == stamp else _recorded(run)
        places = [Data(*recorded)] if recorded else []
        run_data, state, lacking = _data_of(files, [*places, data])
    built = (out_dir / DATA / folder(run_key(run, name))).is_dir()
    if built and old.get("run") == stamp and old.get("data") == state:
        return dict(old), False
    entry = _write_run(out_dir, read_run(run, run_data, name), chunk)
    record = {"run": stamp, "recorded": recorded, "data": state, "entry": entry}
    return {**record, "lacking": lacking}, True


def build_site(results_dir: Path, out_dir: Path, data: Data, chunk: int = 25) -> Site:
    """Writes the browser of every run under `results_dir` into `out_dir`, rebuilding only
    the runs whose fingerprint changed since the last build there; `data` is where to look for
    the benchmark files a run's verdicts read when they are not where the run read them."""
    previous, owned = _manifest(out_dir)
    site = Site(out_dir / "index.html")
    found: list[tuple[str, str, RunDir]] = []  # each run's key, name and directory
    for name, run in run_dirs(results_dir):
        try:
            found.append((run_key(run, name), name, run))
        except DAMAGE as exc:
            site.skipped.append(Skipped(run.path, describe(exc)))
    planned = {folder(key) for key, _, _ in found}
    for name in sorted(planned - owned):
        if (out_dir / DATA / name).exists():
            raise ConfigError(
                f"{out_dir / DATA / name} was not written by the browser (its manifest does not "
                "list it): move it, or choose another view.out_dir"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Listed before they are written, so that a build cut short leaves no folder unlisted.
    _write_manifest(out_dir, previous, owned | planned)
    runs: dict[str, Any] = {}
    for key, name, run in found:
        try:
            runs[key], built = _record(out_dir, run, name, previous.get(key) or {}, data, chunk)
        except DAMAGE as exc:
            site.skipped.append(Skipped(run.path, describe(exc)))
            continue
        (site.built if built else site.kept).append(key)
        if runs[key].get("lacking"):
            site.lacking.append(f"{key}: {runs[key]['lacking']}")
    wanted = {folder(k) for k in runs}
    for stale in sorted((owned | planned) - wanted):
        shutil.rmtree(out_dir / DATA / stale, ignore_errors=True)
    assets = out_dir / "assets"
    assets.mkdir(exist_ok=True)
    for name in ASSETS:
        text = resources.files("eval.view").joinpath("static", name).read_text(encoding="utf-8")
        write_atomic(assets / name, text)
    entries = [runs[k]["entry"] for k in sorted(runs)]
    write_atomic(site.index, _render(entries, site.skipped, results_dir))
    _write_manifest(out_dir, runs, wanted)
    return site


def main(settings: Settings, console: Console) -> int:
    """`moa-bench task=view`: builds the site and says where it is and what it did."""
    started = time.perf_counter()
    out_dir = settings.view.out_dir
    site = build_site(settings.results_dir, out_dir, settings.data, settings.view.chunk)
    for line in [*map(str, site.skipped), *site.lacking]:
        console.print(f"[yellow]{escape(line)}")
    console.print(
        f"{len(site.built)} run(s) built, {len(site.kept)} unchanged, in "
        f"{time.perf_counter() - started:.1f} s: open {escape(str(site.index.resolve()))}"
    )
    return 0
