"""Where a run happened: versions, hardware, git commit, plugins.

A number without its environment cannot be compared with anything. Everything here is
best effort: a fact that cannot be read is stored as ``None``, never an error.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchbench

if TYPE_CHECKING:
    from benchbench.manager import PluginManager


def collect(manager: PluginManager) -> dict[str, Any]:
    """The run file's ``environment`` block."""
    import torch

    env: dict[str, Any] = {
        "benchbench": benchbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(Path.cwd()),
        "gpus": gpu_info(),
        "plugins": [
            {"name": p.name, "source": p.source, "module": p.module, "distribution": p.distribution, "version": p.version}
            for p in manager.plugins
        ],
        "plugin_failures": manager.failure_notes(),
    }
    for extra in manager.hook.benchbench_environment():
        if extra:
            env.update(extra)
    return env


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (a container's or taskset's limit), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_info(directory: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the working directory's repository, so 'compare with main' works."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "branch": git("rev-parse", "--abbrev-ref", "HEAD"), "dirty": bool(status)}


def gpu_info() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    driver = _nvidia_driver()
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            {
                "index": index,
                "name": props.name,
                "memory_bytes": props.total_memory,
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "driver": driver,
            }
        )
    return gpus


def _nvidia_driver() -> str | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None
