"""``python -m benchbench.worker JOB RESULT``: run one benchmark in this fresh process.

Started by the ``subprocess`` executor. ``JOB`` is a pickle written by the parent
(the plugin configuration and the :class:`~benchbench.executors.Job`); the record is
written as JSON to ``RESULT`` (atomically), and the exit code is 0. Any other ending
(a crash, a kill) is for the parent to describe.
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    faulthandler.enable()  # a segfault prints the Python stack: the parent shows its last line
    request, result = Path(argv[0]), Path(argv[1])
    payload = pickle.loads(request.read_bytes())
    from benchbench.allocator import pin_malloc_thresholds
    from benchbench.plugins import PluginManager
    from benchbench.results import jsonable
    from benchbench.runner import Runner

    pin_malloc_thresholds()
    manager = PluginManager(**payload["plugins"])
    manager.pm.unregister(name="benchbench.progress")  # the parent shows progress
    record = Runner(manager).run_job(payload["job"])
    partial = result.with_suffix(".tmp")
    partial.write_text(json.dumps(jsonable(record)))
    os.replace(partial, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
