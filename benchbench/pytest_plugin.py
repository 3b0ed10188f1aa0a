"""benchbench's pytest plugin: the ``benchbench`` fixture for cost tests, and a regression gate.

Installed with benchbench (the ``pytest11`` entry point), so it is loaded in every pytest
session of every project that installed benchbench: importing it costs only pytest and
benchbench's light modules (no torch; torch loads when a test first uses the fixture),
and a session that uses neither the fixture nor a ``--benchbench-*`` option sees no
difference. ``-p no:benchbench`` turns it off.

In a test::

    def test_block_costs(benchbench):
        r = benchbench(MyBlock(64), torch.randn(8, 64, 32, 32), metrics=["params", "flops", "latency"])
        assert r.params < 50_000

Each call measures through the suite runner (:mod:`benchbench.suiterunner`), as
``benchbench run`` does: the module becomes a model of a one-benchmark suite for the length
of the call (its factory returns a copy of the instance, its input maker the given batch),
so the metrics, timers, plugins, validation messages and records are those of a suite run.
The environment (versions, git, GPUs) is collected once per session, not per call. Every call
gives one record, named after the test's node id; at the end of the session the records
form one standard run file (``--benchbench-save DIR``), which ``benchbench compare``,
``history`` and ``report`` read as they read any other. ``--benchbench-compare`` judges the
session against a baseline with :func:`benchbench.compare.compare_runs`, prints the same
verdict table as ``benchbench compare`` and fails the session (exit code 1) on a regression.

Under pytest-xdist every worker measures its own tests and sends its records to the
controller (``workeroutput``), which writes the one run file and compares.

Everything that can be checked is checked when pytest starts, before any test runs (a
usage error, pytest's exit code 4): the save folder and the history, by really creating
what they need (:func:`benchbench.outputs.check_folder`), the baseline, and each
``--benchbench-fail`` (its syntax, its field, and its benchmark, which must be one of the
baseline's: a threshold can only apply to a benchmark both runs measured). A session that
did not run all its tests (``-x``, interrupted, collection errors) is saved as incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from benchbench.errors import UsageError, did_you_mean
from benchbench.outputs import DEFAULT_FOLDER, HISTORY_NAME
from benchbench.pytest_session import (
    DEFAULT_SUITE,
    KEPT_ROUNDS,
    WORKER_KEY,
    FixtureState,
    Measurement,
    Options,
)
from benchbench.results import RunResult

if TYPE_CHECKING:
    from benchbench.compare import Thresholds
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchbench", "benchbench: model cost tests (the benchbench fixture)")
    group.addoption("--benchbench-save", metavar="DIR",
                    help="write the session's measurements as one run file DIR/<suite>-<time>.json and append it to "
                    f"the history (DIR/{HISTORY_NAME}, or --benchbench-history)")
    group.addoption("--benchbench-compare", metavar="WHICH",
                    help="fail the session when a measurement regressed against a baseline: latest (the latest run in "
                    "the history), a git ref (the run at that commit) or a run file")
    group.addoption("--benchbench-fail", action="append", default=[], metavar="FIELD=X%",
                    help="allowed change for --benchbench-compare, e.g. latency_ms=5%%, params=0%%, or 5%% for every "
                    "measured field; repeatable (defaults: 0%% for params and FLOPs, 5%% otherwise)")
    group.addoption("--benchbench-history", metavar="FILE",
                    help=f"the history store to append to and take baselines from (default: DIR/{HISTORY_NAME} with "
                    f"--benchbench-save, else {DEFAULT_FOLDER}/{HISTORY_NAME})")
    group.addoption("--benchbench-suite", default=DEFAULT_SUITE, metavar="NAME",
                    help="the suite name of the session's run (default: %(default)s); compare only runs of one suite")
    group.addoption("--benchbench-rounds", type=int, metavar="N",
                    help=f"measure each time this many rounds (default {KEPT_ROUNDS} when saving or comparing, else 1)")


# ----------------------------------------------------------------------------- the fixture


STATE = pytest.StashKey[FixtureState]()


@pytest.fixture
def benchbench(request: pytest.FixtureRequest) -> Callable[..., Measurement]:
    """Measure a module on an input with benchbench's metrics: ``benchbench(module, x, metrics=[...])``.

    Returns a measurement whose attributes are the record's fields (``r.params``, ``r.flops``,
    ``r.latency_ms``, ``r.peak_memory_bytes``) with ``r.ratio_to(other, "flops")`` or
    ``r.flops_ratio_to("conv3x3")`` against another measurement (``name="conv3x3"``).
    Keywords: ``metrics`` (default params, flops, latency, memory), ``name`` (for a second
    measurement in one test) and any suite key (``mode="train"``, ``threads=1``,
    ``metric_options={...}``, ``thresholds={"latency": "10%"}``, ``timeout``...). The device
    and dtype are the input's. A bad key, an unknown metric or a model that raises fails
    the test with benchbench's message. Without ``--benchbench-save`` or
    ``--benchbench-compare`` latency gets a short budget; with them, the metric's own, in
    3 rounds (``--benchbench-rounds``).
    """
    state = request.config.stash[STATE]
    test = request.node.nodeid

    def measure(model: Any, inputs: Any, *, metrics: Sequence[str] | None = None, name: str | None = None,
                **settings: Any) -> Measurement:
        __tracebackhide__ = True
        return state.measure(test, model, inputs, name, metrics, settings)

    return measure


# ----------------------------------------------------------------------------- hooks


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Check the options, and on the controller resolve the baseline now: a missing one is a
    usage error (exit 4) before any test runs, not after."""
    try:
        options = Options.of(config)
        state = FixtureState(config, options)
        if not _is_worker(config):
            _prepare_gate(state)
    except UsageError as exc:
        raise pytest.UsageError(str(exc).replace("--baseline", "--benchbench-compare")) from None
    config.stash[STATE] = state
    config.pluginmanager.register(state.progress, "benchbench-progress")


