"""Run a validated suite: hand each benchmark to an executor, collect and save the records.

The runner knows nothing about convolutions or about any particular metric: models come
from the registry, measurements from metric plugins, progress from lifecycle hooks and
*where* a benchmark runs from an executor plugin (:mod:`benchbench.executors`).

Nothing is lost along the way:

* a benchmark that raises (building, forward, a metric), runs out of memory or passes
  its ``timeout`` is recorded as ``failed`` with its error, and the others still run;
* with a run file path, the file is rewritten atomically after every benchmark (marked
  ``complete: false`` until the end), so a crash or a kill leaves what finished;
* Ctrl-C keeps what finished and marks the run incomplete; ``resume=`` runs only the
  benchmarks a previous, incomplete run file has no record of.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import socket
import time
from functools import partial
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchbench import environment, peak
from benchbench.allocator import pin_malloc_thresholds
from benchbench.build import build_context, per_sample_shape, preflight
from benchbench.context import MeasureContext
from benchbench.data import Dataset
from benchbench.deadline import DeadlineExceeded, deadline
from benchbench.errors import UsageError
from benchbench.executors import Job
from benchbench.manager import PluginManager
from benchbench.registry import DatasetEntry, ExecutorEntry, MetricEntry, ModelEntry
from benchbench.results import (
    CORE_FIELDS,
    STATUS_FAILED,
    STATUS_OK,
    STATUS_SKIPPED,
    Record,
    RunResult,
    add_ratios,
)
from benchbench.spec import BenchmarkSpec, Suite
from benchbench.suite import load_suite
from benchbench.suitefile import SuiteDocument

DEFAULT_EXECUTOR = "inline"
MODEL_FAULTS = (Exception, SystemExit)
"""What a model's or a metric's code may raise that fails only its benchmark: ``SystemExit``
too (a model that calls ``sys.exit``, or parses arguments with argparse), so that it cannot
end the run. Ctrl-C and the benchmark's own deadline are not faults of the model."""


def run_suite(
    suite: str | Path | Mapping[str, Any],
    *,
    device: str | None = None,
    batch_size: int | None = None,
    timeout: float | None = None,
    metrics: list[str] | None = None,
    only: list[str] | None = None,
    plugins: list[str] | tuple[str, ...] = (),
    plugins_dir: str | Path | None = None,
    manager: PluginManager | None = None,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
    rounds: int | None = None,
    profile: str | Path | None = None,
    out: str | Path | None = None,
    resume: RunResult | None = None,
    quiet: bool = False,
) -> RunResult:
    """Load, validate and run a suite; the Python API behind ``benchbench run``.

    ``device``, ``batch_size``, ``timeout`` and ``metrics`` override every benchmark (``batch_size``
    also turns off ``cpu_batch_size``); ``only`` keeps the named benchmarks (and their
    baselines); ``executor`` picks where they run (``inline``, ``subprocess``, ``ray``...; default:
    the suite's ``executor:``, else inline) and ``executor_options`` configure it
    (``{"address": ...}`` for Ray); ``rounds`` runs the whole suite that many
    times, interleaved, pooling the timed samples (default: the suite's ``rounds:``, else
    1); ``profile`` (a folder) adds the ``profile`` metric to every benchmark, writing one
    TensorBoard trace each there; ``quiet`` turns the progress lines on stderr
    off. With ``out``, the run file is written there after every benchmark; otherwise
    nothing is written (call ``.write_json(path)`` on the result). ``resume`` (a run
    file read with ``RunResult.read_json``) keeps its records and runs the rest.
    """
    manager = manager or PluginManager(list(plugins), plugins_dir)
    options = RunOptions(device=device, batch_size=batch_size, timeout=timeout, metrics=metrics, only=only,
                         executor=executor, executor_options=executor_options, rounds=rounds, profile=profile, quiet=quiet)
    loaded = prepare(suite, manager, options)
    return Runner(manager).run(loaded, options, out=out, resume=resume)


@dataclass(frozen=True)
class RunOptions:
    """What the command line (or the API's keywords) changes about a suite's run."""

    device: str | None = None
    batch_size: int | None = None
    timeout: float | None = None
    metrics: list[str] | None = None
    only: list[str] | None = None
    executor: str | None = None
    executor_options: dict[str, Any] | None = None
    rounds: int | None = None
    profile: str | Path | None = None
    quiet: bool = False

    def overrides(self) -> dict[str, Any]:
        """The suite keys these options set on every benchmark."""
        out: dict[str, Any] = {}
        if self.device is not None:
            out["device"] = self.device
        if self.batch_size is not None:
            out.update(batch_size=self.batch_size, cpu_batch_size=None)
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.metrics is not None:
            out["metrics"] = list(self.metrics)
        return out

    def stored(self) -> dict[str, Any]:
        """What the run file keeps (``options``), so that ``--resume`` replays the same run."""
        given = {"device": self.device, "batch_size": self.batch_size, "timeout": self.timeout, "metrics": self.metrics,
                 "only": self.only, "executor": self.executor, "rounds": self.rounds}
        return {k: v for k, v in given.items() if v is not None}


