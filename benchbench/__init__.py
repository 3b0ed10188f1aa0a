"""benchbench: a plugin-based benchmarking harness for PyTorch.

Importing this package is cheap (no torch): the CLI's ``--help`` and a plugin's
``import benchbench`` for ``hookimpl`` must stay fast. ``run_suite`` imports the
suite runner, and torch with it, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("benchbench")
"""Marker for plugin hook implementations: ``@benchbench.hookimpl``."""

if TYPE_CHECKING:
    from benchbench.results import RunResult

__all__ = ["__version__", "hookimpl", "run_suite"]


def run_suite(suite: Any, **options: Any) -> RunResult:
    """Run a suite (a path to a YAML file, or the same structure as a dict).

    Returns a :class:`~benchbench.results.RunResult`; ``.to_dataframe()`` gives one row
    per benchmark. Options are those of :func:`benchbench.suiterunner.configure_and_run`
    (``device``, ``batch_size``, ``plugins``, ``plugins_dir``, ``only``, ...).
    """
    from benchbench.suiterunner import configure_and_run

    return configure_and_run(suite, **options)
