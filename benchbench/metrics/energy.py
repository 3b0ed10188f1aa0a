"""``energy``: joules per step and per sample, and the mean power while the steps run.

From a hardware energy counter, read while the benchmark's step runs back to back:

* CUDA: NVML's total-energy counter of the GPU (``nvmlDeviceGetTotalEnergyConsumption``,
  millijoules; Volta and later), through :mod:`benchbench.gpustate` (``nvidia-ml-py``:
  ``pip install "torch-benchbench[gpu]"``). It updates only every so often (about 100 ms
  on many GPUs), so each window lasts ``window_s`` (1 s) and runs from one update of
  the counter to another (below); the update period seen is recorded as
  ``energy_counter_period_s``.
* CPU: Linux RAPL, the packages' energy (:mod:`benchbench.rapl`): the whole CPU, other
  processes included, so meant for a quiet machine; readable by root on Linux 5.10 and later.

Where neither exists (most virtual machines have no RAPL), a suite that lists ``energy`` is
rejected before anything runs (``available``), with the reason, as ``instructions`` is
without valgrind.

How one window is measured (:func:`measure_windows`): the steps run in chunks of about
:data:`CHUNK_S`, each followed by a synchronize and a read of the counter. The window opens
at the first read that sees the counter change and closes at the first change after
``window_s``; its energy is the difference of the two values and its steps those completed
between the two reads. A change happens somewhere inside a chunk, so each end is off by
part of a chunk, in opposite directions on average: at most two chunks' energy in a window
of a hundred. ``windows`` windows give the samples that ``benchbench compare`` judges with
the same statistics as latency (a rank test on the samples, round by round); the fields are
their medians.

The idle power is measured before the steps (``idle_s``: counter changes over a quiet
second, the device synchronized) and recorded apart as ``energy_idle_w``: ``power_w`` and
the joules are what the device drew in all while running the steps, idle included; the
difference is what the model adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

import benchbench
from benchbench import formatting, gpustate, rapl
from benchbench.context import MeasureContext

OPTIONS: dict[str, Any] = {"windows": 5, "window_s": 1.0, "warmup_s": 0.5, "idle_s": 1.0}
"""``windows`` measured, each at least ``window_s`` seconds of steps (the counter's period is
~0.1 s on a GPU: a window of 1 s is ten updates); ``warmup_s`` of steps first (clocks and
power settle); ``idle_s`` of idle power measured before (0: not measured)."""
CHUNK_S = 0.01
"""Steps run between two reads of the counter (seconds)."""
TICK_LIMIT_S = 5.0
"""A counter that does not change for this long while the device works is broken."""


class Counter(Protocol):
    name: str
    resolution: str

    def read_j(self) -> float: ...


class NvmlCounter:
    """A GPU's NVML total-energy counter, in joules."""

    def __init__(self, gpu: gpustate.Gpu) -> None:
        self.gpu = gpu
        self.name = f"NVML total energy of {gpu.name} (nvmlDeviceGetTotalEnergyConsumption)"
        self.resolution = "NVML updates the counter about every 100 ms (the period seen: energy_counter_period_s)"

    def read_j(self) -> float:
        return self.gpu.energy_j()


def _cuda_visible() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def open_counter(device: str) -> Counter | str:
    """The energy counter for a benchmark on ``device`` (as a suite gives it), or why there is none."""
    if device.startswith("cuda") or (device == "auto" and _cuda_visible()):
        import torch

        gpu = gpustate.open_torch_gpu(torch.device("cuda" if device == "auto" else device))
        if isinstance(gpu, str):
            return f"it reads the GPU's energy counter through NVML, and {gpu}"
        missing = gpu.energy_counter()
        return missing if missing is not None else NvmlCounter(gpu)
    missing = rapl.unavailable()
    if missing is not None:
        where = "this benchmark runs on the CPU" + (" (device: auto, and torch sees no CUDA GPU here)" if device == "auto" else "")
        return f"{where}, and {missing}"
    return rapl.RaplCounter()


