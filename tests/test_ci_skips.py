"""Under CI=true a skip is a failure unless the test is marked `ci_may_skip`."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_needs_data():
    pytest.skip("needs ../shared/data")

@pytest.mark.skipif(True, reason="needs a browser")
def test_marked():
    pass

@pytest.mark.ci_may_skip
def test_allowed():
    pytest.skip("needs files no offline machine has")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
"""


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skip_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        "markers =\n    ci_may_skip: may skip under CI\n"
    )
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-p", "tests.kit.ci")
    if ci:
        # a skip in the call is a failure; a `skipif` (the setup's) is an error: both are red
        result.assert_outcomes(failed=1, errors=1, skipped=1, xfailed=1)
        result.stdout.fnmatch_lines(["*skipped under CI=true*needs ../shared/data*"])
    else:
        result.assert_outcomes(skipped=3, xfailed=1)
