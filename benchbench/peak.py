"""``benchbench peak``: what this device can do at best, measured once and cached.

Two numbers make a roofline: the peak arithmetic rate (in FLOP/s counting a multiply-add
as 2, the convention of hardware data sheets; in each precision the device has: float32,
TF32, bfloat16, float16) and the peak memory bandwidth (copying a buffer much larger than
any cache: bytes read plus bytes written, per second).

**The peak is an upper bound by construction.** No single operation is a device's
fastest: on a quiet 2-core AMD EPYC (float32, 2 threads) torch's 2048x2048 matmul reached
185 GFLOP/s, oneDNN's 3x3 convolution at 512 channels 233 and the same convolution with
dilation 2 244 (FLOPs counted as the direct method counts them, as fvcore and
``achieved_gflops`` do), so a matmul-only peak put convolutions above 100%; a peak cached
under load was worse (97 GFLOP/s: 3-5x "peak"). The peak of a precision is therefore the
fastest of several kernels (:func:`default_kernels`: the matmul at three sizes; 3x3,
dilated 3x3 and 1x1 convolutions at 512 channels in both memory layouts, the layers the
shipped suites time), each timed with benchbench's own timers (:mod:`benchbench.timing`),
in the allocator state of a run (:mod:`benchbench.allocator`), and rated by its *fastest*
timed block, not the median: a peak is what the device does at best, and a benchmark
running one of these kernels, rated by its median, then comes out at or under 100%. The
entry records every kernel's rate and which one set the peak (``kernels``, ``set_by``).

**The arithmetic limit is a separate, stated figure** (``arithmetic_limit``, float32, CPU
only, where /proc/cpuinfo says enough): cores x float32 lanes of the widest SIMD unit
(avx512f 16, avx2 with fma 8, Arm asimd 4) x FMA units (2 on x86, 4 on Arm: the most
current cores have, so an upper bound) x 2 x the highest clock the kernel reports. It is
not the peak: it rests on assumptions (units per core, a virtual machine's reported
clock), and a kernel can even exceed it when it does fewer multiplications than the
direct method counts (Winograd, FFT). ``peak_fraction`` is the fraction of the fastest
measured kernel.

**A peak measured on a busy CPU is never cached.** Other work slows every kernel, so
such a peak is too low and every later ``peak_fraction`` too high. Each CPU timing
measures how much of the CPU its threads asked for other work took
(:func:`benchbench.metrics.latency.contention`), and the busy-CPU rule of ``compare``
(:func:`benchbench.stats.busy_cpu`) decides; a busy measurement is returned with
``busy`` set, and not stored. (CUDA timings measure no contention: a GPU shared with
other processes is not detected.)

Results are cached in ``~/.cache/benchbench/peak.json`` (``$BENCHBENCH_CACHE`` to move
it), keyed by the cache version (what the peak is measured with: :data:`CACHE_VERSION`),
host, device, torch version and thread count, so tables and reports show the fraction of
peak without measuring again.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "BENCHBENCH_CACHE"
CACHE_VERSION = 2
"""What a cached peak was measured with. 1: the matmul alone (too low: never used again);
2: the fastest of :func:`default_kernels`, refused when the CPU was busy."""
SIMD_UNITS = (("avx512f", 16, 2), ("fma", 8, 2), ("asimd", 4, 4))
"""(flag, float32 lanes, FMA units per core) by the widest unit a processor announces: the
most FMA units any current core of that kind has (Intel's server cores and AMD Zen have 2;
Zen 4 runs AVX-512 at half width, Arm's Neoverse V cores have 4 128-bit pipes), so that
the arithmetic limit is an upper bound."""


def cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "benchbench") / "peak.json"


def device_key(device: str) -> str:
    """What a peak measurement is valid for: how it was measured, and the device's name on this
    host, torch, threads."""
    import torch

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    return (f"peak v{CACHE_VERSION}|{socket.gethostname()}|{device}|{name}|torch {torch.__version__}"
            f"|threads {torch.get_num_threads()}")


def load(device: str) -> dict[str, Any] | None:
    """The cached peak of ``device`` (for this host, torch, thread count and cache version), or None."""
    try:
        cache = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return None
    entry = cache.get(device_key(device)) if isinstance(cache, dict) else None
    return entry if isinstance(entry, dict) else None


def precisions(device: Any) -> list[str]:
    """The precisions worth a peak on this device: float32 everywhere, bfloat16 too; on
    CUDA also TF32 (Ampere and later) and float16."""
    import torch

    if device.type != "cuda":
        return ["float32", "bfloat16"]
    major, _ = torch.cuda.get_device_capability(device)
    names = ["float32", *(["tf32"] if major >= 8 else []), "float16"]
    return [*names, *(["bfloat16"] if torch.cuda.is_bf16_supported() else [])]


@dataclass(frozen=True)
class Kernel:
    """A candidate for the peak: one operation and its FLOPs (2 per multiply-add, as the direct
    method counts them)."""

    name: str
    flops: float
    make: Callable[[Any, Any], Callable[[], Any]]
    """``make(device, dtype)`` allocates the operands and returns the step to time."""


def matmul(n: int) -> Kernel:
    """An n x n by n x n matrix product."""

    def make(device: Any, dtype: Any) -> Callable[[], Any]:
        import torch

        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        return lambda: torch.mm(a, b)

    return Kernel(f"matmul {n}x{n}", 2.0 * n**3, make)


def conv(channels: int, kernel_size: int, size: int, batch: int, *, dilation: int = 1, channels_last: bool = False) -> Kernel:
    """A ``kernel_size`` x ``kernel_size`` convolution, ``channels`` in and out, on a batch of
    ``size`` x ``size`` maps ("same" padding, no bias), in either memory layout."""

    def make(device: Any, dtype: Any) -> Callable[[], Any]:
        import torch
        import torch.nn.functional as F

        layout = torch.channels_last if channels_last else torch.contiguous_format
        x = torch.randn(batch, channels, size, size, device=device, dtype=dtype).to(memory_format=layout)
        w = torch.randn(channels, channels, kernel_size, kernel_size, device=device, dtype=dtype).to(memory_format=layout)
        return lambda: F.conv2d(x, w, padding=dilation * (kernel_size // 2), dilation=dilation)

    flops = 2.0 * batch * channels * channels * kernel_size**2 * size**2
    dilated = f" dilation {dilation}" if dilation > 1 else ""
    layout = " channels_last" if channels_last else ""
    return Kernel(f"conv {kernel_size}x{kernel_size}{dilated} {channels}ch {size}x{size} batch {batch}{layout}", flops, make)


def default_kernels(cuda: bool) -> list[Kernel]:
    """The candidates: the matmul at three sizes (BLAS is fastest at different sizes on different
    machines) and oneDNN's / cuDNN's convolutions at 512 channels, 32x32, as the efficiency
    suite times them (the CPU batch is its cpu_batch_size): 3x3, 3x3 with dilation 2 (4% faster
    than the plain 3x3 in oneDNN on an AMD EPYC) and 1x1, in both memory layouts (which one is
    faster depends on the library, the precision and the shape; suites may use either)."""
    sides, batch = ((2048, 4096, 8192), 64) if cuda else ((512, 1024, 2048), 8)
    shapes = ((3, 1), (3, 2), (1, 1))  # (kernel size, dilation)
    convs = [conv(512, k, 32, batch, dilation=d, channels_last=last) for k, d in shapes for last in (False, True)]
    return [*(matmul(n) for n in sides), *convs]


def measure(
    device: str, *, kernels: Sequence[Kernel] | None = None, copy_bytes: int | None = None, seconds: float = 1.0
) -> dict[str, Any]:
    """Measure the fastest of ``kernels`` (default: :func:`default_kernels`) in each precision
    and the copy bandwidth of ``device``; store them in the cache unless the CPU was busy.

    float32 is measured with TF32 forbidden (matmuls and cuDNN alike), TF32 with it allowed:
    a CUDA run's convolutions use TF32 by default, and ``peak_fraction`` of a peak in an
    arithmetic the run did not use would mean nothing. cuDNN picks its fastest algorithm
    (``cudnn.benchmark``), as a suite may let it.
    """
    import torch

    from benchbench import stats, timing
    from benchbench.allocator import pin_malloc_thresholds
    from benchbench.environment import cpu_model
    from benchbench.metrics.latency import contention

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    candidates = list(kernels or default_kernels(cuda))
    size = copy_bytes or (1 << 30 if cuda else 256 << 20)
    shares: list[float | None] = []
    if not cuda:
        pin_malloc_thresholds()  # the allocator state every run times in: without it, page faults cost 5%

    def fastest_s(step: Callable[[], Any]) -> float:
        budget: dict[str, Any] = {"warmup_s": 0.2, "min_run_time_s": seconds, "min_runs": 5}
        result = timing.time_cuda(step, dev, flush_l2=False, **budget) if cuda else timing.time_cpu(step, **budget)
        if not cuda:
            shares.append(contention(result.other_cores, torch.get_num_threads()))
        return min(result.samples_ms) / 1e3

    rates: dict[str, dict[str, float]] = {}
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        torch.backends.cudnn.benchmark = True
        for precision in precisions(dev):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
            dtype = torch.float32 if precision == "tf32" else getattr(torch, precision)
            with torch.inference_mode():
                rates[precision] = {k.name: k.flops / fastest_s(k.make(dev, dtype)) for k in candidates}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = flags
    source = torch.empty(size // 4, dtype=torch.float32, device=dev).uniform_()
    target = torch.empty_like(source)
    with torch.inference_mode():
        copy_s = fastest_s(lambda: target.copy_(source))
    best = {precision: max(by_kernel, key=by_kernel.__getitem__) for precision, by_kernel in rates.items()}
    known = [s for s in shares if s is not None]
    entry = {
        "version": CACHE_VERSION,
        "device": device,
        "name": torch.cuda.get_device_name(dev) if cuda else (cpu_model() or "cpu"),
        "flops": rates["float32"][best["float32"]],
        "flops_by_precision": {precision: rates[precision][name] for precision, name in best.items()},
        "set_by": best,
        "kernels": rates,
        "arithmetic_limit": None if cuda else cpu_arithmetic_limit(),
        "bandwidth_bytes_per_s": 2 * size / copy_s,
        "copy_bytes": size,
        "cpu_contention": max(known) if known else None,
        "busy": stats.busy_cpu("`benchbench peak`", shares),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "key": device_key(device),
    }
    if entry["busy"] is None:
        _store(entry)
    return entry


def cpu_arithmetic_limit() -> dict[str, Any] | None:
    """The float32 arithmetic limit of the cores this process's torch threads may use, from
    what the processor says (:func:`arithmetic_limit`)."""
    import torch

    from benchbench.environment import available_cores, cpu_flags, cpu_max_clock

    return arithmetic_limit(cpu_flags(), cpu_max_clock(), min(torch.get_num_threads(), available_cores()))


def arithmetic_limit(flags: set[str], clock: tuple[float, str] | None, cores: int) -> dict[str, Any] | None:
    """cores x float32 lanes x FMA units x 2 x clock, and how it was computed; None when the
    processor names no SIMD unit this knows (:data:`SIMD_UNITS`) or no clock."""
    unit = next((u for u in SIMD_UNITS if u[0] in flags), None)
    if unit is None or clock is None:
        return None
    flag, lanes, units = unit
    hz, where = clock
    return {
        "flops": cores * lanes * units * 2 * hz,
        "formula": f"{cores} core(s) x {lanes} float32 lanes ({flag}) x {units} FMA units x 2 x {hz / 1e9:.2f} GHz",
        "clock_source": where,
    }


def peak_for(entry: dict[str, Any], precision: str) -> float:
    """The peak in ``precision`` (the float32 one when that precision was not measured). Reads
    run files from before cache version 2 too (``matmul_flops``: the matmul alone)."""
    by_precision = entry.get("flops_by_precision") or entry.get("matmul_flops_by_precision") or {}
    return by_precision.get(precision, entry["flops"] if "flops" in entry else entry["matmul_flops"])


def _store(entry: dict[str, Any]) -> None:
    path = cache_path()
    try:
        cache = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    cache[entry["key"]] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the numbers are still returned and shown