def prepare(suite: str | Path | Mapping[str, Any] | SuiteDocument, manager: PluginManager, options: RunOptions) -> Suite:
    """Load and validate the suite with the options applied: every input problem surfaces
    here (exit code 2), before a run file is claimed or anything is measured."""
    if options.quiet and manager.pm.get_plugin("benchbench.progress") is not None:
        manager.pm.unregister(name="benchbench.progress")
    if options.executor is not None and not manager.registry.has(ExecutorEntry, options.executor):
        raise UsageError(f"--executor: {manager.unknown(ExecutorEntry, options.executor)}")
    rounds = options.rounds
    if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
        raise UsageError(f"--rounds must be a positive whole number, got {rounds!r}")
    document = SuiteDocument.of(suite)
    # The dry run executes model code in this process: only when the benchmarks will run here too.
    in_process = (options.executor or document.data.get("executor") or DEFAULT_EXECUTOR) == DEFAULT_EXECUTOR
    loaded = load_suite(document, manager, overrides=options.overrides(), only=options.only,
                        preflight=partial(preflight, registry=manager.registry) if in_process else None)
    if options.profile is not None:
        loaded = with_profile(loaded, str(options.profile))
    return replace(loaded, rounds=rounds or loaded.rounds, executor=options.executor or loaded.executor or DEFAULT_EXECUTOR)


def with_profile(suite: Suite, folder: str) -> Suite:
    """The suite with the ``profile`` metric (writing into ``folder``) added to every benchmark."""
    specs = tuple(
        replace(
            spec,
            metrics=(*spec.metrics, "profile") if "profile" not in spec.metrics else spec.metrics,
            metric_options={**spec.metric_options, "profile": {**spec.metric_options.get("profile", {}), "dir": folder}},
        )
        for spec in suite.benchmarks
    )
    return replace(suite, benchmarks=specs)


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


