"""``latency``: how long one step (one batch) takes, as a median over many timed runs.

A step is ``ctx.step()``: a forward pass under ``torch.inference_mode()`` in eval mode,
forward + backward in train mode. The timers live in :mod:`benchbench.timing` (CPU:
calibrated blocks as ``torch.utils.benchmark``; CUDA: events per step with an L2 flush
as triton's ``do_bench``). The table shows the median and the interquartile range; the
run file keeps every raw sample for statistical comparisons between runs.
"""

from __future__ import annotations

from typing import Any

import torch

import benchbench
from benchbench import formatting, timing
from benchbench.context import MeasureContext
from benchbench.environment import available_cores
from benchbench.stats import BUSY_CONTENTION

OPTIONS: dict[str, Any] = {
    "warmup_s": 0.2,
    "min_run_time_s": 1.0,
    "min_runs": 10,
    "max_runs": 10_000,
    "max_run_time_s": 60.0,
    "min_block_s": 0.01,
    "flush_l2": True,
    "noise_threshold": 0.10,
}
"""Defaults; a suite overrides them under ``metric_options: {latency: {...}}``.

``min_block_s`` applies to the CPU timer, ``flush_l2`` to the CUDA timer; the other
budgets to both (``max_run_time_s`` caps the timed part; on CUDA it is planned from the
estimated step time). ``noise_threshold``: warn when IQR / median exceeds it."""
LAUNCH_BOUND = 0.5
"""A noisy CUDA step whose kernels take less than this share of its time is launch-bound."""


def check_options(options: dict[str, Any]) -> list[str]:
    """Ranges the suite validator cannot know from the defaults' types alone."""
    problems = [f"{k} must be at least 1, got {options[k]}" for k in ("min_runs", "max_runs") if options[k] < 1]
    problems += [
        f"{k} must not be negative, got {options[k]}"
        for k in ("warmup_s", "min_run_time_s", "max_run_time_s", "min_block_s")
        if options[k] < 0
    ]
    if options["noise_threshold"] <= 0:
        problems.append(f"noise_threshold must be above 0, got {options['noise_threshold']}")
    if not problems and options["max_runs"] < options["min_runs"]:
        problems.append(f"max_runs ({options['max_runs']}) is below min_runs ({options['min_runs']})")
    return problems


def measure(ctx: MeasureContext) -> dict[str, Any]:
    opts = ctx.options
    budget = {k: opts[k] for k in ("warmup_s", "min_run_time_s", "min_runs", "max_runs", "max_run_time_s")}
    if ctx.is_cuda:
        result = timing.time_cuda(ctx.step, ctx.device, flush_l2=opts["flush_l2"], **budget)
    else:
        result = timing.time_cpu(ctx.step, min_block_s=opts["min_block_s"], **budget)
    for note in result.notes:
        ctx.warn(note)
    summary = timing.summarize(result.samples_ms)
    launch_check = ctx.is_cuda and ctx.replay is None and summary.iqr > opts["noise_threshold"] * summary.median
    return {
        **summary_fields(result.samples_ms, ctx.batch_size),
        "latency_kernel_ms": kernel_time_ms(ctx) if launch_check else None,
        "latency_samples_ms": result.samples_ms,
        "latency_block_size": result.block_size,
        "latency_warmup_runs": result.warmup_runs,
        "latency_timer": result.timer,
        "latency_cpu_contention": contention(result.other_cores, torch.get_num_threads()),
        "latency_other_cores": result.other_cores,
        "latency_load": result.load,
        "latency_noise_threshold": opts["noise_threshold"],
    }


