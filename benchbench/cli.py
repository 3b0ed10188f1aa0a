"""The ``benchbench`` command: parse the command line, hand it to one command, turn the outcome into an exit code.

Each command lives in :mod:`benchbench.commands` (``run``, ``compare``, ``report``,
``history``, ``peak``, ``list``). Exit codes, everywhere, are :class:`~benchbench.errors.ExitCode`:
0 success; 1 the work ran but a benchmark failed or a comparison found a regression; 2
bad input or usage (one paragraph on stderr, no traceback; ``--debug`` or
``BENCHBENCH_DEBUG=1`` adds it); 3 an internal error (a bug in benchbench or a plugin's
hook); 130 interrupted (what finished is saved first).

Interrupted means Ctrl-C, SIGTERM (a CI job cancelled) or SIGHUP (an ssh session
dropped), at any moment of any command: :func:`main` turns the two signals into
``KeyboardInterrupt`` before it does anything else (and restores the handlers it found
when it returns), so that every command stops the same way and exits 130.

Only the standard library and pluggy are imported here: ``--help`` and argument errors
must not pay for importing torch. Options that plugins add to ``run``
(``benchbench_addoption``) are parsed by that command once it has loaded the plugins;
``benchbench run --help`` loads them first, to list them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from benchbench import __version__
from benchbench.commands import COMMANDS
from benchbench.commands.common import debug_parent
from benchbench.errors import BenchbenchError, ExitCode, describe_exit_codes


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's parser, by name."""
    parser = argparse.ArgumentParser(
        prog="benchbench",
        description="Benchmark PyTorch models and layers: params, FLOPs, latency, memory, side by side.",
        epilog=f"Exit codes: {describe_exit_codes()}. "
        "Set BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD=1 to load only built-ins and -p plugins.",
    )
    parser.add_argument("--version", action="version", version=f"benchbench {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = [debug_parent()]
    commands = {name: module.add_parser(subparsers, parents) for name, module in COMMANDS.items()}
    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    with _signals_interrupt():
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    parser, commands = build_parser()
    debug = "--debug" in argv or os.environ.get("BENCHBENCH_DEBUG", "") not in ("", "0")
    try:
        try:
            if _asks_for_help(argv, "run"):
                _list_plugin_options(commands["run"], argv)
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
            return int(exc.code or 0)
        if args.command is None:
            parser.print_help()
            return ExitCode.USAGE_ERROR
        return COMMANDS[args.command].main(args, extra)
    except BenchbenchError as exc:
        if debug:
            traceback.print_exc()
        print(f"benchbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("benchbench: interrupted; nothing was written", file=sys.stderr)  # a run saves its own progress first
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `benchbench list | head` (commands with an exit code of their own use outputs.emit)
        from benchbench.outputs import drop_stdout

        drop_stdout()
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


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as Ctrl-C does, for the length of the block.

    A run then saves what finished, marks its run file incomplete and kills its workers;
    any other command stops with nothing half-written; and each exits 130, not the 143 or
    129 of a process killed by the signal. Signal handlers can be set in the main thread
    only: :func:`main` called from another thread leaves them alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, _interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _asks_for_help(argv: list[str], command: str) -> bool:
    return bool(argv) and argv[0] == command and any(a in ("-h", "--help") for a in argv[1:])


def _list_plugin_options(run: argparse.ArgumentParser, argv: list[str]) -> None:
    """For ``benchbench run --help``: load the plugins the command line names and add their options."""
    from benchbench.commands.common import load_plugins
    from benchbench.commands.run import add_plugin_options

    plugins = argparse.ArgumentParser(add_help=False)
    plugins.add_argument("-p", "--plugin", dest="plugins", action="append", default=[])
    plugins.add_argument("--plugins-dir")
    known, _ = plugins.parse_known_args(argv[1:])
    add_plugin_options(run, load_plugins(known))


if __name__ == "__main__":
    raise SystemExit(main())
