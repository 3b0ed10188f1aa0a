"""A stand-in for ``pynvml`` (nvidia-ml-py) that plays back a recorded trace: no GPU needed.

Only what benchbench calls is here, with NVML's names, units and errors: clocks in MHz,
power in milliwatts, total energy in millijoules (updated every ``energy_period_s`` only, as
the real counter is, about every 100 ms), temperatures in degrees C.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class FakeGpu:
    """One GPU: its readings as functions of the time since it was made."""

    def __init__(self, *, name: str = "NVIDIA H200", default_clock: float | None = 1980.0,
                 clock: Callable[[float], float] = lambda t: 1980.0, temperature: float | None = 45.0,
                 power_w: Callable[[float], float] = lambda t: 300.0, energy: bool = True,
                 energy_period_s: float = 0.1, clock_source: Callable[[], float] = time.perf_counter) -> None:
        self.name, self.default_clock, self.clock, self.temperature = name, default_clock, clock, temperature
        self.power_w, self.energy, self.energy_period_s, self.now = power_w, energy, energy_period_s, clock_source
        self.born = clock_source()

    def elapsed(self) -> float:
        return self.now() - self.born

    def energy_mj(self) -> int:
        """The integral of power over time, as the counter shows it: held between updates."""
        t = self.elapsed()
        updated = int(t / self.energy_period_s) * self.energy_period_s
        steps = max(1, int(updated / 0.001))
        return int(sum(self.power_w(i * updated / steps) for i in range(steps)) * updated / steps * 1e3)


def module(gpus: Sequence[FakeGpu] = (), *, init_error: Exception | None = None) -> ModuleType:
    """A ``pynvml`` module over ``gpus`` (by index; UUIDs ``GPU-<index>``)."""
    fake = ModuleType("pynvml")
    fake.NVMLError = NVMLError  # type: ignore[attr-defined]
    fake.NVML_CLOCK_SM = NVML_CLOCK_SM  # type: ignore[attr-defined]
    fake.NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU  # type: ignore[attr-defined]
    calls: dict[str, int] = {}
    fake.calls = calls  # type: ignore[attr-defined]

    def counted(name: str, fn: Callable[..., Any]) -> None:
        def wrapper(*args: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return fn(*args)
        setattr(fake, name, wrapper)

    def init() -> None:
        if init_error is not None:
            raise init_error

    def by_index(index: int) -> FakeGpu:
        if not 0 <= index < len(gpus):
            raise NVMLError("Invalid Argument")
        return gpus[index]

    def by_uuid(uuid: str) -> FakeGpu:
        return by_index(int(uuid.rsplit("-", 1)[1]))

    def default_clock(gpu: FakeGpu, kind: int) -> float:
        if gpu.default_clock is None:
            raise NVMLError_NotSupported("Not Supported")
        return gpu.default_clock

    def temperature(gpu: FakeGpu, kind: int) -> float:
        if gpu.temperature is None:
            raise NVMLError_NotSupported("Not Supported")
        return gpu.temperature

    def energy(gpu: FakeGpu) -> int:
        if not gpu.energy:
            raise NVMLError_NotSupported("Not Supported")
        return gpu.energy_mj()

    counted("nvmlInit", init)
    counted("nvmlDeviceGetHandleByIndex", by_index)
    counted("nvmlDeviceGetHandleByUUID", by_uuid)
    counted("nvmlDeviceGetName", lambda gpu: gpu.name.encode())
    counted("nvmlDeviceGetDefaultApplicationsClock", default_clock)
    counted("nvmlDeviceGetClockInfo", lambda gpu, kind: gpu.clock(gpu.elapsed()))
    counted("nvmlDeviceGetTemperature", temperature)
    counted("nvmlDeviceGetPowerUsage", lambda gpu: int(gpu.power_w(gpu.elapsed()) * 1e3))
    counted("nvmlDeviceGetTotalEnergyConsumption", energy)
    return fake
