"""What the ``benchbench`` fixture measured in one pytest process: the options, the
measurements (each a one-benchmark suite run by the suite runner, as ``benchbench run``
runs one; the environment, git and GPUs included, collected once per session, as
pytest-benchmark collects its machine info) and what the controller does with them at the
end (:class:`Gate`).

The pytest hooks and the fixture itself are in :mod:`benchbench.pytest_plugin`; this
module holds the state they share, so that each of the two reads on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from benchbench.errors import UsageError, did_you_mean
from benchbench.outputs import DEFAULT_FOLDER, default_history
from benchbench.results import CORE_FIELDS, STATUS_OK, Record, RunResult, is_number

if TYPE_CHECKING:
    from benchbench.compare import Comparison, Thresholds
    from benchbench.manager import PluginManager

DEFAULT_SUITE = "pytest"
QUICK_LATENCY = {"warmup_s": 0.02, "min_run_time_s": 0.05, "min_runs": 5}
"""The latency budget of a session that neither saves nor compares: a cost test should cost
little. Saved or compared sessions use the metric's own budget (1 s a round)."""
KEPT_ROUNDS = 3
"""Rounds per measurement when the session is saved or compared: ``benchbench compare``
calls no timing a regression with fewer than 3 rounds a side (:data:`benchbench.stats.MIN_ROUNDS`)."""
FIXED_KEYS = ("model", "args", "input_shape", "batch_size", "cpu_batch_size", "dataset", "dataset_args", "dry_run",
              "baseline", "sweep")
"""Suite keys the fixture sets itself (from the module and the input) or that need other benchmarks."""
WORKER_KEY = "benchbench"
"""Where an xdist worker leaves its records for the controller (``config.workeroutput``)."""


@dataclass
class Options:
    """The ``--benchbench-*`` options, checked once (paths made absolute: tests may change folder)."""

    here: Path
    """The folder pytest was started in: relative paths are taken from there."""
    suite: str
    save: Path | None
    history: Path | None
    compare: str | None
    fail: list[str]
    rounds: int

    @property
    def kept(self) -> bool:
        """Whether the measurements outlive the session: then they get the full budget."""
        return self.save is not None or self.compare is not None

    @property
    def baseline_history(self) -> Path:
        """Where ``--benchbench-compare latest`` or a git ref looks: ``--benchbench-history``, the
        history ``--benchbench-save`` appends to, else ``results/history.sqlite`` (as ``benchbench compare``)."""
        return self.history or default_history(self.here / DEFAULT_FOLDER)

    @classmethod
    def of(cls, config: pytest.Config) -> Options:
        here = config.invocation_params.dir
        save, history, compare = (config.getoption(f"--benchbench-{name}") for name in ("save", "history", "compare"))
        suite, rounds = config.getoption("--benchbench-suite"), config.getoption("--benchbench-rounds")
        fail = [part.strip() for item in config.getoption("--benchbench-fail") for part in item.split(",") if part.strip()]
        if not suite or not suite.strip():
            raise UsageError("--benchbench-suite: give a name")
        if rounds is not None and rounds < 1:
            raise UsageError(f"--benchbench-rounds must be at least 1, got {rounds}")
        if fail and compare is None:
            raise UsageError("--benchbench-fail sets what --benchbench-compare allows; give --benchbench-compare too")
        history_path = here / history if history else (default_history(here / save) if save else None)
        kept = save is not None or compare is not None
        return cls(here, suite, here / save if save else None, history_path, compare, fail,
                   rounds if rounds is not None else (KEPT_ROUNDS if kept else 1))


@dataclass
class Gate:
    """What the controller does at the end: the baseline to judge against, and where to write."""

    baseline: RunResult | None = None
    thresholds: Thresholds | None = None
    comparison: Comparison | None = None
    written: list[str] = field(default_factory=list)
    """Lines for the terminal summary: the run file and history written."""
    incomplete: str | None = None
    """Why the session's run is incomplete (``-x``, interrupted...), or None."""
    error: str | None = None
    """A usage error found at the end (a history that cannot be written after all): shown, and the session exits 4."""


@dataclass(eq=False)  # hashable: pytest keeps its plugins in sets
class Progress:
    """Whether the session ran every test it was given, for the run's ``complete``: a session
    stopped by ``-x`` (or ``--maxfail``), interrupted, or with modules that failed to collect
    measured only some of its tests, and ``--benchbench-compare latest`` must not take such a
    run as the baseline. Registered as a plugin of its own (the hooks it needs carry no config)."""

    collection_errors: int = 0
    finished: set[str] = field(default_factory=set)
    """Node ids of the tests that ran to their end (under xdist, the workers' too)."""

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.finished.add(nodeid)

    def incomplete(self, session: pytest.Session, exitstatus: int) -> str | None:
        """Why the session's run is incomplete, or None when it ran everything it collected."""
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            return "the pytest session was interrupted"
        if self.collection_errors:
            return f"{self.collection_errors} error(s) during collection: the tests of those modules never ran"
        stopped = session.shouldfail or session.shouldstop
        if stopped and (not session.items or len(self.finished) < len(session.items)):
            return f"the pytest session stopped early ({stopped})"
        return None


