"""``profile`` (``benchbench run --profile DIR``): a torch.profiler trace of a few steps.

One trace per benchmark, written by ``torch.profiler.tensorboard_trace_handler`` into
``DIR/<benchmark>/`` in the format the TensorBoard profiler plugin (torch-tb-profiler)
reads: ``tensorboard --logdir DIR`` shows the timeline, the operator and kernel tables
and the memory view (``pip install "torch-benchbench[tensorboard]"``). The trace is plain
Chrome-trace JSON, which chrome://tracing and Perfetto open too.

The steps profiled are the benchmark's own ``ctx.step()`` (eval forward or train
forward + backward), after one warm-up step. The operators that took the most time (self
time: CUDA time on a GPU, CPU time otherwise) are shown on the terminal and kept in the
record (``profile_top_ops``; ``profile_top`` is the one-line summary in the table).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import benchbench
from benchbench.context import MeasureContext

OPTIONS: dict[str, Any] = {"dir": "profiles", "steps": 3, "top": 5}


def measure(ctx: MeasureContext) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    opts = ctx.options
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ctx.benchmark.name)
    folder = Path(opts["dir"]) / name
    folder.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.is_cuda else [])
    write = tensorboard_trace_handler(str(folder), worker_name=name)
    cycle: list[Any] = []

    def ready(prof: Any) -> None:  # the active steps are done: keep their operators, write the trace
        cycle.append(prof.key_averages())
        write(prof)

    with warnings.catch_warnings(), profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=opts["steps"]),
                                            on_trace_ready=ready, record_shapes=True) as prof:
        warnings.simplefilter("ignore")  # "events are cleared after each cycle": read in ready()
        for _ in range(1 + opts["steps"]):
            ctx.step()
            ctx.synchronize()
            prof.step()
    events = [e for e in (cycle[0] if cycle else []) if not e.key.startswith("ProfilerStep")]
    by_device = "self_device_time_total" if ctx.is_cuda else "self_cpu_time_total"
    total = sum(getattr(e, by_device) for e in events) or 1.0
    ranked = sorted(events, key=lambda e: getattr(e, by_device), reverse=True)[: opts["top"]]
    top = [
        {"name": e.key, "self_ms": getattr(e, by_device) / 1e3 / opts["steps"], "share": getattr(e, by_device) / total,
         "calls": e.count // opts["steps"]}
        for e in ranked
    ]
    summary = ", ".join(f"{t['name'].removeprefix('aten::')} {t['share']:.0%}" for t in top[:3])
    ctx.report(f"profile: {summary} (trace in {folder})")
    traces = sorted(folder.glob("*.pt.trace.json"), key=lambda p: p.stat().st_mtime)
    return {"profile_top": summary, "profile_top_ops": top, "profile_trace": str(traces[-1]) if traces else None}


def check_options(options: dict[str, Any]) -> list[str]:
    problems = [f"{k} must be at least 1, got {options[k]}" for k in ("steps", "top") if options[k] < 1]
    if not options["dir"]:
        problems.append("dir must name a folder")
    return problems


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register("profile", measure, fields=["profile_top"], options=OPTIONS, check_options=check_options,
             description="torch.profiler trace of a few steps for TensorBoard (--profile DIR); top operators")
