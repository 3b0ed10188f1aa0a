"""Shared fixtures and the rules every test follows.

* Tests that need a tool (valgrind, Chromium, a GPU, Ray) say so with
  ``@pytest.mark.needs(...)`` (GPU tests: ``@pytest.mark.cuda``) or ``require_tool``: they
  skip with the reason without it, and fail where ``BENCHBENCH_REQUIRE_TOOLS`` asks for it
  (``tests/tools.py``, a plugin loaded here).
* Tests write only into their temporary folders: each test runs in its own ``tmp_path``
  (so ``results/`` and ``history.sqlite``, relative by default, land there) with the peak
  cache moved there too, and the session fails if the checkout's ``results/`` or its top
  level changed anyway: a user's history must never fill up with the tests' runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported in the fixture: tests.helpers imports tests.tools, a plugin pytest loads itself
    from tests.helpers import PluginFiles

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester", "tests.tools"]  # pytester: tests of pytest-facing behaviour (a real inner session)


@pytest.fixture
def plugins(tmp_path: Path) -> PluginFiles:
    """Write or copy plugin modules into a folder of this test's own (``plugins.path``)."""
    from tests.helpers import PluginFiles

    return PluginFiles(tmp_path / "plugins")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No env leakage between tests, and nothing written outside ``tmp_path``."""
    monkeypatch.delenv("BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setenv("BENCHBENCH_CACHE", str(tmp_path / "benchbench-cache"))
    monkeypatch.chdir(tmp_path)


def _checkout_state() -> dict[str, tuple[int, int]]:
    """What the tests must leave alone: every file under results/ (size, mtime) and the top level's names."""
    state = {f"top:{p.name}": (0, 0) for p in REPO.iterdir() if p.name not in _CACHES}
    for path in (REPO / "results").rglob("*"):
        if path.is_file():
            stat = path.stat()
            state[str(path.relative_to(REPO))] = (stat.st_size, stat.st_mtime_ns)
    return state


_CACHES = {".pytest_cache", ".hypothesis", "__pycache__", ".mypy_cache", ".ruff_cache", ".benchmarks"}
"""Tools' caches at the top of the checkout (.benchmarks: pytest-benchmark's, where it is installed)."""


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = _checkout_state()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    after = _checkout_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        listing = ", ".join(name.removeprefix("top:") for name in changed[:10])
        message = (f"the tests changed the checkout ({REPO}): {listing}; tests must write only into their "
                   "temporary folders")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[dict]()
