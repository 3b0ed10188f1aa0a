"""The ``benchbench`` command.

Exit codes, everywhere (:class:`benchbench.errors.ExitCode`): 0 success; 1 the work ran
but a benchmark failed or a comparison found a regression; 2 bad input or usage (one
paragraph on stderr, no traceback; ``--debug`` or ``BENCHBENCH_DEBUG=1`` adds it); 3 an
internal error (a bug in benchbench or a plugin's hook); 130 interrupted (what finished
is saved first).

Only the standard library and pluggy are imported at module level: ``--help`` and
argument errors must not pay for importing torch.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import os
import re
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchbench import __version__
from benchbench.errors import BenchbenchError, ExitCode, UsageError, describe_exit_codes, did_you_mean

LIST_KINDS = ("models", "metrics", "datasets", "reporters", "executors", "plugins")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(  # also after the command: `benchbench run --debug s.yaml`
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )
    plugin_options = argparse.ArgumentParser(add_help=False, parents=[common])
    group = plugin_options.add_argument_group("plugins")
    group.add_argument(
        "-p", "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
        help="load a plugin module (importable name or path to a .py file); repeatable",
    )
    group.add_argument("--plugins-dir", metavar="DIR", help="load every *.py file in DIR as a plugin")

    parser = argparse.ArgumentParser(
        prog="benchbench",
        description="Benchmark PyTorch models and layers: params, FLOPs, latency, memory, side by side.",
        epilog=f"Exit codes: {describe_exit_codes()}. "
        "Set BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD=1 to load only built-ins and -p plugins.",
    )
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[plugin_options], help="run a suite file and print the comparative table",
        description="Run every benchmark of a suite file, print a table, and save the run file (JSON).",
    )
    run.add_argument("suite", metavar="SUITE.yaml", nargs="?", help="suite file (see suites/); optional with --resume")
    run.add_argument("--device", help="override every benchmark's device: auto, cpu, cuda or cuda:N")
    run.add_argument("--batch-size", type=int, metavar="N", help="override every benchmark's batch size (and cpu_batch_size)")
    run.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark; repeatable")
    run.add_argument("--out", default="results", metavar="DIR", help="folder for the run file (default: results/)")
    run.add_argument("--json", metavar="FILE", help="write the run file here instead of DIR/<suite>-<time>.json")
    run.add_argument(
        "--format", default="simple", metavar="FMT",
        help="table, csv, json, a plugin's reporter, or a tabulate format: simple (default), github, "
        "markdown, grid, ...",
    )
    run.add_argument(
        "--columns", metavar="F1,F2,...",
        help="table columns to show after the benchmark name (default: every metric field); see the fields in README",
    )
    run.add_argument("--timeout", type=float, metavar="S", help="seconds each benchmark may take (default 600; suite key 'timeout')")
    run.add_argument(
        "--executor", metavar="NAME",
        help="where benchmarks run: inline (default), subprocess, or a plugin's (benchbench list executors)",
    )
    run.add_argument("--address", metavar="ADDR", help="the Ray cluster for --executor ray (default: start a local one)")
    run.add_argument(
        "--isolate", dest="executor", action="store_const", const="subprocess",
        help="each benchmark in its own process (--executor subprocess): a crash or hang costs only it",
    )
    run.add_argument(
        "--resume", metavar="RUN.json",
        help="finish an interrupted run: keep its records, run the missing benchmarks, update the file",
    )
    run.add_argument(
        "--rounds", type=int, metavar="N",
        help="run the whole suite N times, interleaved, pooling the timed samples (suite key 'rounds')",
    )
    run.add_argument("--metrics", metavar="M1,M2", help="override every benchmark's metrics, e.g. params,flops")
    run.add_argument(
        "--history", metavar="FILE", help="history store to append the run to (default: DIR/history.sqlite)"
    )
    run.add_argument("--no-history", action="store_true", help="do not append the run to the history store")
    run.add_argument(
        "--profile", metavar="DIR",
        help="write a torch.profiler trace of each benchmark into DIR (open with: tensorboard --logdir DIR)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    run.add_argument(
        "-v", "--verbose", action="store_true",
        help="progress as lines even on a terminal, with each benchmark's warnings and training epochs",
    )

    compare = commands.add_parser(
        "compare", parents=[common], help="compare two runs: regressions, with statistics for timings",
        description="Compare a run with a baseline run, benchmark by benchmark and field by field. "
        "Exit 0 when nothing regressed, 1 when something did, 2 for bad input.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN.json", help="BASE.json NEW.json, or NEW.json with --baseline")
    compare.add_argument(
        "--baseline", metavar="WHICH",
        help="take the baseline from the history: latest, a git ref (main, HEAD~1, a hash), or a run file",
    )
    compare.add_argument(
        "--threshold", action="append", default=[], metavar="[BENCH:]FIELD=X%",
        help="allowed change: 5%% (all fields), latency=5%%, peak_memory_bytes=0%%, standard_3x3:latency_ms=10%%; "
        "repeatable (defaults: 0%% for params and FLOPs, 5%% otherwise)",
    )
    compare.add_argument("--alpha", type=float, default=None, metavar="P", help="significance level for timings (default 0.01)")
    compare.add_argument("--metrics", metavar="M1,M2", help="compare only these metrics or fields, e.g. params,flops")
    compare.add_argument("--history", default="results/history.sqlite", metavar="FILE", help="history store (default: %(default)s)")
    compare.add_argument("--allow-other-suite", action="store_true", help="compare runs of different suites by benchmark name")
    compare.add_argument(
        "--strict", action="store_true",
        help="exit 1 on any change, improvements too (for deterministic checks: a changed params or FLOP count "
        "is a changed model)",
    )
    compare.add_argument("--format", default="simple", metavar="FMT", help="simple (default), github/markdown, grid..., csv or json")

    report = commands.add_parser(
        "report", parents=[common], help="render run files: a self-contained HTML page with plots, or text tables",
        description="Render one or more run files side by side: --html FILE writes one self-contained page "
        "(table, bar charts, latency vs FLOPs, roofline, environment); otherwise a text table is printed.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN.json", help="run files (results/*.json)")
    report.add_argument("--html", metavar="FILE", help="write the HTML report here")
    report.add_argument("--title", help="title of the HTML page")
    report.add_argument("--format", default="simple", metavar="FMT", help="simple (default), github/markdown, grid..., csv or json")

    peak = commands.add_parser(
        "peak", parents=[common], help="measure the device's peak matmul FLOP/s and memory bandwidth (cached)",
        description="Measure the peak float32 matmul rate and copy bandwidth of a device, once; tables and "
        "reports then show each benchmark's fraction of it (peak_fraction) and the roofline.",
    )
    peak.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    peak.add_argument("--refresh", action="store_true", help="measure again even when a cached value exists")

    history = commands.add_parser(
        "history", parents=[common], help="show how a field changed over the stored runs",
        description="Show a field of every benchmark over the runs stored in the history file.",
    )
    history.add_argument("--history", default="results/history.sqlite", metavar="FILE", help="history store (default: %(default)s)")
    history.add_argument("--suite", help="only this suite's runs")
    history.add_argument("--benchmark", help="only this benchmark")
    history.add_argument("--metric", default="latency_ms", metavar="FIELD", help="field to show (default: latency_ms)")
    history.add_argument("--last", type=int, default=20, metavar="N", help="the last N runs (default 20)")
    history.add_argument("--format", default="simple", metavar="FMT", help="tabulate format")

    lister = commands.add_parser(
        "list", parents=[plugin_options], help="list registered models, metrics, datasets, reporters or plugins",
    )
    lister.add_argument("kind", nargs="?", default="models", choices=LIST_KINDS, metavar="{" + ",".join(LIST_KINDS) + "}")
    lister.add_argument("--format", default="simple", metavar="FMT", help="tabulate format (default: simple)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    debug = args.debug or os.environ.get("BENCHBENCH_DEBUG", "") not in ("", "0")
    if args.command is None:
        parser.print_help()
        return ExitCode.USAGE_ERROR
    try:
        commands = {"run": cmd_run, "list": cmd_list, "compare": cmd_compare, "history": cmd_history, "peak": cmd_peak,
                    "report": cmd_report}
        return commands[args.command](args)
    except BenchbenchError as exc:
        if debug:
            traceback.print_exc()
        print(f"benchbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchbench: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `benchbench ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # a bug in benchbench or a plugin: say so plainly
        if debug:
            traceback.print_exc()
        print(
            f"benchbench: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback; "
            "please report it)",
            file=sys.stderr,
        )
        return ExitCode.INTERNAL_ERROR


def _manager(args: argparse.Namespace) -> Any:
    from benchbench.manager import PluginManager

    manager = PluginManager(args.plugins, args.plugins_dir)
    for note in manager.failure_notes():
        print(f"benchbench: warning: {note}; going on without it", file=sys.stderr)
    return manager


def _reporter(manager: Any, fmt: str) -> tuple[Any, dict[str, Any]]:
    """Resolve --format to a reporter and its options (a tabulate format means 'table')."""
    from benchbench.registry import ReporterEntry
    from benchbench.reporters import table_formats

    reporters = manager.registry.table(ReporterEntry)
    if fmt in reporters:
        return reporters[fmt], {}
    if fmt in table_formats():
        return reporters["table"], {"tablefmt": fmt}
    hint = "; for the HTML report with plots: benchbench report RUN.json --html FILE" if "htm" in fmt.lower() else ""
    raise UsageError(
        f"--format {fmt!r} is neither a reporter nor a table format{did_you_mean(fmt, [*reporters, *table_formats()])}; "
        f"reporters: {', '.join(sorted(reporters))}; table formats: {', '.join(table_formats())}{hint}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive whole number, got {args.batch_size}")
    from benchbench.checks import MAX_TIMEOUT_S

    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"--timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {args.timeout}")
    from benchbench.results import RunResult
    from benchbench.suitefile import parse_suite_text, read_suite_file

    # Before importing torch: a typo in a path or the YAML costs a fraction of a second.
    resume = RunResult.read_json(args.resume) if args.resume else None
    suite_text = None
    if args.suite is not None:
        source = read_suite_file(args.suite)
        suite_text, suite_name = source.text, source.name
    elif resume is not None:
        if not resume.suite_text:
            raise UsageError(f"{args.resume}: the run file keeps no suite text (it ran from a dict); give SUITE.yaml too")
        source = parse_suite_text(resume.suite_text, f"{args.resume} (its suite)", stem=resume.suite)
        suite_name = resume.suite
    else:
        raise UsageError("benchbench run needs a SUITE.yaml (or --resume RUN.json); the ready ones are in suites/")
    if resume is not None and resume.complete:
        raise UsageError(f"--resume {args.resume}: that run is complete; nothing is missing")
    manager = _manager(args)
    reporter, options = _reporter(manager, args.format)
    if args.columns:
        options["columns"] = _columns(args.columns, manager)
    from benchbench.history import History
    from benchbench.outputs import check_folder, check_output, claim_new_file, exclusive, released_if_unused
    from benchbench.results import is_run_file

    # Every output is checked before the first benchmark: an hour of work must not end
    # in "cannot write".
    history = None if args.no_history else History(args.history or Path(args.out) / "history.sqlite")
    if history is not None:
        history.check_writable()
    if args.profile is not None:
        check_output_folder(args.profile, "--profile")
    given_path = args.json if args.json is not None else args.resume
    if given_path is not None:
        path = check_output(given_path, option="--json" if args.json is not None else "--resume", what="benchbench run file",
                            inputs=[args.suite] if args.suite else [], ours=is_run_file)
    else:
        check_folder(args.out, f"run files into --out {args.out!r}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    given = {"device": args.device, "batch_size": args.batch_size, "timeout": args.timeout, "only": args.only,
             "executor": args.executor, "rounds": args.rounds, "metrics": metrics}
    replayed = {k: v for k, v in (resume.options if resume else {}).items() if given.get(k) is None and k in given}
    if resume is not None:
        _check_resumable(resume, args, given, suite_name, suite_text)

    from benchbench.runner import Runner, RunOptions, prepare

    run_options = RunOptions(**{**given, **replayed}, profile=args.profile, quiet=args.quiet,
                             executor_options={"address": args.address} if args.address else None)
    suite = prepare(source, manager, run_options)  # every problem with the input, before anything is written
    _stop_on_terminate()
    if args.verbose:
        from benchbench import progress

        progress.set_style("verbose")
    with contextlib.ExitStack() as stack:
        if given_path is None:  # a name of its own, claimed atomically: two runs in one second keep both
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = stack.enter_context(released_if_unused(claim_new_file(args.out, f"{safe_filename(suite_name)}-{stamp}", ".json")))
        stack.enter_context(exclusive(path, "run file"))
        run = Runner(manager).run(suite, run_options, out=path, resume=resume)
    print(reporter.render(run, options))
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))
    say(f"benchbench: run file written to {path}")
    if history is not None:
        history.append(run, path)
        say(f"benchbench: appended to the history {history.path}")
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        from benchbench.reporters import render_table

        _step_summary(render_table(run, {**options, "tablefmt": "github"}))
    if not run.complete:
        print(f"benchbench: interrupted; `benchbench run --resume {path}` runs the rest", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if run.failed else ExitCode.OK


def cmd_compare(args: argparse.Namespace) -> int:
    from benchbench import stats
    from benchbench.compare import Thresholds, compare_runs, describe_change, render
    from benchbench.reporters import TABLE_ALIASES
    from benchbench.results import RunResult

    _check_format(args.format, "compare", data=True)
    alpha = stats.DEFAULT_ALPHA if args.alpha is None else args.alpha
    if not 0 < alpha < 0.5:
        raise UsageError(f"--alpha must be between 0 and 0.5, got {alpha}")
    thresholds = Thresholds.parse(args.threshold)
    if len(args.runs) == 2 and args.baseline is None:
        base, new = RunResult.read_json(args.runs[0]), RunResult.read_json(args.runs[1])
    elif len(args.runs) == 1 and args.baseline is not None:
        new = RunResult.read_json(args.runs[0])
        if Path(args.baseline).is_file():
            base = RunResult.read_json(args.baseline)
        else:
            from benchbench.history import History

            base = History(args.history).baseline(new.suite, args.baseline, before=new.environment.get("time"))
    else:
        raise UsageError("give BASE.json NEW.json, or NEW.json --baseline latest|<git ref>|<file>")
    fields = [f.strip() for f in args.metrics.split(",") if f.strip()] if args.metrics else None
    comparison = compare_runs(
        base, new, thresholds=thresholds, alpha=alpha, only_fields=fields, allow_other_suite=args.allow_other_suite,
        strict=args.strict,
    )
    if args.format in ("csv", "json"):
        from benchbench.compare import render_data

        print(render_data(comparison, args.format))
    else:
        print(render(comparison, TABLE_ALIASES.get(args.format, args.format)))
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        _step_summary(render(comparison, "github"))
    for row in comparison.regressions:
        print(f"benchbench: regression: {describe_change(row)}", file=sys.stderr)
    if comparison.judged_nothing:
        print("benchbench: compare judged nothing (every benchmark not comparable, failed or missing): failing",
              file=sys.stderr)
    return comparison.exit_code


def cmd_history(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchbench.history import History
    from benchbench.reporters import TABLE_ALIASES

    _check_format(args.format, "table")
    if args.last < 1:
        raise UsageError(f"--last must be a positive whole number, got {args.last}")
    store = History(args.history)
    runs = store.runs()
    if not runs:
        raise UsageError(f"history {args.history!r} holds no runs yet; `benchbench run` appends each run to it")
    suites = sorted({r["suite"] for r in runs})
    if args.suite is not None and args.suite not in suites:
        raise UsageError(f"--suite {args.suite!r}: no runs of it in {args.history}{did_you_mean(args.suite, suites)}; "
                         f"suites there: {', '.join(suites)}")
    if args.suite is None and len(suites) > 1:  # a benchmark name means one thing within one suite only
        args.suite = runs[-1]["suite"]
        print(f"benchbench: showing suite {args.suite!r}, the latest run's (--suite to choose: {', '.join(suites)})",
              file=sys.stderr)
    if args.metric not in store.fields():
        raise UsageError(f"--metric {args.metric!r}: no such field in {args.history}{did_you_mean(args.metric, store.fields())}")
    if args.benchmark is not None and args.benchmark not in store.benchmarks():
        raise UsageError(f"--benchmark {args.benchmark!r}: not in {args.history}{did_you_mean(args.benchmark, store.benchmarks())}")
    points = store.trend(args.suite, args.metric, args.benchmark)
    run_complete = {r["id"]: bool(r["complete"]) for r in runs}
    run_ids = list(dict.fromkeys(p["id"] for p in points))[-args.last:]
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
            cells.append(f"{_value_text(args.metric, value)}{change}")
            previous[bench] = value
        commit = (info[run_id]["git_commit"] or "")[:8] or "-"
        complete = "" if run_complete.get(run_id, True) else " (incomplete)"
        rows.append([run_id, info[run_id]["time"] + complete, commit, info[run_id]["suite"], *cells])
    headers = ["run", "time", "commit", "suite", *benchmarks]
    print(f"{args.metric} over the last {len(run_ids)} run(s) in {args.history} (change from the previous run in brackets)")
    print(tabulate(rows, headers=headers, tablefmt=TABLE_ALIASES.get(args.format, args.format), disable_numparse=True))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from benchbench.results import RunResult

    _check_format(args.format, "report", data=True)
    if args.html:
        html_path = _check_html_output(args.html, args.runs)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("the HTML report draws its plots with matplotlib: pip install 'torch-benchbench[report]'") from None
    runs = [RunResult.read_json(path) for path in args.runs]
    if args.html:
        from benchbench.outputs import atomic_write_text
        from benchbench.report import render_html

        atomic_write_text(html_path, render_html(runs, args.title), what="HTML report")
        print(f"benchbench: report written to {html_path} ({html_path.stat().st_size // 1024} KiB, self-contained)", file=sys.stderr)
        return ExitCode.OK
    if args.format in ("csv", "json"):
        from benchbench.report import render_data

        print(render_data(runs, args.format))
        return ExitCode.OK
    from benchbench.report import render_text

    print(render_text(runs, args.format))
    return ExitCode.OK


def _check_html_output(html: str, runs: list[str]) -> Path:
    """``--html FILE``: an .html name that is none of the inputs and replaces only an earlier report."""
    from benchbench.outputs import check_output
    from benchbench.report import is_html_report

    if Path(html).suffix.lower() not in (".html", ".htm"):
        raise UsageError(
            f"--html {html!r}: the report's file name must end in .html (did the shell put a run file right "
            "after --html? write the name first: benchbench report --html report.html results/*.json)"
        )
    return check_output(html, option="--html", what="benchbench HTML report", inputs=runs, ours=is_html_report)


def cmd_peak(args: argparse.Namespace) -> int:
    from benchbench import peak
    from benchbench.runner import resolve_device
    from benchbench.checks import FIELD_CHECKS

    _, problem = FIELD_CHECKS["device"](args.device)
    if problem:
        raise UsageError(f"--device {problem}")
    device = str(resolve_device(args.device))
    entry = None if args.refresh else peak.load(device)
    if entry is None:
        print(f"benchbench: measuring the peak of {device} (a few seconds)...", file=sys.stderr)
        entry = peak.measure(device)
        where = f"cached in {peak.cache_path()}"
    else:
        where = f"from the cache {peak.cache_path()} (measured {entry['time']}; --refresh to measure again)"
    ridge = entry["matmul_flops"] / entry["bandwidth_bytes_per_s"]
    print(f"device {device} ({entry['name']}): matmul {entry['matmul_flops'] / 1e9:.1f} GFLOP/s "
          f"(float32, {entry['matmul_size']}x{entry['matmul_size']}, 2 FLOPs per multiply-add), "
          f"copy bandwidth {entry['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; ridge point {ridge:.1f} FLOP/byte")
    print(f"benchbench: {where}", file=sys.stderr)
    return ExitCode.OK


def _value_text(field: str, value: float) -> str:
    """A history value formatted as tables format it (by the field's name)."""
    from benchbench.reporters import format_cell

    return format_cell({}, field, int(value) if float(value).is_integer() and abs(value) >= 1000 else value)


def _check_format(fmt: str, kind: str, *, data: bool = False) -> None:
    """``--format`` of list, history (table formats) and compare, report (also csv, json)."""
    from benchbench.reporters import table_formats

    formats = [*table_formats(), *(("csv", "json") if data else ())]
    if fmt not in formats:
        hint = "; csv, json or a table format (simple, github, grid...)" if data else ""
        raise UsageError(f"--format {fmt!r} is not a {kind} format{did_you_mean(fmt, formats)}{hint}")


def _step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary (the file $GITHUB_STEP_SUMMARY names)."""
    try:
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n\n")
    except OSError as exc:
        print(f"benchbench: warning: cannot write the job summary: {exc}", file=sys.stderr)


def _columns(text: str, manager: Any) -> list[str]:
    """``--columns a,b``: record fields or registered metric fields (and their ``_ratio``)."""
    from benchbench.results import CORE_FIELDS

    from benchbench.derived import FIELDS as DERIVED

    known = set(CORE_FIELDS) | set(DERIVED)
    from benchbench.registry import MetricEntry

    for entry in manager.registry.entries(MetricEntry):
        known.update(entry.fields)
        known.update(f"{f}_ratio" for f in entry.ratio_fields)
    columns = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in columns if c not in known]
    if unknown or not columns:
        bad = unknown[0] if unknown else text
        raise UsageError(
            f"--columns: {bad!r} is not a table field{did_you_mean(bad, known)}; fields: {', '.join(sorted(known))}"
        )
    return columns


def _check_resumable(
    resume: Any, args: argparse.Namespace, given: dict[str, Any], suite_name: str, suite_text: str | None
) -> None:
    """A resumed run finishes the same measurement: same suite text, same options.

    Changing what is measured (device, batch size, metrics, selection, rounds) would mix
    incomparable records in one file; the timeout and the executor may change.
    ``suite_text`` is the SUITE.yaml given beside ``--resume`` (None without one).
    """
    for key in ("device", "batch_size", "metrics", "only", "rounds"):
        if given.get(key) is not None and given[key] != resume.options.get(key):
            was = f"{key} {resume.options[key]!r}" if key in resume.options else f"no --{key.replace('_', '-')}"
            raise UsageError(
                f"--resume: the run was made with {was}, not {given[key]!r}; "
                "a resumed run keeps its options (start a new run to change them)"
            )
    if suite_text is not None:
        if suite_name != resume.suite:
            raise UsageError(f"--resume: {args.resume} is a run of suite {resume.suite!r}, and {args.suite} is suite {suite_name!r}")
        if resume.suite_text is not None and suite_text != resume.suite_text:
            raise UsageError(
                f"--resume: {args.suite} has changed since the run was made; resume with the run file alone "
                f"(benchbench run --resume {args.resume}, which uses the suite it keeps) or start a new run"
            )


def _stop_on_terminate() -> None:
    """SIGTERM and SIGHUP (a CI job cancelled, an ssh session dropped) stop a run as Ctrl-C
    does: what finished is saved, the run file is marked incomplete, workers are killed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), interrupt)


