"""The pytest plugin (benchbench/pytest_plugin.py, pytest_session.py), each case a real inner pytest session (``pytester``).

The inner tests measure params and FLOPs (deterministic and fast) unless latency is the
point, so that no verdict here depends on how busy the machine is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch  # noqa: F401 - kept loaded: inner sessions in this process unload what they import, and torch loads once

from benchbench.history import History
from benchbench.results import RunResult

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "pytest_project"
QUIET = ("-p", "no:cacheprovider", "-p", "no:benchmark")
"""Inner sessions write nothing of their own: no cache, and no .benchmarks/ folder from
pytest-benchmark where it happens to be installed too."""

BLOCK = """
    import os

    import torch


    class Block(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, width, 3, padding=1)

        def forward(self, x):
            return self.conv(x)


    def width():
        return int(os.environ.get("BLOCK_WIDTH", "8"))
"""

COSTS = """

    def test_block(benchbench):
        r = benchbench(Block(width()), torch.randn(2, 4, 8, 8), metrics=["params", "flops"])
        assert r.params == 36 * width() + width()


    def test_wide_block(benchbench):
        r = benchbench(Block(2 * width()), torch.randn(2, 4, 8, 8), metrics=["params", "flops"])
        assert r.flops > 0
"""


def source(*parts: str) -> str:
    """A test module from pieces, each indented as it likes."""
    return "\n".join(textwrap.dedent(part) for part in parts)


def run_files(folder: Path) -> list[Path]:
    """The run files in the order their sessions started (two in one second are NAME.json and
    NAME-2.json, which sort the other way round by name)."""
    return sorted(folder.glob("*.json"), key=lambda path: RunResult.read_json(path).environment.get("time", ""))


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


# ----------------------------------------------------------------------------- measuring


def test_the_example_project_passes_and_a_plain_session_writes_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for source in EXAMPLE.iterdir():
        if source.is_file():
            shutil.copy(source, pytester.path / source.name)
            # The inner session runs in this process: a module of that name imported by an earlier
            # test (test_plugins loads a plugin called blocks) must not stand in for the example's.
            monkeypatch.delitem(sys.modules, source.stem, raising=False)
    before = files_under(pytester.path)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert files_under(pytester.path) == before  # no run file, no history without --benchbench-save
    result.stdout.no_fnmatch_line("*= benchbench =*")  # and no summary section


def test_cost_assertions_pass_and_fail_like_any_assertion(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(source(BLOCK, """

        def test_small(benchbench):
            r = benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params", "flops", "latency"])
            assert r.params < 1_000
            assert r["flops"] == r.record["flops"] > 0
            measured_ms = r.latency_runs * r.record["latency_block_size"] * r.latency_ms
            assert r.rounds == 1 and measured_ms < 500  # no --benchbench-* option: a short budget (0.05 s, not 1 s)
            shown = repr(r)  # the table fields of the metrics that ran, whichever they are
            assert shown.startswith("<Measurement ") and "params=" in shown and "latency_iqr_ms=" in shown, shown
            assert "latency_samples_ms" not in shown and "status" not in shown, shown


        def test_too_big(benchbench):
            r = benchbench(Block(64), torch.randn(2, 4, 8, 8), metrics=["params"])
            assert r.params < 1_000
    """))
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert 2368 < 1000*", "*FAILED*test_too_big*"])


def test_ratios_between_measurements_of_a_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(source(BLOCK, """

        def test_ratios(benchbench):
            x = torch.randn(2, 4, 8, 8)
            narrow = benchbench(Block(8), x, name="narrow", metrics=["params", "flops"])
            wide = benchbench(Block(16), x, metrics=["params", "flops"])
            assert wide.flops_ratio_to("narrow") == wide.ratio_to(narrow, "flops") == 2
            assert wide.benchmark.endswith("::test_ratios") and narrow.benchmark.endswith("::test_ratios::narrow")


        def test_by_name_from_another_test(benchbench):
            r = benchbench(Block(4), torch.randn(2, 4, 8, 8), metrics=["params", "flops"])
            assert r.params_ratio_to("narrow") == 148 / 296


        def test_unknown_name(benchbench):
            benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params"]).params_ratio_to("narow")


        def test_field_not_measured(benchbench):
            benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params"]).flops


        def test_same_name_twice(benchbench):
            benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params"])
            benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params"])
    """))
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines([
        "*no measurement named 'narow' in this session so far (did you mean 'narrow'?)*",
        "*no field 'flops' in this measurement*measured: params, trainable_params*add its metric*",
        "*test_same_name_twice' was already measured; give each measurement of one test a name of its own*",
    ])


def test_bad_input_fails_that_test_with_benchbenchs_message(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(source(BLOCK, """

        class Broken(torch.nn.Module):
            def forward(self, x):
                raise RuntimeError("the block is broken")


        def test_unknown_metric(benchbench):
            benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params", "flps"])


        def test_unknown_key(benchbench):
            benchbench(Block(8), torch.randn(2, 4, 8, 8), mdoe="train")


        def test_a_model_that_raises(benchbench):
            benchbench(Broken(), torch.randn(2, 4, 8, 8))


        def test_not_a_module(benchbench):
            benchbench(lambda x: x, torch.randn(2, 4))


        def test_others_still_run(benchbench):
            assert benchbench(Block(8), torch.randn(2, 4, 8, 8), metrics=["params"]).params == 296
    """))
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines([
        "*key 'metrics': unknown metric 'flps' (did you mean 'flops'?)*",
        "*unknown key 'mdoe' (did you mean 'mode'?)*",
        "*test_a_model_that_raises: failed: the first forward pass raised RuntimeError: the block is broken*",
        "*the model must be a torch.nn.Module instance, got function*",
    ])
    output = result.stdout.str()
    assert "Traceback" not in output and "benchbench/suiterunner.py" not in output and "pytest_plugin.py" not in output


# ----------------------------------------------------------------------------- run files and the gate


def test_save_writes_one_standard_run_file_that_the_commands_read(pytester: pytest.Pytester) -> None:
    from benchbench import cli

    pytester.makepyfile(test_costs=source(BLOCK, COSTS))
    result = pytester.runpytest(*QUIET, "--benchbench-save", "out")
    result.assert_outcomes(passed=2)
    [path] = run_files(pytester.path / "out")
    result.stdout.fnmatch_lines([f"benchbench: run file written to {path}", "benchbench: appended to the history *"])
    run = RunResult.read_json(path)
    assert run.suite == "pytest" and run.complete
    assert [r["benchmark"] for r in run.records] == ["test_costs.py::test_block", "test_costs.py::test_wide_block"]
    assert {r["model"] for r in run.records} == {"Block"} and run.records[0]["params"] == 296
    assert run.compare["params"]["exact"] and run.environment["torch"]
    assert [r["suite"] for r in History(pytester.path / "out" / "history.sqlite").runs()] == ["pytest"]
    for command in (["compare", str(path), str(path)], ["report", str(path), "--format", "csv"],
                    ["history", "--history", str(pytester.path / "out" / "history.sqlite"), "--metric", "params"]):
        assert cli.main(command) == 0, command


def test_the_environment_is_collected_once_per_session(pytester: pytest.Pytester) -> None:
    """As pytest-benchmark collects its machine info: versions, git and nvidia-smi once for the
    session, not once per fixture call; every call's record and the saved run carry it."""
    pytester.makeconftest("""
        from benchbench import environment

        CALLS = []
        COLLECT = environment.collect


        def counted(manager):
            CALLS.append(1)
            return COLLECT(manager)


        environment.collect = counted


        def pytest_unconfigure(config):
            open("collected.txt", "w").write(str(len(CALLS)))
    """)
    pytester.makepyfile(test_costs=source(BLOCK, COSTS, """

        def test_three_more(benchbench):
            for w in (1, 2, 3):
                benchbench(Block(w), torch.randn(2, 4, 8, 8), name=f"w{w}", metrics=["params"])
    """))
    # In a process of its own: an inner session in this one may import benchbench's modules afresh.
    result = pytester.runpytest_subprocess(*QUIET, "--benchbench-save", "out")
    result.assert_outcomes(passed=3)
    assert (pytester.path / "collected.txt").read_text() == "1"  # for five fixture calls
    [path] = run_files(pytester.path / "out")
    run = RunResult.read_json(path)
    assert len(run.records) == 5 and run.environment["torch"] and "cpu_allocator" in run.environment


