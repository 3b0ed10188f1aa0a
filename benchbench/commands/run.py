"""``benchbench run``: run a suite, print its table, keep its run file and history.

In order: read the inputs (the suite file, a run file to resume: a typo costs a fraction
of a second, before torch loads), load the plugins and their options, check every
output (run file, history, trace folder) before the first benchmark, make the run's
:class:`~benchbench.config.Config`, validate the suite once (:func:`benchbench.suiterunner.prepare`),
claim the run file's name, run, and report.

Until the table is printed, stdout goes to stderr (:func:`benchbench.outputs.stdout_to_stderr`):
a plugin or a model that prints cannot corrupt ``--format csv`` or ``json``. At the end
everything is saved first (the run file, the history, the job summary) and the table is
printed last, so that a reader that left (``| head``) loses nothing and changes no exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench import checks
from benchbench.commands.common import add_plugin_arguments, load_plugins, reject_extra, step_summary
from benchbench.errors import BenchbenchError, ExitCode, PluginError, UsageError, did_you_mean
from benchbench.outputs import DEFAULT_FOLDER, HISTORY_NAME

if TYPE_CHECKING:
    from benchbench.manager import PluginManager
    from benchbench.results import RunResult
    from benchbench.suitefile import SuiteDocument


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    run = commands.add_parser(
        "run", parents=parents, help="run a suite file and print the comparative table",
        description="Run every benchmark of a suite file, print a table, and save the run file (JSON).",
    )
    add_arguments(run)
    return run


def add_arguments(run: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The core options of ``run`` (plugins add theirs with ``benchbench_addoption``)."""
    run.add_argument("suite", metavar="SUITE.yaml", nargs="?", help="suite file (see suites/); optional with --resume")
    run.add_argument("--device", type=checks.argparse_type(checks.device),
                     help="override every benchmark's device: auto, cpu, cuda or cuda:N")
    run.add_argument("--batch-size", type=checks.argparse_type(checks.positive_int, int), metavar="N",
                     help="override every benchmark's batch size (and cpu_batch_size)")
    run.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark; repeatable")
    run.add_argument("--out", default=DEFAULT_FOLDER, metavar="DIR", help=f"folder for the run file (default: {DEFAULT_FOLDER}/)")
    run.add_argument("--json", metavar="FILE", help="write the run file here instead of DIR/<suite>-<time>.json")
    run.add_argument(
        "--format", default="simple", metavar="FMT",
        help="table, csv, json, a plugin's reporter, or a tabulate format: simple (default), github, markdown, grid, ...",
    )
    run.add_argument(
        "--columns", metavar="F1,F2,...",
        help="table columns to show after the benchmark name (default: every metric field); `benchbench list fields` "
        "shows them",
    )
    run.add_argument("--timeout", type=checks.argparse_type(checks.timeout, float), metavar="S",
                     help="seconds each benchmark may take (default 600; suite key 'timeout')")
    run.add_argument("--executor", metavar="NAME",
                     help="where benchmarks run: inline (default), subprocess, or a plugin's (benchbench list executors)")
    run.add_argument("--isolate", dest="executor", action="store_const", const="subprocess",
                     help="each benchmark in its own process (--executor subprocess): a crash or hang costs only it")
    run.add_argument("--resume", metavar="RUN.json",
                     help="finish an interrupted run: keep its records, run the missing benchmarks, update the file")
    run.add_argument("--rounds", type=checks.argparse_type(checks.rounds, int), metavar="N",
                     help="run the whole suite N times, interleaved, pooling the timed samples (suite key 'rounds')")
    run.add_argument("--metrics", metavar="M1,M2", help="override every benchmark's metrics, e.g. params,flops")
    run.add_argument("--history", metavar="FILE", help=f"history store to append the run to (default: DIR/{HISTORY_NAME})")
    run.add_argument("--no-history", action="store_true", help="do not append the run to the history store")
    run.add_argument("--profile", metavar="DIR",
                     help="write a torch.profiler trace of each benchmark into DIR (open with: tensorboard --logdir DIR)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="progress as lines even on a terminal, with each benchmark's warnings and training epochs")
    add_plugin_arguments(run)
    return run


def add_plugin_options(parser: argparse.ArgumentParser, manager: PluginManager) -> None:
    """Let each plugin add its options (``benchbench_addoption``) to ``parser``, one plugin at a
    time, so that an option whose name is taken names the plugin that tried to add it."""
    group = parser.add_argument_group("options from plugins")
    for impl in manager.hook.benchbench_addoption.get_hookimpls():
        try:
            impl.function(parser=group)
        except argparse.ArgumentError as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} adds an option that is taken: {exc}") from None


