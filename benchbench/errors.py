"""Errors that reach the user as a message and an exit code, never a traceback.

``UsageError`` (exit 2) means the input was wrong: a missing file, a YAML error, an
unknown name. It carries everything needed to fix it in one paragraph. The CLI catches
it at the top and prints ``str(error)``; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran but something failed (a benchmark raised, a regression)
EXIT_USAGE = 2  # bad input or usage


class BenchbenchError(Exception):
    """Base of benchbench's own errors."""

    exit_code = EXIT_FAILED


class UsageError(BenchbenchError):
    """Bad input: the message says what, where, and how to fix it."""

    exit_code = EXIT_USAGE


class SuiteError(UsageError):
    """A suite file has one or more problems; all of them are listed at once."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            text = f"{source}: {problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in problems)
            text = f"{source}: {len(problems)} problems:\n{lines}"
        super().__init__(text)


class PluginError(UsageError):
    """A plugin could not be loaded, or two plugins clash."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(str(name), sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
