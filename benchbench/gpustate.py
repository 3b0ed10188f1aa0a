"""The GPU's state while it is timed: SM clock, temperature and power, sampled with NVML.

A GPU that is hot or at its power cap lowers its clocks, and a step timed then is slower
for reasons that are not the model's. NVIDIA's nvbench reads the SM clock with each
measurement and discards the samples taken while the clock was below a share of the
GPU's default (75% there): this module does the same for benchbench's CUDA timer.

* :func:`open_gpu` finds a torch device's GPU in NVML (``nvidia-ml-py``, imported as
  ``pynvml``: ``pip install "torch-benchbench[gpu]"``), or says in a sentence why it cannot
  (no binding, no driver, no such GPU): the caller records that reason and times as before.
* :class:`Sampler` samples the clock, temperature and power from a daemon thread every
  ``interval`` seconds while a round is timed, into a :class:`Trace` kept in the run file.
  NVML's calls go through ctypes, which releases the GIL, so the thread barely delays the
  Python that launches the kernels.
* :func:`throttled_steps` (pure) marks the timed steps during which the clock was below
  ``share`` of the default application clock (:data:`THROTTLE_SHARE`): such samples are
  counted, kept apart and left out of the statistics (:mod:`benchbench.metrics.latency`).
* :class:`Gpu` also reads NVML's total-energy counter, for :mod:`benchbench.metrics.energy`.

Importing this module imports neither torch nor pynvml.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

THROTTLE_SHARE = 0.9
"""A step timed while the SM clock was below this share of the GPU's default application clock
is throttled. nvbench uses 75%; a GPU that boosts above its default and then falls back to it is
not throttled, one that lost a tenth of its clock is, and its time is not the model's."""
SAMPLE_INTERVAL_S = 0.02
"""Seconds between two NVML samples while timing (each takes tens of microseconds, GIL released)."""
INSTALL = 'pip install "torch-benchbench[gpu]" (or pip install nvidia-ml-py)'

_nvml_state: dict[str, Any] = {}


def nvml() -> ModuleType | str:
    """The initialised ``pynvml`` module, or why NVML cannot be used here (a sentence).

    Initialised once per process (``nvmlInit``); a failure is remembered, so asking again is cheap."""
    if "module" not in _nvml_state:
        _nvml_state["module"] = _start_nvml()
    found: ModuleType | str = _nvml_state["module"]
    return found


def _start_nvml() -> ModuleType | str:
    try:
        module = importlib.import_module("pynvml")  # nvidia-ml-py: optional (the gpu extra)
    except ImportError:
        return f"the NVML binding is not installed: {INSTALL}"
    try:
        module.nvmlInit()
    except Exception as exc:  # pynvml.NVMLError_LibraryNotFound, _DriverNotLoaded...: no usable driver
        return f"NVML could not start ({type(exc).__name__}: {exc}): no NVIDIA driver here?"
    return module


def reset() -> None:
    """Forget the NVML module found (tests that swap it)."""
    _nvml_state.clear()


@dataclass(frozen=True)
class Sample:
    """One reading: when (host ``time.perf_counter`` seconds) and what."""

    t_s: float
    sm_clock_mhz: float
    temperature_c: float | None
    power_w: float | None


@dataclass
class Trace:
    """The samples of one timed round, in time order."""

    samples: list[Sample] = field(default_factory=list)

    def as_fields(self, origin_s: float) -> dict[str, list[Any]]:
        """Columns for the run file, times in seconds from ``origin_s`` (the first timed step)."""
        return {
            "t_s": [round(s.t_s - origin_s, 6) for s in self.samples],
            "sm_clock_mhz": [s.sm_clock_mhz for s in self.samples],
            "temperature_c": [s.temperature_c for s in self.samples],
            "power_w": [None if s.power_w is None else round(s.power_w, 3) for s in self.samples],
        }

    @classmethod
    def from_fields(cls, columns: dict[str, list[Any]], origin_s: float = 0.0) -> Trace:
        """The trace a run file keeps (:meth:`as_fields`), back (recorded traces in tests and analysis)."""
        rows = zip(columns["t_s"], columns["sm_clock_mhz"], columns["temperature_c"], columns["power_w"])
        return cls([Sample(origin_s + t, c, temp, p) for t, c, temp, p in rows])


class Gpu:
    """One GPU as NVML sees it: its readings and its default SM clock."""

    def __init__(self, module: ModuleType, handle: Any, name: str) -> None:
        self.nvml, self.handle, self.name = module, handle, name
        self.default_sm_clock_mhz = self._optional(lambda: module.nvmlDeviceGetDefaultApplicationsClock(handle, module.NVML_CLOCK_SM))
        """The clock the GPU runs at by default (None where NVML does not say: no throttle filter then)."""

    def _optional(self, read: Callable[[], Any]) -> Any:
        """A reading this GPU may not support (NVMLError_NotSupported): None then."""
        try:
            return read()
        except self.nvml.NVMLError:
            return None

    def sample(self) -> Sample:
        module, handle = self.nvml, self.handle
        now = time.perf_counter()
        clock = module.nvmlDeviceGetClockInfo(handle, module.NVML_CLOCK_SM)
        temperature = self._optional(lambda: module.nvmlDeviceGetTemperature(handle, module.NVML_TEMPERATURE_GPU))
        milliwatts = self._optional(lambda: module.nvmlDeviceGetPowerUsage(handle))
        return Sample(now, float(clock), temperature, None if milliwatts is None else milliwatts / 1e3)

    def energy_j(self) -> float:
        """Joules used since the driver loaded (``nvmlDeviceGetTotalEnergyConsumption``, millijoules)."""
        return float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)) / 1e3

    def energy_counter(self) -> str | None:
        """Why this GPU has no total-energy counter (Volta and later have one), or None."""
        try:
            self.energy_j()
        except self.nvml.NVMLError as exc:
            return f"NVML has no total-energy counter for {self.name} ({type(exc).__name__}: {exc}; Volta or later has one)"
        return None


