"""``benchbench peak``: the device's peak FLOP/s (the fastest of several kernels) and copy bandwidth,
measured once and cached unless the CPU was busy (see :mod:`benchbench.peak`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchbench import checks
from benchbench.commands.common import reject_extra
from benchbench.errors import ExitCode


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    peak = commands.add_parser(
        "peak", parents=parents, help="measure the device's peak FLOP/s and memory bandwidth (cached)",
        description="Measure the peak arithmetic rate of a device in each precision it has (float32, TF32, "
        "bfloat16, float16): the fastest of several kernels (matmuls of three sizes; 3x3, dilated 3x3 and 1x1 "
        "convolutions), beside the processor's arithmetic limit where /proc/cpuinfo tells it; and its copy "
        "bandwidth, once. "
        "Tables and reports then show each benchmark's fraction of the peak of its own precision "
        "(peak_fraction) and the roofline. A measurement on a busy CPU is shown but not cached (exit 1).",
    )
    peak.add_argument("--device", default="auto", type=checks.argparse_type(checks.device),
                      help="auto (default), cpu, cuda or cuda:N")
    peak.add_argument("--refresh", action="store_true", help="measure again even when a cached value exists")
    return peak


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench import peak
    from benchbench.job import resolve_device

    reject_extra(extra, "peak")
    device = str(resolve_device(args.device))
    entry = None if args.refresh else peak.load(device)
    if entry is None:
        print(f"benchbench: measuring the peak of {device} (about 30 s; keep the machine otherwise idle)...",
              file=sys.stderr)
        entry = peak.measure(device)
        where = f"cached in {peak.cache_path()}"
    else:
        where = f"from the cache {peak.cache_path()} (measured {entry['time']}; --refresh to measure again)"
    print("\n".join(describe(entry)))
    if entry.get("busy"):
        print(f"benchbench: NOT cached: {entry['busy']}, so this peak is too low and every peak_fraction measured "
              "against it would be too high; stop the other work (see `top`) and run `benchbench peak` again",
              file=sys.stderr)
        return ExitCode.FAILED
    print(f"benchbench: {where}", file=sys.stderr)
    return ExitCode.OK


def describe(entry: dict[str, Any]) -> list[str]:
    """The peak in words: each precision's peak and the kernel that set it, every kernel's rate,
    the arithmetic limit, the bandwidth and the ridge point."""

    def gflops(rate: float) -> str:
        return f"{rate / 1e9:.1f}"

    lines = [(f"device {entry['device']} ({entry['name']}): peak GFLOP/s (2 FLOPs per multiply-add; the fastest "
              "kernel, by its fastest timed block):")]
    for precision, rate in entry["flops_by_precision"].items():
        kernels = entry["kernels"][precision]
        others = ", ".join(f"{name} {gflops(r)}" for name, r in kernels.items() if name != entry["set_by"][precision])
        lines.append(f"  {precision}: {gflops(rate)}, set by {entry['set_by'][precision]} (others: {others})")
    limit = entry.get("arithmetic_limit")
    if limit:
        lines.append(f"  float32 arithmetic limit: {gflops(limit['flops'])} = {limit['formula']} (clock: "
                     f"{limit['clock_source']}); the fastest kernel reaches {entry['flops'] / limit['flops']:.0%} of it")
        above = [name for name, rate in entry["kernels"]["float32"].items() if rate > limit["flops"]]
        if above:
            lines.append(f"  above the limit: {', '.join(above)}: fewer multiplications than the direct method counts "
                         "(a Winograd or FFT algorithm), or a clock above the one reported")
    else:
        lines.append("  arithmetic limit: unknown here (a GPU, or a processor whose SIMD unit or clock "
                     "/proc/cpuinfo does not tell)")
    ridge = entry["flops"] / entry["bandwidth_bytes_per_s"]
    lines.append(f"copy bandwidth {entry['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; float32 ridge point {ridge:.1f} FLOP/byte")
    return lines