def kernel_time_ms(ctx: MeasureContext) -> float:
    """The GPU time of one step's kernels (profiled): well below the step's event time, the step is
    bound by Python launching kernels, not by the GPU, and ``cuda_graphs: true`` removes that."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        ctx.step()
        ctx.synchronize()
    self_time = lambda e: getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)  # noqa: E731
    return sum(self_time(e) for e in prof.key_averages()) / 1e3


def contention(other_cores: float | None, threads: int) -> float | None:
    """The share of what the benchmark's threads asked for that other work took (0 on a quiet
    machine): with ``threads`` of the process's cores wanted and ``other_cores`` busy with
    something else, only the overlap beyond the free cores competes."""
    if other_cores is None:
        return None
    overlap = other_cores + threads - available_cores()
    return min(1.0, max(0.0, overlap / threads))


def summary_fields(samples_ms: list[float], batch_size: int) -> dict[str, Any]:
    """Median, IQR, runs, throughput and mean of a list of samples."""
    stats = timing.summarize(samples_ms)
    return {
        "latency_ms": stats.median,
        "latency_iqr_ms": stats.iqr,
        "latency_runs": stats.runs,
        "throughput": batch_size / (stats.median / 1e3) if stats.median > 0 else None,
        "latency_mean_ms": stats.mean,
    }


def merge_rounds(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the samples of every round (one or more); keep each round's samples apart for
    the statistics, and warn once per benchmark, about its worst round."""
    measured = [r for r in records if r.get("latency_samples_ms")]
    if not measured:
        return {}
    rounds = [r["latency_samples_ms"] for r in measured]
    fields = {
        **summary_fields([x for samples in rounds for x in samples], records[0]["batch_size"]),
        "latency_samples_ms": [x for samples in rounds for x in samples],
        "latency_rounds_ms": rounds,
        "latency_round_medians_ms": [timing.summarize(r).median for r in rounds],
        "latency_round_cpu_contention": [r.get("latency_cpu_contention") for r in measured],
        "latency_round_other_cores": [r.get("latency_other_cores") for r in measured],
        "latency_round_load": [r.get("latency_load") for r in measured],
    }
    fields["warnings"] = [w for w in (_noise_warning(measured), _busy_warning(measured)) if w]
    return fields


def _which(index: int, count: int) -> str:
    return f" (round {index + 1} of {count}, the worst)" if count > 1 else ""


def _noise_warning(records: list[dict[str, Any]]) -> str | None:
    """One warning when the interquartile range of a round exceeds its noise_threshold of the median."""
    spreads = [(timing.summarize(r["latency_samples_ms"]), r.get("latency_noise_threshold", 0.1)) for r in records]
    worst = max(range(len(spreads)), key=lambda i: spreads[i][0].iqr / spreads[i][0].median if spreads[i][0].median > 0 else 0)
    summary, limit = spreads[worst]
    if summary.median <= 0 or summary.iqr / summary.median <= limit:
        return None
    kernels = records[worst].get("latency_kernel_ms")
    if kernels is not None and kernels < LAUNCH_BOUND * summary.median:
        advice = (f"the step is launch-bound: its kernels run {kernels:.3g} ms of its {summary.median:.3g} ms, the rest is "
                  "Python launching them; cuda_graphs: true replays it without the launch gaps")
    else:
        advice = "other load on the machine? Close it, pin threads, or raise min_run_time_s"
    return (f"latency is noisy: IQR {summary.iqr:.3g} ms is {summary.iqr / summary.median:.1%} of the median "
            f"{summary.median:.3g} ms (> {limit:.0%}){_which(worst, len(spreads))}; {advice}")


def _busy_warning(records: list[dict[str, Any]]) -> str | None:
    """One warning when other work took the cores a round's threads wanted (contention, not the model)."""
    taken = [(i, r["latency_cpu_contention"]) for i, r in enumerate(records) if r.get("latency_cpu_contention") is not None]
    if not taken:
        return None
    worst, share = max(taken, key=lambda pair: pair[1])
    if share <= BUSY_CONTENTION:
        return None
    record = records[worst]
    return (f"busy CPU while timing: other work kept {record['latency_other_cores']:.1f} of {available_cores()} core(s) "
            f"busy, taking {share:.0%} of what the benchmark's {record.get('threads') or '?'} thread(s) asked for"
            f"{_which(worst, len(records))}: the times measure contention, not the model (benchbench compare calls "
            "them uncertain); close other work, or give the suite fewer threads (threads: N)")


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "latency",
        measure,
        fields=["latency_ms", "latency_iqr_ms", "latency_runs", "throughput"],
        ratio_fields=["latency_ms"],
        options=OPTIONS,
        check_options=check_options,
        compare={"latency_ms": {"samples": "latency_samples_ms", "rounds": "latency_rounds_ms",
                                "contention": "latency_round_cpu_contention"}},
        merge_rounds=merge_rounds,
        exclusive=True,
        description="median time of one batch (CPU: blocked perf_counter; CUDA: events; with cuda_graphs: true, "
                    "graph replays, without Python's launch overhead), IQR, samples/s",
        formats={
            "latency_ms": formatting.ms,
            "latency_iqr_ms": formatting.ms,
            "throughput": lambda v: formatting.si(v, 4),
        },
        footnotes={
            "latency_ms": "latency_ms: median time of one batch; latency_iqr_ms its interquartile range.",
            "throughput": "throughput: samples per second (batch_size / latency).",
        },
        bars={"latency_ms": "latency of one batch (ms)"},
        side_by_side=["latency_ms"],
    )