def open_gpu(index: int, uuid: str | None = None) -> Gpu | str:
    """The GPU of torch's CUDA device ``index`` (found by its ``uuid`` when torch gives it, since
    ``CUDA_VISIBLE_DEVICES`` renumbers the devices torch sees but not NVML's), or why not."""
    module = nvml()
    if isinstance(module, str):
        return module
    try:
        if uuid:
            handle = module.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        else:
            handle = module.nvmlDeviceGetHandleByIndex(index)
        name = module.nvmlDeviceGetName(handle)
    except module.NVMLError as exc:
        return f"NVML does not find CUDA device {index}{f' ({uuid})' if uuid else ''}: {type(exc).__name__}: {exc}"
    return Gpu(module, handle, name.decode() if isinstance(name, bytes) else str(name))


def open_torch_gpu(device: Any) -> Gpu | str:
    """:func:`open_gpu` for a torch CUDA device."""
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return open_gpu(index, str(uuid) if uuid is not None else None)


class Sampler:
    """Samples a :class:`Gpu` every ``interval`` seconds from a daemon thread, between ``with``'s
    start and end (one sample at each end too, so that even a short round has two)."""

    def __init__(self, gpu: Gpu, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.gpu, self.interval = gpu, interval
        self.trace = Trace()
        self.error: str | None = None
        """Why sampling stopped early (an NVML error mid-round), or None."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="benchbench GPU sampler", daemon=True)

    def _take(self) -> None:
        try:
            self.trace.samples.append(self.gpu.sample())
        except Exception as exc:  # a reading that fails mid-round ends the trace, not the benchmark
            self.error = f"NVML stopped answering ({type(exc).__name__}: {exc})"
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> Sampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5.0)
        if self.error is None:
            self._take()


@contextlib.contextmanager
def sampling(gpu: Gpu | None, interval: float = SAMPLE_INTERVAL_S) -> Iterator[Sampler | None]:
    """A :class:`Sampler` while the body runs, or None when there is no GPU to sample."""
    if gpu is None:
        yield None
        return
    with Sampler(gpu, interval) as sampler:
        yield sampler


def step_clocks(starts_s: Sequence[float], durations_ms: Sequence[float], trace: Trace) -> list[float | None]:
    """The lowest SM clock NVML saw around each step: the last sample at or before its start, the
    first at or after its end, and any between (a step shorter than the sampling interval gets the
    two readings that bracket it). None for a step the trace does not cover."""
    times = [s.t_s for s in trace.samples]
    clocks = [s.sm_clock_mhz for s in trace.samples]
    out: list[float | None] = []
    for start, duration in zip(starts_s, durations_ms):
        end = start + duration / 1e3
        first = max(0, bisect.bisect_right(times, start) - 1)
        last = min(len(times), bisect.bisect_left(times, end) + 1)
        seen = clocks[first:last]
        out.append(min(seen) if seen else None)
    return out


def throttled_steps(starts_s: Sequence[float], durations_ms: Sequence[float], trace: Trace,
                    limit_mhz: float) -> list[bool]:
    """Which steps ran while the SM clock was below ``limit_mhz`` (:func:`step_clocks`)."""
    return [clock is not None and clock < limit_mhz for clock in step_clocks(starts_s, durations_ms, trace)]


def clock_limit(gpu: Gpu, share: float = THROTTLE_SHARE) -> float | None:
    """The SM clock below which a step is throttled: ``share`` of the default application clock."""
    return None if gpu.default_sm_clock_mhz is None else share * gpu.default_sm_clock_mhz


@dataclass(frozen=True)
class Filtered:
    """Timing samples with the throttled ones taken out."""

    kept: list[float]
    throttled: list[float]
    warning: str | None


def filter_throttled(samples_ms: Sequence[float], starts_s: Sequence[float], trace: Trace, limit_mhz: float,
                     *, share: float = THROTTLE_SHARE) -> Filtered:
    """Leave out the samples of throttled steps, with a warning that counts them. When every step was
    throttled they are all kept (there is nothing else to report), and the warning says so."""
    mask = throttled_steps(starts_s, samples_ms, trace, limit_mhz)
    throttled = [x for x, hot in zip(samples_ms, mask) if hot]
    if not throttled:
        return Filtered(list(samples_ms), [], None)
    lowest = min(s.sm_clock_mhz for s in trace.samples)
    temperatures = [s.temperature_c for s in trace.samples if s.temperature_c is not None]
    hottest = f", up to {max(temperatures):g} C" if temperatures else ""
    what = (f"GPU throttled during {len(throttled)} of {len(samples_ms)} timed steps (SM clock down to {lowest:g} MHz, "
            f"below {share:.0%} of its default {limit_mhz / share:g} MHz{hottest})")
    if len(throttled) == len(samples_ms):
        return Filtered(list(samples_ms), throttled, f"{what}: all kept, the times are those of a throttled GPU; "
                                                     "let it cool down, check its cooling and power cap")
    kept = [x for x, hot in zip(samples_ms, mask) if not hot]
    return Filtered(kept, throttled, f"{what}: left out of the statistics; let the GPU cool down between runs, "
                                     "check its cooling and power cap")