def available(device: str) -> str | None:
    """Why ``energy`` cannot run for a benchmark on ``device`` on this machine, or None."""
    counter = open_counter(device)
    if isinstance(counter, str):
        return f"energy needs a hardware energy counter: {counter}; or leave 'energy' out of the metrics"
    return None


@dataclass
class Windows:
    """What :func:`measure_windows` found."""

    joules_per_step: list[float] = field(default_factory=list)
    watts: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    idle_w: float | None = None
    updates: list[float] = field(default_factory=list)
    """Times (seconds) at which the counter was seen to change: its period."""

    def period_s(self) -> float | None:
        gaps = np.diff(self.updates)
        return float(np.median(gaps)) if len(gaps) else None


class _Reader:
    """Reads the counter and notes when its value changes."""

    def __init__(self, counter: Counter, clock: Callable[[], float], found: Windows) -> None:
        self.counter, self.clock, self.found = counter, clock, found
        self.value = counter.read_j()

    def changed(self) -> tuple[bool, float, float]:
        """(whether the value changed since the last read, the value, when)."""
        value, now = self.counter.read_j(), self.clock()
        moved = value != self.value
        if moved:
            self.found.updates.append(now)
        self.value = value
        return moved, value, now


def measure_windows(step: Callable[[], Any], synchronize: Callable[[], None], counter: Counter, *,
                    windows: int, window_s: float, warmup_s: float, idle_s: float,
                    clock: Callable[[], float] = time.perf_counter,
                    sleep: Callable[[float], None] = time.sleep) -> Windows:
    """Idle power, warm-up, then ``windows`` windows of steps between counter updates (module docstring)."""
    found = Windows()
    reader = _Reader(counter, clock, found)
    synchronize()
    if idle_s > 0:
        start = _next_update(reader, lambda: sleep(0.001))
        sleep(idle_s)
        end = _next_update(reader, lambda: sleep(0.001))
        found.idle_w = (end[0] - start[0]) / (end[1] - start[1]) if end[1] > start[1] else None
    per_chunk = _chunk_steps(step, synchronize, clock)
    began = clock()
    while clock() - began < warmup_s:
        _run(step, synchronize, per_chunk)
    for _ in range(windows):
        done = 0

        def chunk() -> None:
            nonlocal done
            _run(step, synchronize, per_chunk)
            done += per_chunk

        energy0, t0 = _next_update(reader, chunk)
        steps0 = done
        while clock() - t0 < window_s:
            chunk()
            reader.changed()  # only to see the counter's period
        energy1, t1 = _next_update(reader, chunk)
        steps = done - steps0
        found.joules_per_step.append((energy1 - energy0) / steps)
        found.watts.append((energy1 - energy0) / (t1 - t0))
        found.steps.append(steps)
        found.seconds.append(t1 - t0)
    return found


def _next_update(reader: _Reader, work: Callable[[], None]) -> tuple[float, float]:
    """Do ``work`` until the counter changes: (its new value, when it was seen)."""
    started = reader.clock()
    while True:
        work()
        moved, value, now = reader.changed()
        if moved:
            return value, now
        if now - started > TICK_LIMIT_S:
            raise RuntimeError(f"the energy counter ({reader.counter.name}) did not change in {TICK_LIMIT_S:g} s")


def _run(step: Callable[[], Any], synchronize: Callable[[], None], count: int) -> None:
    for _ in range(count):
        step()
    synchronize()


def _chunk_steps(step: Callable[[], Any], synchronize: Callable[[], None], clock: Callable[[], float]) -> int:
    """Steps in a chunk of about :data:`CHUNK_S` (estimated from a few, which also warm up)."""
    count, took = 1, 0.0
    while took < CHUNK_S / 4 and count < 1 << 20:
        began = clock()
        _run(step, synchronize, count)
        took = clock() - began
        if took < CHUNK_S / 4:
            count *= 2
    return max(1, round(count * CHUNK_S / max(took, 1e-9)))