class Runner:
    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self.registry = manager.registry
        self.plugin_config = manager.arguments
        self.executor_options: dict[str, Any] = {}
        self._datasets: dict[tuple[str, str], Any] = {}

    def run(
        self,
        suite: Suite,
        options: RunOptions | None = None,
        *,
        out: str | Path | None = None,
        resume: RunResult | None = None,
    ) -> RunResult:
        """Run a prepared suite (:func:`prepare`): every benchmark, every round, saving as it goes."""
        options = options or RunOptions()
        self.executor_options = dict(options.executor_options or {})
        rounds = suite.rounds
        executor = suite.executor or DEFAULT_EXECUTOR
        specs = list(suite.benchmarks)
        runner = self.registry.get(ExecutorEntry, executor).factory()
        # Fail before any work on a device this machine lacks; a remote executor (a cluster)
        # resolves devices where the job runs.
        devices = {spec.name: spec.device if getattr(runner, "remote", False) else str(resolve_device(spec.device)) for spec in specs}
        run = self._start(suite, specs, resume, options.stored())
        peaks = {d: p for d in sorted(set(devices.values())) if d != "auto" and (p := peak.load(d))}
        if peaks:  # for the fraction of peak and the roofline, wherever the run file is read later
            run.environment["peaks"] = peaks
        # A record counts as done when it has all its rounds; others run again, whole.
        done = {r["benchmark"]: r for r in run.records if r["benchmark"] in devices and r.get("rounds", 1) >= rounds}
        jobs = [
            Job(index, len(specs), spec, suite.name, devices[spec.name], rounds=rounds)
            for index, spec in enumerate(specs)
            if spec.name not in done
        ]
        path = Path(out) if out is not None else None
        save = (lambda: run.write_json(path)) if path is not None else (lambda: None)
        run.complete = False
        save()
        hook = self.manager.hook
        hook.benchbench_run_start(suite=suite, benchmarks=specs)
        measured: dict[str, list[Record]] = {}
        try:
            for round_index in range(rounds):
                # Interleaved rounds: A, B, C, then A, B, C again. A benchmark that failed or
                # was skipped is not run again.
                todo = [replace(job, round=round_index) for job in jobs if _still_ok(measured.get(job.spec.name))]
                for job, record in runner.run(todo, self):
                    measured.setdefault(job.spec.name, []).append(record)
                    done[job.spec.name] = self._merge(job.spec, measured[job.spec.name])
                    run.records = [done[s.name] for s in specs if s.name in done]
                    if round_index == rounds - 1 or not _still_ok(measured[job.spec.name]):
                        hook.benchbench_result_ready(record=done[job.spec.name], index=job.index, total=job.total)
                    save()
            run.complete = True
        except KeyboardInterrupt:
            finished = sum(r.get("rounds", 1) >= rounds or r["status"] != STATUS_OK for r in run.records)
            run.notes.append(f"interrupted: {finished} of {len(specs)} benchmarks finished")
        finally:
            self._finish(run, specs)
            save()
            hook.benchbench_run_end(run=run)
        return run

    def _merge(self, spec: BenchmarkSpec, records: list[Record]) -> Record:
        """One record from a benchmark's rounds (one or more): each metric pools its own fields.

        A metric's ``merge_rounds`` may return ``warnings``: they join the record's, once per
        benchmark however many rounds it ran.
        """
        merged = dict(records[0])
        merged["rounds"] = len(records)
        merged["wall_time_s"] = sum(r.get("wall_time_s") or 0 for r in records)
        warnings = list(dict.fromkeys(w for r in records for w in r.get("warnings") or []))
        failed = next((r for r in records if r["status"] == STATUS_FAILED), None)
        if failed is not None:
            error = failed["error"] if len(records) == 1 else f"round {records.index(failed) + 1}: {failed['error']}"
            merged.update(status=STATUS_FAILED, error=error, warnings=warnings)
            return merged
        if merged["status"] == STATUS_OK:
            for metric in spec.metrics:
                entry = self.registry.get(MetricEntry, metric)
                if entry.merge_rounds is not None:
                    fields = dict(entry.merge_rounds(records) or {})
                    warnings += [w for w in fields.pop("warnings", None) or [] if w not in warnings]
                    merged.update(fields)
        merged["warnings"] = warnings
        return merged

    def _start(self, suite: Suite, specs: list[BenchmarkSpec], resume: RunResult | None, options: dict[str, Any]) -> RunResult:
        if resume is not None:
            if resume.suite != suite.name:
                raise UsageError(f"--resume: the run file is of suite {resume.suite!r}, not {suite.name!r}")
            run = resume
            kept = [r for r in run.records if r.get("benchmark") in {s.name for s in specs}]
            run.records = kept
            run.notes = [n for n in run.notes if not n.startswith("interrupted:")]
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            run.notes.append(f"resumed at {stamp}: {len(specs) - len(kept)} of {len(specs)} benchmarks run then")
        else:
            run = RunResult(
                suite=suite.name,
                suite_source=suite.source,
                suite_text=suite.text,
                description=suite.description,
                environment=environment.collect(self.manager),
                options=options,
            )
            run.notes.extend(suite.notes)
            if any(s.device == "auto" for s in specs) and not torch.cuda.is_available():
                run.notes.append("device auto: no CUDA GPU visible, running on the CPU")
        run.environment["cpu_allocator"] = pin_malloc_thresholds()
        run.fields, run.formats = self._columns(specs)
        run.compare = {
            f: {"metric": m, **spec} for m in dict.fromkeys(m for s in specs for m in s.metrics)
            for f, spec in self.registry.get(MetricEntry, m).compare.items()
        }
        return run

    def _finish(self, run: RunResult, specs: list[BenchmarkSpec]) -> None:
        add_ratios(run.records, self._ratio_fields(specs))
        by_name = {r["benchmark"]: r for r in run.records}
        for name in sorted({r.get("baseline") for r in run.records if r.get("baseline")} - {None}):
            base = by_name.get(name)
            if base is not None and base.get("status") != STATUS_OK:
                note = f"no ratios against {name!r}: that baseline {base.get('status')}"
                if note not in run.notes:
                    run.notes.append(note)
        for record in run.records:
            if record.get("status") != STATUS_OK:
                continue
            for extra in self.manager.hook.benchbench_derive_fields(record=record, environment=run.environment):
                for key, value in (extra or {}).items():
                    if key in CORE_FIELDS:
                        continue  # derived fields never overwrite the runner's
                    record[key] = value
                    if key not in run.fields:
                        run.fields.append(key)
        scaled = sorted({
            (r.get("suite_batch_size"), r.get("batch_size")) for r in run.records
            if r.get("batch_size") != r.get("suite_batch_size")
        })
        for requested, used in scaled:
            note = (
                f"batch size {used} used on the CPU instead of the suite's {requested} (cpu_batch_size); "
                "pass --batch-size to choose"
            )
            if note not in run.notes:
                run.notes.append(note)

    # ------------------------------------------------------------------ the executor's session

    def started(self, job: Job) -> None:
        self.manager.hook.benchbench_benchmark_start(
            benchmark=job.spec, index=job.index, total=job.total, round=job.round, rounds=job.rounds
        )

    def run_here(self, job: Job) -> Record:
        return self.run_job(job)

    def failed(self, job: Job, error: str) -> Record:
        record = self.base_record(job)
        record.update(status=STATUS_FAILED, error=error)
        return record

    # ------------------------------------------------------------------ one benchmark

    def timed(self, job: Job) -> bool:
        return any(self.registry.get(MetricEntry, m).exclusive for m in job.spec.metrics)

    def base_record(self, job: Job) -> Record:
        """The record's fields known before anything runs."""
        spec, device = job.spec, resolve_device(job.device)
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
        }

    def _thresholds(self, spec: BenchmarkSpec) -> dict[str, float]:
        """The suite's thresholds by compared field (a metric's name stands for all its fields)."""
        out: dict[str, float] = {}
        for key, value in spec.thresholds.items():
            if self.registry.has(MetricEntry, key):
                out.update({f: value for f in self.registry.get(MetricEntry, key).compare})
        out.update({k: v for k, v in spec.thresholds.items() if not self.registry.has(MetricEntry, k)})
        return out

    def run_job(self, job: Job) -> Record:
        """Build the model, run each metric, and return the record; never raises for the model's faults."""
        record = self.base_record(job)
        spec, device = job.spec, torch.device(record["device"])
        if spec.skip:
            record.update(status=STATUS_SKIPPED, error=spec.skip)
            return record
        started = time.perf_counter()
        errors: list[str] = []
        ctx: MeasureContext | None = None
        with _threads(spec.threads if device.type == "cpu" else None):
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
                        errors.append(_describe(f"loading dataset {spec.dataset!r}", exc))
                        raise _Stop from None
                    try:
                        ctx = build_context(spec, self.registry.get(ModelEntry, spec.model), device, record["batch_size"], dataset)
                        ctx.progress = lambda message: self.manager.hook.benchbench_benchmark_progress(benchmark=spec, message=message)
                    except MODEL_FAULTS as exc:  # a broken model is a failed benchmark, not a crash
                        errors.append(_describe("building the model and its input", exc))
                    else:
                        try:
                            record["output_shape"] = per_sample_shape(ctx.step())
                            ctx.synchronize()
                        except MODEL_FAULTS as exc:
                            errors.append(_describe("the first forward pass", exc))
                        else:
                            for metric in self._metrics_of_round(spec, job.round):
                                errors.extend(self._measure(metric, ctx, spec, record))
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

    def _metrics_of_round(self, spec: BenchmarkSpec, round_index: int) -> list[str]:
        """Every metric in the first round; later rounds repeat only those that pool rounds
        (``merge_rounds``: latency), since params or FLOPs would come out the same."""
        if round_index == 0:
            return list(spec.metrics)
        return [m for m in spec.metrics if self.registry.get(MetricEntry, m).merge_rounds is not None]

    def _measure(self, metric: str, ctx: MeasureContext, spec: BenchmarkSpec, record: Record) -> list[str]:
        entry = self.registry.get(MetricEntry, metric)
        ctx.options = {**entry.options, **spec.metric_options.get(metric, {})}
        try:
            fields = entry.measure(ctx)
            ctx.synchronize()
        except MODEL_FAULTS as exc:  # one metric failing keeps the others' fields
            return [_describe(f"metric {metric!r}", exc)]
        fields = dict(fields or {})
        reserved = sorted(set(fields) & set(CORE_FIELDS))
        if reserved:  # a metric must not overwrite the runner's fields (status, benchmark, ...)
            return [f"metric {metric!r} returned field(s) the runner owns: {', '.join(reserved)}; rename them"]
        record.update(fields)
        return []

    # ------------------------------------------------------------------ columns

    def _columns(self, specs: list[BenchmarkSpec]) -> tuple[list[str], dict[str, Any]]:
        fields: list[str] = []
        formats: dict[str, Any] = {}
        has_baseline = any(s.baseline for s in specs)
        for name in dict.fromkeys(m for s in specs for m in s.metrics):
            entry = self.registry.get(MetricEntry, name)
            formats.update(entry.formats)
            for field in entry.fields:
                fields.append(field)
                if has_baseline and field in entry.ratio_fields:
                    fields.append(f"{field}_ratio")
        return fields, formats

    def _ratio_fields(self, specs: list[BenchmarkSpec]) -> list[str]:
        names = dict.fromkeys(m for s in specs for m in s.metrics)
        return [f for n in names for f in self.registry.get(MetricEntry, n).ratio_fields]


class _Stop(Exception):
    """Ends a benchmark early, its error already recorded."""


def _still_ok(records: list[Record] | None) -> bool:
    """Whether a benchmark should run its next round (none yet, or all so far ok)."""
    return records is None or all(r["status"] == STATUS_OK for r in records)


def _describe(stage: str, exc: BaseException) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return f"{stage} ran out of GPU memory (CUDA out of memory); try a smaller batch_size"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
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
