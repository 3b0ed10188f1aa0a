"""``latency``: how long one step (one batch) takes, as a median over many timed runs.

A step is ``ctx.step()``: a forward pass under ``torch.inference_mode()`` in eval mode,
forward + backward in train mode. The timers live in :mod:`benchbench.timing` (CPU:
calibrated blocks as ``torch.utils.benchmark``; CUDA: events per step with an L2 flush
as triton's ``do_bench``). The table shows the median and the interquartile range; the
run file keeps every raw sample for statistical comparisons between runs.

On a CUDA GPU the GPU's state is sampled with NVML while each round is timed
(:mod:`benchbench.gpustate`; ``gpu_state: false`` turns it off): the trace (SM clock,
temperature, power) is kept as ``latency_gpu_trace``, and the steps timed while the SM clock
was below ``throttle_share`` of the default application clock are counted
(``latency_throttled_samples``), kept apart (``latency_throttled_ms``) and left out of the
statistics, with a warning. Without NVML (no ``nvidia-ml-py``, no driver) the reason is
recorded as ``latency_gpu_state`` and the timing is as before.

A noisy CUDA step is checked for being launch-bound by its device time
(:func:`benchbench.timing.device_time_ms`: steps queued behind a GPU sleep), not by the
profiler, whose CUPTI state could slow the launches of the benchmarks timed after it.

``target_uncertainty`` (0: off, the default) stops sampling once the median is known to
+-that share (95% interval) instead of after ``min_run_time_s`` (:class:`benchbench.timing.StopRule`).
"""

from __future__ import annotations

from typing import Any

import torch

import benchbench
from benchbench import formatting, gpustate, timing
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
    "target_uncertainty": 0.0,
    "gpu_state": True,
    "throttle_share": gpustate.THROTTLE_SHARE,
    "gpu_sample_interval_s": gpustate.SAMPLE_INTERVAL_S,
}
"""Defaults; a suite overrides them under ``metric_options: {latency: {...}}``.

``min_block_s`` applies to the CPU timer, ``flush_l2`` to the CUDA timer; the other
budgets to both (``max_run_time_s`` caps the timed part; on CUDA it is planned from the
estimated step time). ``noise_threshold``: warn when IQR / median exceeds it.
``target_uncertainty``: stop once the median is known to +-this share (0.005 = 0.5%), or at
``max_run_time_s``; 0 keeps the fixed duration. ``gpu_state``, ``throttle_share`` and
``gpu_sample_interval_s``: NVML sampling on CUDA (see the module docstring)."""
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
    if not 0 <= options["target_uncertainty"] < 1:
        problems.append(f"target_uncertainty must be from 0 (off) to below 1, got {options['target_uncertainty']} "
                        "(0.005: stop once the median is known to +-0.5%)")
    if not 0 < options["throttle_share"] <= 1:
        problems.append(f"throttle_share must be above 0 and at most 1, got {options['throttle_share']}")
    if options["gpu_sample_interval_s"] <= 0:
        problems.append(f"gpu_sample_interval_s must be above 0, got {options['gpu_sample_interval_s']}")
    if not problems and options["max_runs"] < options["min_runs"]:
        problems.append(f"max_runs ({options['max_runs']}) is below min_runs ({options['min_runs']})")
    return problems


def measure(ctx: MeasureContext) -> dict[str, Any]:
    opts = ctx.options
    budget = {k: opts[k] for k in ("warmup_s", "min_run_time_s", "min_runs", "max_runs", "max_run_time_s",
                                   "target_uncertainty")}
    gpu_fields: dict[str, Any] = {}
    if ctx.is_cuda:
        gpu = gpustate.open_torch_gpu(ctx.device) if opts["gpu_state"] else "gpu_state: false"
        with gpustate.sampling(None if isinstance(gpu, str) else gpu, opts["gpu_sample_interval_s"]) as sampler:
            result = timing.time_cuda(ctx.step, ctx.device, flush_l2=opts["flush_l2"], **budget)
        gpu_fields = gpu_state_fields(result, gpu, sampler, opts["throttle_share"])
        warning = gpu_fields.pop("warning", None)
        if warning:
            ctx.warn(warning)
    else:
        result = timing.time_cpu(ctx.step, min_block_s=opts["min_block_s"], **budget)
    for note in result.notes:
        ctx.warn(note)
    samples = gpu_fields.pop("kept", result.samples_ms)
    summary = timing.summarize(samples)
    launch_check = ctx.is_cuda and ctx.replay is None and summary.iqr > opts["noise_threshold"] * summary.median
    return {
        **summary_fields(samples, ctx.batch_size),
        "latency_kernel_ms": timing.device_time_ms(ctx.step, ctx.device, launch_ms=summary.median) if launch_check else None,
        "latency_samples_ms": samples,
        "latency_block_size": result.block_size,
        "latency_warmup_runs": result.warmup_runs,
        "latency_timer": result.timer,
        "latency_cpu_contention": contention(result.other_cores, torch.get_num_threads()),
        "latency_other_cores": result.other_cores,
        "latency_load": result.load,
        "latency_noise_threshold": opts["noise_threshold"],
        "latency_uncertainty": result.uncertainty,
        **gpu_fields,
    }


def gpu_state_fields(result: timing.Timing, gpu: gpustate.Gpu | str, sampler: gpustate.Sampler | None,
                     share: float) -> dict[str, Any]:
    """The GPU state of one CUDA round for the record: the trace, the throttled samples left out
    (``kept``: the samples for the statistics; ``warning``: for the user), or why nothing was sampled."""
    if isinstance(gpu, str) or sampler is None:
        return {"latency_gpu_state": f"not sampled: {gpu}"}
    starts = result.starts_s or []
    origin = starts[0] if starts else 0.0
    fields: dict[str, Any] = {
        "latency_gpu_state": f"NVML, {gpu.name}, every {sampler.interval:g} s" + (f"; {sampler.error}" if sampler.error else ""),
        "latency_gpu_trace": sampler.trace.as_fields(origin),
        "latency_default_sm_clock_mhz": gpu.default_sm_clock_mhz,
    }
    limit = gpustate.clock_limit(gpu, share)
    if limit is None or len(starts) != len(result.samples_ms):
        fields.update(latency_throttled_samples=None, latency_throttled_ms=None,
                      latency_gpu_state=fields["latency_gpu_state"] + "; no default application clock: throttling not judged")
        return fields
    filtered = gpustate.filter_throttled(result.samples_ms, starts, sampler.trace, limit, share=share)
    fields.update(kept=filtered.kept, warning=filtered.warning, latency_sm_clock_limit_mhz=limit,
                  latency_throttled_samples=len(filtered.throttled), latency_throttled_ms=filtered.throttled)
    return fields


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
    if any("latency_gpu_state" in r for r in measured):  # CUDA: each round's GPU state, and the throttled steps in all
        fields["latency_round_gpu_traces"] = [r.get("latency_gpu_trace") for r in measured]
        counts = [r.get("latency_throttled_samples") for r in measured]
        fields["latency_throttled_samples"] = None if all(c is None for c in counts) else sum(c or 0 for c in counts)
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
