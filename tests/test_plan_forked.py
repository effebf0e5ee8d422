"""A sweep's benchmarks planned in two processes are planned as in one (`eval.plan.plan_points`):
the same figures, keys and notes, in the same order, and an error is raised as it is here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import eval.generate
import eval.plan
from eval.plan import PlanResult, plan_points
from eval.settings import Settings, resolve
from tests.test_plan import config, needs_data


def _points(root: Path) -> list[Settings]:
    return [
        resolve(config(root, f"benchmark={b}", f"moa={m}", "benchmark.limit=3"))
        for b in ("alpaca_eval", "mt_bench", "flask")
        for m in ("moa_lite", "single")
    ]


def _seen(results: list[tuple[str, PlanResult]]) -> list[object]:
    return [(n, r.variants, r.identities, r.judge, r.notes) for n, r in results]


@needs_data
async def test_benchmarks_planned_in_two_processes_are_planned_as_in_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = _points(tmp_path)
    told = tmp_path / "loaded"  # which process loaded each benchmark's instances
    real = eval.generate.load_instances

    def loaded(settings: Settings, task: Any) -> Any:
        with told.open("a") as out:
            out.write(f"{os.getpid()} {settings.benchmark.name}\n")
        return real(settings, task)

    monkeypatch.setattr(eval.plan, "load_instances", loaded)
    monkeypatch.setattr(eval.plan, "cpus", lambda: 2)
    two = await plan_points(points[0], points)
    where = {name: pid for pid, name in (line.split() for line in told.read_text().splitlines())}
    assert where["alpaca_eval"] == str(os.getpid()) != where["mt_bench"] == where["flask"]
    monkeypatch.setattr(eval.plan, "cpus", lambda: 1)
    one = await plan_points(points[0], points)
    assert [n for n, _ in one] == ["alpaca_eval", "mt_bench", "flask"]
    assert _seen(two) == _seen(one)
    assert all(r.total_calls > 0 for _, r in one)


@needs_data
async def test_an_error_planning_in_the_other_process_is_raised_as_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    points = _points(tmp_path)

    def refused(settings: Settings, task: Any) -> Any:
        raise FileNotFoundError(f"no instances of {settings.benchmark.name}")

    monkeypatch.setattr(eval.plan, "load_instances", refused)
    monkeypatch.setattr(eval.plan, "cpus", lambda: 2)
    with pytest.raises(FileNotFoundError, match="no instances of alpaca_eval"):
        await plan_points(points[0], points)
