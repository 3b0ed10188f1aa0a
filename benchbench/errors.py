"""Exit codes, and the errors that reach the user as a message and an exit code, never a traceback.

``UsageError`` (exit 2) means the input was wrong: a missing file, a YAML error, an
unknown name. It carries everything needed to fix it in one paragraph. The CLI catches
it at the top and prints ``str(error)``; ``--debug`` shows the traceback too.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable


class ExitCode(enum.IntEnum):
    """What every ``benchbench`` command exits with, so that CI can tell a slower model from a crash.

    After pytest's ``ExitCode``: one enum, used by every command, listed in ``--help``.
    """

    OK = 0
    """Everything ran, nothing failed or regressed."""
    FAILED = 1
    """The work ran, but a benchmark failed or a comparison found a regression."""
    USAGE_ERROR = 2
    """Bad input or usage: a missing file, a YAML error, an unknown name (one paragraph on stderr)."""
    INTERNAL_ERROR = 3
    """A bug in benchbench or in a plugin's hook (not in a benchmark's model or metric)."""
    INTERRUPTED = 130
    """Ctrl-C, SIGTERM or SIGHUP; what finished is saved first."""


def describe_exit_codes() -> str:
    """One line per exit code, for ``--help`` and the README."""
    words = {
        ExitCode.OK: "ok",
        ExitCode.FAILED: "a benchmark failed or a regression was found",
        ExitCode.USAGE_ERROR: "bad input or usage",
        ExitCode.INTERNAL_ERROR: "internal error (a bug in benchbench or a plugin's hook)",
        ExitCode.INTERRUPTED: "interrupted (what finished is saved)",
    }
    return ", ".join(f"{int(code)} {words[code]}" for code in ExitCode)


class BenchbenchError(Exception):
    """Base of benchbench's own errors."""

    exit_code = ExitCode.FAILED


class UsageError(BenchbenchError):
    """Bad input: the message says what, where, and how to fix it."""

    exit_code = ExitCode.USAGE_ERROR


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


SIMILARITY = 0.7
"""How alike (difflib's ratio) a name must be to be suggested: typos ('depthwise_seperable',
'batchsize', 'gird') pass; different names that share a prefix ('squeeze_excite',
'squeezenet1_1') do not. Short names pass with one edit instead ('spe' for 'sep')."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest choice, or ``""`` if none is close."""
    name = str(name)
    candidates = difflib.get_close_matches(name, sorted(set(choices)), n=3, cutoff=0.5)
    close = [c for c in candidates if difflib.SequenceMatcher(None, name, c).ratio() >= SIMILARITY or _edits(name, c) <= 1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _edits(a: str, b: str) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        row = [i]
        for j, y in enumerate(b, start=1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, previous2[j - 2] + 1)
            row.append(cost)
        previous2, previous = previous, row
    return previous[-1]
