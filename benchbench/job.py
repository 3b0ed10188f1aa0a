"""One benchmark, measured: the model built, each metric run, the record made.

What pytest's ``runner.py`` is to one test, this module is to one benchmark (the loop
over a suite, rounds, saving and resuming live in :mod:`benchbench.suiterunner`). It is all
that a worker process needs: the ``subprocess`` executor's worker and the Ray executor's
tasks import this module and the plugins, not the suite runner.

A benchmark never takes the run down: whatever its model or a metric raises (``SystemExit``
included), runs out of memory, or a timeout, becomes a ``failed`` record with its error,
keeping the fields measured before.
"""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from benchbench import environment, modes
from benchbench.build import build_context, per_sample_shape
from benchbench.context import MeasureContext
from benchbench.data import Dataset
from benchbench.deadline import DeadlineExceeded, deadline
from benchbench.errors import UsageError
from benchbench.registry import DatasetEntry, MetricEntry, ModelEntry, Registry
from benchbench.results import CORE_FIELDS, RESERVED_FIELDS, STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, Record
from benchbench.spec import BenchmarkSpec

if TYPE_CHECKING:
    from benchbench.manager import PluginManager

MODEL_FAULTS = (Exception, SystemExit)
"""What a model's or a metric's code may raise that fails only its benchmark: ``SystemExit``
too (a model that calls ``sys.exit``, or parses arguments with argparse), so that it cannot
end the run. Ctrl-C and the benchmark's own deadline are not faults of the model."""


@dataclass(frozen=True)
class Job:
    """One benchmark to run: its validated spec and its device (:func:`job_device`: resolved when
    the run was planned, or, for a remote executor, the name as given)."""

    index: int
    total: int
    spec: BenchmarkSpec
    suite: str
    device: str
    round: int = 0
    rounds: int = 1
    """With ``rounds: N`` every job runs N times, interleaved with the others."""


