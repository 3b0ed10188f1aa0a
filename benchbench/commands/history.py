"""``benchbench history``: one field of every benchmark over the runs in the history store.

The table shows each run's value and its change from the run before; ``--changes`` reads
each benchmark's whole series instead and names the runs (and commits) where its level
stepped, and by how much (:mod:`benchbench.changepoints`): a slowdown that crept in over
three commits, or one hidden in a noisy timing, shows there as one step.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchbench import checks
from benchbench.commands.common import check_format, reject_extra
from benchbench.errors import ExitCode, UsageError, did_you_mean
from benchbench.outputs import default_history

DEFAULT_LAST = 20


def _fraction(text: str) -> float:
    """``--min-change``: 5% or 0.05."""
    value, problem = checks.parse_threshold(text)
    if problem or value is None:
        raise argparse.ArgumentTypeError(problem or f"expected a percentage, got {text!r}")
    return value


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    history = commands.add_parser(
        "history", parents=parents, help="show how a field changed over the stored runs",
        description="Show a field of every benchmark over the runs stored in the history file.",
    )
    history.add_argument("--history", default=str(default_history()), metavar="FILE", help="history store (default: %(default)s)")
    history.add_argument("--suite", help="only this suite's runs")
    history.add_argument("--benchmark", help="only this benchmark")
    history.add_argument("--metric", default="latency_ms", metavar="FIELD", help="field to show (default: latency_ms)")
    history.add_argument("--last", type=checks.argparse_type(checks.positive_int, int), default=None, metavar="N",
                         help=f"the last N runs (default {DEFAULT_LAST}; with --changes: every run)")
    history.add_argument("--changes", action="store_true",
                         help="the steps in each benchmark's series instead: the run and commit where its level changed, "
                         "and by how much (a step detector, as asv has)")
    history.add_argument("--min-change", type=_fraction, default=0.0, metavar="X%",
                         help="with --changes: leave out steps smaller than this (default: every step found)")
    history.add_argument("--format", default="simple", metavar="FMT", help="tabulate format")
    return history


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from tabulate import tabulate

    from benchbench.history import History
    from benchbench.reporters import TABLE_ALIASES

    reject_extra(extra, "history")
    check_format(args.format, "table")
    store = History(args.history)
    suite = _suite(store, args)
    if args.metric not in store.fields():
        raise UsageError(f"--metric {args.metric!r}: no such field in {args.history}{did_you_mean(args.metric, store.fields())}")
    if args.benchmark is not None and args.benchmark not in store.benchmarks():
        raise UsageError(f"--benchmark {args.benchmark!r}: not in {args.history}{did_you_mean(args.benchmark, store.benchmarks())}")
    from benchbench.outputs import emit

    if args.changes:
        emit(changes_table(store, suite, args.metric, args.benchmark, args.last, args.min_change,
                           TABLE_ALIASES.get(args.format, args.format)))
        return ExitCode.OK
    headers, rows = trend_table(store, suite, args.metric, args.benchmark, args.last or DEFAULT_LAST)
    emit(f"{args.metric} over the last {len(rows)} run(s) in {args.history} (change from the previous run in brackets)\n"
         + tabulate(rows, headers=headers, tablefmt=TABLE_ALIASES.get(args.format, args.format), disable_numparse=True))
    return ExitCode.OK


def _suite(store: Any, args: argparse.Namespace) -> str | None:
    """The suite to show: --suite, else the latest run's when the history holds several (a
    benchmark name means one thing within one suite only)."""
    runs = store.runs()
    if not runs:
        raise UsageError(f"history {args.history!r} holds no runs yet; `benchbench run` appends each run to it")
    suites = sorted({r["suite"] for r in runs})
    if args.suite is not None and args.suite not in suites:
        raise UsageError(f"--suite {args.suite!r}: no runs of it in {args.history}{did_you_mean(args.suite, suites)}; "
                         f"suites there: {', '.join(suites)}")
    if args.suite is None and len(suites) > 1:
        print(f"benchbench: showing suite {runs[-1]['suite']!r}, the latest run's (--suite to choose: {', '.join(suites)})",
              file=sys.stderr)
        return runs[-1]["suite"]
    return args.suite


def trend_table(store: Any, suite: str | None, field: str, benchmark: str | None, last: int) -> tuple[list[str], list[list[str]]]:
    """One row per run (the last ``last``), one column per benchmark: the value and its change from the previous run."""
    from benchbench.formatting import format_value

    complete = {r["id"]: bool(r["complete"]) for r in store.runs()}
    points = store.trend(suite, field, benchmark)
    run_ids = list(dict.fromkeys(p["id"] for p in points))[-last:]
    benchmarks = list(dict.fromkeys(p["benchmark"] for p in points))
    values = {(p["id"], p["benchmark"]): p["value"] for p in points}
    info = {p["id"]: p for p in points}
    rows = []
    previous: dict[str, float] = {}
    for run_id in run_ids:
        cells = []
        for bench in benchmarks:
            value = values.get((run_id, bench))
            if value is None:
                cells.append("-")
                continue
            change = f" ({value / previous[bench] - 1:+.1%})" if previous.get(bench) else ""
            cells.append(format_value(field, int(value) if float(value).is_integer() else value) + change)
            previous[bench] = value
        commit = (info[run_id]["git_commit"] or "")[:8] or "-"
        when = info[run_id]["time"] + ("" if complete.get(run_id, True) else " (incomplete)")
        rows.append([str(run_id), when, commit, info[run_id]["suite"], *cells])
    return ["run", "time", "commit", "suite", *benchmarks], rows


def changes_table(store: Any, suite: str | None, field: str, benchmark: str | None, last: int | None,
                  min_change: float, tablefmt: str) -> str:
    """The steps of each benchmark's series of ``field`` (over the last ``last`` runs, or all):
    one row per step, with the run, time and commit where the new level starts."""
    from tabulate import tabulate

    from benchbench.changepoints import find_steps
    from benchbench.formatting import format_value

    points = store.trend(suite, field, benchmark)
    run_ids = list(dict.fromkeys(p["id"] for p in points))
    kept = set(run_ids[-last:] if last else run_ids)
    series: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        if point["id"] in kept and point["value"] is not None:
            series.setdefault(point["benchmark"], []).append(point)
    def shown(value: float) -> str:
        return format_value(field, int(value) if float(value).is_integer() else value)

    rows, quiet = [], []
    for name, runs in series.items():
        steps = find_steps([p["value"] for p in runs], min_change=min_change)
        if not steps:
            quiet.append(name)
        for step in steps:
            at = runs[step.index]
            change = f"{step.ratio - 1:+.1%}" if step.ratio is not None else f"{step.after - step.before:+g}"
            rows.append([name, str(at["id"]), at["time"], (at["git_commit"] or "")[:10] or "-",
                         shown(step.before), shown(step.after), change])
    title = (f"steps in {field} over {len(kept)} run(s) in the history (the run, time and commit where each new level "
             "starts; levels are medians)")
    body = (tabulate(rows, headers=["benchmark", "run", "time", "commit", "before", "after", "change"], tablefmt=tablefmt,
                     disable_numparse=True) if rows else "(no steps)")
    lines = [title, body]
    if quiet:
        lines.append(f"no step in: {', '.join(quiet)}")
    lines.append("steps: a piecewise-constant fit of the log values, penalised by the series' own noise "
                 "(benchbench.changepoints); a noisy series needs 3 runs at a new level")
    return "\n".join(lines)
