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
  ``torch.cuda.synchronize`` at the end. Events measure the device time between the two
  records; while the CPU keeps ahead of the GPU (the flush gives it time to) that is the
  kernels' time, but for steps so short that Python cannot launch them as fast as the GPU
  runs them, the launch gaps are included, which is what such a step really costs.

Both return :class:`Timing` with every raw sample, so that a comparison between runs
can use statistics (a rank test) rather than two medians.

How long to sample: by default, for a fixed time (``min_run_time_s``, at least ``min_runs``
samples). With a ``target_uncertainty`` (:class:`StopRule`), instead, until the median is
known well enough: the distribution-free confidence interval of the median
(:func:`median_uncertainty`) narrower than the target share of it (0.005: +-0.5%), or at
``max_run_time_s``, as nvbench stops on noise. A quiet layer then stops after a fraction
of a second and a noisy one gets the time it needs. The CUDA timer then runs its steps in
chunks of about :data:`CHECK_EVERY_S` with a synchronize between them, to read the times.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
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
    other_cores: float | None = None
    """CPU: how many of this process's cores other work kept busy, on average, while the
    blocks were timed (other processes, and a hypervisor's steal); None where unknown."""
    load: float | None = None
    """The 1-minute load average when the timed blocks started (None where unknown)."""
    starts_s: list[float] | None = None
    """CUDA: when each timed step started on the GPU, in host ``time.perf_counter`` seconds (from
    the events' offsets after an origin event recorded on an idle GPU): to match steps with the GPU's
    state sampled meanwhile (:mod:`benchbench.gpustate`). None on the CPU."""
    uncertainty: float | None = None
    """The median's relative uncertainty when sampling stopped (:func:`median_uncertainty`)."""


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


CONFIDENCE = 0.95
"""Confidence of the median's interval that :func:`median_uncertainty` measures."""
CHECK_EVERY_S = 0.1
"""With a stopping rule, the CUDA timer reads its samples (a synchronize) about this often."""


