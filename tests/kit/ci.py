"""A pytest plugin: under `CI=true` a skipped test fails, so CI never passes by skipping (a
missing `../shared/data`, browser or tool is a red run, not a quiet one). A test marked
`ci_may_skip` may still skip: today only the LC check, which needs files no offline machine has.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    allowed = item.get_closest_marker("ci_may_skip") is not None
    if in_ci() and report.skipped and not hasattr(report, "wasxfail") and not allowed:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where nothing may skip: {reason}"
    return report