def _prepare_gate(state: FixtureState) -> None:
    options, gate = state.options, state.gate
    if options.compare is not None:
        gate.thresholds = _thresholds(options.fail)  # the syntax, before anything slower
    if options.save is not None:
        from benchbench.history import History
        from benchbench.outputs import check_distinct, check_folder

        check_distinct({"--benchbench-save": options.save, "--benchbench-history": options.history})
        check_folder(options.save, f"run files into --benchbench-save {str(options.save)!r}",
                     fix="give another --benchbench-save DIR")
        if options.history is not None:
            History(options.history).check_writable(option="--benchbench-history", disable=None)
    if options.compare is None:
        return
    thresholds = gate.thresholds
    assert thresholds is not None  # set above whenever --benchbench-compare is given
    gate.baseline = _baseline(options)
    if gate.baseline.suite != options.suite:
        raise UsageError(f"--benchbench-compare {options.compare!r} is a run of suite {gate.baseline.suite!r}, and this "
                         f"session's suite is {options.suite!r} (--benchbench-suite)")
    compared = set(gate.baseline.compare) | {s["metric"] for s in gate.baseline.compare.values() if s.get("metric")}
    unknown = sorted(thresholds.keys() - compared)
    if unknown:
        raise UsageError(f"--benchbench-fail: {unknown[0]!r} is no compared field or metric of the baseline"
                         f"{did_you_mean(unknown[0], compared)}; compared fields: {', '.join(sorted(gate.baseline.compare))}")
    benchmarks = [r["benchmark"] for r in gate.baseline.records]
    strangers = sorted({bench for bench, _ in thresholds.by_benchmark} - set(benchmarks))
    if strangers:
        raise UsageError(
            f"--benchbench-fail: no benchmark {strangers[0]!r} in the baseline{did_you_mean(strangers[0], benchmarks)} "
            "(a threshold applies only to a benchmark both runs measured; a benchmark is named by its test's node "
            f"id, e.g. {benchmarks[0] if benchmarks else 'test_x.py::test_block'}:latency_ms=10%)"
        )


