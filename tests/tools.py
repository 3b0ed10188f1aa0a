"""Tests that need a tool: one mechanism, so a machine without it skips them and says why.

A test that needs valgrind, Chromium, a CUDA GPU or Ray says so with the marker
``@pytest.mark.needs("valgrind")`` (``pytestmark`` for a module; the older ``cuda`` and
``ray`` markers mean ``needs("cuda")`` and ``needs("ray")``), or calls
:func:`require_tool` where the need shows only inside (a fixture, a module that imports
the tool). Without the tool the test is skipped with the reason and how to install it;
where ``BENCHBENCH_REQUIRE_TOOLS`` asks for the tool, it fails instead, so that a CI
machine that installed the tools cannot pass by skipping what they test:

* ``BENCHBENCH_REQUIRE_TOOLS=1``: the tools ``.ci/run`` installs (:data:`INSTALLED_BY_CI`:
  valgrind, Chromium and Ray; not a GPU, which no install gives a machine);
* ``BENCHBENCH_REQUIRE_TOOLS=valgrind,cuda``: exactly those (``cuda`` on a GPU runner).

This module is a pytest plugin (``tests/conftest.py`` loads it): the marker and the hook
that applies it live here, beside the probes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

import pytest

REQUIRE_ENV = "BENCHBENCH_REQUIRE_TOOLS"


@dataclass(frozen=True)
class Tool:
    """How to tell whether a tool is here, and what a test needs it for."""

    missing: Callable[[], bool]
    what: str
    """What it is and how to get it, for the skip reason."""


def _no_program(name: str) -> Callable[[], bool]:
    return lambda: shutil.which(name) is None


def _no_module(name: str) -> Callable[[], bool]:
    return lambda: importlib.util.find_spec(name) is None


def _no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


TOOLS: dict[str, Tool] = {
    "valgrind": Tool(_no_program("valgrind"), "valgrind, for instruction counts (apt-get install valgrind)"),
    "chromium": Tool(_no_program("chromium"), "Chromium, to render the HTML report in a real browser "
                                              "(apt-get install chromium)"),
    "cuda": Tool(_no_gpu, "a CUDA GPU that torch can use"),
    "ray": Tool(_no_module("ray"), "Ray, for the Ray executor (pip install -e '.[dev]' or 'ray>=2.9')"),
}
INSTALLED_BY_CI = ("valgrind", "chromium", "ray")
"""What ``BENCHBENCH_REQUIRE_TOOLS=1`` requires: the tools ``.ci/run`` installs."""
ALIASES = ("cuda", "ray")
"""Tools with a marker of their own (``@pytest.mark.cuda`` = ``needs("cuda")``; registered in pyproject.toml)."""


def required() -> set[str]:
    """The tools whose absence is a failure here (``BENCHBENCH_REQUIRE_TOOLS``)."""
    value = os.environ.get(REQUIRE_ENV, "").strip()
    if value in ("", "0"):
        return set()
    if value == "1":
        return set(INSTALLED_BY_CI)
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = names - set(TOOLS)
    if unknown:
        raise pytest.UsageError(f"{REQUIRE_ENV}={value}: unknown tool(s) {', '.join(sorted(unknown))}; "
                                f"use 1 or a list of {', '.join(TOOLS)}")
    return names


def missing(name: str, why: str | None = None) -> str | None:
    """Why a test cannot run here without tool ``name`` (the skip reason), or None when it is here."""
    tool = TOOLS[name]
    return f"needs {tool.what}" + (f": {why}" if why else "") if tool.missing() else None


def require_tool(name: str, why: str | None = None, *, module: bool = False) -> str | None:
    """Skip the test (or, with ``module``, the whole module) when ``name`` is missing; fail
    instead where ``BENCHBENCH_REQUIRE_TOOLS`` requires it. Returns the program's path for a
    program, else None."""
    reason = missing(name, why)
    if reason:
        if name in required():
            pytest.fail(f"{reason}; it is missing, and {REQUIRE_ENV} requires it here", pytrace=False)
        pytest.skip(reason, allow_module_level=module)
    return shutil.which(name)


def needed_tools(item: pytest.Item) -> list[str]:
    """The tools a test's markers ask for."""
    names = [name for marker in item.iter_markers("needs") for name in marker.args]
    names += [tool for tool in ALIASES if item.get_closest_marker(tool) is not None]
    return list(dict.fromkeys(names))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"needs(*tools): skip without these tools ({', '.join(TOOLS)}), fail instead "
                                       f"where {REQUIRE_ENV} requires them (see tests/tools.py)")
    required()  # a misspelt tool name in the variable stops the session at once


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A marked test whose tool is missing is skipped as a skip marker would (reported at the test)."""
    needed = required()
    for item in items:
        for name in needed_tools(item):
            if name not in TOOLS:
                raise pytest.UsageError(f"{item.nodeid}: needs({name!r}): no such tool; tools: {', '.join(TOOLS)}")
            reason = missing(name)
            if reason and name not in needed:
                item.add_marker(pytest.mark.skip(reason=reason))
                break


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture of the test: a required tool that is missing fails the test here."""
    needed = required()
    for name in needed_tools(item):
        if name in needed:
            require_tool(name)