class FixtureState:
    """What the ``benchbench`` fixture keeps in one pytest process: the measurements, and the
    controller's gate, if any (one per pytest session, in ``config.stash``)."""

    def __init__(self, config: pytest.Config, options: Options) -> None:
        self.config = config
        self.options = options
        self.runs: list[RunResult] = []
        """One run per fixture call (one record each), in the order they were made."""
        self.measurements: dict[str, Measurement] = {}
        self.gate = Gate()
        self.progress = Progress()
        self.from_workers = False
        self._manager: PluginManager | None = None
        self._environment: dict[str, Any] | None = None

    @property
    def environment(self) -> dict[str, Any]:
        """The run file's environment block (versions, hardware, git, GPUs): collected when a test
        first measures, once for the whole session (it costs a git and an nvidia-smi call)."""
        if self._environment is None:
            from benchbench import environment

            self._environment = environment.collect(self.manager)
        return self._environment

    @property
    def manager(self) -> PluginManager:
        """benchbench's plugins, loaded when a test first measures (as ``benchbench run`` loads them)."""
        if self._manager is None:
            from benchbench.manager import PluginManager

            self._manager = PluginManager()
        return self._manager

    def measure(self, test: str, model: Any, inputs: Any, name: str | None, metrics: Sequence[str] | None,
                settings: dict[str, Any]) -> Measurement:
        import torch

        from benchbench.config import Config
        from benchbench.suitefile import SuiteDocument
        from benchbench.suiterunner import SuiteRunner, prepare

        call = f"benchbench({type(model).__name__}, ...)"
        if not isinstance(model, torch.nn.Module):
            _fail(f"{call}: the model must be a torch.nn.Module instance, got {type(model).__name__}")
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
            _fail(f"{call}: the input must be a tensor whose first dimension is the batch, e.g. "
                  f"torch.randn(8, 3, 32, 32); got {_describe(inputs)}")
        fixed = sorted(set(settings) & set(FIXED_KEYS))
        if fixed:
            _fail(f"{call}: {', '.join(map(repr, fixed))} cannot be given here: the model and its input set them "
                  "(the batch size is the input's first dimension)")
        benchmark = test if name is None else f"{test}::{name}"
        if benchmark in self.measurements:
            _fail(f"{call}: {benchmark!r} was already measured; give each measurement of one test a name of its "
                  "own: benchbench(model, x, name='wide')")
        dtype = str(inputs.dtype).removeprefix("torch.") if inputs.is_floating_point() else "float32"
        spec = {"name": benchmark, "model": self._model_name(model), "input_shape": list(inputs.shape[1:]),
                "batch_size": int(inputs.shape[0]), "device": str(inputs.device), "dtype": dtype, "dry_run": False,
                **({"metrics": list(metrics)} if metrics is not None else {}), **settings}
        defaults = {} if self.options.kept else {"metric_options": {"latency": dict(QUICK_LATENCY)}}
        document = SuiteDocument({"name": self.options.suite, "defaults": defaults, "benchmarks": [spec]},
                                 None, "benchbench", self.options.suite)
        config = Config(self._manager_with(spec["model"], model, inputs), quiet=True, executor="inline",
                        rounds=self.options.rounds)
        problem: str | None
        try:
            run = SuiteRunner(config, environment=self.environment).run(prepare(document, config))
        except UsageError as exc:
            problem = str(exc)
        else:
            problem = None
        if problem is not None:  # failed outside the except block: the message alone, no chained traceback
            _fail(problem if problem.startswith("benchbench:") else f"benchbench: {problem}")
        if not run.complete:  # the runner keeps what finished on Ctrl-C; pytest must still stop
            raise KeyboardInterrupt
        self.runs.append(run)
        measured = Measurement(run.records[0], self, test, name)
        self.measurements[benchmark] = measured
        if measured.record["status"] != STATUS_OK:
            _fail(f"benchbench: {benchmark}: {measured.record['status']}: {measured.record['error']}")
        return measured

    def _model_name(self, model: Any) -> str:
        """The record's ``model``: the class's name (stable between sessions, so runs compare),
        qualified by its module when a plugin already registers that name."""
        from benchbench.registry import ModelEntry

        name = type(model).__qualname__
        return name if not self.manager.registry.has(ModelEntry, name) else f"{type(model).__module__}.{name}"

    def _manager_with(self, name: str, model: Any, inputs: Any) -> PluginManager:
        """The session's plugins, plus the module as model ``name`` for one call (a registry of
        its own, so that two tests may measure two classes of one name)."""
        from benchbench.registry import ModelEntry, Registry

        def factory() -> Any:  # a copy: measuring (device, dtype, train/eval) never changes the test's module
            try:
                return copy.deepcopy(model)
            except Exception as exc:
                raise TypeError(f"benchbench measures a copy of the module, and copy.deepcopy failed: {exc}") from exc

        def make_input(batch_size: int, input_shape: Any, device: Any, dtype: Any) -> Any:
            batch = inputs[:batch_size] if batch_size <= len(inputs) else inputs[[i % len(inputs) for i in range(batch_size)]]
            batch = batch.to(device)
            return batch.to(dtype) if batch.is_floating_point() else batch

        registry = Registry()
        registry.merge(self.manager.registry)
        registry.add(ModelEntry(name, factory, family="pytest", plugin="pytest", input_shape=tuple(inputs.shape[1:]),
                                meta={"make_input": make_input}))
        manager = copy.copy(self.manager)
        manager.registry = registry
        return manager

    def find(self, test: str, name: str) -> Measurement:
        """A measurement of this session by its ``name=`` in this test, its benchmark name, or a
        ``name=`` used by exactly one test."""
        for key in (f"{test}::{name}", name):
            if key in self.measurements:
                return self.measurements[key]
        matches = [m for m in self.measurements.values() if m.name == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            _fail(f"several tests measured {name!r} ({', '.join(m.benchmark for m in matches)}); name one by its "
                  "benchmark name, or pass the measurement itself")
        known = [m.name or m.benchmark for m in self.measurements.values()]
        _fail(f"no measurement named {name!r} in this session so far{did_you_mean(name, known)}; measure it first, "
              f"in the same test: benchbench(model, x, name={name!r}) (under pytest-xdist another test may run in "
              "another process)")
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the session's run

    def run(self) -> RunResult | None:
        """The session's measurements as one run (this process's and its xdist workers'), or None."""
        if not self.runs:
            return None
        from benchbench import environment

        runs = self.runs
        first = runs[0]
        run = RunResult(
            suite=self.options.suite,
            description="measured by the benchbench fixture in a pytest session",
            suite_source="pytest",
            environment=dict(first.environment),
            options=dict(first.options),
        )
        # The folder pytest was started in: a test may have changed into another one.
        run.environment["git"] = environment.git_info(self.config.invocation_params.dir)
        for part in runs:
            run.records.extend(part.records)
            run.fields.extend(f for f in part.fields if f not in run.fields)
            run.formats.update(part.formats)
            run.footnotes.update(part.footnotes)
            run.compare.update(part.compare)
            run.notes.extend(n for n in part.notes if n not in run.notes)
        run.complete = all(part.complete for part in runs)
        return run


@dataclass
class Measurement:
    """What one ``benchbench(...)`` call measured: the record's fields as attributes (``r.params``,
    ``r.flops``, ``r.latency_ms``; ``r["flops"]`` too), and ratios to other measurements."""

    record: Record
    state: FixtureState = field(repr=False)
    test: str = field(repr=False)
    name: str | None = None
    """The ``name=`` given to the fixture, if any."""

    @property
    def benchmark(self) -> str:
        """Its name in the run file: the test's node id (``::name`` added when named)."""
        return self.record["benchmark"]

    def __getitem__(self, key: str) -> Any:
        return self.record[key]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr in ("record", "state", "test", "name"):
            raise AttributeError(attr)
        if attr.endswith("_ratio_to"):  # r.flops_ratio_to("conv3x3")
            return lambda other: self.ratio_to(other, attr.removesuffix("_ratio_to"))
        if attr in self.record:
            return self.record[attr]
        fields = [k for k, v in self.record.items() if is_number(v) and k not in CORE_FIELDS]
        _fail(f"{self.benchmark}: no field {attr!r} in this measurement{did_you_mean(attr, fields)}; measured: "
              f"{', '.join(fields)} (add its metric: benchbench(model, x, metrics=[...]))")

    def ratio_to(self, other: Measurement | str, field: str) -> float:
        """This measurement's ``field`` divided by another's: ``r.ratio_to("conv3x3", "flops")`` (0.5 = half).

        ``other`` is a measurement, or a name (``name=`` in this test, or a benchmark name of the session).
        """
        base = other if isinstance(other, Measurement) else self.state.find(self.test, other)
        mine, theirs = self.record.get(field), base.record.get(field)
        if not is_number(mine) or not is_number(theirs) or theirs == 0:
            _fail(f"cannot divide {field!r} of {self.benchmark} ({mine!r}) by that of {base.benchmark} ({theirs!r}): "
                  "both need the field's metric, and the divisor must not be 0")
        return mine / theirs

    def __repr__(self) -> str:
        columns = self.state.manager.registry.declared().columns  # the metrics' own table fields, whichever ran
        shown = {k: v for k, v in self.record.items() if k in columns and v is not None}
        return f"<Measurement {self.benchmark}: {', '.join(f'{k}={v!r}' for k, v in shown.items())}>"


def _fail(message: str) -> NoReturn:
    """Fail the test with benchbench's message alone (no traceback into benchbench)."""
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} of shape {tuple(shape)}" if shape is not None else type(value).__name__