def test_compare_fails_the_session_on_a_regression_and_passes_an_unchanged_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_costs=source(BLOCK, COSTS))
    pytester.runpytest(*QUIET, "--benchbench-save", "out").assert_outcomes(passed=2)
    [baseline] = run_files(pytester.path / "out")

    monkeypatch.setenv("BLOCK_WIDTH", "9")  # the blocks grow: params and FLOPs +12.5%
    grown = pytester.runpytest(*QUIET, "--benchbench-compare", "latest", "--benchbench-history",
                               "out/history.sqlite")
    grown.assert_outcomes(passed=2)  # every test passed, yet the session fails: exit code 1, as for a failed test
    assert grown.ret == pytest.ExitCode.TESTS_FAILED
    grown.stdout.fnmatch_lines([
        "*= benchbench =*",
        "compare suite pytest: base * -> new *",
        "*benchmark*field*base*new*ratio*verdict*",
        "test_costs.py::test_block *params*296*333*1.12x*0%*REGRESSED*",
        "* regression(s): test_costs.py::test_block params +37 (+12.5%); *flops +2,304 (+12.5%)*",
        "benchbench: the comparison with the baseline FAILED the session",
    ])

    allowed = pytester.runpytest(*QUIET, "--benchbench-compare", str(baseline),
                                 "--benchbench-fail", "params=20%,flops:20%")
    assert allowed.ret == 0, allowed.stdout.str()
    allowed.stdout.fnmatch_lines(["test_costs.py::test_block *params*296*333*20%*unchanged*", "no regressions"])

    monkeypatch.setenv("BLOCK_WIDTH", "8")
    same = pytester.runpytest(*QUIET, "--benchbench-compare", "out/" + baseline.name)
    assert same.ret == 0
    same.stdout.fnmatch_lines(["test_costs.py::test_block *params*296*296*1x*unchanged*", "no regressions"])
    assert run_files(pytester.path / "out") == [baseline]  # comparing alone writes nothing


