"""The runner and the Python API: records, failures, modes, ratios, interruption."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import benchbench
from benchbench.manager import PluginManager
from benchbench.results import RunResult
from tests.helpers import PluginFiles, tiny_suite, write_plugin

DESIGN_FIELDS = (
    "suite", "benchmark", "model", "family", "device", "batch_size", "input_shape", "output_shape", "status", "error",
    "params", "trainable_params", "flops", "flops_unsupported", "latency_ms", "latency_iqr_ms", "latency_runs",
    "throughput", "peak_memory_bytes",
)


def test_run_suite_api_returns_a_result_with_a_dataframe() -> None:
    run = benchbench.run_suite(tiny_suite())
    frame = run.to_dataframe()
    assert list(frame["benchmark"]) == ["std", "sep"]
    for field in DESIGN_FIELDS:
        assert field in frame.columns, field
    std, sep = run.records
    assert std["params"] == 8 * 8 * 9 + 8
    assert sep["params_ratio"] == pytest.approx(sep["params"] / std["params"])
    assert sep["flops_ratio"] == pytest.approx(1 / 8 + 1 / 9)
    assert "params_ratio" not in std  # no baseline named for it
    assert std["threads"] == torch.get_num_threads()
    assert run.fields[:2] == ["params", "params_ratio"]


def test_cpu_batch_size_applies_only_on_cpu_and_is_recorded() -> None:
    run = benchbench.run_suite(tiny_suite(batch_size=64, cpu_batch_size=3, metrics=["params"]))
    assert {(r["batch_size"], r["suite_batch_size"]) for r in run.records} == {(3, 64)}
    assert any("batch size 3 used on the CPU instead of the suite's 64" in n for n in run.notes)
    run = benchbench.run_suite(tiny_suite(batch_size=64, cpu_batch_size=3, metrics=["params"]), batch_size=5)
    assert {r["batch_size"] for r in run.records} == {5}


def test_failures_are_isolated_per_benchmark_and_per_metric(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.copy("toys", name="toys", prefix="t_")
    plugins.write("badmetric", """
        import benchbench
        def measure(ctx):
            raise ValueError('metric exploded')
        @benchbench.hookimpl
        def benchbench_register_metrics(register):
            register('explodes', measure, fields=['nothing'])
    """)
    data = tiny_suite(metrics=["params", "explodes", "flops"])
    data["benchmarks"].append({"model": "t_broken", "metrics": ["params"]})
    # dry_run: false lets the bad arguments through validation, to fail while building
    data["benchmarks"].append({"name": "bad_args", "model": "t_scale", "args": {"features": -3}, "metrics": ["params"], "dry_run": False})
    run = benchbench.run_suite(data, plugins_dir=plugins.path)
    std, _, broken, bad_args = run.records
    assert std["status"] == "failed" and "metric 'explodes' raised ValueError: metric exploded" in std["error"]
    assert std["params"] == 8 * 8 * 9 + 8 and std["flops"] > 0  # the other metrics still ran
    assert broken["status"] == "failed" and "first forward pass" in broken["error"]
    assert bad_args["status"] == "failed" and "building the model" in bad_args["error"]
    assert len(run.failed) == 4


def test_skip_train_mode_dtype_and_channels_last() -> None:
    data = tiny_suite(metrics=["params", "latency", "memory"])
    data["benchmarks"][0].update(skip="not today")
    data["benchmarks"][1].update(mode="train", dtype="float64", channels_last=True)
    run = benchbench.run_suite(data)
    std, sep = run.records
    assert (std["status"], std["error"]) == ("skipped", "not today")
    assert sep["status"] == "ok", sep["error"]
    assert (sep["mode"], sep["dtype"], sep["channels_last"]) == ("train", "float64", True)
    assert sep["latency_ms"] > 0 and sep["peak_memory_bytes"] > 0


def test_model_input_hook_make_input(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("tokens", """
        import torch, benchbench
        def make_input(batch_size, input_shape, device, dtype):
            return torch.randint(0, 10, (batch_size, *input_shape), device=device)
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('embed', lambda: torch.nn.Embedding(10, 3), input_shape=(5,), make_input=make_input)
    """)
    run = benchbench.run_suite({"defaults": {"device": "cpu"}, "benchmarks": [{"model": "embed", "metrics": ["params", "flops"]}]},
                               plugins_dir=plugins.path)
    [record] = run.records
    assert record["status"] == "ok", record["error"]
    assert record["output_shape"] == [5, 3]


def test_interrupted_run_keeps_finished_records(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("stopper", """
        import benchbench
        @benchbench.hookimpl
        def benchbench_result_ready(record, index, total):
            raise KeyboardInterrupt
    """)
    run = benchbench.run_suite(tiny_suite(metrics=["params"]), plugins_dir=plugins.path)
    assert not run.complete and [r["benchmark"] for r in run.records] == ["std"]
    path = run.write_json(tmp_path / "run.json")
    assert RunResult.read_json(path).complete is False


def test_lifecycle_hooks_see_every_benchmark(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("spy", """
        import benchbench
        SEEN = []
        @benchbench.hookimpl
        def benchbench_run_start(suite, benchmarks):
            SEEN.append(('start', suite.name, len(benchmarks)))
        @benchbench.hookimpl
        def benchbench_result_ready(record, index, total):
            SEEN.append(('result', record['benchmark'], index, total))
        @benchbench.hookimpl
        def benchbench_run_end(run):
            SEEN.append(('end', len(run.records)))
        @benchbench.hookimpl
        def benchbench_environment():
            return {'lab': 'rack 7'}
    """)
    manager = PluginManager(plugins_dir=plugins.path)
    run = benchbench.run_suite(tiny_suite(metrics=["params"]), manager=manager)
    spy = manager.pm.get_plugin("spy")
    assert spy.SEEN == [("start", "tiny", 2), ("result", "std", 0, 2), ("result", "sep", 1, 2), ("end", 2)]
    assert run.environment["lab"] == "rack 7"


def test_run_file_round_trip_is_valid_json(tmp_path: Path) -> None:
    run = benchbench.run_suite(tiny_suite(metrics=["params", "flops"]))
    path = run.write_json(tmp_path / "deep" / "run.json")
    data = json.loads(path.read_text())
    assert data["records"][1]["flops_unsupported"] == {}
    again = RunResult.read_json(path)
    assert again.records == data["records"] and again.fields == run.fields
    assert not list(path.parent.glob(".*.tmp"))


def test_result_repr_is_short_and_quiet_api_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    run = benchbench.run_suite(tiny_suite(metrics=["params"]), quiet=True)
    assert repr(run) == "<RunResult suite='tiny': 2 benchmark(s), 0 failed, complete; .to_dataframe() for the table>"
    assert capsys.readouterr().err == ""


def test_ratios_against_a_baseline_with_other_settings_carry_a_warning() -> None:
    data = tiny_suite(metrics=["params"])
    data["benchmarks"][1].update(mode="train", autocast="bfloat16")
    std, sep = benchbench.run_suite(data, quiet=True).records
    assert "params_ratio" in sep
    assert any("ran with other settings (mode eval vs train)" in w for w in sep["warnings"])
    assert not any("autocast" in w for w in sep["warnings"])  # an execution mode is compared on purpose
    assert not std["warnings"]


def test_oversubscribed_threads_are_flagged() -> None:
    import os

    data = tiny_suite(metrics=["params"], threads=(os.cpu_count() or 1) + 1)
    record = benchbench.run_suite(data, quiet=True).records[0]
    assert record["threads"] == (os.cpu_count() or 1) + 1
    assert any("oversubscribed" in w for w in record["warnings"])


def test_a_metric_cannot_overwrite_the_runners_fields(tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("sneaky", """
        import benchbench
        @benchbench.hookimpl
        def benchbench_register_metrics(register):
            register('sneaky', lambda ctx: {'status': 'ok', 'score': 1}, fields=['score'])
    """)
    data = tiny_suite(metrics=["params", "sneaky"])
    data["benchmarks"][0]["skip"] = False
    record = benchbench.run_suite(data, plugins_dir=plugins.path, quiet=True).records[0]
    assert record["status"] == "failed" and "returned field(s) the runner owns: status" in record["error"]
    assert "score" not in record


def test_core_fields_are_the_records_fields() -> None:
    from benchbench.results import CORE_FIELDS

    record = benchbench.run_suite(tiny_suite(metrics=[]), quiet=True).records[0]
    assert set(record) == set(CORE_FIELDS)


def test_rounds_interleave_pool_latency_and_measure_the_rest_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], plugins: PluginFiles) -> None:
    plugins.write("counting", """
        import benchbench
        CALLS = []
        @benchbench.hookimpl
        def benchbench_register_metrics(register):
            register('counted', lambda ctx: CALLS.append(ctx.benchmark.name) or {'n': len(CALLS)}, fields=['n'])
        @benchbench.hookimpl
        def benchbench_benchmark_start(benchmark, index, total, round, rounds):
            CALLS.append(f'start {benchmark.name} {round + 1}/{rounds}')
    """)
    manager = PluginManager(plugins_dir=plugins.path)
    data = tiny_suite(metrics=["params", "latency", "counted"])
    data["rounds"] = 3
    data["benchmarks"].append({**data["benchmarks"][0], "name": "costs_only", "metrics": ["params", "counted"]})
    data["benchmarks"][-1].pop("baseline", None)
    run = benchbench.run_suite(data, manager=manager)
    calls = manager.pm.get_plugin("counting").CALLS
    assert [c for c in calls if c.startswith("start")] == [  # costs_only pools nothing: one round is all it needs
        "start std 1/3", "start sep 1/3", "start costs_only 1/1", "start std 2/3", "start sep 2/3", "start std 3/3",
        "start sep 3/3"
    ]
    assert [c for c in calls if not c.startswith("start")] == ["std", "sep", "costs_only"]  # the first round only
    costs_only = run.records.pop()
    assert costs_only["rounds"] == 1 and costs_only["status"] == "ok" and run.complete
    for record in run.records:
        assert record["rounds"] == 3 and len(record["latency_rounds_ms"]) == 3
        pooled = [x for r in record["latency_rounds_ms"] for x in r]
        assert record["latency_samples_ms"] == pooled and record["latency_runs"] == len(pooled)
        assert record["latency_ms"] == pytest.approx(sorted(pooled)[len(pooled) // 2], rel=0.5)
        assert len(record["latency_round_medians_ms"]) == 3 and record["params"] > 0
    assert "round 2/3" in capsys.readouterr().err


def test_a_failed_baseline_is_named_instead_of_silently_dropping_ratios(tmp_path: Path) -> None:
    write_plugin(tmp_path, "toys", prefix="t_")
    data = tiny_suite(metrics=["params"])
    data["benchmarks"][0] = {"name": "std", "model": "t_broken"}
    run = benchbench.run_suite(data, plugins_dir=tmp_path, quiet=True)
    assert "params_ratio" not in run.records[1]
    assert "no ratios against 'std': that baseline failed" in run.notes


def test_the_rounds_loop_ends_when_no_benchmark_has_a_round_left(tmp_path: Path) -> None:
    """``rounds: 1000000000`` with metrics that pool no rounds: each benchmark runs once and the
    run ends (it used to spin through a billion empty rounds), also when resumed."""
    from dataclasses import replace

    from benchbench.config import Config
    from benchbench.deadline import DeadlineExceeded, deadline
    from benchbench.suiterunner import SuiteRunner, prepare

    config = Config(PluginManager(), quiet=True)
    suite = replace(prepare(tiny_suite(metrics=["params"]), config), rounds=1_000_000_000)  # past any bound validation sets
    path = tmp_path / "run.json"
    try:
        with deadline(120):
            run = SuiteRunner(config).run(suite, out=path)
            assert run.complete and [r["rounds"] for r in run.records] == [1, 1]
            resumed = RunResult.read_json(path)
            resumed.complete = False
            resumed.records.pop()  # one benchmark left to run
            again = SuiteRunner(config).run(suite, out=path, resume=resumed)
            assert again.complete and [r["benchmark"] for r in again.records] == ["std", "sep"]
            nothing = SuiteRunner(config).run(suite, out=path, resume=RunResult.read_json(path))  # all finished already
            assert nothing.complete and len(nothing.records) == 2
    except DeadlineExceeded:
        pytest.fail("the rounds loop went on with nothing left to measure")


def test_an_executor_reads_a_plugins_option_one_way(plugins: PluginFiles) -> None:
    """A plugin's option reaches an executor as ``session.config.getoption(NAME)``, and no other way
    (neither ``session.executor_options`` nor ``config.plugin_options``, two more ways until 0.1.0)."""
    plugins.write("probe", """
        import benchbench
        class Probe:
            remote = False
            def run(self, jobs, session):
                for job in jobs:
                    session.started(job)
                    record = session.run_here(job)
                    record["seen"] = [session.config.getoption("flavour"), hasattr(session, "executor_options"),
                                      hasattr(session.config, "plugin_options")]
                    yield job, record
        @benchbench.hookimpl
        def benchbench_register_executors(register):
            register("probe", Probe)
    """)
    run = benchbench.run_suite(tiny_suite(metrics=["params"]), executor="probe", plugins_dir=plugins.path,
                               executor_options={"flavour": "mint"})
    assert [r["seen"] for r in run.records] == [["mint", False, False]] * 2


def test_one_rule_picks_where_benchmarks_run() -> None:
    """The command line wins over the suite's ``executor:``, then inline (prepare, the run and the
    inline-only check all ask :func:`benchbench.spec.chosen_executor`)."""
    from benchbench.spec import chosen_executor

    assert chosen_executor("subprocess", "ray") == "subprocess"
    assert chosen_executor(None, "ray") == "ray"
    assert chosen_executor(None, None) == chosen_executor(None, 5) == "inline"  # 5: reported by validation


def test_one_wrapper_runs_each_phase_of_a_benchmark() -> None:
    """PhaseOutcome.from_call (pytest's CallInfo.from_call): a value, or the failure described as users
    read it; a model's sys.exit is its benchmark's failure, while Ctrl-C and the deadline stop it."""
    from benchbench.deadline import DeadlineExceeded
    from benchbench.job import PhaseOutcome

    assert PhaseOutcome.from_call("building", lambda: 3) == PhaseOutcome(3)

    def fails() -> None:
        raise ValueError("first line\n\nsecond line\nthird")

    assert PhaseOutcome.from_call("the first forward pass", fails).error == "the first forward pass raised ValueError: first line"
    assert PhaseOutcome.from_call("compiling", fails, lines=2).error == "compiling raised ValueError: first line / second line"
    assert PhaseOutcome.from_call("metric 'x'", lambda: sys.exit(3)).error == "metric 'x' raised SystemExit: 3"
    for stop in (KeyboardInterrupt, DeadlineExceeded):
        def stopped(stop: type[BaseException] = stop) -> None:
            raise stop()
        with pytest.raises(stop):
            PhaseOutcome.from_call("building", stopped)


def test_the_python_api_resumes_only_a_run_of_the_same_suite(tmp_path: Path) -> None:
    """``run_suite(..., resume=...)`` is held to the check ``benchbench run --resume`` gets: the same
    suite, and its text unchanged (the API used to check the name alone)."""
    from benchbench.errors import UsageError

    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(tiny_suite(metrics=["params"])))  # JSON is YAML
    run = benchbench.run_suite(path, quiet=True)
    run.complete, run.records = False, run.records[:1]
    other = tmp_path / "other.yaml"
    other.write_text(json.dumps({**tiny_suite(metrics=["params"]), "name": "other"}))
    with pytest.raises(UsageError, match=r"holds a run of suite 'tiny', and .*other\.yaml is suite 'other'"):
        benchbench.run_suite(other, resume=run, quiet=True)
    path.write_text(json.dumps(tiny_suite(metrics=["params", "flops"])))
    with pytest.raises(UsageError, match=r"tiny\.yaml has changed since the run was made"):
        benchbench.run_suite(path, resume=run, quiet=True)
    path.write_text(json.dumps(tiny_suite(metrics=["params"])))
    assert [r["benchmark"] for r in benchbench.run_suite(path, resume=run, quiet=True).records] == ["std", "sep"]
