"""``benchbench history``: one field of every benchmark over the runs in the history store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchbench import checks
from benchbench.commands.common import check_format, reject_extra
from benchbench.errors import ExitCode, UsageError, did_you_mean
from benchbench.outputs import default_history


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    history = commands.add_parser(
        "history", parents=parents, help="show how a field changed over the stored runs",
        description="Show a field of every benchmark over the runs stored in the history file.",
    )
    history.add_argument("--history", default=str(default_history()), metavar="FILE", help="history store (default: %(default)s)")
    history.add_argument("--suite", help="only this suite's runs")
    history.add_argument("--benchmark", help="only this benchmark")
    history.add_argument("--metric", default="latency_ms", metavar="FIELD", help="field to show (default: latency_ms)")
    history.add_argument("--last", type=checks.argparse_type(checks.positive_int, int), default=20, metavar="N",
                         help="the last N runs (default 20)")
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
    headers, rows = trend_table(store, suite, args.metric, args.benchmark, args.last)
    from benchbench.outputs import emit

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
