"""Does benchbench's CPU latency agree with torch.utils.benchmark?

For a few layers of very different cost, in one process and with the same thread count,
this script times one eval step with benchbench's latency metric and with
``torch.utils.benchmark.Timer.blocked_autorange`` (the reference), alternating the two
for several rounds so that a slow moment of the machine hits both alike. It prints both
medians and their ratio, and exits 1 when a ratio is off by more than ``--tolerance``
(5% by default).

    python benchmarks/latency_agreement.py [--rounds 3] [--min-run-time 1.0]

A benchmark, not a test: timings on a shared machine are noisy, so it prints numbers
rather than running in CI.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from torch.utils.benchmark import Timer

from benchbench.allocator import pin_malloc_thresholds
from benchbench.context import MeasureContext
from benchbench.metrics import latency
from benchbench.spec import BenchmarkSpec
from benchbench_plugins import layers

CASES = {
    "conv 3x3, 16 ch, 16x16, batch 1 (tiny)": (layers.StandardConv2d(16, 16, 3, padding=1), (1, 16, 16, 16)),
    "separable 3x3, 128 ch, 32x32, batch 8": (layers.DepthwiseSeparableConv2d(128, 128, 3, padding=1), (8, 128, 32, 32)),
    "bottleneck 256 ch, 32x32, batch 8": (layers.Bottleneck(256, 256), (8, 256, 32, 32)),
    "conv 3x3, 512 ch, 32x32, batch 8 (large)": (layers.StandardConv2d(512, 512, 3, padding=1), (8, 512, 32, 32)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds per measurement, both tools")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    pin_malloc_thresholds()  # as a benchbench run does; both tools then see the same allocator
    print(f"torch {torch.__version__}, {threads} threads, {args.rounds} alternating rounds of {args.min_run_time:g} s each")
    print(f"{'layer':44} {'benchbench ms':>14} {'torch.utils ms':>15} {'ratio':>7}")
    worst = 0.0
    for name, (model, shape) in CASES.items():
        model.eval()
        x = torch.randn(*shape)
        ctx = MeasureContext(
            model=model, inputs=x, device=torch.device("cpu"), batch_size=shape[0], mode="eval",
            benchmark=BenchmarkSpec(name=name, model="x"),
            options={**latency.OPTIONS, "min_run_time_s": args.min_run_time},
        )
        timer = Timer("step()", globals={"step": ctx.step}, num_threads=threads)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(latency.measure(ctx)["latency_ms"])
            theirs.append(timer.blocked_autorange(min_run_time=args.min_run_time).median * 1e3)
        a, b = statistics.median(ours), statistics.median(theirs)
        worst = max(worst, abs(a / b - 1))
        print(f"{name:44} {a:14.4f} {b:15.4f} {a / b:7.3f}")
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"largest difference {worst:.1%}: {verdict} the {args.tolerance:.0%} tolerance")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
