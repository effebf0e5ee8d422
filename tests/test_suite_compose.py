"""A sweep's points composed by two forked processes are the points composed in this one, in the
same order, and an error is raised as composing here raises it (`eval.suite.compose_points`)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hydra import initialize_config_dir
from omegaconf.errors import InterpolationResolutionError

import eval.suite
from eval.errors import one_line
from eval.settings import CONF_DIR, Settings
from eval.suite import compose_points

# table3 sets a config group and a value at each point; figure4 names its variants itself
EXPERIMENTS = ["table3", "figure4", "baselines"]


def _seen(points: list[Settings]) -> list[object]:
    """What a point is to the plan and the runs (its catalogue is an object of its own)."""
    return [(p.spec, p.run_dir, p.benchmark, p.judge, p.redacted) for p in points]


def test_points_composed_in_two_processes_are_those_composed_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forked_points: list[int] = []  # how many the forked processes gave back
    real = eval.suite._composed_in_two

    def counted(*args: Any) -> list[Settings]:
        points = real(*args)
        forked_points.append(len(points))
        return points

    monkeypatch.setattr(eval.suite, "cpus", lambda: 2)
    monkeypatch.setattr(eval.suite, "_composed_in_two", counted)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        forked = compose_points([], EXPERIMENTS)
        monkeypatch.setattr(eval.suite, "cpus", lambda: 1)
        here = compose_points([], EXPERIMENTS)
    assert forked_points == [len(here)] == [8 + 6 + 14]
    assert _seen(forked) == _seen(here)


def test_an_error_in_a_forked_composition_is_raised_as_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolver's refusal reaches the user under OmegaConf's error, through its causes, which
    an error sent back by a child has lost: the experiments are composed here again."""
    bad = ["moa.name=../x"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        monkeypatch.setattr(eval.suite, "cpus", lambda: 2)
        with pytest.raises(InterpolationResolutionError) as forked:
            compose_points(bad, EXPERIMENTS)
        monkeypatch.setattr(eval.suite, "cpus", lambda: 1)
        with pytest.raises(InterpolationResolutionError) as here:
            compose_points(bad, EXPERIMENTS)
    said = one_line(here.value)
    assert said.startswith("moa.name='../x' cannot name a run directory")
    assert one_line(forked.value) == said


def test_no_fork_while_another_thread_runs() -> None:
    """A fork copies no thread and may copy a lock one held (an embedding program's process).
    In a fresh process: this suite's own process keeps threads of other tests."""
    check = (
        "import os, threading, eval.suite as s; alone = s.cpus(); stop = threading.Event(); "
        "t = threading.Thread(target=stop.wait); t.start(); beside = s.cpus(); stop.set(); "
        "t.join(); print(alone, beside, len(os.sched_getaffinity(0)))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    alone, beside, cpus = done.stdout.split()
    assert (alone, beside) == (cpus, "1")
