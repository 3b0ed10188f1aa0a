"""The parent's side of instruction counting: one python process under callgrind, and its dumps.

:class:`CallgrindProcess` starts ``python -m benchbench.callgrind_worker`` under
``valgrind --tool=callgrind`` (instrumentation off until a measurement switches it on),
waits until it has imported torch and the run's plugins, and then hands it benchmark
after benchmark over a pair of pipes. The process dies with its parent (the kernel kills
it: ``PR_SET_PDEATHSIG``), and any interruption of a request (a benchmark's timeout,
Ctrl-C) kills it too, since its state is then unknown; the next request starts a new one.
Its start-up has a limit of its own (:data:`STARTUP_LIMIT_S`). Its files live in a
:class:`~benchbench.scratch.Scratch` folder, removed when it closes or, after a ``kill -9``
of the run, by the next run that starts one.

:func:`read_dump` reads one of callgrind's dump files (the format is documented in the
valgrind manual, "Callgrind Format Specification"): the total of the ``Ir`` event
(instructions executed) and each function's exclusive and inclusive counts, which is
what ``callgrind_annotate`` prints, without needing Perl.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchbench.scratch import Scratch

VALGRIND_OPTIONS = (
    "--tool=callgrind",
    "--instr-atstart=no",  # the import and the model building run uninstrumented (about twice as fast)
    "--collect-atstart=no",  # and nothing is collected outside the measured steps
    "--dump-line=no",  # per-function counts are enough: smaller dumps
    "-q",
)
WORKER_ENVIRONMENT = {
    "PYTHONHASHSEED": "0",  # dict lookups probe the same slots in every run
    "OMP_NUM_THREADS": "1",  # one thread: no OpenMP workers spin-waiting (valgrind runs threads one at a time)
    "MKL_NUM_THREADS": "1",
}
MALLOC_TUNABLES = "glibc.malloc.mxfast=0"
"""No fastbins in glibc's malloc (added to ``GLIBC_TUNABLES``): a freed small chunk is merged
at once instead of waiting in a fastbin for a later consolidation, whose cost depended on
the heap's history; with them, one small model's count took one of two values 1.1% apart
depending on the length of its benchmark's name, without them the same to 0.01%."""
POLL_S = 0.5
STARTUP_LIMIT_S = 600.0
"""Seconds python under valgrind may take to import torch and the run's plugins before it is
given up (20-40 s on the 2-core development machine). This time is not the benchmark's: it
counts against no ``timeout`` (:func:`benchbench.deadline.paused`)."""
FOLDER_PREFIX = "benchbench-callgrind-"


class CallgrindError(RuntimeError):
    """The callgrind process could not start, died, or could not measure a benchmark."""


class CallgrindProcess:
    """One ``python -m benchbench.callgrind_worker`` under callgrind, for the benchmarks of a run."""

    def __init__(self, plugin_arguments: dict[str, Any], environment: dict[str, str] | None = None,
                 valgrind: str = "valgrind", options: tuple[str, ...] = ()) -> None:
        self.plugin_arguments = plugin_arguments
        """The plugin manager's arguments: the process loads the same plugins, to build the same models."""
        self.environment = dict(environment or {})
        """Variables set for the process beyond :data:`WORKER_ENVIRONMENT` (which kernels libraries may use)."""
        self.options = tuple(options)
        """callgrind options beyond :data:`VALGRIND_OPTIONS` (the cache simulation of ``estimated_cycles``)."""
        self._scratch = Scratch(FOLDER_PREFIX)  # and the folders of killed runs removed
        self.folder = self._scratch.path
        self.log = self.folder / "output.log"
        dumps = str(self.folder / "callgrind.out")
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        self.requests = Connection(request_write, readable=False)
        self.replies = Connection(reply_read, writable=False)
        command = [valgrind, *VALGRIND_OPTIONS, *self.options, f"--callgrind-out-file={dumps}.%p", sys.executable, "-m",
                   "benchbench.callgrind_worker", str(request_read), str(reply_write), json.dumps(plugin_arguments), dumps]
        started = time.perf_counter()
        self.process: subprocess.Popen[bytes] | None = None
        try:
            try:
                with self.log.open("wb") as log:
                    self.process = subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        pass_fds=(request_read, reply_write), env=self._worker_environment(),
                        start_new_session=True,  # Ctrl-C is the parent's to handle; it then kills this process
                    )
            finally:  # the child's ends: with them closed here, its death reads as an end of file
                os.close(request_read)
                os.close(reply_write)
            reply = self._reply("starting", limit_s=STARTUP_LIMIT_S)
            if "error" in reply:
                raise CallgrindError(f"the callgrind process could not start: {reply['error']}{self._last_words()}")
            self.facts: dict[str, Any] = reply["ready"]
            """What decides the counts besides the model (see :func:`benchbench.callgrind_worker.facts`)."""
            self.facts["valgrind"] = valgrind_version(valgrind)
        except BaseException:
            self.close(wait_s=0)
            raise
        self.startup_s = time.perf_counter() - started
        """Seconds it took to start python under valgrind and import torch and the plugins."""

    def _worker_environment(self) -> dict[str, str]:
        tunables = ":".join(t for t in (os.environ.get("GLIBC_TUNABLES"), MALLOC_TUNABLES) if t)
        return {**os.environ, **WORKER_ENVIRONMENT, "GLIBC_TUNABLES": tunables, **self.environment}

    def count(self, request: dict[str, Any]) -> tuple[Profile, Profile]:
        """Profiles of an empty measurement and of ``request["steps"]`` steps of the benchmark.

        A model that fails raises :class:`CallgrindError` with its error (the process goes on).
        """
        doing = f"counting benchmark {request['spec'].name!r}"
        try:
            try:
                self.requests.send(request)
            except OSError:  # the process is gone (BrokenPipeError)
                raise self._died(doing) from None
            reply = self._reply(doing)
        except BaseException:  # a death, a timeout or Ctrl-C mid-request: the process is in an unknown state
            self.close(wait_s=0)
            raise
        if "error" in reply:
            raise CallgrindError(reply["error"])
        profiles = []
        for path in reply["dumps"]:
            profiles.append(read_dump(Path(path)))
            Path(path).unlink()
        return profiles[0], profiles[1]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _reply(self, doing: str, limit_s: float | None = None) -> dict[str, Any]:
        """The next message from the process; CallgrindError if it dies first (or ``limit_s`` passes)."""
        given_up = time.monotonic() + limit_s if limit_s is not None else None
        while not self.replies.poll(POLL_S):
            if not self.alive:
                raise self._died(doing)
            if given_up is not None and time.monotonic() > given_up:
                raise CallgrindError(f"the callgrind process did not finish {doing} within {limit_s:g} s: given up"
                                     f"{self._last_words()}")
        try:
            return self.replies.recv()
        except EOFError:
            raise self._died(doing) from None

    def _died(self, doing: str) -> CallgrindError:
        assert self.process is not None
        try:
            code: int | None = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return CallgrindError(f"the callgrind process died while {doing} ({_ending(code)}){self._last_words()}")

    def _last_words(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return f"; its last output: {' | '.join(lines[-3:])}" if lines else ""

    def close(self, *, wait_s: float = 10.0) -> None:
        """Stop the process (closing its pipe ends it; killed after ``wait_s``) and remove its files."""
        self.requests.close()
        self.replies.close()
        if self.alive and wait_s > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)  # type: ignore[union-attr]
        if self.alive:
            assert self.process is not None
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.process.kill()
            self.process.wait()
        self._scratch.remove()