def median_interval(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The distribution-free ``confidence`` interval of the median, from order statistics: the
    samples of ranks floor((n - z sqrt(n)) / 2) and ceil(1 + (n + z sqrt(n)) / 2) (the normal
    approximation of the binomial; Conover, *Practical Nonparametric Statistics*), so skewed,
    heavy-tailed timings need no model. None when there are too few samples for such an
    interval (fewer than 8 at 95%)."""
    n = len(samples)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low = math.floor((n - z * math.sqrt(n)) / 2)
    high = math.ceil(1 + (n + z * math.sqrt(n)) / 2)
    if n == 0 or low < 1 or high > n:
        return None
    ordered = np.sort(np.asarray(samples, dtype=float))
    return float(ordered[low - 1]), float(ordered[high - 1])


def median_uncertainty(samples: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half the width of the median's interval (:func:`median_interval`) over the median: 0.005 is
    +-0.5%. ``inf`` without an interval or with a median that is not positive."""
    interval = median_interval(samples, confidence)
    median = float(np.median(samples)) if len(samples) else 0.0
    if interval is None or median <= 0:
        return math.inf
    return (interval[1] - interval[0]) / 2 / median


@dataclass
class StopRule:
    """When to stop taking samples: ``min_runs`` and ``min_run_time_s`` reached (``target`` 0, the
    default), or, with a ``target`` uncertainty, ``min_runs`` and a median known to +-target; in
    both cases at ``max_run_time_s``, and at ``max_runs``.

    The median's uncertainty is checked each time the samples grew by a tenth (sorting them each
    time would cost more than short steps)."""

    min_runs: int
    min_run_time_s: float
    max_run_time_s: float
    max_runs: int
    target: float = 0.0
    uncertainty: float = math.inf
    _next_check: int = 0

    def done(self, samples: Sequence[float], elapsed_s: float) -> bool:
        n = len(samples)
        if n >= self.max_runs or elapsed_s >= self.max_run_time_s:
            return True
        if n < self.min_runs:
            return False
        if self.target <= 0:
            return elapsed_s >= self.min_run_time_s
        if n >= self._next_check:
            self.uncertainty = median_uncertainty(samples)
            self._next_check = max(n + 1, math.ceil(n * 1.1))
        return self.uncertainty <= self.target

    def notes(self, samples: Sequence[float]) -> list[str]:
        """Remarks when sampling stopped short of what the rule asked for."""
        notes = _short_note(len(samples), self.min_runs, self.max_run_time_s)
        if self.target > 0:
            self.uncertainty = median_uncertainty(samples)
            if self.uncertainty > self.target and len(samples) < self.max_runs:
                notes.append(f"latency: the median is known to +-{self.uncertainty:.2%}, not the +-{self.target:.2%} asked "
                             f"(target_uncertainty), when max_run_time_s {self.max_run_time_s:g} ran out; raise it, or "
                             "quiet the machine")
        return notes

    def describe(self) -> str:
        if self.target <= 0:
            return ""
        return f", until the median was known to +-{self.target:.2%} ({CONFIDENCE:.0%} interval) or {self.max_run_time_s:g} s"


# ----------------------------------------------------------------------------- CPU


def _time_block(step: Callable[[], Any], steps: int) -> float:
    """Seconds taken by ``steps`` consecutive steps."""
    start = time.perf_counter_ns()
    for _ in range(steps):
        step()
    return (time.perf_counter_ns() - start) / 1e9


def _short_note(runs: int, min_runs: int, max_run_time_s: float) -> list[str]:
    if runs >= min_runs:
        return []
    return [
        (f"latency: only {runs} samples (min_runs {min_runs}) within max_run_time_s {max_run_time_s:g}; "
        "raise it for steadier numbers")
    ]


def time_cpu(
    step: Callable[[], Any],
    *,
    warmup_s: float = 0.2,
    min_run_time_s: float = 1.0,
    min_runs: int = 10,
    max_runs: int = 10_000,
    max_run_time_s: float = 60.0,
    min_block_s: float = 0.01,
    target_uncertainty: float = 0.0,
) -> Timing:
    """Time ``step`` on the CPU in calibrated blocks (see the module docstring)."""
    warm_start = time.perf_counter()
    count = 0
    recent: list[float] = []
    while count == 0 or time.perf_counter() - warm_start < warmup_s:
        recent = [*recent[-4:], _time_block(step, 1)]
        count += 1
    per_step = float(np.median(recent))
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
    load = _load_average()
    meter = OtherWork()
    rule = StopRule(min_runs, min_run_time_s, max_run_time_s, max_runs, target_uncertainty)
    while not rule.done(samples, total):
        took = _time_block(step, block)
        samples.append(took / block * 1e3)
        total += took
    timer = f"cpu: time.perf_counter_ns over blocks of {block} step(s), after {count} warm-up step(s){rule.describe()}"
    notes = rule.notes(samples)
    return Timing(samples, block, timer, count, notes, meter.cores_busy(), load,
                  uncertainty=rule.uncertainty if target_uncertainty > 0 else None)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


class OtherWork:
    """How busy *other* work kept this process's cores while something was timed.

    The kernel's per-CPU counters (``/proc/stat``: time spent busy, plus the time a
    hypervisor stole) over the CPUs this process may use, minus this process's own CPU
    time, over the wall time: the average number of those cores that something else used.
    A property of the machine, not of the model, so it means the same for a layer that
    keeps every thread busy and for one that runs on one thread. Linux only (elsewhere
    :meth:`cores_busy` is None); ticks are 10 ms, so it is meant for windows of 0.1 s or more.
    """

    def __init__(self) -> None:
        try:
            self.cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
            self.tick = 1.0 / os.sysconf("SC_CLK_TCK")
        except (AttributeError, ValueError, OSError):
            self.cpus = set()
        self.started = (time.perf_counter(), time.process_time(), self._busy_seconds())

    def _busy_seconds(self) -> float | None:
        if not self.cpus:
            return None
        try:
            with open("/proc/stat", encoding="ascii") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return None
        busy = 0
        for line in lines:
            name, _, rest = line.partition(" ")
            if name in self.cpus:  # user nice system idle iowait irq softirq steal ...
                values = [int(v) for v in rest.split()]
                busy += sum(values) - values[3] - values[4]
        return busy * self.tick

    def cores_busy(self) -> float | None:
        """The average number of this process's cores that other work used since construction."""
        wall0, own0, busy0 = self.started
        busy = self._busy_seconds()
        wall = time.perf_counter() - wall0
        if busy is None or busy0 is None or wall <= 0:
            return None
        others = (busy - busy0) - (time.process_time() - own0)
        return max(0.0, others / wall)


# ----------------------------------------------------------------------------- CUDA


def plan_cuda_runs(
    iteration_ms: float,
    *,
    warmup_s: float,
    min_run_time_s: float,
    min_runs: int,
    max_runs: int,
    max_run_time_s: float,
) -> tuple[int, int]:
    """(warm-up steps, timed steps) for an estimated ``iteration_ms`` (flush + step).

    Warm-up fills ``warmup_s``; timed steps fill ``min_run_time_s`` but are at least
    ``min_runs``; both are capped by ``max_runs`` and the timed ones by ``max_run_time_s``.
    """
    per = max(iteration_ms, 1e-3)
    warmup = min(max_runs, max(1, math.ceil(warmup_s * 1e3 / per)))
    runs = max(min_runs, math.ceil(min_run_time_s * 1e3 / per))
    runs = max(1, min(runs, max_runs, math.floor(max_run_time_s * 1e3 / per)))
    return warmup, runs


def time_cuda(
    step: Callable[[], Any],
    device: Any,
    *,
    warmup_s: float = 0.2,
    min_run_time_s: float = 1.0,
    min_runs: int = 10,
    max_runs: int = 10_000,
    max_run_time_s: float = 60.0,
    flush_l2: bool = True,
    target_uncertainty: float = 0.0,
) -> Timing:
    """Time ``step`` on a CUDA device with events around each step (see the module docstring)."""
    import torch

    with torch.cuda.device(device):
        flush = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device) if flush_l2 else None

        def iteration() -> None:
            if flush is not None:
                flush.zero_()
            step()

        # Estimate one iteration (flush + step) from five, with one pair of events around
        # them all, as triton's do_bench does; this also warms up.
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        begin.record()
        for _ in range(5):
            iteration()
        end.record()
        torch.cuda.synchronize(device)
        per_iteration_ms = begin.elapsed_time(end) / 5
        warmup, runs = plan_cuda_runs(
            per_iteration_ms, warmup_s=warmup_s, min_run_time_s=min_run_time_s,
            min_runs=min_runs, max_runs=max_runs, max_run_time_s=max_run_time_s,
        )
        for _ in range(warmup):  # no events: nothing to read back
            iteration()
        rule = StopRule(min_runs, min_run_time_s, max_run_time_s, max_runs, target_uncertainty)
        if target_uncertainty > 0:  # chunks of ~CHECK_EVERY_S, checked in between, up to max_runs
            chunk = max(1, min(max_runs, math.ceil(CHECK_EVERY_S * 1e3 / max(per_iteration_ms, 1e-3))))
        else:  # as planned, in one go: no synchronize among the timed steps
            chunk = runs
        samples: list[float] = []
        starts_s: list[float] = []
        elapsed_s = 0.0
        while not samples or (target_uncertainty > 0 and not rule.done(samples, elapsed_s)):
            count = min(chunk, max_runs - len(samples))
            chunk_samples, chunk_starts, took_s = _cuda_chunk(step, flush, count, device)
            samples += chunk_samples
            starts_s += chunk_starts
            elapsed_s += took_s
    flushed = f", {L2_FLUSH_BYTES // 2**20} MiB written between steps to flush L2" if flush_l2 else ""
    timer = f"cuda: CUDA events around each step{flushed}, after {warmup + 5} warm-up step(s){rule.describe()}"
    return Timing(samples, 1, timer, warmup + 5, rule.notes(samples), starts_s=starts_s,
                  uncertainty=rule.uncertainty if target_uncertainty > 0 else None)


