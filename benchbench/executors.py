"""Executors: where each benchmark of a run executes. Built-ins: ``inline`` and ``subprocess``.

An executor receives the run's jobs and yields ``(job, record)`` as each finishes; the
suite runner keeps suite order, calls the lifecycle hooks and saves the run file after every
record. Executors are registered through ``benchbench_register_executors``, so a third
party can add one (a cluster, a queue) without the suite runner knowing about it.

* ``inline`` (the default): every benchmark in this process, one after the other. Fast
  to start (torch is imported once) and what the numbers in the README use. A timeout
  interrupts the benchmark's Python code (``SIGALRM``) but cannot stop one long C++
  operator, and a segfault takes the whole run with it (the run file written so far
  survives).
* ``subprocess`` (``--isolate``): every benchmark in a fresh Python process
  (``python -m benchbench.worker``). A crash, a hang or an out-of-memory kill costs only
  that benchmark: the process is killed at the timeout, and its exit signal is recorded.
  Each benchmark also starts from a fresh allocator and a cold import, so earlier
  benchmarks cannot change its numbers; the price is the start-up (importing torch:
  about 2-4 s per benchmark on a small CPU).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import benchbench
from benchbench.job import Job
from benchbench.scratch import Scratch

if TYPE_CHECKING:
    from benchbench.config import Config
    from benchbench.results import Record

STARTUP_LIMIT_S = 300.0
"""Seconds a worker may take to import torch and the plugins before it is given up."""
KILL_GRACE_S = 10.0
"""Seconds past a benchmark's timeout before a worker process is killed: its own
(SIGALRM) deadline fires first and keeps the fields measured so far."""


class ExecutorSession(Protocol):
    """What the suite runner offers an executor: the ``session`` of ``Executor.run(jobs, session)``."""

    config: Config
    """The run's configuration; ``config.getoption(NAME)`` reads an option a plugin added (the
    only way: ``address`` for Ray)."""
    plugin_config: dict[str, Any]
    """Arguments that rebuild the same plugin manager in another process."""

    def timed(self, job: Job) -> bool:
        """Whether the job measures time (so it needs its device, or its cores, to itself)."""

    def started(self, job: Job) -> None:
        """Call when a job starts (progress, lifecycle hooks)."""

    def run_here(self, job: Job) -> Record:
        """Run the job in this process (with its timeout) and return its record."""

    def failed(self, job: Job, error: str) -> Record:
        """The record of a job that produced none of its own (crashed, killed)."""


class Executor(Protocol):
    remote: bool
    """True when jobs run on other machines: ``device: auto`` is then resolved there."""

    def run(self, jobs: list[Job], session: ExecutorSession) -> Iterator[tuple[Job, Record]]: ...


class InlineExecutor:
    """Each benchmark in this process, in suite order."""

    remote = False

    def run(self, jobs: list[Job], session: ExecutorSession) -> Iterator[tuple[Job, Record]]:
        for job in jobs:
            session.started(job)
            yield job, session.run_here(job)


class SubprocessExecutor:
    """Each benchmark in its own ``python -m benchbench.worker`` process."""

    remote = False

    def run(self, jobs: list[Job], session: ExecutorSession) -> Iterator[tuple[Job, Record]]:
        for job in jobs:
            session.started(job)
            yield job, run_in_worker(job, session)


def run_in_worker(job: Job, session: ExecutorSession) -> Record:
    """Run one job in a fresh process; a crash, kill or timeout becomes a failed record.

    The worker's output goes to stderr as it comes (progress of long benchmarks stays
    visible); its last lines are kept to explain a crash.
    """
    with Scratch("benchbench-worker-") as folder:  # a killed run's folders are removed by the next one
        request, result = Path(folder, "job.pickle"), Path(folder, "record.json")
        request.write_bytes(pickle.dumps({"plugins": session.plugin_config, "job": job}))
        timeout = job.spec.timeout
        process = subprocess.Popen(
            [sys.executable, "-m", "benchbench.worker", str(request), str(result)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True,  # killable as a group; Ctrl-C is handled here, then kills it
        )
        tail: deque[str] = deque(maxlen=20)
        relay = threading.Thread(target=_relay, args=(process, tail), daemon=True)
        relay.start()
        try:
            # The timeout counts from when the worker is ready (torch and the plugins imported).
            if not _wait_ready(process, Path(folder, "ready"), STARTUP_LIMIT_S) and process.poll() is None:
                _kill(process)
                return session.failed(job, f"its process did not start within {STARTUP_LIMIT_S:g} s: killed")
            code = process.wait(timeout=timeout + KILL_GRACE_S if timeout else None)
        except subprocess.TimeoutExpired:
            _kill(process)
            return session.failed(job, f"timed out after {timeout:g} s: its process was killed")
        except BaseException:  # Ctrl-C: do not leave the worker running
            _kill(process)
            raise
        finally:
            _kill(process)  # also whatever the model started and left behind (same process group)
            relay.join(timeout=5)
        if code == 0 and result.exists():
            return json.loads(result.read_text())
        return session.failed(job, _death(code, list(tail)))


def _wait_ready(process: subprocess.Popen[str], marker: Path, limit: float) -> bool:
    """Wait until the worker says it is ready; False if it ended first or took too long."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if marker.exists():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _relay(process: subprocess.Popen[str], tail: deque[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        sys.stderr.write(line)
        tail.append(line.rstrip())


def _kill(process: subprocess.Popen[Any]) -> None:
    """Kill the worker's whole process group (the worker and anything it started)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if process.poll() is None:
            process.kill()
    process.wait()


def _death(code: int, output: list[str]) -> str:
    """Why a worker ended without a record, in words."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = {
            "SIGSEGV": "a segmentation fault",
            "SIGKILL": "SIGKILL (often the kernel's out-of-memory killer)",
            "SIGABRT": "an abort",
            "SIGBUS": "a bus error",
        }.get(name, name)
        message = f"its process died from {why}"
    else:
        message = f"its process exited with code {code} without a result"
    return message + (f"; {_last_words(output)}" if any(line.strip() for line in output) else "")


def _last_words(output: list[str]) -> str:
    """The most telling line of a dead worker's output: faulthandler's verdict and where."""
    lines = [line.strip() for line in output if line.strip()]
    fatal = next((line for line in lines if line.startswith("Fatal Python error")), None)
    frame = next((line for line in lines if line.startswith('File "')), None)  # innermost first
    if fatal:
        return fatal + (f" at {frame}" if frame else "")
    return f"last output: {lines[-1]}"


Session = ExecutorSession
"""The name of 0.1.0, for executor plugins that annotate with it (CHANGELOG.md)."""

EXECUTORS: dict[str, tuple[Callable[[], Executor], str]] = {
    "inline": (InlineExecutor, "every benchmark in this process, one after the other (default)"),
    "subprocess": (SubprocessExecutor, "every benchmark in a fresh process: crashes and hangs cost only it (--isolate)"),
}


@benchbench.hookimpl
def benchbench_register_executors(register: Any) -> None:
    for name, (factory, description) in EXECUTORS.items():
        register(name, factory, description=description)