def job_device(name: str, *, elsewhere: bool = False) -> str:
    """The device a job runs on, decided by one rule where the job runs (:func:`resolve_device`).

    The suite runner asks when it plans the run, and the job runner again where the job runs
    (the same answer in the same process or on the same machine). A job planned for an
    executor that runs it ``elsewhere`` (``remote``: a cluster's node) keeps the name as given
    (``auto``), for the node to decide: this machine cannot see the node's GPUs."""
    return name if elsewhere else str(resolve_device(name))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first GPU if there is one, else CPU; a missing GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {name!r} was asked for, but torch sees no CUDA GPU (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none: a CPU-only build'}); "
                "use --device cpu, or device: auto to fall back to the CPU"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


class JobRunner:
    """Measures jobs in this process with the plugins of one manager."""

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self.registry = manager.registry
        self._datasets: dict[tuple[str, str], Any] = {}

    def failed(self, job: Job, error: str) -> Record:
        """The record of a job that produced none of its own (its process crashed, it was killed)."""
        record = self.base_record(job)
        record.update(status=STATUS_FAILED, error=error)
        return record

    def timed(self, job: Job) -> bool:
        return any(self.registry.get(MetricEntry, m).exclusive for m in job.spec.metrics)

    def base_record(self, job: Job) -> Record:
        """The record's fields known before anything runs."""
        spec, device = job.spec, torch.device(job_device(job.device))
        entry = self.registry.get(ModelEntry, spec.model)
        batch = spec.cpu_batch_size if device.type == "cpu" and spec.cpu_batch_size else spec.batch_size
        return {
            "suite": job.suite,
            "benchmark": spec.name,
            "model": spec.model,
            "family": entry.family,
            "plugin": entry.plugin,
            "args": spec.args,
            "device": str(device),
            "batch_size": batch,
            "suite_batch_size": spec.batch_size,
            "input_shape": list(spec.input_shape),
            "output_shape": None,
            "dtype": spec.dtype,
            "mode": spec.mode,
            "channels_last": spec.channels_last,
            "threads": None,
            "baseline": spec.baseline,
            "status": STATUS_OK,
            "error": None,
            "warnings": [],
            "wall_time_s": None,
            "host": socket.gethostname(),
            "rounds": 1,
            "thresholds": self._thresholds(spec),
            "compile": spec.compile,
            "autocast": spec.autocast,
            "tf32": spec.tf32,
            "cudnn_benchmark": spec.cudnn_benchmark,
            "cuda_graphs": spec.cuda_graphs,
            "backend_flags": None,
        }

    def _thresholds(self, spec: BenchmarkSpec) -> dict[str, float]:
        """The suite's thresholds by compared field (a metric's name stands for all its fields)."""
        out: dict[str, float] = {}
        for key, value in spec.thresholds.items():
            if self.registry.has(MetricEntry, key):
                out.update({f: value for f in self.registry.get(MetricEntry, key).compare})
        out.update({k: v for k, v in spec.thresholds.items() if not self.registry.has(MetricEntry, k)})
        return out

    def run(self, job: Job) -> Record:
        """Build the model, run each metric, and return the record; never raises for the model's faults."""
        record = self.base_record(job)
        spec, device = job.spec, torch.device(record["device"])
        if spec.skip:
            record.update(status=STATUS_SKIPPED, error=spec.skip)
            return record
        no_gpu = modes.cuda_graphs_without_gpu(spec.device, record["device"]) if spec.cuda_graphs else None
        if no_gpu is not None:  # device: auto found no GPU here (or a spec that skipped validation asks for the CPU)
            record.update(status=STATUS_SKIPPED if no_gpu.skip else STATUS_FAILED, error=no_gpu.reason)
            return record
        started = time.perf_counter()
        errors: list[str] = []
        ctx: MeasureContext | None = None
        with _threads(spec.threads if device.type == "cpu" else None), modes.precision_flags(spec, device) as flags:
            record["backend_flags"] = flags
            record["threads"] = torch.get_num_threads()
            cores = environment.available_cores()
            if device.type == "cpu" and record["threads"] > cores:
                record["warnings"].append(
                    f"{record['threads']} threads on {cores} CPU(s): oversubscribed, timings mostly measure contention"
                )
            try:
                with deadline(spec.timeout):
                    try:
                        dataset = self._dataset(spec)
                    except MODEL_FAULTS as exc:
                        errors.append(describe_failure(f"loading dataset {spec.dataset!r}", exc))
                        raise _Stop from None
                    try:
                        ctx = build_context(spec, self.registry.get(ModelEntry, spec.model), device, record["batch_size"], dataset)
                        ctx.progress = lambda message: self.manager.hook.benchbench_benchmark_progress(benchmark=spec, message=message)
                    except MODEL_FAULTS as exc:  # a broken model is a failed benchmark, not a crash
                        errors.append(describe_failure("building the model and its input", exc))
                    else:
                        errors.extend(self._measure_built(ctx, job, record))
            except _Stop:
                pass
            except DeadlineExceeded:
                kept = any(k not in CORE_FIELDS for k in record)
                errors.append(f"timed out after {spec.timeout:g} s" + (" (the fields measured before are kept)" if kept else ""))
            finally:
                if ctx is not None:
                    record["warnings"] += ctx.warnings
                ctx = None  # free the model before the next benchmark
                if device.type == "cuda":  # collect cycles too, so that the cache can return the memory
                    gc.collect()
                    torch.cuda.empty_cache()
                else:  # a full collection costs ~0.1 s with torch loaded: the young generations suffice
                    gc.collect(1)
        record["wall_time_s"] = time.perf_counter() - started
        if errors:
            record.update(status=STATUS_FAILED, error="; ".join(errors))
        return record

    def _measure_built(self, ctx: MeasureContext, job: Job, record: Record) -> list[str]:
        """The first step (where ``compile:`` compiles: timed as ``compile_time_s``), the CUDA graph
        capture (``cuda_graphs:``), then each metric of this round; recompilations after the
        first step are counted, since they would hide inside the timings."""
        spec = job.spec
        watch = modes.CompileWatch() if spec.compile is not None else None
        started = time.perf_counter()
        try:
            record["output_shape"] = per_sample_shape(ctx.step())
            ctx.synchronize()
        except MODEL_FAULTS as exc:
            if watch is not None:
                problem = describe_failure("compiling the model (torch.compile) and running its first step", exc, lines=3)
                if "No module named 'pkg_resources'" in problem:  # torch 2.1's inductor, setuptools >= 81
                    problem += '; this torch needs pkg_resources: pip install "setuptools<81"'
                return [problem]
            return [describe_failure("the first forward pass", exc)]
        if watch is not None:
            watch.first_step_done(record, time.perf_counter() - started)
        if spec.cuda_graphs:
            try:
                ctx.replay = modes.capture_cuda_graph(ctx.eager_step, ctx.device)
            except MODEL_FAULTS as exc:
                return [describe_failure("capturing the step in a CUDA graph", exc, lines=2)]
        errors = [e for metric in metrics_of_round(self.registry, spec, job.round)
                  for e in self._measure(metric, ctx, spec, record)]
        if watch is not None:
            watch.measured(record, ctx)
        return errors

    def _dataset(self, spec: BenchmarkSpec) -> Any:
        """The benchmark's dataset, loaded once per run for all benchmarks that share it."""
        if spec.dataset is None:
            return None
        key = (spec.dataset, json.dumps(spec.dataset_args, sort_keys=True, default=str))
        if key not in self._datasets:
            entry = self.registry.get(DatasetEntry, spec.dataset)
            dataset = entry.loader(**spec.dataset_args)
            if not isinstance(dataset, Dataset):
                raise TypeError(f"dataset {spec.dataset!r} loader returned {type(dataset).__name__}, not a benchbench.data.Dataset")
            dataset.name = dataset.name or spec.dataset
            self._datasets[key] = dataset
        return self._datasets[key]

    def _measure(self, metric: str, ctx: MeasureContext, spec: BenchmarkSpec, record: Record) -> list[str]:
        entry = self.registry.get(MetricEntry, metric)
        ctx.options = {**entry.options, **spec.metric_options.get(metric, {})}
        try:
            fields = entry.measure(ctx)
            ctx.synchronize()
        except MODEL_FAULTS as exc:  # one metric failing keeps the others' fields
            return [describe_failure(f"metric {metric!r}", exc)]
        fields = dict(fields or {})
        reserved = sorted(set(fields) & set(RESERVED_FIELDS))
        if reserved:  # a metric must not overwrite the runner's fields (status, benchmark, ...)
            return [f"metric {metric!r} returned field(s) the runner owns: {', '.join(reserved)}; rename them"]
        record.update(fields)
        return []



class _Stop(Exception):
    """Ends a benchmark early, its error already recorded."""


def metrics_of_round(registry: Registry, spec: BenchmarkSpec, round_index: int) -> list[str]:
    """Every metric in the first round; later rounds repeat only those that pool rounds
    (``merge_rounds``: latency), since params or FLOPs would come out the same. A benchmark
    with nothing to measure after its first round runs once (:mod:`benchbench.suiterunner`)."""
    if round_index == 0:
        return list(spec.metrics)
    return [m for m in spec.metrics if registry.get(MetricEntry, m).merge_rounds is not None]


def describe_failure(stage: str, exc: BaseException, lines: int = 1) -> str:
    """``the first forward pass raised ValueError: <first line>``: a failure in a line (or in the
    first ``lines`` non-empty lines of its message: a compiler's reason takes a few)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"{stage} ran out of GPU memory (CUDA out of memory); try a smaller batch_size"
    message = " / ".join([line.strip() for line in str(exc).splitlines() if line.strip()][:lines])
    return f"{stage} raised {type(exc).__name__}" + (f": {message}" if message else "")


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """Pin the CPU thread count for one benchmark (recorded), then restore it."""
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