def plugin_options(manager: PluginManager, extra: list[str]) -> dict[str, Any]:
    """The values of the plugins' options among the arguments the core parser left over."""
    add_plugin_options(add_arguments(argparse.ArgumentParser(add_help=False)), manager)  # a clash with a core option
    parser = argparse.ArgumentParser(prog="benchbench run", add_help=False)
    add_plugin_options(parser, manager)
    try:
        values, rest = parser.parse_known_args(extra)
    except SystemExit:  # argparse has printed its message: a bad value for a plugin's option
        raise UsageError("bad value for an option a plugin added (see above and `benchbench run --help`)") from None
    reject_extra(rest, "run")
    return vars(values)



def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench.outputs import stdout_to_stderr

    with stdout_to_stderr():  # what plugins and models print must not mix with the table
        source, suite_name, resume = _read_inputs(args)
        manager = load_plugins(args)
        options = plugin_options(manager, extra)
        reporter, report_options = _reporter(manager, args.format)
        if args.columns:
            report_options["columns"] = _columns(args.columns, manager)
        history, given_path = _check_outputs(args, suite_name, resume)
        config = _config(args, manager, resume, options)

        from benchbench.outputs import claimed_run_file, exclusive
        from benchbench.reporters import render_table
        from benchbench.suiterunner import SuiteRunner, prepare

        suite = prepare(source, config)  # every problem with the input, before anything is written
        with contextlib.ExitStack() as stack:
            if given_path is None:  # a name of its own, claimed atomically: two runs in one second keep both
                path = stack.enter_context(claimed_run_file(args.out, suite_name))
            else:
                path = given_path
                stack.enter_context(exclusive(path, "run file"))
            run = SuiteRunner(config).run(suite, out=path, resume=resume)
        if not run.records:
            table = summary = ""
        else:
            table = reporter.render(run, report_options)
            summary = render_table(run, {**report_options, "tablefmt": "github"})
    return _report(run, path, history, table, summary, quiet=args.quiet, resume_with=_resume_command(args, path))


def _resume_command(args: argparse.Namespace, path: Path) -> str:
    """The command that finishes this run if it is interrupted: the run file, and what it needs
    that the file does not keep (the plugins given on the command line, a history of its own)."""
    import shlex

    words = ["benchbench", "run", "--resume", str(path)]
    for plugin in args.plugins:
        words += ["-p", plugin]
    if args.plugins_dir:
        words += ["--plugins-dir", args.plugins_dir]
    if args.no_history:
        words.append("--no-history")
    elif args.history:
        words += ["--history", args.history]
    return shlex.join(words)


def _read_inputs(args: argparse.Namespace) -> tuple[SuiteDocument, str, RunResult | None]:
    """The suite (from its file, or the copy a resumed run file keeps) and the run to resume, if any."""
    from benchbench.compare import PAIRING_KEY
    from benchbench.results import RunResult
    from benchbench.suitefile import parse_suite_text, read_suite_file

    resume = RunResult.read_json(args.resume) if args.resume else None
    if resume is not None and resume.complete:
        raise UsageError(f"--resume {args.resume}: that run is complete; nothing is missing")
    if resume is not None and resume.environment.get(PAIRING_KEY):
        raise UsageError(f"--resume {args.resume}: that file is one side of a benchbench ab job, whose pairs --resume "
                         "cannot continue; run benchbench ab again")
    if args.suite is not None:
        source = read_suite_file(args.suite)
    elif resume is not None:
        if not resume.suite_text:
            raise UsageError(f"{args.resume}: the run file keeps no suite text (it ran from a dict); give SUITE.yaml too")
        source = parse_suite_text(resume.suite_text, f"{args.resume} (its suite)", stem=resume.suite)
    else:
        raise UsageError("benchbench run needs a SUITE.yaml (or --resume RUN.json); the ready ones are in suites/")
    return source, source.name if args.suite is not None else resume.suite, resume  # type: ignore[union-attr]


