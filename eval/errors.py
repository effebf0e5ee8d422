"""How the command line ends: a refusal or a stop is one line on stderr and an exit code.

Bad input (a `ConfigError`, an override or preset Hydra cannot compose, one nested too deeply to
be read at all, a run directory that cannot be created) exits 2 before any call is made; a
budget stop exits 3 and Ctrl-C 130, each saying how to carry on; a sweep's SLURM job that ended
without its result (cancelled, failed, lost with its node) exits 1, naming the job, its state and
its log. Only a bug shows a traceback. Nothing printed here carries a secret: not a refusal, not
a bug's traceback, not the line Hydra writes itself before re-raising a job's error ("Error
executing job with overrides: [...]", which lists every override as typed).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import shlex
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from eval.runner import EXIT_BUDGET, EXIT_CACHE, EXIT_INTERRUPTED, RunStopped
from moa.budget import BudgetExceeded
from moa.cache import CacheWriteError
from moa.errors import ConfigError
from moa.redact import environment_secrets, holds_secret, scrub

EXIT_CONFIG = 2
_DETAIL = ("full_key:", "object_type=", "reference_type=")  # OmegaConf's debugging lines
# The packages that read and build a config, and what they read: each recurses once per level
# of nesting, so a value nested some hundreds deep exhausts Python's stack there.
_CONFIG_READERS = {
    "yaml": "a config file",
    "antlr4": "an override",  # Hydra's override grammar
    "omegaconf": "a config file or override",
    "hydra": "a config file or override",
}


def same_command() -> str:
    return shlex.join(["moa-bench", *sys.argv[1:]])


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages as one: an indented line joins the one above,
    and the config search path and OmegaConf's key dumps are left out. A resolver's own refusal
    (a `ConfigError`: the variant's name, the run directory) is said as it is."""
    if isinstance(exc, OmegaConfBaseException) and (refusal := _refusal(exc)) is not None:
        return one_line(refusal)
    text = str(exc)
    if isinstance(exc.__cause__, OmegaConfBaseException):
        text += "\n" + str(exc.__cause__)
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(_DETAIL):
            continue
        if raw[:1].isspace() and parts:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line.rstrip("."))
    return "; ".join(parts)


def _refusal(exc: BaseException) -> ConfigError | None:
    """The `ConfigError` a resolver raised, under the errors OmegaConf raised about it."""
    seen: set[int] = set()
    inner = exc.__cause__ or exc.__context__
    while inner is not None and id(inner) not in seen:
        if isinstance(inner, ConfigError):
            return inner
        seen.add(id(inner))
        inner = inner.__cause__ or inner.__context__
    return None


def nested_too_deeply(exc: BaseException) -> str | None:
    """For a `RecursionError` raised in a config reader (`_CONFIG_READERS`), the one line that
    says so; None for any other error (a recursion of our own is a bug)."""
    if not isinstance(exc, RecursionError):
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if not frames:
        return None
    innermost = Path(frames[-1].filename)
    for name, what in _CONFIG_READERS.items():
        home = getattr(sys.modules.get(name), "__file__", None)
        if home is not None and innermost.is_relative_to(Path(home).parent):
            return (
                f"{what} nests its values too deeply to be read (Python's recursion limit): "
                "flatten it"
            )
    return None


def describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return one_line(exc)


def secrets() -> list[str]:
    """What is scrubbed from anything printed: the environment's secrets, and the value of any
    override whose key says it holds one (`token=...`, `+endpoints.x.api_key=...`), as long as
    a secret (`moa.redact` scrubs none shorter than 8 characters)."""
    typed = []
    for arg in sys.argv[1:]:
        key, equals, value = arg.partition("=")
        if equals and len(value) >= 8 and holds_secret(key.lstrip("+~").rpartition(".")[2]):
            typed.append(value)
    return [*environment_secrets(), *typed]


class _ScrubbedStderr:
    """sys.stderr, but for the line Hydra writes before re-raising a job's error, scrubbed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        if text.startswith("Error executing job with overrides"):
            text = scrub(text, secrets())
        written: int = self._inner.write(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def _scrubbed() -> Iterator[None]:
    """Hydra's own line scrubbed, and a bug's traceback too (printed here, exit 1, as Python
    would print it)."""
    inner = sys.stderr
    sys.stderr = _ScrubbedStderr(inner)
    try:
        yield
    except Exception:
        sys.stderr.write(scrub(traceback.format_exc(), secrets()))
        sys.exit(1)
    finally:
        if isinstance(sys.stderr, _ScrubbedStderr):  # unless someone replaced it meanwhile
            sys.stderr = inner


def fail(message: str, code: int) -> NoReturn:
    line = scrub(message, secrets())
    print(f"moa-bench: {line}", file=sys.stderr)
    # Into the run's cli.log, where there is one; not to Hydra's console log, which would say
    # the line a second time.
    if any(isinstance(h, logging.FileHandler) for h in logging.getLogger().handlers):
        logging.getLogger("moa_bench").error(line)
    sys.exit(code)


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Ends the process with one line for every error a user can cause or a run can stop on."""
    try:
        yield
    except ConfigError as exc:
        fail(f"error: {exc}", EXIT_CONFIG)
    except (OmegaConfBaseException, OSError) as exc:
        fail(f"error: {describe(exc)}", EXIT_CONFIG)
    except RunStopped as exc:
        fail(f"{exc}: {same_command()}", exc.exit_code)
    except BudgetExceeded as exc:
        fail(
            f"stopped: {exc}; raise the cap and run the same command to carry on: {same_command()}",
            EXIT_BUDGET,
        )
    except CacheWriteError as exc:  # its message says what was kept where, and what to do
        fail(f"{exc}: {same_command()}", EXIT_CACHE)
    except KeyboardInterrupt:
        fail(f"interrupted; run the same command to resume: {same_command()}", EXIT_INTERRUPTED)


