"""Tests that need a tool skip with the reason without it, and fail where BENCHBENCH_REQUIRE_TOOLS asks for it.

"No valgrind" and "no Chromium" are simulated by hiding them from PATH, in an inner pytest
session (pytester) that loads the same plugin as this one (tests/tools.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import INSTALLED_BY_CI, REQUIRE_ENV, required

INNER = """
import pytest

from tests.tools import require_tool


@pytest.mark.needs("valgrind")
def test_marked():
    pass


def test_inside():
    require_tool("chromium", "the report in a real browser")


def test_without_tools():
    pass
"""


@pytest.fixture
def no_tools(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """An inner session on a PATH without valgrind and Chromium."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_a_missing_tool_skips_with_the_reason_and_how_to_install_it(no_tools: pytest.Pytester) -> None:
    result = no_tools.runpytest("-p", "tests.tools", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([
        "*test_inner.py:*: needs valgrind, for instruction counts (apt-get install valgrind)",
        ("*: needs Chromium, to render the HTML report in a real browser (apt-get install chromium): "
         "the report in a real browser"),
    ], consecutive=False)


@pytest.mark.parametrize("value", ["1", "valgrind,chromium"])
def test_where_the_tools_are_required_a_missing_one_fails(no_tools: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                          value: str) -> None:
    monkeypatch.setenv(REQUIRE_ENV, value)
    result = no_tools.runpytest("-p", "tests.tools")
    result.assert_outcomes(passed=1, failed=1, errors=1)  # the marker fails the setup, require_tool the test
    result.stdout.fnmatch_lines([(f"*needs valgrind, for instruction counts (apt-get install valgrind); it is missing, "
                                  f"and {REQUIRE_ENV} requires it here*")], consecutive=False)


def test_only_the_named_tools_are_required(no_tools: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "chromium")
    no_tools.runpytest("-p", "tests.tools").assert_outcomes(passed=1, failed=1, skipped=1)


def test_which_tools_the_variable_requires(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("", set()), ("0", set()), ("1", set(INSTALLED_BY_CI)), (" cuda, valgrind ", {"cuda", "valgrind"})):
        monkeypatch.setenv(REQUIRE_ENV, value)
        assert required() == expected
    assert "cuda" not in INSTALLED_BY_CI  # =1 on a CPU-only CI machine must not fail the GPU tests
    monkeypatch.setenv(REQUIRE_ENV, "valgrnd")
    with pytest.raises(pytest.UsageError, match=r"unknown tool.*valgrnd"):
        required()


def test_a_misspelt_tool_in_a_marker_stops_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_typo='import pytest\n\n@pytest.mark.needs("valgrnd")\ndef test_x():\n    pass\n')
    result = pytester.runpytest("-p", "tests.tools")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs('valgrnd'): no such tool; tools: valgrind, chromium, cuda, ray*"])
