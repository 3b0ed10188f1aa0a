"""``python -m benchbench.worker JOB RESULT``: run one benchmark in this fresh process.

Started by the ``subprocess`` executor. ``JOB`` is a pickle written by the parent
(the plugin configuration and the :class:`~benchbench.executors.Job`); a file ``ready``
beside ``RESULT`` says when the imports are done (the timeout counts from then); the
record is written as JSON to ``RESULT`` (atomically), and the exit code is 0. Progress
reports of the benchmark (training epochs) go to stderr, which the parent relays. Any other ending
(a crash, a kill) is for the parent to describe.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    faulthandler.enable()  # a segfault prints the Python stack: the parent shows its last line
    _die_with_parent()
    if hasattr(signal, "pthread_sigmask"):  # whatever the parent had blocked, this process starts clean
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
    request, result = Path(argv[0]), Path(argv[1])
    payload = pickle.loads(request.read_bytes())
    job_runner = job_runner_for(payload["plugins"])
    result.with_name("ready").touch()  # the parent's clock for the timeout starts now
    record = jsonable_record(job_runner, payload["job"])
    partial = result.with_suffix(".tmp")
    partial.write_text(json.dumps(record))
    os.replace(partial, result)
    return 0


_JOB_RUNNERS: dict[str, Any] = {}


def job_runner_for(plugin_config: dict[str, Any]) -> Any:
    """A :class:`~benchbench.job.JobRunner` for jobs in this process (a subprocess worker, a Ray
    worker), built once per plugin configuration: malloc pinned as in the parent, the same
    plugins loaded. Only :mod:`benchbench.job` is needed here, not the suite runner."""
    from benchbench.allocator import pin_malloc_thresholds
    from benchbench.job import JobRunner
    from benchbench.manager import PluginManager

    pin_malloc_thresholds()
    key = json.dumps(plugin_config, sort_keys=True)
    if key not in _JOB_RUNNERS:
        _JOB_RUNNERS[key] = JobRunner(PluginManager(**plugin_config))
    return _JOB_RUNNERS[key]


def jsonable_record(job_runner: Any, job: Any) -> dict[str, Any]:
    """Run one job with ``job_runner``; its record as plain JSON-safe data, ready to send back."""
    from benchbench.results import jsonable

    return jsonable(job_runner.run(job))


# The names of 0.1.0, for executor plugins written against them (CHANGELOG.md).
runner_for = job_runner_for
run_job = jsonable_record


def _die_with_parent() -> None:
    """On Linux, ask the kernel to kill this process when the parent dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the request took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