def _ending(code: int | None) -> str:
    if code is None:
        return "it closed its pipe but did not exit"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def valgrind_version(valgrind: str = "valgrind") -> str | None:
    """``valgrind-3.19.0``, or None when it cannot be run."""
    try:
        done = subprocess.run([valgrind, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


# --------------------------------------------------------------------------- dump files


@dataclass
class Profile:
    """One callgrind dump: instructions in all, and per function (``name [object]``) exclusive and inclusive."""

    total: int
    exclusive: dict[str, int] = field(default_factory=dict)
    inclusive: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    """The totals of every event the dump holds, by name (``Ir``; with ``--cache-sim=yes`` also
    ``Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw``)."""
    description: list[str] = field(default_factory=list)
    """Its ``desc:`` lines (with the cache simulation: the caches it simulated)."""


def read_dump(path: Path) -> Profile:
    """Parse a callgrind dump whose first event is ``Ir`` (the default; other events, such as
    the cache simulation's, only in :attr:`Profile.events`).

    Names may be compressed: ``fn=(12) name`` defines id 12, a later ``fn=(12)`` reuses it
    (one table for ``fn``/``cfn``, one for ``ob``/``cob``). A cost line (positions, then
    costs) after ``fn=`` is that function's own cost; one after ``calls=`` is the inclusive
    cost of that call, which counts towards the caller's inclusive cost only (as
    ``callgrind_annotate --inclusive=yes`` sums it: recursion is counted more than once).
    """
    names: dict[str, dict[str, str]] = {"fn": {}, "ob": {}}
    positions = 1
    total: int | None = None
    events: list[str] = []
    totals: dict[str, int] = {}
    description: list[str] = []
    exclusive: defaultdict[str, int] = defaultdict(int)
    inclusive: defaultdict[str, int] = defaultdict(int)
    current, obj, after_call = "?", "???", False
    with path.open(errors="replace") as lines:
        for line in lines:
            if not line or line[0] in "#\n":
                continue
            if line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                cost = int(parts[positions]) if len(parts) > positions else 0
                inclusive[current] += cost
                if not after_call:
                    exclusive[current] += cost
                after_call = False
                continue
            key, _, value = line.rstrip("\n").partition("=")
            if key == "fn":
                current = f"{_name(names['fn'], value)} [{obj}]"
            elif key == "ob":
                obj = _object(_name(names["ob"], value))
            elif key in ("cfn", "cob"):  # a callee's name may be defined here and used later
                _name(names["fn" if key == "cfn" else "ob"], value)
            elif key == "calls":
                after_call = True
            elif line.startswith("positions:"):
                positions = len(line.split(":", 1)[1].split())
            elif line.startswith("events:"):
                events = line.split(":", 1)[1].split()
                if events[:1] != ["Ir"]:
                    raise ValueError(f"{path}: the first event is not Ir: {line.strip()}")
            elif line.startswith("desc:"):
                description.append(line.split(":", 1)[1].strip())
            elif line.startswith("totals:") or (line.startswith("summary:") and total is None):
                values = [int(v) for v in line.split(":", 1)[1].split()]
                total = values[0]
                totals = {name: values[i] if i < len(values) else 0 for i, name in enumerate(events)}  # zeros may be left off
    if total is None:
        raise ValueError(f"{path}: no totals: line; not a complete callgrind dump")
    return Profile(total, dict(exclusive), dict(inclusive), totals, description)


def _name(table: dict[str, str], value: str) -> str:
    """Resolve callgrind's name compression: ``(id) name`` defines, ``(id)`` refers."""
    if value.startswith("("):
        ident, _, name = value.partition(")")
        name = name.strip()
        if name:
            table[ident] = name
            return name
        return table.get(ident, ident + ")")
    return value


def _object(path: str) -> str:
    return "unknown object: JIT-generated code?" if path == "???" else Path(path).name
