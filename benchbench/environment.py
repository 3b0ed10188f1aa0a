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

    from benchbench.modes import effective_flags

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
        # to the microsecond: `--baseline latest` takes the runs that started before this one,
        # and two short runs (params only) can start in the same second
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        "git": git_info(Path.cwd()),
        "gpus": gpu_info(),
        "backend_flags": effective_flags(),
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


CPUINFO = Path("/proc/cpuinfo")
CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


def _cpuinfo(key: str) -> list[str]:
    """Every value of ``key`` in /proc/cpuinfo (one per processor; empty where there is none)."""
    try:
        lines = CPUINFO.read_text().splitlines()
    except OSError:
        return []
    return [value.strip() for name, _, value in (line.partition(":") for line in lines) if name.strip() == key]


def cpu_model() -> str | None:
    return next(iter(_cpuinfo("model name")), None) or platform.processor() or None


def cpu_flags() -> set[str]:
    """The instruction-set features the processor announces (x86 ``flags``, Arm ``Features``)."""
    return {flag for value in _cpuinfo("flags")[:1] + _cpuinfo("Features")[:1] for flag in value.split()}


def cpu_max_clock() -> tuple[float, str] | None:
    """The highest clock a core runs at, in Hz, and where it was read: cpufreq's maximum where
    the kernel exposes it, else the highest ``cpu MHz`` in /proc/cpuinfo (the clock *now*: a
    virtual machine's nominal clock; boost may be higher). None where neither says."""
    try:
        return int(CPUFREQ_MAX.read_text()) * 1e3, str(CPUFREQ_MAX)
    except (OSError, ValueError):
        pass
    clocks = []
    for value in _cpuinfo("cpu MHz"):
        try:
            clocks.append(float(value) * 1e6)
        except ValueError:
            continue
    return (max(clocks), "cpu MHz in /proc/cpuinfo (the current clock; boost may be higher)") if clocks else None


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


SMI_FIELDS = ("driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "power.limit", "power.max_limit")
"""What ``nvidia-smi`` tells about each GPU when the run starts: clocks and power limits decide a result too."""


def gpu_info() -> list[dict[str, Any]]:
    import torch

    if not torch.cuda.is_available():
        return []
    smi = _nvidia_smi(SMI_FIELDS)
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        facts = smi[index] if index < len(smi) else {}
        gpus.append(
            {
                "index": index,
                "name": props.name,
                "memory_bytes": props.total_memory,
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "driver": facts.get("driver_version"),
                "sm_clock_mhz": facts.get("clocks.sm"),
                "max_sm_clock_mhz": facts.get("clocks.max.sm"),
                "memory_clock_mhz": facts.get("clocks.mem"),
                "power_limit_w": facts.get("power.limit"),
                "max_power_limit_w": facts.get("power.max_limit"),
            }
        )
    return gpus


def _nvidia_smi(fields: tuple[str, ...]) -> list[dict[str, str]]:
    """One dict per GPU of what ``nvidia-smi --query-gpu`` says (empty when it is missing or fails)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if done.returncode != 0:
        return []
    rows = []
    for line in done.stdout.strip().splitlines():
        values = [v.strip() for v in line.split(",")]
        rows.append({f: v for f, v in zip(fields, values) if v and not v.startswith("[")})  # "[N/A]": not exposed
    return rows