def run_cli(hydra_main: Callable[[], None]) -> None:
    """Runs the Hydra app so that Hydra's own refusals (an unknown preset, a malformed override,
    a run directory it cannot create) are one line too, unless HYDRA_FULL_ERROR asks for more.
    Either way, nothing it prints carries a secret (`_scrubbed`)."""
    with _scrubbed():
        _run_hydra(hydra_main)


def _run_hydra(hydra_main: Callable[[], None]) -> None:
    if "HYDRA_FULL_ERROR" in os.environ:
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # raise, instead of printing several lines and exiting
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as exc:  # before OSError: a missing
        # preset is Hydra's MissingConfigException, an IOError too
        said = misspelt_key(exc) or one_line(exc)
        fail(f"error: {said}{misspelt_choice(exc)}", EXIT_CONFIG)
    except OSError as exc:  # Hydra makes the run directory before the app starts
        fail(f"error: cannot create the run directory: {describe(exc)}", EXIT_CONFIG)
    except RecursionError as exc:  # in composing the config: what Hydra builds, the app reads
        if (line := nested_too_deeply(exc)) is None:
            raise
        fail(f"error: {line}", EXIT_CONFIG)
    except Exception as exc:
        if (line := lost_job(exc)) is None:
            raise
        fail(line, 1)


_LOST = re.compile(r"Job (\S+) \(task: \d+\) with path (\S+)_result\.pkl\s+has not produced "
                   r"any output \(state: ([^)]*)\)")  # fmt: skip


def lost_job(exc: Exception) -> str | None:
    """What to do about a sweep's SLURM job that ended without its result, which submitit (the
    `hydra/launcher=slurm` plugin, imported only by it) raises in the submitting process."""
    utils = sys.modules.get("submitit.core.utils")
    if utils is None or not isinstance(exc, utils.UncompletedJobError):
        return None
    found = _LOST.match(str(exc))
    what = (
        f"SLURM job {found[1]} ended without a result (state: {found[3]}; its log: "
        f"{found[2]}_log.err)"
        if found
        else str(exc).splitlines()[0].rstrip(".")
    )
    return (
        f"{what}; the sweep's other jobs carry on: once squeue shows none of them, run the "
        f"same command to finish the sweep (finished instances are kept): {same_command()}"
    )


_NOT_IN_STRUCT = re.compile(r"Could not override '([\w.\-]+)'")
_NO_OPTION = re.compile(r"Could not find '([\w\-]+)/([^']+)'")
# Decoding settings: not settings of the config's top, but of a benchmark or an agent.
_DECODING = ("temperature", "max_tokens", "top_p", "seed", "stop")


def misspelt_choice(exc: BaseException) -> str:
    """For a group option that does not exist (`moa=moa_lit`), the ones it may have meant, as
    `; did you mean moa=moa_lite?` (empty when none is close)."""
    match = _NO_OPTION.search(str(exc))
    if match is None:
        return ""
    from eval.settings import CONF_DIR

    group, name = match.groups()
    options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    return "; did you mean " + " or ".join(f"{group}={c}" for c in close) + "?" if close else ""


def misspelt_key(exc: BaseException) -> str | None:
    """For an override of a key the config does not have, the keys it may have meant.

    Hydra's own hint (append with `+key=...`) would silently add the misspelt key, so it is not
    shown: the message names the closest keys of the same section instead."""
    match = _NOT_IN_STRUCT.search(str(exc))
    if match is None:
        return None
    key = match.group(1)
    section, _, leaf = key.rpartition(".")
    others = [a for a in sys.argv[1:] if not a.startswith((key + "=", "-"))]
    try:
        from hydra import compose, initialize_config_dir

        from eval.settings import CONF_DIR

        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            node = compose("config", [o for o in others if "=" in o])
        for part in section.split(".") if section else []:
            node = node[part]
        known = [str(k) for k in node]
    except Exception:  # the hint is a courtesy: the refusal stands without it
        known = []
    if leaf in _DECODING and not section:
        return (
            f"{key} is not a setting of its own: decoding settings live in the benchmark "
            f"(benchmark.generation.{leaf}=..., every agent's) or on an agent "
            f"(moa.layers.<layer>.<agent>.{leaf}=..., counted from 0)"
        )
    close = difflib.get_close_matches(leaf, known, n=3, cutoff=0.6)
    prefix = f"{section}." if section else ""
    if close:
        hint = "did you mean " + " or ".join(prefix + c for c in close) + "?"
    else:
        hint = f"{prefix or 'the config'} has: {', '.join(sorted(known)) or 'no such section'}"
    return f"{key} is not a setting ({hint})"
