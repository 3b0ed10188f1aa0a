"""Does benchbench's latency agree with hand-written timing in every execution mode of suites/modes.yaml?

Runs the suite through benchbench (as ``benchbench run suites/modes.yaml`` does: every metric
it lists, on the device it finds), then times each benchmark again by hand, as a user would
write it: the model from the same factory, arguments, batch and input shape (taken from the
benchmark's record), ``torch.compile`` with the row's options, and ``torch.inference_mode()``
and ``torch.autocast`` entered once around the timing:

* CPU: ``torch.utils.benchmark.Timer.blocked_autorange``;
* CUDA: triton's ``do_bench`` (L2 flushed between steps, median), or, without triton, CUDA
  events around each step with a 256 MiB write between steps; ``cuda_graphs`` rows with
  triton's ``do_bench_cudagraph`` (the step captured in a graph, replays timed back to back)
  or, without triton, a graph captured by hand and replayed between events.

It prints the device, torch's version and, per row, both medians and their ratio (with what
benchbench recorded that helps explain a difference: IQR, recompilations, the GPU's clock
state), and exits 1 when a ratio is off by more than ``--tolerance`` (5%).

    python benchmarks/modes_agreement.py [--device auto] [--only REGEX] [--metrics latency] [--threads N] [--json FILE] [--run-file FILE]

A benchmark, not a test: it prints numbers. On a CPU-only machine the cuda_graphs rows are
skipped (device auto) and compiling takes minutes (``--only`` keeps it short).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import benchbench
from benchbench.manager import PluginManager
from benchbench.registry import ModelEntry

SUITE = Path(__file__).resolve().parent.parent / "suites" / "modes.yaml"


def build(record: dict[str, Any], registry: Any, device: torch.device) -> tuple[torch.nn.Module, torch.Tensor]:
    """The row's model and input, made independently of benchbench's builder."""
    entry = registry.get(ModelEntry, record["model"])
    torch.manual_seed(0)
    model = entry.factory(**record["args"]).to(device=device, dtype=getattr(torch, record["dtype"])).eval()
    if record.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(record["batch_size"], *record["input_shape"], device=device, dtype=getattr(torch, record["dtype"]))
    if record.get("compile") is not None:
        options = {} if record["compile"] is True else dict(record["compile"])
        torch._dynamo.reset()
        model = torch.compile(model, **options)  # type: ignore[assignment]
    return model, x


def hand_ms(record: dict[str, Any], registry: Any, device: torch.device, min_run_time: float) -> tuple[float, str]:
    """The row timed by hand: (median ms, how)."""
    model, x = build(record, registry, device)
    autocast = (torch.autocast(device.type, dtype=getattr(torch, record["autocast"])) if record.get("autocast")
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        def fn() -> Any:
            return model(x)

        for _ in range(3):  # compiles, picks algorithms
            fn()
        if device.type == "cpu":
            from torch.utils.benchmark import Timer

            timer = Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
            return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3, "torch.utils.benchmark.Timer"
        torch.cuda.synchronize(device)
        try:
            from triton.testing import do_bench, do_bench_cudagraph
        except ImportError:
            return _events_ms(fn, device, graph=bool(record.get("cuda_graphs")), seconds=min_run_time)
        rep = int(min_run_time * 1e3)
        if record.get("cuda_graphs"):
            return float(do_bench_cudagraph(fn, rep=rep, return_mode="median")), "triton do_bench_cudagraph"
        return float(do_bench(fn, warmup=25, rep=rep, return_mode="median")), "triton do_bench (L2 flush)"


def _events_ms(fn: Callable[[], Any], device: torch.device, *, graph: bool, seconds: float) -> tuple[float, str]:
    """CUDA events around each step, a 256 MiB write between steps (no triton here)."""
    step = fn
    if graph:
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(stream)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        step = g.replay
    flush = torch.empty(256 * 2**20, dtype=torch.int8, device=device)
    times: list[float] = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds or len(times) < 10:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(100)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(100)]
        for s, e in zip(starts, ends):
            flush.zero_()
            s.record()
            step()
            e.record()
        torch.cuda.synchronize(device)
        times += [s.elapsed_time(e) for s, e in zip(starts, ends)]
    return statistics.median(times), "CUDA events by hand (L2 flush)" + (", graph replay" if graph else "")


def _try_hand(record: dict[str, Any], registry: Any, min_run_time: float) -> tuple[float, str] | str:
    """:func:`hand_ms`, or why it failed (in words)."""
    try:
        return hand_ms(record, registry, torch.device(record["device"]), min_run_time)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _suite_benchmarks(path: str) -> list[dict[str, Any]]:
    import yaml

    return list(yaml.safe_load(Path(path).read_text())["benchmarks"])


def explain(record: dict[str, Any]) -> str:
    notes = [f"FAILED: {record.get('error')}"] if record["status"] != "ok" else []
    if record.get("latency_ms") and record.get("latency_iqr_ms") is not None:
        notes.append(f"IQR {record['latency_iqr_ms'] / record['latency_ms']:.0%}")
    if record.get("recompilations"):
        notes.append(f"{record['recompilations']} recompilation(s)")
    if record.get("latency_kernel_ms") is not None:
        notes.append(f"kernels {record['latency_kernel_ms']:.3g} ms")
    if record.get("latency_throttled_samples"):
        notes.append(f"{record['latency_throttled_samples']} throttled")
    return ", ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default=str(SUITE))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", default=None, metavar="REGEX", help="the benchmarks whose names match")
    parser.add_argument("--metrics", default=None, help="comma-separated metrics for the benchbench run (default: "
                                                        "the suite's, as benchbench run does)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="seconds of hand-written timing per row")
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: torch's); 1 "
                                                                   "keeps a shared machine's other work from stalling them")
    parser.add_argument("-p", "--plugin", action="append", default=[], metavar="MODULE",
                        help="a plugin module to load, as benchbench run -p (where the models' entry points are not installed)")
    parser.add_argument("--per-row", action="store_true", help="run each row alone through benchbench and time it by "
                                                               "hand at once (default: the whole suite, then by hand)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the table here")
    parser.add_argument("--run-file", default=None, metavar="FILE", help="also write benchbench's run file here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)  # benchbench keeps it for benchmarks without threads:
    options: dict[str, Any] = {"device": args.device, "quiet": True, "plugins": list(args.plugin)}
    if args.metrics:
        options["metrics"] = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if args.only:
        options["only"] = [b["name"] for b in _suite_benchmarks(args.suite) if re.search(args.only, b["name"])]
    registry = PluginManager(list(args.plugin)).registry
    started = time.perf_counter()
    if args.per_row:  # each row run alone, then timed by hand at once: a shared machine's load drifts less
        names = options.pop("only", None) or [b["name"] for b in _suite_benchmarks(args.suite)]
        records, hand = [], {}
        for name in names:
            one = benchbench.run_suite(args.suite, only=[name], **options)
            record = next(r for r in one.records if r["benchmark"] == name)
            records.append(record)
            if record.get("latency_ms") is not None:
                hand[name] = _try_hand(record, registry, args.min_run_time)
        run = one
        run.records = records
    else:
        run = benchbench.run_suite(args.suite, **options)
        hand = {}
    took = time.perf_counter() - started
    env = run.environment
    device = torch.device(run.records[0]["device"]) if run.records else torch.device("cpu")
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({env.get('cpu') or env.get('cpu_model') or '?'}), {torch.get_num_threads()} threads")
    print(f"{where}; torch {torch.__version__}; benchbench run of {Path(args.suite).name} took {took:.0f} s")
    print(f"{'benchmark':32} {'benchbench ms':>14} {'by hand ms':>11} {'ratio':>6}  how / benchbench's notes")
    rows, worst = [], 0.0
    wanted = set(options.get("only") or [r["benchmark"] for r in run.records])
    for record in run.records:
        if record["benchmark"] not in wanted:
            continue  # a baseline --only pulled in
        name = record["benchmark"]
        if record.get("latency_ms") is None:
            print(f"{name:32} {record['status']}: {record.get('error') or 'no latency'}")
            rows.append({"benchmark": name, "status": record["status"], "error": record.get("error")})
            continue
        timed = hand[name] if name in hand else _try_hand(record, registry, args.min_run_time)
        if isinstance(timed, str):  # a mode this machine cannot time by hand: say so, go on
            print(f"{name:32} {record['latency_ms']:14.4f} {'-':>11} {'-':>6}  by hand failed: {timed}")
            rows.append({"benchmark": name, "benchbench_ms": record["latency_ms"], "error": timed})
            continue
        reference, how = timed
        ratio = record["latency_ms"] / reference
        worst = max(worst, abs(ratio - 1))
        print(f"{name:32} {record['latency_ms']:14.4f} {reference:11.4f} {ratio:6.2f}  {how}; {explain(record)}")
        rows.append({"benchmark": name, "benchbench_ms": record["latency_ms"], "hand_ms": reference, "ratio": ratio,
                     "how": how, "notes": explain(record), "latency_timer": record.get("latency_timer"),
                     "latency_gpu_state": record.get("latency_gpu_state")})
    verdict = "within" if worst <= args.tolerance else "OUTSIDE"
    print(f"largest difference {worst:.1%}: {verdict} the {args.tolerance:.0%} tolerance")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": where, "torch": torch.__version__, "rows": rows,
                                               "largest_difference": worst}, indent=1))
    if args.run_file:
        run.write_json(args.run_file)
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
