"""``benchbench peak``: the device's matmul rate and copy bandwidth, measured once and cached (see :mod:`benchbench.peak`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchbench import checks
from benchbench.commands.common import reject_extra
from benchbench.errors import ExitCode


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    peak = commands.add_parser(
        "peak", parents=parents, help="measure the device's peak matmul FLOP/s and memory bandwidth (cached)",
        description="Measure the peak matmul rate of a device in each precision it has (float32, TF32, bfloat16, "
        "float16) and its copy bandwidth, once; tables and reports then show each benchmark's fraction of the "
        "peak of its own precision (peak_fraction) and the roofline.",
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
        print(f"benchbench: measuring the peak of {device} (a few seconds)...", file=sys.stderr)
        entry = peak.measure(device)
        where = f"cached in {peak.cache_path()}"
    else:
        where = f"from the cache {peak.cache_path()} (measured {entry['time']}; --refresh to measure again)"
    ridge = entry["matmul_flops"] / entry["bandwidth_bytes_per_s"]
    precisions = entry.get("matmul_flops_by_precision") or {"float32": entry["matmul_flops"]}
    rates = ", ".join(f"{name} {rate / 1e9:.1f}" for name, rate in precisions.items())
    print(f"device {device} ({entry['name']}): matmul GFLOP/s {rates} ({entry['matmul_size']}x{entry['matmul_size']}, "
          f"2 FLOPs per multiply-add); copy bandwidth {entry['bandwidth_bytes_per_s'] / 1e9:.1f} GB/s; "
          f"float32 ridge point {ridge:.1f} FLOP/byte")
    print(f"benchbench: {where}", file=sys.stderr)
    return ExitCode.OK