def _cuda_chunk(step: Callable[[], Any], flush: Any, count: int, device: Any) -> tuple[list[float], list[float], float]:
    """``count`` steps, each between two events (the L2 flush before, outside them), read back after
    one synchronize: their times (ms), when each started (host seconds) and the seconds it all took.

    The start times come from an origin event recorded on an idle GPU, right after a
    synchronize: it runs at once, so its host time plus each start event's offset from it is
    when that step started on the GPU's clock, in the host's time."""
    import torch

    origin = torch.cuda.Event(enable_timing=True)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    torch.cuda.synchronize(device)
    origin_s = time.perf_counter()
    origin.record()
    for start, stop in zip(starts, ends):
        if flush is not None:
            flush.zero_()  # outside the events: only the step is timed
        start.record()
        step()
        stop.record()
    torch.cuda.synchronize(device)
    took_s = time.perf_counter() - origin_s
    samples = [s.elapsed_time(e) for s, e in zip(starts, ends)]  # milliseconds
    starts_s = [origin_s + origin.elapsed_time(s) / 1e3 for s in starts]
    return samples, starts_s, took_s


def device_time_ms(step: Callable[[], Any], device: Any, *, steps: int = 10, launch_ms: float = 1.0) -> float:
    """The GPU's own time for one step, without the time Python takes to launch it: ``steps`` steps
    queued behind a GPU-side sleep (``torch.cuda._sleep``) long enough for the CPU to launch them
    all (``launch_ms``: the time one step's launch may take, e.g. its event time), then timed as
    they run back to back.

    No profiler: profiling with CUDA activity (CUPTI) in the benchmarking process can leave its
    callbacks behind and slow every kernel launch that is timed after it (the suspected cause of
    launch-bound rows timed 1.6-2.75x slower than by hand in issue 23)."""
    import torch

    with torch.cuda.device(device):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        begin.record()
        torch.cuda._sleep(1_000_000)
        end.record()
        torch.cuda.synchronize(device)
        cycles_per_ms = 1_000_000 / max(begin.elapsed_time(end), 1e-3)
        hide_ms = 2.0 * steps * launch_ms + 1.0  # twice what launching them should take
        torch.cuda._sleep(int(hide_ms * cycles_per_ms))
        begin.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize(device)
        return begin.elapsed_time(end) / steps
