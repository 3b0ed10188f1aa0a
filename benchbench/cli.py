"""The ``benchbench`` command.

Exit codes, everywhere: 0 success; 1 the work ran but something failed; 2 bad input or
usage (one paragraph on stderr, no traceback; ``--debug`` or ``BENCHBENCH_DEBUG=1``
adds it); 130 interrupted (what finished is saved first).

Only the standard library and pluggy are imported at module level: ``--help`` and
argument errors must not pay for importing torch.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchbench import __version__
from benchbench.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, BenchbenchError, UsageError, did_you_mean

LIST_KINDS = ("models", "metrics", "datasets", "reporters", "executors", "plugins")
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    plugin_options = argparse.ArgumentParser(add_help=False)
    plugin_options.add_argument(  # also after the command: `benchbench run --debug s.yaml`
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors"
    )
    group = plugin_options.add_argument_group("plugins")
    group.add_argument(
        "-p", "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
        help="load a plugin module (importable name or path to a .py file); repeatable",
    )
    group.add_argument("--plugins-dir", metavar="DIR", help="load every *.py file in DIR as a plugin")

    parser = argparse.ArgumentParser(
        prog="benchbench",
        description="Benchmark PyTorch models and layers: params, FLOPs, latency, memory, side by side.",
        epilog="Exit codes: 0 ok, 1 a benchmark failed, 2 bad input, 130 interrupted. "
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
    run.add_argument(
        "--isolate", dest="executor", action="store_const", const="subprocess",
        help="each benchmark in its own process (--executor subprocess): a crash or hang costs only it",
    )
    run.add_argument(
        "--resume", metavar="RUN.json",
        help="finish an interrupted run: keep its records, run the missing benchmarks, update the file",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")

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
        return EXIT_USAGE
    try:
        return {"run": cmd_run, "list": cmd_list}[args.command](args)
    except BenchbenchError as exc:
        if debug:
            traceback.print_exc()
        print(f"benchbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug in benchbench or a plugin: say so plainly
        if debug:
            traceback.print_exc()
        print(
            f"benchbench: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _manager(args: argparse.Namespace) -> Any:
    from benchbench.plugins import PluginManager

    manager = PluginManager(args.plugins, args.plugins_dir)
    for note in manager.failure_notes():
        print(f"benchbench: warning: {note}; going on without it", file=sys.stderr)
    return manager


def _reporter(manager: Any, fmt: str) -> tuple[Any, dict[str, Any]]:
    """Resolve --format to a reporter and its options (a tabulate format means 'table')."""
    from benchbench.reporters import table_formats

    reporters = manager.registry.reporters
    if fmt in reporters:
        return reporters[fmt], {}
    if fmt in table_formats():
        return reporters["table"], {"tablefmt": fmt}
    raise UsageError(
        f"--format {fmt!r} is neither a reporter nor a table format{did_you_mean(fmt, [*reporters, *table_formats()])}; "
        f"reporters: {', '.join(sorted(reporters))}; table formats: {', '.join(table_formats())}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive whole number, got {args.batch_size}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a number of seconds above 0, got {args.timeout}")
    from benchbench.results import RunResult
    from benchbench.suite import SuiteText, read_suite_file

    # Before importing torch: a typo in a path or the YAML costs a fraction of a second.
    resume = RunResult.read_json(args.resume) if args.resume else None
    if args.suite is not None:
        data, _ = read_suite_file(args.suite)
        source: Any = args.suite
        suite_name = data.get("name") if isinstance(data.get("name"), str) else Path(args.suite).stem
    elif resume is not None:
        if not resume.suite_text:
            raise UsageError(f"{args.resume}: the run file keeps no suite text (it ran from a dict); give SUITE.yaml too")
        source, suite_name = SuiteText(resume.suite_text, f"{args.resume} (its suite)", resume.suite), resume.suite
    else:
        raise UsageError("benchbench run needs a SUITE.yaml (or --resume RUN.json); the ready ones are in suites/")
    if resume is not None and resume.complete:
        raise UsageError(f"--resume {args.resume}: that run is complete; nothing is missing")
    manager = _manager(args)
    reporter, options = _reporter(manager, args.format)
    if args.columns:
        options["columns"] = _columns(args.columns, manager)
    if args.json:
        path = Path(args.json)
    elif args.resume:
        path = Path(args.resume)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(args.out) / f"{safe_filename(suite_name)}-{stamp}.json"
    check_writable(path)
    given = {"device": args.device, "batch_size": args.batch_size, "timeout": args.timeout, "only": args.only,
             "executor": args.executor}
    replayed = {k: v for k, v in (resume.options if resume else {}).items() if given.get(k) is None and k in given}

    from benchbench.runner import run_suite

    run = run_suite(
        source, **{**given, **replayed}, manager=manager, quiet=args.quiet, out=path, resume=resume,
    )
    print(reporter.render(run, options))
    print(f"benchbench: run file written to {path}", file=sys.stderr)
    if not run.complete:
        print(f"benchbench: interrupted; `benchbench run --resume {path}` runs the rest", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if run.failed else EXIT_OK


def _columns(text: str, manager: Any) -> list[str]:
    """``--columns a,b``: record fields or registered metric fields (and their ``_ratio``)."""
    from benchbench.results import CORE_FIELDS

    known = set(CORE_FIELDS)
    for entry in manager.registry.entries("metrics"):
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


def safe_filename(name: str) -> str:
    """A suite name as a file name: no folders, nothing a shell or Windows would trip on."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "suite"


def check_writable(path: Path) -> None:
    """Fail before the run, not after an hour of it, when the run file cannot be written."""
    if path.is_dir():
        raise UsageError(f"run file {str(path)!r} is a folder; give a file name (--json FILE) or use --out DIR")
    folder = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not folder.is_dir():
        raise UsageError(f"cannot write the run file {str(path)!r}: {str(folder)!r} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the run file {str(path)!r}: folder {str(folder)!r} is not writable")


def cmd_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from benchbench.reporters import TABLE_ALIASES, table_formats

    if args.format not in table_formats():
        raise UsageError(f"--format {args.format!r} is not a table format{did_you_mean(args.format, table_formats())}")
    tablefmt = TABLE_ALIASES.get(args.format, args.format)
    manager = _manager(args)
    registry = manager.registry
    if args.kind == "plugins":
        rows = [[p.name, p.source, p.module, p.distribution or "-", p.version or "-", "loaded"] for p in manager.plugins]
        rows += [[f.name, f.source, f.module, f.distribution or "-", f.version or "-", f"FAILED: {f.error}"] for f in manager.failures]
        headers = ["plugin", "source", "module", "distribution", "version", "status"]
    elif args.kind == "models":
        rows = [[e.name, e.family or "-", e.plugin, e.description or "-"] for e in registry.entries("models")]
        headers = ["model", "family", "plugin", "description"]
    elif args.kind == "metrics":
        rows = [[e.name, ", ".join(e.fields), e.plugin, e.description or "-"] for e in registry.entries("metrics")]
        headers = ["metric", "fields", "plugin", "description"]
    elif args.kind == "datasets":
        rows = [[e.name, e.task, e.plugin, e.description or "-"] for e in registry.entries("datasets")]
        headers = ["dataset", "task", "plugin", "description"]
    else:  # reporters, executors: name, plugin, description
        singular = args.kind[:-1]
        rows = [[e.name, e.plugin, e.description or "-"] for e in registry.entries(args.kind)]
        headers = [singular, "plugin", "description"]
    if rows:
        print(tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True))
    else:
        print(f"no {args.kind} registered (plugins add them; `benchbench list plugins` shows what is loaded)")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