def _check_outputs(args: argparse.Namespace, suite_name: str, resume: RunResult | None) -> tuple[Any, Path | None]:
    """Every output, checked before the first benchmark by really creating what it needs (a
    folder, a file, removed again): an hour of work must not end in "cannot write".

    Returns the history (None with --no-history) and the run file's path when the command
    line names it (--json, --resume). Two outputs may not name one file. ``--json``
    replaces only a finished run of the same suite (a rerun), or an empty file; never
    another suite's run, nor an interrupted one (``--resume`` finishes it). The file that
    ``--resume`` continues is its own: whether it holds a run of this suite is checked where
    the run starts (:func:`benchbench.suiterunner.check_resumable`)."""
    from benchbench.history import History
    from benchbench.outputs import check_distinct, check_folder, check_output

    history = None if args.no_history else History(args.history or _default_history(args))
    given = args.json if args.json is not None else args.resume
    option = "--json" if args.json is not None else "--resume"
    if args.json is not None and Path(args.json).name == HISTORY_NAME:
        raise UsageError(f"--json {args.json!r}: {HISTORY_NAME} is the history's name (benchbench run, compare and "
                         "history look for the history there); give the run file a name of its own, e.g. run.json")
    check_distinct({option: given, "--history" if args.history else f"the history (--out {args.out!r})":
                    None if history is None else history.path, "--profile": args.profile})
    if given is None or (history is not None and args.history is None and history.path.parent == Path(args.out)):
        # --out is where the run file or the history goes: a folder that cannot be written is --out's fault
        check_folder(args.out, f"{'run files' if given is None else 'the history'} into --out {args.out!r}",
                     fix="give another --out DIR" + ("" if history is None else ", or --history FILE or --no-history"))
    if history is not None:
        history.check_writable()
    if args.profile is not None:
        if Path(args.profile).exists() and not Path(args.profile).is_dir():
            raise UsageError(f"--profile {args.profile!r} is a file; give a folder")
        check_folder(args.profile, f"into --profile {args.profile!r}")
    if given is None:
        return history, None
    target = Path(given)
    resumed_here = resume is not None and target.is_file() and target.samefile(args.resume)
    held = resume if resumed_here else _run_held_in(target)
    empty = target.is_file() and target.stat().st_size == 0  # nothing to lose (an older benchbench, killed early)
    path = check_output(given, option=option, what=f"benchbench run file of suite {suite_name!r}",
                        inputs=[args.suite] if args.suite else [],
                        ours=lambda _: empty or resumed_here or (held is not None and held.suite == suite_name),
                        hint=f" (it holds a run of suite {held.suite!r})" if held else "")
    if held is not None and not held.complete and held.records and not resumed_here:
        raise UsageError(
            f"{option} {given!r} holds an interrupted run of suite {held.suite!r} ({len(held.records)} benchmark(s) "
            f"measured); finish it with `benchbench run --resume {given}`, or delete the file to start over"
        )
    return history, path


def _default_history(args: argparse.Namespace) -> Path:
    """The history without --history: ``<--out>/history.sqlite``; for --resume without --out, the
    one beside the resumed run file when there is one (where the interrupted part went: the
    finished run replaces it there, not in ./results/)."""
    from benchbench.outputs import DEFAULT_FOLDER, default_history

    if args.resume and args.out == DEFAULT_FOLDER:
        beside = default_history(Path(args.resume).parent)
        if beside.is_file():
            return beside
    return default_history(args.out)


def _run_held_in(path: Path) -> RunResult | None:
    """The benchbench run an existing file holds (which a new run might replace), or None."""
    from benchbench.results import RunResult

    if not path.is_file():
        return None
    try:
        return RunResult.read_json(path)
    except UsageError:
        return None


