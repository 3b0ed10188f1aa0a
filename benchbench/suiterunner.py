"""The loop over a suite: hand each benchmark to an executor, collect and save the records.

What pytest's ``main.py`` is to a test session, this module is to a suite run (measuring
one benchmark is :mod:`benchbench.job`, as pytest's ``runner.py`` runs one test):
:func:`prepare` loads and validates the suite once, with the run's
:class:`~benchbench.config.Config` applied, then :class:`SuiteRunner` hands its benchmarks, round
after round, to an executor plugin (:mod:`benchbench.executors`: *where* they run),
merges the rounds, adds ratios and derived fields, and keeps the run file current. It
knows nothing about convolutions or about any particular metric.

Nothing is lost along the way:

* a benchmark that raises (building, forward, a metric), runs out of memory or passes
  its ``timeout`` is recorded as ``failed`` with its error, and the others still run;
* with a run file path, every finished benchmark is saved at once, at a cost that does
  not grow with the run: the file is written whole (atomically, marked ``complete: false``)
  at the first record and at the end, and each record in between is appended to a journal
  beside it (:mod:`benchbench.journal`), so a crash or a kill leaves what finished;
* the rounds loop ends when no benchmark has a round left, however large ``rounds`` is;
* Ctrl-C keeps what finished and marks the run incomplete; ``resume=`` runs only the
  benchmarks a previous, incomplete run file has no record of.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from benchbench import checks, environment, peak
from benchbench.allocator import pin_malloc_thresholds
from benchbench.build import preflight
from benchbench.config import Config
from benchbench.errors import UsageError
from benchbench.job import Job, JobRunner, job_device, metrics_of_round
from benchbench.journal import Journal
from benchbench.manager import PluginManager
from benchbench.modes import compile_columns
from benchbench.registry import ExecutorEntry, MetricEntry
from benchbench.results import RESERVED_FIELDS, STATUS_FAILED, STATUS_OK, Record, RunResult, add_ratios, jsonable
from benchbench.spec import DEFAULT_EXECUTOR, BenchmarkSpec, Suite, chosen_executor
from benchbench.suite import load_suite
from benchbench.suitefile import SuiteDocument


def configure_and_run(
    suite: str | Path | Mapping[str, Any],
    *,
    plugins: list[str] | tuple[str, ...] = (),
    plugins_dir: str | Path | None = None,
    manager: PluginManager | None = None,
    executor_options: dict[str, Any] | None = None,
    out: str | Path | None = None,
    resume: RunResult | None = None,
    **options: Any,
) -> RunResult:
    """Make the run's :class:`~benchbench.config.Config` from keywords, then load, validate and
    run the suite: what :func:`benchbench.run_suite`, the Python API, does.

    ``options`` are those of :class:`~benchbench.config.Config`: ``device``, ``batch_size``,
    ``timeout`` and ``metrics`` override every benchmark (``batch_size`` also turns off
    ``cpu_batch_size``); ``only`` keeps the named benchmarks (and their baselines);
    ``executor`` picks where they run (``inline``, ``subprocess``, ``ray``...; default: the
    suite's ``executor:``, else inline); ``rounds`` runs the whole suite that many times,
    interleaved, pooling the timed samples; ``profile`` (a folder) adds the ``profile``
    metric to every benchmark; ``quiet`` turns the progress lines on stderr off.
    ``executor_options`` are the values of options plugins add (``{"address": ...}`` for
    Ray). ``plugins`` (like ``-p``, ``no:NAME`` blocks one) and ``plugins_dir`` choose the
    plugins, or give a ``manager``. With ``out``, the run file is written there after
    every benchmark; otherwise nothing is written (call ``.write_json(path)`` on the
    result). ``resume`` (a run file read with ``RunResult.read_json``) keeps its records
    and runs the rest.
    """
    manager = manager or PluginManager(list(plugins), plugins_dir)
    try:
        config = Config(manager, plugin_options=dict(executor_options or {}), **options)
    except TypeError as exc:
        raise UsageError(f"run_suite: {exc}") from None
    return SuiteRunner(config).run(prepare(suite, config), out=out, resume=resume)


def prepare(suite: str | Path | Mapping[str, Any] | SuiteDocument, config: Config) -> Suite:
    """Load and validate the suite with the configuration applied: every input problem
    surfaces here (exit code 2), before a run file is claimed or anything is measured.

    Plugins see the configuration first (``benchbench_configure``).
    """
    manager = config.manager
    manager.hook.benchbench_configure(config=config)
    if config.executor is not None and not manager.registry.has(ExecutorEntry, config.executor):
        raise UsageError(f"--executor: {manager.unknown(ExecutorEntry, config.executor)}")
    rounds = config.rounds
    if rounds is not None and (problem := checks.rounds(rounds)[1]):
        raise UsageError(f"--rounds {problem}")
    document = SuiteDocument.of(suite)
    executor = chosen_executor(config.executor, document.data.get("executor"))
    # The dry run executes model code in this process: only when the benchmarks will run here too.
    loaded = load_suite(document, manager, overrides=config.overrides(), only=config.only, executor=config.executor,
                        preflight=partial(preflight, registry=manager.registry) if executor == DEFAULT_EXECUTOR else None)
    if config.profile is not None:
        loaded = with_profile(loaded, str(config.profile))
    return replace(loaded, rounds=rounds or loaded.rounds, executor=executor)


def check_resumable(resume: RunResult, suite: Suite) -> None:
    """A resumed run finishes the same measurement: the run file must hold a run of this suite,
    as it was then (its text, when both keep one; a suite given as a dict keeps none).

    The one check, where a run starts, for ``benchbench run --resume`` (whose suite is the run
    file's own copy unless a SUITE.yaml is given too) and for ``run_suite(..., resume=...)``.
    The options a resumed run replays are the command line's to compare.
    """
    if resume.suite != suite.name:
        raise UsageError(f"--resume: the run file holds a run of suite {resume.suite!r}, and {suite.source} is suite "
                         f"{suite.name!r}; resume it with the suite it keeps (benchbench run --resume RUN.json alone)")
    if resume.suite_text is not None and suite.text is not None and suite.text != resume.suite_text:
        raise UsageError(f"--resume: {suite.source} has changed since the run was made; resume with the run file alone "
                         "(benchbench run --resume RUN.json, which uses the suite it keeps) or start a new run")


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


class SuiteRunner:
    """Runs prepared suites for one configuration; the executors' session (:class:`benchbench.executors.ExecutorSession`)."""

    def __init__(self, config: Config, *, environment: dict[str, Any] | None = None) -> None:
        """``environment``: the run file's environment block, collected once already for many runs
        (the pytest fixture's, once per session); None: collected when each run starts."""
        self.config = config
        self.environment = environment
        self.manager = config.manager
        self.registry = config.manager.registry
        self.job_runner = JobRunner(config.manager)

    @property
    def plugin_config(self) -> dict[str, Any]:
        """The plugin manager's arguments, so that another process can load the same plugins."""
        return self.manager.arguments

    def run(self, suite: Suite, *, out: str | Path | None = None, resume: RunResult | None = None) -> RunResult:
        """Run a prepared suite (:func:`prepare`): every benchmark, every round, saving as it goes."""
        rounds = suite.rounds
        specs = list(suite.benchmarks)
        executor = self.registry.get(ExecutorEntry, chosen_executor(None, suite.executor)).factory()
        # Fail before any work on a device this machine lacks; a remote executor (a cluster)
        # resolves devices where the job runs.
        devices = {spec.name: job_device(spec.device, elsewhere=getattr(executor, "remote", False)) for spec in specs}
        run = self._start(suite, specs, resume)
        peaks = {d: p for d in sorted(set(devices.values())) if d != "auto" and (p := peak.load(d))}
        if peaks:  # for the fraction of peak and the roofline, wherever the run file is read later
            run.environment["peaks"] = peaks
        # Later rounds repeat only the metrics that pool rounds (latency): a benchmark with none
        # of them (params and FLOPs only) runs once.
        wanted = {spec.name: rounds if metrics_of_round(self.registry, spec, 1) else 1 for spec in specs}
        # A resumed record counts as finished when it has all its rounds; others run again, whole
        # (kept until their first new round replaces them).
        done = {r["benchmark"]: r for r in run.records if r["benchmark"] in devices}
        jobs = [
            Job(index, len(specs), spec, suite.name, devices[spec.name], rounds=wanted[spec.name])
            for index, spec in enumerate(specs)
            if spec.name not in done or done[spec.name].get("rounds", 1) < wanted[spec.name]
        ]
        # Saved as it goes: the whole file once, then a journal line per record (O(1) each), the
        # whole file again at the end (benchbench.journal). A run that measured nothing leaves no file.
        journal = Journal(out) if out is not None else None

        def ordered() -> list[Record]:  # suite order; O(n), so only when the whole file is written
            return [done[s.name] for s in specs if s.name in done]

        def save(record: Record) -> None:
            if journal is None:
                return
            if journal.started:
                journal.append(jsonable(record))
            else:
                run.records = ordered()
                journal.start(run.to_json() + "\n")

        run.complete = False
        if journal is not None and run.records:  # a resumed run: its records, marked incomplete
            journal.start(run.to_json() + "\n")
        hook = self.manager.hook
        hook.benchbench_run_start(suite=suite, benchmarks=specs, rounds={job.spec.name: job.rounds for job in jobs})
        measured: dict[str, list[Record]] = {}
        try:
            for round_index in range(max((job.rounds for job in jobs), default=0)):
                # Interleaved rounds: A, B, C, then A, B, C again. A benchmark that failed or
                # was skipped is not run again; the loop ends when no benchmark has a round left.
                todo = [replace(job, round=round_index) for job in jobs
                        if round_index < job.rounds and _still_ok(measured.get(job.spec.name))]
                if not todo:
                    break
                for job, record in executor.run(todo, self):
                    measured.setdefault(job.spec.name, []).append(record)
                    merged = done[job.spec.name] = self._merge(job.spec, measured[job.spec.name])
                    if round_index == job.rounds - 1 or not _still_ok(measured[job.spec.name]):
                        hook.benchbench_result_ready(record=merged, index=job.index, total=job.total)
                    save(merged)
            run.complete = True
        except KeyboardInterrupt:
            finished = sum(r.get("rounds", 1) >= wanted[r["benchmark"]] or r["status"] != STATUS_OK for r in done.values())
            run.notes.append(f"interrupted: {finished} of {len(specs)} benchmarks finished")
        finally:
            run.records = ordered()
            self._finish(run, specs)
            if journal is not None and (run.records or journal.started):
                journal.finish(run.to_json() + "\n")
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

    def _start(self, suite: Suite, specs: list[BenchmarkSpec], resume: RunResult | None) -> RunResult:
        if resume is not None:
            check_resumable(resume, suite)
            run = resume
            kept = [r for r in run.records if r.get("benchmark") in {s.name for s in specs}]
            run.records = kept
            run.notes = [n for n in run.notes if not n.startswith("interrupted:")]
            stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            run.notes.append(f"resumed at {stamp}: {len(specs) - len(kept)} of {len(specs)} benchmarks run then")
        else:
            collected = environment.collect(self.manager) if self.environment is None else dict(self.environment)
            run = RunResult(
                suite=suite.name,
                suite_source=suite.source,
                suite_text=suite.text,
                description=suite.description,
                environment=collected,
                options=self.config.stored(),
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
        run.show_with(self.registry)  # footnotes (stored), formats and plots: the registrations'
        return run

    def _finish(self, run: RunResult, specs: list[BenchmarkSpec]) -> None:
        add_ratios(run.records, self._ratio_fields(specs))
        by_name = {r["benchmark"]: r for r in run.records}
        for name in sorted({r["baseline"] for r in run.records if r.get("baseline")}):
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
                    if key == "warnings" and isinstance(value, list):  # added to the record's, once (--resume derives again)
                        known = record.get("warnings") or []
                        record["warnings"] = [*known, *(w for w in value if w not in known)]
                        continue
                    if key in RESERVED_FIELDS:
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

    def timed(self, job: Job) -> bool:
        return self.job_runner.timed(job)

    def started(self, job: Job) -> None:
        self.manager.hook.benchbench_benchmark_start(
            benchmark=job.spec, index=job.index, total=job.total, round=job.round, rounds=job.rounds
        )

    def run_here(self, job: Job) -> Record:
        return self.job_runner.run(job)

    def failed(self, job: Job, error: str) -> Record:
        return self.job_runner.failed(job, error)

    # ------------------------------------------------------------------ columns

    def _columns(self, specs: list[BenchmarkSpec]) -> tuple[list[str], dict[str, Any]]:
        """The table's columns: each metric's fields (with ratios when a row has a baseline), then
        what compiling cost when a benchmark is compiled (:func:`benchbench.modes.compile_columns`)."""
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
        compile_fields, compile_formats = compile_columns(specs)
        return fields + compile_fields, {**formats, **compile_formats}

    def _ratio_fields(self, specs: list[BenchmarkSpec]) -> list[str]:
        names = dict.fromkeys(m for s in specs for m in s.metrics)
        return [f for n in names for f in self.registry.get(MetricEntry, n).ratio_fields]


def _still_ok(records: list[Record] | None) -> bool:
    """Whether a benchmark should run its next round (none yet, or all so far ok)."""
    return records is None or all(r["status"] == STATUS_OK for r in records)
