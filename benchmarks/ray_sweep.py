"""How much does Ray buy on a params/FLOPs sweep, and what does a task cost?

Runs a sweep of 128 benchmarks (conv and depthwise-separable layers: channels x kernel
sizes, params and FLOPs only) inline and with the ``ray`` executor on a local Ray
instance using every core, and a sweep of 128 trivial benchmarks (params of a tiny layer)
both ways. Ray's overhead per task is the worker time the trivial sweep took on Ray
beyond its inline time: (cores x Ray wall time - inline wall time) / tasks, an upper
estimate (it assumes every core was busy the whole time).

    python benchmarks/ray_sweep.py
"""

from __future__ import annotations

import os
import sys
import time

import benchbench

CHANNELS = [16, 32, 64, 128]
KERNELS = [1, 3, 5, 7]


def sweep(metrics: list[str], trivial: bool = False) -> dict:
    if trivial:
        return {"name": "trivial", "defaults": {"device": "cpu", "metrics": metrics},
                "benchmarks": [{"model": "conv", "args": {"in_channels": 1, "out_channels": 1}, "input_shape": [1, 4, 4],
                                "sweep": {"args.kernel_size": [1, 3], "seed": list(range(64))}}]}
    args = {"padding": 0}
    return {
        "name": "sweep",
        "defaults": {"device": "cpu", "metrics": metrics},
        "benchmarks": [
            {"model": "conv", "args": args,
             "sweep": {"args.in_channels": CHANNELS, "args.out_channels": CHANNELS, "args.kernel_size": KERNELS}},
            {"model": "depthwise_separable", "args": args,
             "sweep": {"args.in_channels": CHANNELS, "args.out_channels": CHANNELS, "args.kernel_size": KERNELS}},
        ],
    }


def timed(suite: dict, executor: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    run = benchbench.run_suite(suite, executor=executor, quiet=True)
    return time.perf_counter() - started, len(run.records), len(run.failed)


def main() -> int:
    import ray

    cores = os.cpu_count() or 1
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    init = time.perf_counter() - started
    print(f"local Ray instance with {cores} CPUs: started in {init:.1f} s (not counted below)")
    for label, suite in (("params+FLOPs sweep", sweep(["params", "flops"])), ("trivial sweep", sweep(["params"], trivial=True))):
        inline, n, failed_inline = timed(suite, "inline")
        remote, _, failed_remote = timed(suite, "ray")
        print(f"{label}: {n} benchmarks; inline {inline:.1f} s ({inline / n * 1e3:.0f} ms each), "
              f"ray {remote:.1f} s ({remote / n * 1e3:.0f} ms each), speed-up {inline / remote:.2f}x; "
              f"failed {failed_inline} inline, {failed_remote} on Ray")
        if label == "trivial sweep":
            overhead = (cores * remote - inline) / n
            print(f"overhead per Ray task (trivial work; {cores} workers): at most {overhead * 1e3:.1f} ms")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