def safe_filename(name: str) -> str:
    """A suite name as a file name: no folders, nothing a shell or Windows would trip on."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "suite"


def check_output_folder(folder: str, option: str) -> None:
    """A folder an option names for files benchbench adds (traces): not a file, writable."""
    from benchbench.outputs import check_folder

    if Path(folder).exists() and not Path(folder).is_dir():
        raise UsageError(f"{option} {folder!r} is a file; give a folder")
    check_folder(folder, f"into {option} {folder!r}")


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchbench.registry import BY_PLURAL, DatasetEntry, MetricEntry, ModelEntry

    from benchbench.reporters import TABLE_ALIASES

    _check_format(args.format, "table")
    tablefmt = TABLE_ALIASES.get(args.format, args.format)
    manager = _manager(args)
    registry = manager.registry
    if args.kind == "plugins":
        rows = [[p.name, p.source, p.module, p.distribution or "-", p.version or "-", "loaded"] for p in manager.plugins]
        rows += [[f.name, f.source, f.module, f.distribution or "-", f.version or "-", f"FAILED: {f.error}"] for f in manager.failures]
        headers = ["plugin", "source", "module", "distribution", "version", "status"]
    elif args.kind == "models":
        rows = [[e.name, e.family or "-", e.plugin, e.description or "-"] for e in registry.entries(ModelEntry)]
        headers = ["model", "family", "plugin", "description"]
    elif args.kind == "metrics":
        rows = [[e.name, ", ".join(e.fields), e.plugin, e.description or "-"] for e in registry.entries(MetricEntry)]
        headers = ["metric", "fields", "plugin", "description"]
    elif args.kind == "datasets":
        rows = [[e.name, e.task, e.plugin, e.description or "-"] for e in registry.entries(DatasetEntry)]
        headers = ["dataset", "task", "plugin", "description"]
    else:  # reporters, executors: name, plugin, description
        singular = args.kind[:-1]
        rows = [[e.name, e.plugin, e.description or "-"] for e in registry.entries(BY_PLURAL[args.kind])]
        headers = [singular, "plugin", "description"]
    if rows:
        print(tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True))
    else:
        print(f"no {args.kind} registered (plugins add them; `benchbench list plugins` shows what is loaded)")
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
