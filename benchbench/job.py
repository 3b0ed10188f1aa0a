"""One benchmark, measured: the model built, each metric run, the record made.

What pytest's ``runner.py`` is to one test, this module is to one benchmark (the loop
over a suite, rounds, saving and resuming live in :mod:`benchbench.suiterunner`). It is all
that a worker process needs: the ``subprocess`` executor's worker and the Ray executor's
tasks import this module and the plugins, not the suite runner.

A benchmark never takes the run down: whatever its model or a metric raises (``SystemExit``
included), runs out of memory, or a timeout, becomes a ``failed`` record with its error,
keeping the fields measured before. Each phase of a benchmark (loading its dataset,
building, the first step, which compiles under ``compile:``, the CUDA graph capture, each
metric) runs through one wrapper, :meth:`PhaseOutcome.from_call` (pytest's
``CallInfo.from_call``): its value, or its failure in words.
"""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

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
from benchbench.ticker import ticking

if TYPE_CHECKING:
    from benchbench.manager import PluginManager

MODEL_FAULTS = (Exception, SystemExit)
"""What a model's or a metric's code may raise that fails only its benchmark: ``SystemExit``
too (a model that calls ``sys.exit``, or parses arguments with argparse), so that it cannot
end the run. Ctrl-C and the benchmark's own deadline are not faults of the model."""

T = TypeVar("T")