def _thresholds(items: list[str]) -> Thresholds:
    """``--benchbench-fail latency_ms=5%`` (or ``latency_ms:5%``; a field or metric) or ``5%``
    (every timed and single-valued field): ``benchbench compare --threshold``'s rule."""
    from benchbench.compare import Thresholds

    return Thresholds.parse([item if "=" in item else "=".join(item.rsplit(":", 1)) for item in items],
                            option="--benchbench-fail")


def _baseline(options: Options) -> RunResult:
    """The baseline run: a run file, or from the history the latest run of the suite or its
    run at a git ref (as ``benchbench compare --baseline``)."""
    from benchbench.history import load_baseline

    which = options.compare or ""
    return load_baseline(which, options.suite, options.baseline_history, option="--benchbench-compare", here=options.here,
                         hint=f" (--benchbench-compare {which!r} takes its baseline from the history that "
                         "--benchbench-save appends to; --benchbench-history FILE names another)")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist, on the controller: a worker finished; take the records it measured."""
    data = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if data:
        state = node.config.stash[STATE]
        worker = getattr(getattr(node, "gateway", None), "id", "?")
        state.runs.append(RunResult.from_dict(json.loads(data), origin=f"xdist worker {worker}"))
        state.from_workers = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if _is_worker(config):  # the controller writes and compares; a worker hands its records over
        run = state.run() if state.options.kept else None
        if run is not None:
            config.workeroutput[WORKER_KEY] = run.to_json()  # type: ignore[attr-defined]  # pytest-xdist sets it on a worker
        return
    if not state.options.kept or not (state.runs or state.gate.baseline is not None):
        return  # nothing to keep, or nothing measured and nothing to compare
    run = state.run() or _empty_run(state)
    state.gate.incomplete = state.progress.incomplete(session, exitstatus)
    if state.gate.incomplete is not None:
        run.complete = False
        run.notes.append(f"incomplete: {state.gate.incomplete}")
    if state.from_workers:  # xdist workers finish in any order: sorted, the file is stable
        run.records.sort(key=lambda r: r["benchmark"])
    try:
        _save(state, run)
        if state.gate.baseline is not None:
            from benchbench.compare import compare_runs

            state.gate.comparison = compare_runs(state.gate.baseline, run, thresholds=state.gate.thresholds)
    except UsageError as exc:
        state.gate.error = str(exc).replace("--threshold", "--benchbench-fail")
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return
    comparison = state.gate.comparison
    if comparison is not None and comparison.exit_code != 0 and session.exitstatus in (
            pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # pytest's code for "tests failed"


def _empty_run(state: FixtureState) -> RunResult:
    """The run of a session in which no test measured anything (compared: everything is missing)."""
    return RunResult(suite=state.options.suite, environment=dict(state.environment))


def _save(state: FixtureState, run: RunResult) -> None:
    options = state.options
    if options.save is None or not run.records:
        return
    from benchbench.history import History
    from benchbench.outputs import claimed_run_file

    with claimed_run_file(options.save, options.suite) as path:
        run.write_json(path)
    incomplete = state.gate.incomplete
    state.gate.written.append(f"run file written to {path}" + (f" (incomplete: {incomplete})" if incomplete else ""))
    if options.history is not None:
        History(options.history).append(run, path)
        state.gate.written.append(f"appended to the history {options.history}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or _is_worker(config):
        return
    gate = state.gate
    if not (gate.written or gate.comparison is not None or gate.error):
        return
    terminalreporter.section("benchbench")
    for line in gate.written:
        terminalreporter.write_line(f"benchbench: {line}")
    if gate.error:
        terminalreporter.write_line(f"benchbench: error: {gate.error}", red=True, bold=True)
    if gate.comparison is not None:
        from benchbench.compare import describe_change, render

        terminalreporter.write_line(render(gate.comparison))
        for row in gate.comparison.regressions:
            terminalreporter.write_line(f"benchbench: regression: {describe_change(row)}", red=True, bold=True)
        if gate.comparison.exit_code != 0:
            terminalreporter.write_line("benchbench: the comparison with the baseline FAILED the session", red=True, bold=True)
