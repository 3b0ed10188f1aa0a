"""``memory``: the high-water mark of memory allocated during one step.

Both devices report the same quantity: the peak of (bytes allocated by PyTorch during
one ``ctx.step()``) minus what was allocated before it. The model's weights and the
input batch are therefore *not* included; the output, the activations (and in train
mode the gradients) and any workspace an operator allocates are.

* CUDA: ``torch.cuda.reset_peak_memory_stats``, then ``max_memory_allocated`` after the
  step and a ``synchronize``, minus ``memory_allocated`` before it. Exact for the caching
  allocator's allocations; memory reserved by the cache but unused is not counted.
* CPU: PyTorch keeps no peak statistic for the CPU, so the step runs once under
  ``torch.profiler`` with ``profile_memory=True``; the profiler's memory events (every
  allocation and free of PyTorch's CPU allocator, with its size and time) are summed in
  time order and the peak of that running sum is reported. Memory that libraries
  allocate outside PyTorch's allocator (oneDNN's internal caches) is invisible to it.

The method is stored with each result as ``memory_method``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

import benchbench
from benchbench import formatting
from benchbench.context import MeasureContext

# Kineto (the profiler's backend) prints start/stop banners on stderr unless told not
# to; read when the profiler is first used. A user's own setting wins.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")

CUDA_METHOD = "cuda: torch.cuda.max_memory_allocated during one step minus memory_allocated before it"
CPU_METHOD = "cpu: torch.profiler memory events (profile_memory=True), peak of the running sum during one step"


def cuda_peak_bytes(step: Any, device: torch.device) -> int:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    output = step()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del output
    return int(peak)


def cpu_peak_bytes(step: Any) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        output = step()
    del output
    events = _memory_events(prof)
    current = peak = 0
    for _, nbytes in sorted(events, key=lambda event: event[0]):  # stable: same-tick events keep their order
        current += nbytes
        peak = max(peak, current)
    return peak


def _memory_events(prof: Any) -> list[tuple[int, int]]:
    """(time in ns, signed bytes) of each CPU allocation (+) and free (-) the profiler saw."""
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is None:
        raise RuntimeError(
            f"torch {torch.__version__}'s profiler exposes no memory events (kineto_results); "
            "the CPU memory metric needs them"
        )
    return [
        (_start_ns(event), int(event.nbytes()))
        for event in results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    ]


def _start_ns(event: Any) -> int:
    """The event's start in ns: torch 2.1-2.3 give only ``start_us``, 2.14 only ``start_ns``."""
    return event.start_ns() if hasattr(event, "start_ns") else event.start_us() * 1000


def measure(ctx: MeasureContext) -> dict[str, Any]:
    if ctx.is_cuda:
        return {"peak_memory_bytes": cuda_peak_bytes(ctx.step, ctx.device), "memory_method": CUDA_METHOD}
    return {"peak_memory_bytes": cpu_peak_bytes(ctx.step), "memory_method": CPU_METHOD}


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "memory",
        measure,
        fields=["peak_memory_bytes"],
        ratio_fields=["peak_memory_bytes"],
        compare={"peak_memory_bytes": {}},
        description="peak bytes allocated during one step beyond weights and input (CUDA stats / CPU profiler)",
        formats={"peak_memory_bytes": formatting.nbytes},
        footnotes={"peak_memory_bytes": "peak_memory_bytes: high-water mark of memory allocated during one step beyond "
                   "weights and input, shown in KiB/MiB/GiB (the CSV and run file have bytes)."},
        bars={"peak_memory_bytes": "peak memory of one step (bytes)"},
        side_by_side=["peak_memory_bytes"],
    )
