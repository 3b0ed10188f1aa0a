"""Run a validated suite: build each model, hand it to each metric, collect records.

The runner knows nothing about convolutions or about any particular metric: models come
from the registry, measurements from metric plugins, and progress from lifecycle hooks.
One benchmark failing (construction, forward pass, a metric) is recorded with its error
and the others still run; Ctrl-C keeps what finished and marks the run incomplete.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchbench import environment
from benchbench.allocator import pin_malloc_thresholds
from benchbench.context import MeasureContext
from benchbench.errors import UsageError
from benchbench.plugins import PluginManager
from benchbench.results import CORE_FIELDS, STATUS_FAILED, STATUS_OK, STATUS_SKIPPED, Record, RunResult, add_ratios
from benchbench.suite import BenchmarkSpec, Suite, load_suite

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def run_suite(
    suite: str | Path | Mapping[str, Any],
    *,
    device: str | None = None,
    batch_size: int | None = None,
    only: list[str] | None = None,
    plugins: list[str] | tuple[str, ...] = (),
    plugins_dir: str | Path | None = None,
    manager: PluginManager | None = None,
    quiet: bool = False,
) -> RunResult:
    """Load, validate and run a suite; the Python API behind ``benchbench run``.

    ``device`` and ``batch_size`` override every benchmark (``batch_size`` also turns off
    ``cpu_batch_size``); ``only`` keeps the named benchmarks (and their baselines);
    ``quiet`` turns the progress lines on stderr off. Nothing is written to disk: call
    ``.write_json(path)`` on the result to keep a run file.
    """
    manager = manager or PluginManager(list(plugins), plugins_dir)
    if quiet and manager.pm.get_plugin("benchbench.progress") is not None:
        manager.pm.unregister(name="benchbench.progress")
    overrides: dict[str, Any] = {}
    if device is not None:
        overrides["device"] = device
    if batch_size is not None:
        overrides.update(batch_size=batch_size, cpu_batch_size=None)
    loaded = load_suite(suite, manager, overrides=overrides, only=only)
    return Runner(manager).run(loaded)


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

    def run(self, suite: Suite) -> RunResult:
        specs = list(suite.benchmarks)
        devices = {spec.name: resolve_device(spec.device) for spec in specs}  # fail before any work
        run = RunResult(
            suite=suite.name,
            suite_source=suite.source,
            suite_text=suite.text,
            description=suite.description,
            environment=environment.collect(self.manager),
        )
        run.environment["cpu_allocator"] = pin_malloc_thresholds()
        run.fields, run.formats = self._columns(specs)
        run.notes.extend(suite.notes)
        if any(s.device == "auto" for s in specs) and not torch.cuda.is_available():
            run.notes.append("device auto: no CUDA GPU visible, running on the CPU")
        hook = self.manager.hook
        hook.benchbench_run_start(suite=suite, benchmarks=specs)
        try:
            for index, spec in enumerate(specs):
                hook.benchbench_benchmark_start(benchmark=spec, index=index, total=len(specs))
                record = self.run_benchmark(spec, suite.name, devices[spec.name])
                run.records.append(record)
                hook.benchbench_result_ready(record=record, index=index, total=len(specs))
        except KeyboardInterrupt:
            run.complete = False
            run.notes.append(f"interrupted: {len(run.records)} of {len(specs)} benchmarks finished")
        finally:
            add_ratios(run.records, self._ratio_fields(specs))
            scaled = sorted({(r["suite_batch_size"], r["batch_size"]) for r in run.records if r["batch_size"] != r["suite_batch_size"]})
            for requested, used in scaled:
                run.notes.append(
                    f"batch size {used} used on the CPU instead of the suite's {requested} (cpu_batch_size); "
                    "pass --batch-size to choose"
                )
            hook.benchbench_run_end(run=run)
        return run

    # ------------------------------------------------------------------ one benchmark

    def run_benchmark(self, spec: BenchmarkSpec, suite: str, device: torch.device) -> Record:
        entry = self.registry.get("models", spec.model)
        batch = spec.cpu_batch_size if device.type == "cpu" and spec.cpu_batch_size else spec.batch_size
        record: Record = {
            "suite": suite,
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
        }
        if spec.skip:
            record.update(status=STATUS_SKIPPED, error=spec.skip)
            return record
        started = time.perf_counter()
        errors: list[str] = []
        with _threads(spec.threads if device.type == "cpu" else None):
            record["threads"] = torch.get_num_threads()
            cores = os.cpu_count() or 1
            if device.type == "cpu" and record["threads"] > cores:
                record["warnings"].append(
                    f"{record['threads']} threads on {cores} CPU(s): oversubscribed, timings mostly measure contention"
                )
            try:
                ctx = self._context(spec, entry, device, batch)
            except Exception as exc:  # noqa: BLE001 - a broken model is a failed benchmark, not a crash
                errors.append(_describe("building the model and its input", exc))
            else:
                try:
                    record["output_shape"] = _per_sample_shape(ctx.step())
                    ctx.synchronize()
                except Exception as exc:  # noqa: BLE001
                    errors.append(_describe("the first forward pass", exc))
                else:
                    for metric in spec.metrics:
                        errors.extend(self._measure(metric, ctx, spec, record))
                record["warnings"] += ctx.warnings
            finally:
                ctx = None  # noqa: F841 - free the model before the next benchmark
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        record["wall_time_s"] = time.perf_counter() - started
        if errors:
            record.update(status=STATUS_FAILED, error="; ".join(errors))
        return record

    def _context(self, spec: BenchmarkSpec, entry: Any, device: torch.device, batch: int) -> MeasureContext:
        torch.manual_seed(spec.seed)
        dtype = _DTYPES[spec.dtype]
        model = entry.factory(**spec.args)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"factory of model {spec.model!r} returned {type(model).__name__}, not a torch.nn.Module")
        model = model.to(device=device, dtype=dtype)
        if spec.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train(spec.mode == "train")
        make_input = partial(entry.meta.get("make_input", default_input), input_shape=spec.input_shape, device=device, dtype=dtype)
        inputs = make_input(batch)
        if spec.channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return MeasureContext(
            model=model,
            inputs=inputs,
            device=device,
            batch_size=batch,
            mode=spec.mode,
            benchmark=spec,
            make_sample=partial(make_input, 1),
        )

    def _measure(self, metric: str, ctx: MeasureContext, spec: BenchmarkSpec, record: Record) -> list[str]:
        entry = self.registry.get("metrics", metric)
        ctx.options = {**entry.options, **spec.metric_options.get(metric, {})}
        try:
            fields = entry.measure(ctx)
            ctx.synchronize()
        except Exception as exc:  # noqa: BLE001 - one metric failing keeps the others' fields
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
            entry = self.registry.get("metrics", name)
            formats.update(entry.formats)
            for field in entry.fields:
                fields.append(field)
                if has_baseline and field in entry.ratio_fields:
                    fields.append(f"{field}_ratio")
        return fields, formats

    def _ratio_fields(self, specs: list[BenchmarkSpec]) -> list[str]:
        names = dict.fromkeys(m for s in specs for m in s.metrics)
        return [f for n in names for f in self.registry.get("metrics", n).ratio_fields]


def default_input(batch_size: int, input_shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Standard-normal input, the usual stand-in for normalised images or features."""
    return torch.randn(batch_size, *input_shape, device=device, dtype=dtype)


def _per_sample_shape(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return list(output.shape[1:])
    if isinstance(output, (list, tuple)):
        return [_per_sample_shape(o) for o in output]
    if isinstance(output, dict):
        return {k: _per_sample_shape(v) for k, v in output.items()}
    return None


def _describe(stage: str, exc: BaseException) -> str:
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