def _config(args: argparse.Namespace, manager: PluginManager, resume: RunResult | None, options: dict[str, Any]) -> Any:
    """The run's configuration: the command line, and what a resumed run was made with."""
    from benchbench.config import RESUMED_OPTIONS, Config

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    if metrics == []:
        raise UsageError("--metrics names no metric; e.g. --metrics params,flops (benchbench list metrics)")
    given = {"device": args.device, "batch_size": args.batch_size, "timeout": args.timeout, "only": args.only,
             "executor": args.executor, "rounds": args.rounds, "metrics": metrics}
    if resume is not None:
        _check_resumed_options(resume, given)
        given.update({k: v for k, v in resume.options.items() if given.get(k) is None and k in RESUMED_OPTIONS})
    return Config(manager, **given, profile=args.profile, quiet=args.quiet, verbose=args.verbose, plugin_options=options)


def _report(run: RunResult, path: Path, history: Any, table: str, summary: str, *, quiet: bool,
            resume_with: str) -> ExitCode:
    """Save first, print last: the history and the job summary, then the table on stdout and
    where things went on stderr. The exit code is the run's, whether or not anyone still
    reads stdout (``| head``); a history that cannot be written after all is exit 2, with
    the table printed and the run file kept. Ctrl-C while reporting keeps the run file, and
    says so (the generic "nothing was written" would be false)."""
    if not run.records:  # interrupted (or stopped by the executor) before the first benchmark finished
        print("benchbench: interrupted before any benchmark finished; no run file was written", file=sys.stderr)
        return ExitCode.INTERRUPTED
    try:
        return _report_saved(run, path, history, table, summary, quiet=quiet, resume_with=resume_with)
    except KeyboardInterrupt:
        print(f"benchbench: interrupted while reporting; the run file {path} is written and kept", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _report_saved(run: RunResult, path: Path, history: Any, table: str, summary: str, *, quiet: bool,
                  resume_with: str) -> ExitCode:
    from benchbench.outputs import emit

    problem = None
    if history is not None:
        try:
            history.append(run, path)
        except BenchbenchError as exc:
            problem = exc
    step_summary(summary)
    emit(table)
    say = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr))
    say(f"benchbench: run file written to {path}")
    if problem is not None:
        print(f"benchbench: error: {problem} (the run file {path} is kept)", file=sys.stderr)
        return problem.exit_code
    if history is not None:
        say(f"benchbench: appended to the history {history.path}")
    if not run.complete:
        print(f"benchbench: interrupted; `{resume_with}` runs the rest", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if run.failed else ExitCode.OK


def _reporter(manager: PluginManager, fmt: str) -> tuple[Any, dict[str, Any]]:
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


def _columns(text: str, manager: PluginManager) -> list[str]:
    """``--columns a,b``: record fields the runner writes, or fields a registration declares (a metric's,
    with the ``_ratio`` of its ratio fields, or a field set's: what ``benchbench_derive_fields`` adds)."""
    from benchbench.results import RESERVED_FIELDS

    known = {*RESERVED_FIELDS, *manager.registry.declared().columns}
    columns = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in columns if c not in known]
    if unknown or not columns:
        bad = unknown[0] if unknown else text
        raise UsageError(f"--columns: {bad!r} is not a table field{did_you_mean(bad, known)}; fields: {', '.join(sorted(known))}")
    return columns


def _check_resumed_options(resume: Any, given: dict[str, Any]) -> None:
    """A resumed run finishes the same measurement with the same options (its suite is checked
    where the run starts: :func:`benchbench.suiterunner.check_resumable`).

    Changing what is measured (device, batch size, metrics, selection, rounds) would mix
    incomparable records in one file; the timeout and the executor may change.
    """
    for key in ("device", "batch_size", "metrics", "only", "rounds"):
        if given.get(key) is not None and given[key] != resume.options.get(key):
            was = f"{key} {resume.options[key]!r}" if key in resume.options else f"no --{key.replace('_', '-')}"
            raise UsageError(
                f"--resume: the run was made with {was}, not {given[key]!r}; "
                "a resumed run keeps its options (start a new run to change them)"
            )
