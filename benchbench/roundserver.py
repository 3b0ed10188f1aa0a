"""A side's round server: python and torch started once, each round a fork of it.

``benchbench ab`` used to start ``python -m benchbench run`` afresh for every round of each
side. On the 2-core development machine that costs 3.2 s a round, of which the timing
itself takes 0.3 to 0.5 s: importing torch (1.3 s), sympy and the plugins. Ten pairs took a
minute, and more pairs, which the paired statistic needs to catch a 10% slowdown through
the machine's noise, took minutes more.

A round server is a process started once per side, in the side's checkout and with its
import path (:meth:`benchbench.sides.Side.import_path`). It imports torch and benchbench
*of that side* and then waits. For each round it forks a child that runs
``python -m benchbench run ...`` in-process (``runpy``, so the contract is still the side's
command line, as an older commit has it), and reports the child's exit code.

A fork is still a fresh process in what matters for timing:

* its worker threads (OpenMP) start afresh, so how they land on the cores is drawn anew;
* the memory it touches gets new physical pages;
* before the round it maps a random number of pages and allocates a random number of
  bytes, so the virtual addresses its tensors get differ from round to round, as
  address-space randomisation makes them differ between fresh processes.

What the fork does not redraw is what the server drew when it started: the addresses of the
Python objects it imported and its hash seed (which sets how dictionaries and CPython's type
attribute cache collide). For a step that is mostly Python, that makes the forks of one
server a percent or two faster or slower than those of another, the same for all of them,
so ``benchbench ab`` starts each side's server anew every few pairs
(:data:`benchbench.commands.ab.DEFAULT_PAIRS_PER_SERVER`).

This file is run by path (``python -c "import runpy; runpy.run_path(...)"``: ``ps`` names it)
by :class:`benchbench.sides.RoundServer`, with the side's import path and not as part of
our package, so it imports nothing of benchbench at its top: the benchbench it
serves is the side's, imported inside :func:`serve`. The protocol is one JSON object per
line: on stdin ``{"argv": [...], "log": PATH}`` for a round, on stdout ``{"ready": true}``
once started and ``{"code": N}`` after each round (N negative: killed by signal -N). End of
stdin stops the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import threading
from typing import Any


class _State:
    busy = False
    """A round is running."""
    stopping = False


def serve() -> None:
    """Serve rounds until stdin ends or SIGTERM comes (see the module docstring)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what a module prints goes to the server's log, not into the replies
    warning = _preload()
    _reply(replies, {"ready": True, **({"warning": warning} if warning else {})})
    while not _State.stopping:
        line = sys.stdin.readline()
        if not line:
            break
        request = json.loads(line)
        _State.busy = True
        code = _round(request["argv"], request["log"])
        _State.busy = False
        _reply(replies, {"code": code})


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM (or SIGINT): exit now when idle; during a round, once it ends. benchbench stops
    a server by signalling its whole process group, so the round in progress gets the signal
    too, saves what it measured and exits; the server waits for it, so nothing is left running
    in a checkout about to be removed."""
    if not _State.busy:
        os._exit(130)
    _State.stopping = True


def _preload() -> str | None:
    """Import what rounds import, so that each fork starts with it: torch and the parts of it
    that it loads on first use, every module of the side's benchbench and the plugins it
    autoloads. torch and benchbench must import (a server that cannot is reported with its
    last words); any other module that fails to import here is left to the round, which
    reports it in its own words. Returns a warning when the imports started threads beyond
    torch's own (see :func:`_threads_started`)."""
    import importlib
    import pkgutil

    import torch  # noqa: F401 - first, to count the threads importing torch starts by itself

    threads = _native_threads()
    import benchbench

    # torch's first checks import symbolic_shapes, and with it sympy (0.3 s of each round, else)
    names = ["torch.fx.experimental.symbolic_shapes"]
    names += [info.name for info in pkgutil.walk_packages(benchbench.__path__, "benchbench.")
             if not info.name.endswith("__main__")]  # which would run the command line
    if os.environ.get("BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0"):
        from importlib.metadata import entry_points

        names += [entry.module for entry in entry_points(group="benchbench")]
    for name in names:
        with contextlib.suppress(Exception, SystemExit):  # a plugin that exits at import: the round says so
            importlib.import_module(name)
    return _threads_started(threads, _native_threads())


def _native_threads() -> int:
    """The threads of this process, native ones too (Linux: /proc); elsewhere python's."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _threads_started(before: int, after: int) -> str | None:
    """A warning when the imports after torch's started threads: a plugin that runs torch code at
    import (``torch.set_num_threads``, a first operation) starts its thread pool, and a fork
    copies only the thread that forked, leaving the pool's state behind. In one experiment on
    the 2-core machine, forks of a parent that had called ``torch.set_num_threads`` ran the
    same layer 15-50% slower than fresh processes."""
    if after <= before:
        return None
    return (f"{after - before} thread(s) started while importing the side's benchbench and plugins (a plugin that "
            "runs torch code at import starts torch's thread pool); each round is a fork, which copies one thread, "
            "and such forks can run slower than fresh processes: if timings look off, use --fresh-processes")


def _round(argv: list[str], log: str) -> int:
    """Fork a child that runs ``benchbench`` with ``argv``, its stderr to ``log``; its exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(argv, log)
    try:
        _, status = os.waitpid(pid, 0)  # retried by python when a signal interrupts it (PEP 475)
    except ChildProcessError:
        return -int(signal.SIGKILL)
    return os.waitstatus_to_exitcode(status)


def _child(argv: list[str], log: str) -> None:
    """The round, as ``python -m benchbench ARGV`` would run it; exits with its exit code."""
    code = 3
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        null = os.open(os.devnull, os.O_RDWR)
        errors = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(errors, 2)
        os.close(null)
        os.close(errors)
        layout = _new_layout()
        code = _run(argv)
        del layout
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # a crash of the round, as a fresh process would report it
        import traceback

        traceback.print_exc()
        code = 1 if not isinstance(sys.exc_info()[1], KeyboardInterrupt) else 130
    finally:
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def _run(argv: list[str]) -> int:
    import runpy

    sys.argv = ["benchbench", *argv]
    try:
        runpy.run_module("benchbench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _new_layout() -> list[Any]:
    """Memory held for the round's length at random sizes, so its allocations land elsewhere than the last round's."""
    import mmap

    rng = random.Random(os.urandom(8))
    return [bytearray(rng.randrange(16, 64 * 1024)), mmap.mmap(-1, mmap.PAGESIZE * rng.randrange(1, 1024))]


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _reply(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


if __name__ == "__main__":
    serve()
