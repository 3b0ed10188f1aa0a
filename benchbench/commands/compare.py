"""``benchbench compare``: is a run worse than its baseline? Exit 1 when it is (see :mod:`benchbench.compare`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from benchbench.commands.common import check_format, reject_extra, step_summary
from benchbench.errors import ExitCode, UsageError
from benchbench.outputs import default_history

if TYPE_CHECKING:
    from benchbench.compare import Comparison


def _alpha(text: str) -> float:
    """``--alpha``: a significance level between 0 and 0.5."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5, got {text}")
    return value


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    compare = commands.add_parser(
        "compare", parents=parents, help="compare two runs: regressions, with statistics for timings",
        description="Compare a run with a baseline run, benchmark by benchmark and field by field. "
        "Exit 0 when nothing regressed, 1 when something did (or nothing could be compared), 2 for bad input.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN.json", help="BASE.json NEW.json, or NEW.json with --baseline")
    compare.add_argument("--baseline", metavar="WHICH",
                         help="take the baseline from the history: latest, a git ref (main, HEAD~1, a hash), or a run file")
    compare.add_argument(
        "--threshold", action="append", default=[], metavar="[BENCH:]FIELD=X%",
        help="allowed change: 5%% (all fields), latency=5%%, peak_memory_bytes=0%%, standard_3x3:latency_ms=10%%; "
        "repeatable (defaults: 0%% for params and FLOPs, 5%% otherwise)",
    )
    compare.add_argument("--alpha", type=_alpha, default=None, metavar="P", help="significance level for timings (default 0.01)")
    compare.add_argument("--metrics", metavar="M1,M2", help="compare only these metrics or fields, e.g. params,flops")
    compare.add_argument("--history", default=str(default_history()), metavar="FILE", help="history store (default: %(default)s)")
    compare.add_argument("--allow-other-suite", action="store_true", help="compare runs of different suites by benchmark name")
    compare.add_argument(
        "--strict", action="store_true",
        help="exit 1 on any change, improvements too (for deterministic checks: a changed params or FLOP count is a "
        "changed model); timing verdicts may then rest on fewer than 3 rounds",
    )
    compare.add_argument("--format", default="simple", metavar="FMT", help="simple (default), github/markdown, grid..., csv or json")
    return compare


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench import stats
    from benchbench.compare import Thresholds, compare_runs

    reject_extra(extra, "compare")
    check_format(args.format, "compare", data=True)
    thresholds = Thresholds.parse(args.threshold)
    base, new = _runs(args)
    fields = [f.strip() for f in args.metrics.split(",") if f.strip()] if args.metrics else None
    comparison = compare_runs(
        base, new, thresholds=thresholds, alpha=stats.DEFAULT_ALPHA if args.alpha is None else args.alpha,
        only_fields=fields, allow_other_suite=args.allow_other_suite, strict=args.strict,
    )
    return report(comparison, args.format)


def report(comparison: Comparison, fmt: str, lines: Sequence[str] = ()) -> ExitCode:
    """A comparison shown as ``compare`` and ``ab`` show it: the job summary first (saved before
    the table, which may go to a reader that leaves), the table on stdout, ``lines``, then each
    regression on stderr; the comparison's exit code."""
    from benchbench.compare import describe_change, render, render_data
    from benchbench.outputs import emit
    from benchbench.reporters import TABLE_ALIASES

    step_summary(render(comparison, "github"))
    emit(render_data(comparison, fmt) if fmt in ("csv", "json") else render(comparison, TABLE_ALIASES.get(fmt, fmt)))
    for line in lines:
        print(line, file=sys.stderr)
    for row in comparison.regressions:
        print(f"benchbench: regression: {describe_change(row)}", file=sys.stderr)
    if comparison.judged_nothing:
        print("benchbench: compare judged nothing (every benchmark not comparable, failed or missing): failing",
              file=sys.stderr)
    return comparison.exit_code


def _runs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(base, new): two run files, or a new one and a baseline from a file or the history."""
    from benchbench.results import RunResult

    if len(args.runs) == 2 and args.baseline is None:
        if os.path.realpath(args.runs[0]) == os.path.realpath(args.runs[1]):
            print(f"benchbench: warning: comparing {args.runs[0]!r} with itself, which cannot show a change. "
                  "Did you mean another file, or `--baseline REF` (from the history)?", file=sys.stderr)
        return RunResult.read_json(args.runs[0]), RunResult.read_json(args.runs[1])
    if len(args.runs) == 1 and args.baseline is not None:
        from benchbench.history import load_baseline

        new = RunResult.read_json(args.runs[0])
        return load_baseline(args.baseline, new.suite, args.history, before=new.environment.get("time")), new
    raise UsageError("give BASE.json NEW.json, or NEW.json --baseline latest|<git ref>|<file>")