def measure(ctx: MeasureContext) -> dict[str, Any]:
    counter = open_counter(str(ctx.device))
    if isinstance(counter, str):
        raise RuntimeError(f"energy: {counter}")
    opts = ctx.options
    found = measure_windows(ctx.step, ctx.synchronize, counter, windows=opts["windows"], window_s=opts["window_s"],
                            warmup_s=opts["warmup_s"], idle_s=opts["idle_s"])
    return {**summary_fields(found.joules_per_step, found.watts, ctx.batch_size),
            "energy_samples_j_per_sample": [j / ctx.batch_size for j in found.joules_per_step],
            "energy_samples_w": found.watts,
            "energy_idle_w": found.idle_w,
            "energy_window_steps": found.steps,
            "energy_window_s": found.seconds,
            "energy_counter": counter.name,
            "energy_counter_period_s": found.period_s(),
            "energy_method": (f"{len(found.steps)} window(s) of >= {opts['window_s']:g} s of steps between updates of "
                              f"the counter, read after each ~{CHUNK_S * 1e3:g} ms chunk of steps; after "
                              f"{opts['warmup_s']:g} s of warm-up; {counter.resolution}")}


def summary_fields(joules_per_step: list[float], watts: list[float], batch_size: int) -> dict[str, Any]:
    per_step = float(np.median(joules_per_step))
    return {"energy_j_per_step": per_step, "energy_j_per_sample": per_step / batch_size,
            "power_w": float(np.median(watts))}


def merge_rounds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the windows of every round, each round's kept apart for the statistics."""
    measured = [r for r in records if r.get("energy_samples_j_per_sample")]
    if not measured:
        return {}
    batch = records[0]["batch_size"]
    per_sample = [x for r in measured for x in r["energy_samples_j_per_sample"]]
    power = [x for r in measured for x in r["energy_samples_w"]]
    return {**summary_fields([x * batch for x in per_sample], power, batch),
            "energy_samples_j_per_sample": per_sample,
            "energy_samples_w": power,
            "energy_rounds_j_per_sample": [r["energy_samples_j_per_sample"] for r in measured],
            "energy_round_idle_w": [r.get("energy_idle_w") for r in measured]}


def joules(value: Any) -> str:
    """0.00123 -> '1.23 mJ'."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return "-" if value is None else str(value)
    for scale, unit in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} nJ"


def watts(value: Any) -> str:
    return f"{value:.1f} W" if isinstance(value, (int, float)) and not isinstance(value, bool) else formatting.si(value)


def check_options(options: dict[str, Any]) -> list[str]:
    problems = [f"windows must be at least 1, got {options['windows']}"] if options["windows"] < 1 else []
    if options["window_s"] <= 0:
        problems.append(f"window_s must be above 0, got {options['window_s']} (the GPU's counter updates about "
                        "every 0.1 s: 1 s or more)")
    problems += [f"{k} must not be negative, got {options[k]}" for k in ("warmup_s", "idle_s") if options[k] < 0]
    return problems


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "energy",
        measure,
        fields=["energy_j_per_sample", "energy_j_per_step", "power_w"],
        ratio_fields=["energy_j_per_sample"],
        options=OPTIONS,
        check_options=check_options,
        compare={"energy_j_per_sample": {"samples": "energy_samples_j_per_sample",
                                         "rounds": "energy_rounds_j_per_sample"}},
        merge_rounds=merge_rounds,
        exclusive=True,
        available=available,
        description="joules per sample and per step and mean watts while the steps run (CUDA: NVML's energy counter, "
                    "nvidia-ml-py; CPU: Linux RAPL); idle power recorded apart",
        formats={"energy_j_per_sample": joules, "energy_j_per_step": joules, "power_w": watts},
        footnotes={
            "energy_j_per_sample": ("energy_j_per_sample: joules per sample (energy_j_per_step / batch), median of "
                                    "windows between updates of the energy counter (NVML on a GPU, ~100 ms; RAPL on "
                                    "the CPU: the whole package); idle power in the run file (energy_idle_w)."),
            "power_w": "power_w: mean watts drawn while the steps ran, idle included.",
        },
        bars={"energy_j_per_sample": "energy per sample (J)"},
        side_by_side=["energy_j_per_sample"],
    )