def test_a_missing_baseline_or_bad_option_is_a_usage_error_before_any_test_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_costs=source(BLOCK, COSTS))
    for args, message in (
        (["--benchbench-compare", "baselines/nothere.json"],
         f"*--benchbench-compare 'baselines/nothere.json': no such run file ('{pytester.path}/baselines/nothere.json')*"),
        (["--benchbench-compare", "latest"], f"*history '{pytester.path}/results/history.sqlite' not found*--benchbench-history FILE*"),
        (["--benchbench-fail", "latency_ms:5%"], "*--benchbench-fail sets what --benchbench-compare allows*"),
        (["--benchbench-rounds", "0"], "*--benchbench-rounds must be at least 1, got 0*"),
        (["--benchbench-compare", "nosuchbranch"],  # the ref is resolved first: not "history not found"
         ("*--benchbench-compare 'nosuchbranch' is neither 'latest' nor an existing run file, and * is not in a git "
         "repository*")),
        (["--benchbench-save", "out", "--benchbench-history", "out"],
         "--benchbench-save and --benchbench-history both name *out*; give each output its own path"),
    ):
        result = pytester.runpytest(*QUIET, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([f"ERROR: {message.lstrip('*')}"])
        result.stdout.no_fnmatch_line("*passed*")
    pytester.runpytest(*QUIET, "--benchbench-save", "out").assert_outcomes(passed=2)
    [saved] = run_files(pytester.path / "out")
    for args, message in (
        (["--benchbench-fail", "params:lots"], "--benchbench-fail 'params=lots': must be a percentage such as 5%*"),
        (["--benchbench-fail", "latncy_ms:5%"], "--benchbench-fail: 'latncy_ms' is no compared field or metric of the baseline*"),
        (["--benchbench-suite", "other"], "*is a run of suite 'pytest', and this session's suite is 'other'*"),
        (["--benchbench-fail", "NOBENCH:params=5%"], ("--benchbench-fail: no benchmark 'NOBENCH' in the baseline (a "
         "threshold applies only to a benchmark both runs measured; *e.g. test_costs.py::test_block:latency_ms=10%)")),
        (["--benchbench-fail", "test_costs.py::test_blok:params=5%"],
         ("--benchbench-fail: no benchmark 'test_costs.py::test_blok' in the baseline (did you mean "
         "'test_costs.py::test_block'?)*")),
    ):
        result = pytester.runpytest(*QUIET, "--benchbench-compare", str(saved), *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([f"ERROR: {message}"])
        result.stdout.no_fnmatch_line("*passed*")  # found before any test ran
    assert pytester.runpytest(*QUIET, "--benchbench-compare", str(saved), "--benchbench-fail",
                              "test_costs.py::test_block:params=5%").ret == 0


@pytest.mark.slow
def test_xdist_workers_results_land_in_one_run_file(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(test_costs=source(BLOCK, COSTS, """

        import pytest


        @pytest.mark.parametrize("extra", [1, 2, 3, 4])
        def test_many(benchbench, extra):
            benchbench(Block(width() + extra), torch.randn(2, 4, 8, 8), metrics=["params", "flops"])
    """))
    result = pytester.runpytest(*QUIET, "-n", "2", "--benchbench-save", "out")
    result.assert_outcomes(passed=6)
    [path] = run_files(pytester.path / "out")
    run = RunResult.read_json(path)
    names = [r["benchmark"] for r in run.records]
    assert names == sorted(names) and len(names) == 6
    assert {"test_costs.py::test_many[1]", "test_costs.py::test_many[4]", "test_costs.py::test_block"} <= set(names)
    assert len(History(pytester.path / "out" / "history.sqlite").runs()) == 1
    result.stdout.fnmatch_lines(["*2 workers*"])  # the controller ran no test: every record came from a worker


# ----------------------------------------------------------------------------- loaded everywhere


def test_the_plugin_is_installed_and_imports_neither_torch_nor_numpy() -> None:
    code = (
        "import sys, importlib.metadata as md, benchbench.pytest_plugin\n"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)\n"
        "print([e.value for e in md.entry_points(group='pytest11') if e.name == 'benchbench'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.replace("'", '"')) == ["benchbench.pytest_plugin"]


def test_a_session_that_does_not_use_it_is_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    before = files_under(pytester.path)
    result = pytester.runpytest(*QUIET, "--benchbench-save", "out")
    result.assert_outcomes(passed=1)
    assert files_under(pytester.path) == before  # nothing measured: no run file, no history
    result.stdout.no_fnmatch_line("*= benchbench =*")
    result.stdout.no_fnmatch_line("benchbench:*")
    on = pytester.runpytest(*QUIET, "--fixtures")
    on.stdout.fnmatch_lines(["benchbench -- *", "*Measure a module on an input with benchbench's metrics*"])
    off = pytester.runpytest(*QUIET, "-p", "no:benchbench", "--fixtures")  # how a project turns it off
    off.stdout.no_fnmatch_line("benchbench -- *")


# ----------------------------------------------------------------------------- what is saved, and where


def test_a_session_that_did_not_run_all_its_tests_is_saved_as_incomplete(pytester: pytest.Pytester) -> None:
    """-x stopped it, or a module failed to collect: `--benchbench-compare latest` must not
    take its run, which lacks benchmarks, for a complete one."""
    pytester.makepyfile(test_costs=source(BLOCK, """

        def test_block(benchbench):
            benchbench(Block(width()), torch.randn(2, 4, 8, 8), metrics=["params"])


        def test_fails():
            assert False


        def test_never_runs_after_x(benchbench):
            benchbench(Block(2 * width()), torch.randn(2, 4, 8, 8), metrics=["params"])
    """))
    stopped = pytester.runpytest(*QUIET, "-x", "--benchbench-save", "out")
    stopped.assert_outcomes(passed=1, failed=1)
    stopped.stdout.fnmatch_lines([("benchbench: run file written to * (incomplete: the pytest session stopped early "
                                  "(stopping after 1 failures))")])
    pytester.makepyfile(test_broken="this is not python")
    collected = pytester.runpytest(*QUIET, "--continue-on-collection-errors", "--benchbench-save", "out")
    collected.assert_outcomes(passed=2, failed=1, errors=1)
    first, second = (RunResult.read_json(path) for path in run_files(pytester.path / "out"))
    assert not first.complete and "incomplete: the pytest session stopped early (stopping after 1 failures)" in first.notes
    assert [r["benchmark"] for r in first.records] == ["test_costs.py::test_block"]
    assert not second.complete and any("error(s) during collection" in note for note in second.notes)
    assert [r["complete"] for r in History(pytester.path / "out" / "history.sqlite").runs()] == [0, 0]
    pytester.path.joinpath("test_broken.py").unlink()
    whole = pytester.runpytest(*QUIET, "--benchbench-save", "out")  # a failing test alone: every test ran
    whole.assert_outcomes(passed=2, failed=1)
    assert RunResult.read_json(run_files(pytester.path / "out")[-1]).complete


def test_a_history_it_cannot_write_names_the_plugins_own_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_costs=source(BLOCK, COSTS))
    (pytester.path / "notes.sqlite").write_text("my notes, not a database " * 100)
    result = pytester.runpytest(*QUIET, "--benchbench-save", "out", "--benchbench-history", "notes.sqlite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("ERROR: history '*notes.sqlite' is not an SQLite database (damaged, or another kind "
                                 "of file); give another --benchbench-history FILE")])
    assert "--no-history" not in result.stderr.str()  # pytest has no such option
    result.stdout.no_fnmatch_line("*passed*")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0 or not Path("/proc/self").is_dir(),
                    reason="as root on Linux, /proc passes os.access, yet nothing can be created there")
def test_a_save_folder_root_cannot_write_is_refused_before_any_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_costs=source(BLOCK, COSTS))
    result = pytester.runpytest(*QUIET, "--benchbench-save", "/proc/benchbench-out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([("ERROR: cannot write run files into --benchbench-save '/proc/benchbench-out': "
                                 "creating the folder '/proc/benchbench-out' failed (No such file or directory); "
                                 "give another --benchbench-save DIR (checked before any work)")])
    result.stdout.no_fnmatch_line("*passed*")
