"""Timers: how one step is timed on the CPU and on a CUDA GPU, and the statistics of samples.

Two timers, each following the practice of the tool people trust for that device:

* CPU — :func:`time_cpu`, after ``torch.utils.benchmark.Timer.blocked_autorange``: a
  time-budgeted warm-up, then *blocks* of steps timed with ``time.perf_counter_ns``. The
  block size is calibrated so that one block lasts at least ``min_block_s``, which makes
  the timer's own overhead negligible for sub-millisecond layers. A sample is a block's
  time divided by its size; samples are taken until both ``min_run_time_s`` and
  ``min_runs`` are reached.
* CUDA — :func:`time_cuda`, after triton's ``do_bench``: a time-budgeted warm-up, then a
  pair of CUDA events around *each* step, an optional write to a buffer larger than the
  L2 cache between steps (so every step starts with a cold cache, as in a real network
  where the previous layer evicted this one's weights), and one
  ``torch.cuda.synchronize`` at the end. Events measure device time, not the CPU's
  launch time.

Both return :class:`Timing` with every raw sample, so that a comparison between runs
can use statistics (a rank test) rather than two medians.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

L2_FLUSH_BYTES = 256 * 2**20
"""Bytes written between CUDA steps to evict the L2 cache (triton's do_bench uses 256 MiB;
larger than the L2 of any current GPU: 50 MiB on H100, 96 MiB on B200)."""


@dataclass
class Timing:
    """Raw timing samples of one step, in milliseconds, and how they were taken."""

    samples_ms: list[float]
    block_size: int
    """Steps per sample (CPU blocks); 1 on CUDA."""
    timer: str
    """How the samples were taken, in words (stored as ``latency_timer``)."""
    warmup_runs: int = 0
    notes: list[str] = field(default_factory=list)
    """Remarks for the user (the time budget ran out before ``min_runs``...)."""


@dataclass(frozen=True)
class Summary:
    median: float
    iqr: float
    mean: float
    runs: int


def summarize(samples: list[float]) -> Summary:
    """Median and interquartile range (robust to the outliers a shared machine produces)."""
    if not samples:
        raise ValueError("no timing samples")
    values = np.asarray(samples, dtype=float)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Summary(float(median), float(q3 - q1), float(values.mean()), len(values))


# ----------------------------------------------------------------------------- CPU


def _time_block(step: Callable[[], Any], steps: int) -> float:
    """Seconds taken by ``steps`` consecutive steps."""
    start = time.perf_counter_ns()
    for _ in range(steps):
        step()
    return (time.perf_counter_ns() - start) / 1e9


def _warm_up(run_once: Callable[[], float], budget_s: float) -> tuple[int, list[float]]:
    """Run at least once, then until ``budget_s`` of steps has passed; return (runs, seconds each)."""
    times = [run_once()]
    while sum(times) < budget_s:
        times.append(run_once())
    return len(times), times


def time_cpu(
    step: Callable[[], Any],
    *,
    warmup_s: float = 0.2,
    min_run_time_s: float = 1.0,
    min_runs: int = 10,
    max_runs: int = 10_000,
    max_run_time_s: float = 60.0,
    min_block_s: float = 0.01,
) -> Timing:
    """Time ``step`` on the CPU in calibrated blocks (see the module docstring)."""
    warmup_runs, warm_times = _warm_up(lambda: _time_block(step, 1), warmup_s)
    per_step = float(np.median(warm_times[-5:]))
    block = max(1, math.ceil(min_block_s / per_step)) if per_step > 0 else 1000
    # The estimate came from single steps, which carry the timer's overhead: check a real
    # block and grow it until it lasts min_block_s (at most a few rounds).
    for _ in range(4):
        took = _time_block(step, block)
        if took >= min_block_s:
            break
        block = max(block + 1, math.ceil(block * min_block_s / max(took, 1e-9)))
    samples: list[float] = []
    total = 0.0
    notes: list[str] = []
    while len(samples) < max_runs:
        took = _time_block(step, block)
        samples.append(took / block * 1e3)
        total += took
        if total >= min_run_time_s and len(samples) >= min_runs:
            break
        if total >= max_run_time_s:
            if len(samples) < min_runs:
                notes.append(
                    f"latency: only {len(samples)} samples (min_runs {min_runs}) within max_run_time_s "
                    f"{max_run_time_s:g}; raise it for steadier numbers"
                )
            break
    timer = f"cpu: time.perf_counter_ns over blocks of {block} step(s), after {warmup_runs} warm-up step(s)"
    return Timing(samples, block, timer, warmup_runs, notes)


# ----------------------------------------------------------------------------- CUDA


def time_cuda(
    step: Callable[[], Any],
    device: Any,
    *,
    warmup_s: float = 0.2,
    min_run_time_s: float = 1.0,
    min_runs: int = 10,
    max_runs: int = 10_000,
    flush_l2: bool = True,
) -> Timing:
    """Time ``step`` on a CUDA device with events around each step (see the module docstring)."""
    import torch

    def event() -> torch.cuda.Event:
        return torch.cuda.Event(enable_timing=True)

    with torch.cuda.device(device):
        flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device) if flush_l2 else None

        def timed(steps: int) -> list[float]:
            starts = [event() for _ in range(steps)]
            ends = [event() for _ in range(steps)]
            torch.cuda.synchronize(device)
            for start, end in zip(starts, ends):
                if flush is not None:
                    flush.zero_()
                start.record()
                step()
                end.record()
            torch.cuda.synchronize(device)
            return [s.elapsed_time(e) for s, e in zip(starts, ends)]  # milliseconds

        # Estimate the step time (also the first warm-up), then warm up for warmup_s.
        estimate_ms = float(np.median(timed(5)))
        warmup_runs = 5 + max(0, math.ceil(warmup_s * 1e3 / max(estimate_ms, 1e-3)) - 5)
        if warmup_runs > 5:
            timed(warmup_runs - 5)
        runs = min(max_runs, max(min_runs, math.ceil(min_run_time_s * 1e3 / max(estimate_ms, 1e-3))))
        samples = timed(runs)
        del flush
    flushed = f", {L2_FLUSH_BYTES // 2**20} MiB written between steps to flush L2" if flush_l2 else ""
    timer = f"cuda: CUDA events around each step{flushed}, after {warmup_runs} warm-up step(s)"
    return Timing(samples, 1, timer, warmup_runs)