@dataclass(frozen=True)
class PhaseOutcome(Generic[T]):
    """How one phase of a benchmark ended: its value, or its failure in words (``error``)."""

    value: T | None
    error: str | None = None
    """``<stage> raised <exception>: <message>`` (:func:`describe_failure`), or None."""

    @classmethod
    def from_call(cls, stage: str, call: Callable[[], T], *, lines: int = 1) -> PhaseOutcome[T]:
        """Run one phase: what the model's or a plugin's code raises (:data:`MODEL_FAULTS`) becomes
        the outcome's ``error``, the first ``lines`` lines of its message after ``stage``; Ctrl-C
        and the benchmark's deadline go through."""
        try:
            return cls(call())
        except MODEL_FAULTS as exc:
            return cls(None, describe_failure(stage, exc, lines))


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
                out.update(dict.fromkeys(self.registry.get(MetricEntry, key).compare, value))
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
        built: list[MeasureContext] = []  # the benchmark's context once built: its warnings, then freed
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
                    errors.extend(self._phases(job, record, device, built))
            except DeadlineExceeded:
                kept = any(k not in CORE_FIELDS for k in record)
                errors.append(f"timed out after {spec.timeout:g} s" + (" (the fields measured before are kept)" if kept else ""))
            finally:
                for ctx in built:
                    record["warnings"] += ctx.warnings
                built.clear()  # free the model before the next benchmark
                if device.type == "cuda":  # collect cycles too, so that the cache can return the memory
                    gc.collect()
                    torch.cuda.empty_cache()
                else:  # a full collection costs ~0.1 s with torch loaded: the young generations suffice
                    gc.collect(1)
        record["wall_time_s"] = time.perf_counter() - started
        record["warnings"] += unchecked_budgets(self.registry, spec, record.get("thresholds") or {})
        if errors:
            record.update(status=STATUS_FAILED, error="; ".join(errors))
        return record

    def _phases(self, job: Job, record: Record, device: torch.device, built: list[MeasureContext]) -> list[str]:
        """Each phase of the benchmark, while the ones before it succeed: its dataset, the model
        and its input (the context, appended to ``built``), then :meth:`_measure_built`; the
        errors, each described (an empty list: all went well)."""
        spec = job.spec
        dataset = PhaseOutcome.from_call(f"loading dataset {spec.dataset!r}", lambda: self._dataset(spec))
        if dataset.error is not None:
            return [dataset.error]
        entry = self.registry.get(ModelEntry, spec.model)
        build = PhaseOutcome.from_call("building the model and its input",  # a broken model fails its benchmark only
                                       lambda: build_context(spec, entry, device, record["batch_size"], dataset.value))
        if build.error is not None:
            return [build.error]
        ctx = build.value
        assert ctx is not None  # no error: the phase's value
        built.append(ctx)
        ctx.progress = lambda message: self.manager.hook.benchbench_benchmark_progress(benchmark=spec, message=message)
        return self._measure_built(ctx, job, record)

    def _measure_built(self, ctx: MeasureContext, job: Job, record: Record) -> list[str]:
        """The first step (where ``compile:`` compiles: timed as ``compile_time_s``), the CUDA graph
        capture (``cuda_graphs:``), then each metric of this round; recompilations after the
        first step are counted, since they would hide inside the timings."""
        spec = job.spec
        watch = modes.CompileWatch() if spec.compile is not None else None

        def first_step() -> None:
            record["output_shape"] = per_sample_shape(ctx.step())
            ctx.synchronize()

        started = time.perf_counter()
        if watch is None:
            first = PhaseOutcome.from_call("the first forward pass", first_step)
        else:
            with ticking(ctx.report, "compiling (torch.compile)"):  # a minute of max-autotune must not look hung
                first = PhaseOutcome.from_call("compiling the model (torch.compile) and running its first step",
                                               first_step, lines=3)
            if first.error is not None and "No module named 'pkg_resources'" in first.error:  # torch 2.1's inductor
                return [first.error + '; this torch needs pkg_resources: pip install "setuptools<81"']  # setuptools >= 81
        if first.error is not None:
            return [first.error]
        if watch is not None:
            watch.first_step_done(record, time.perf_counter() - started)
        if spec.cuda_graphs:
            capture = PhaseOutcome.from_call("capturing the step in a CUDA graph",
                                             lambda: modes.capture_cuda_graph(ctx.eager_step, ctx.device), lines=2)
            if capture.error is not None:
                return [capture.error]
            ctx.replay = capture.value
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

        def measure() -> Any:
            fields = entry.measure(ctx)
            ctx.synchronize()
            return fields

        measured = PhaseOutcome.from_call(f"metric {metric!r}", measure)  # one metric failing keeps the others' fields
        if measured.error is not None:
            return [measured.error]
        fields = dict(measured.value or {})
        reserved = sorted(set(fields) & set(RESERVED_FIELDS))
        if reserved:  # a metric must not overwrite the runner's fields (status, benchmark, ...)
            return [f"metric {metric!r} returned field(s) the runner owns: {', '.join(reserved)}; rename them"]
        record.update(fields)
        return over_budget(entry, fields, record.get("thresholds") or {})


def unchecked_budgets(registry: Registry, spec: BenchmarkSpec, thresholds: dict[str, float]) -> list[str]:
    """A budget in ``thresholds:`` whose metric this benchmark does not measure (left out of its
    metrics, or of ``--metrics``) is not checked: say so, rather than pass silently."""
    measured = set(spec.metrics)
    warnings = []
    for entry in registry.entries(MetricEntry):
        bounded = [f for f in entry.budgets if f in thresholds]
        if bounded and entry.name not in measured:
            warnings.append(f"the budget on {', '.join(bounded)} (thresholds:) is not checked: the benchmark does not "
                            f"measure {entry.name!r}; add it to its metrics")
    return warnings


def over_budget(entry: MetricEntry, fields: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """The metric's budgeted fields (``budget`` in its ``compare``) that the suite bounds in
    ``thresholds:`` and whose value is over the bound: each fails the benchmark, with both numbers.
    A value that is not a finite number below the bound (inf, NaN) is over it."""
    problems = []
    for name in entry.budgets:
        value, limit = fields.get(name), thresholds.get(name)
        if limit is None or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not value <= limit:
            problems.append(f"{name} {value:.3g} is over its budget {limit:g} (the suite's thresholds: {{{name}: {limit:g}}})")
    return problems


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
