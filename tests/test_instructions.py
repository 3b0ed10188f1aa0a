"""``instructions``: instruction counts under valgrind's callgrind, and how compare judges them.

The tests that run valgrind share two runs of one small suite (module fixture ``counted``):
starting python under valgrind and importing torch there is the slow part (20-40 s a run).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

import benchbench
from benchbench.callgrind import CallgrindError, CallgrindProcess, Profile, read_dump
from benchbench.cli import main
from benchbench.compare import Thresholds, compare_runs
from benchbench.errors import SuiteError
from benchbench.manager import PluginManager
from benchbench.metrics import instructions
from benchbench.results import RunResult
from tests.helpers import require_tool

# --------------------------------------------------------------------------- reading dumps (no valgrind)

DUMP = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
part: 2

positions: line
events: Ir
summary: 1000

ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ???
fn=(1) malloc
0 100
cob=(2) /opt/torch/lib/libtorch_cpu.so
cfi=(2) ???
cfn=(2) at::_ops::conv2d::call(at::Tensor const&)
calls=1 0 
0 700

ob=(2)
fn=(2)
0 600
cob=(1)
cfn=(1)
calls=2 0 
0 100
fn=(3) helper'2
+1 50
* 50
ob=(3) ???
fn=(4) 0x00000000cbb9e000
0 100
totals: 1000
"""


def test_a_dump_gives_the_total_and_each_functions_own_and_inclusive_count(tmp_path: Path) -> None:
    path = tmp_path / "callgrind.out.2"
    path.write_text(DUMP)
    profile = read_dump(path)
    assert profile.total == 1000
    assert profile.exclusive == {"malloc [libc.so.6]": 100, "at::_ops::conv2d::call(at::Tensor const&) [libtorch_cpu.so]": 600,
                                 "helper'2 [libtorch_cpu.so]": 100,
                                 "0x00000000cbb9e000 [unknown object: JIT-generated code?]": 100}
    assert profile.inclusive["malloc [libc.so.6]"] == 800  # its own 100 and the call's 700
    assert profile.inclusive["at::_ops::conv2d::call(at::Tensor const&) [libtorch_cpu.so]"] == 700
    path.write_text(DUMP.replace("totals: 1000\n", "").replace("summary: 1000\n", ""))
    with pytest.raises(ValueError, match="no totals"):
        read_dump(path)


def test_per_step_counts_leave_out_the_measurements_own_cost_and_type_lookups() -> None:
    lookup = "_PyType_Lookup [libpython3.11.so.1.0]"
    conv = "at::_ops::conv2d::call(at::Tensor const&) [libtorch_cpu.so]"
    empty = Profile(1_000, {"toggle [x]": 1_000}, {"toggle [x]": 1_000, lookup: 10})
    measured = Profile(41_000, {"toggle [x]": 1_000, "kernel [t]": 30_000, "kernel'2 [t]": 2_000, "malloc [c]": 8_000},
                       {conv: 36_000, lookup: 2_010, "at::_ops::conv2d::call(at::Tensor const&)'2 [t]": 5})
    top = instructions._top(empty, measured, 2, 2)
    assert top == [{"function": "kernel [t]", "instructions": 16_000}, {"function": "malloc [c]", "instructions": 4_000}]
    assert instructions._operators(empty, measured, 2, 5) == [{"operator": "aten::conv2d", "instructions": 18_000}]
    assert (instructions._noise(measured) - instructions._noise(empty)) / 2 == 1_000


def test_a_process_that_cannot_count_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without valgrind under it, the worker refuses (the client request answers 0 outside valgrind);
    a valgrind that dies is quoted. Both without valgrind: a stand-in runs the command or fails."""
    plain = tmp_path / "no-valgrind"
    plain.write_text('#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n')  # drop the options, run python
    broken = tmp_path / "broken-valgrind"
    broken.write_text("#!/bin/sh\necho 'valgrind: m_mallocfree.c: out of memory' >&2\nexit 7\n")
    for path in (plain, broken):
        path.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the process's folder goes
    with pytest.raises(CallgrindError, match="could not start: RuntimeError: this process is not running under valgrind"):
        CallgrindProcess({"plugins": [], "plugins_dir": None, "autoload": False}, valgrind=str(plain))
    with pytest.raises(CallgrindError, match=r"died while starting \(exit code 7\); its last output: valgrind: m_mallocfree"):
        CallgrindProcess({"plugins": [], "plugins_dir": None, "autoload": False}, valgrind=str(broken))
    assert not list(scratch.iterdir())  # its folder is removed


# --------------------------------------------------------------------------- availability (no valgrind needed)

SUITE: dict[str, Any] = {
    "name": "counted",
    "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["params", "instructions"]},
    "benchmarks": [
        {"name": "c8", "model": "conv", "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
         "input_shape": [8, 8, 8]},
        {"name": "c16", "model": "conv", "args": {"in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1},
         "input_shape": [16, 8, 8]},
        {"name": "plain", "model": "conv", "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 1},
         "input_shape": [8, 8, 8], "metrics": ["params"]},
    ],
}


def test_without_valgrind_the_suite_is_rejected_naming_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on it
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite(SUITE)
    [problem] = error.value.problems  # one line for both benchmarks, none for the one without it
    assert problem.startswith("metric 'instructions' cannot run for benchmarks 'c8', 'c16': it needs valgrind")
    assert "apt-get install valgrind" in problem
    benchbench.run_suite(SUITE, only=["plain"], quiet=True)  # a selection without it runs
    suite = tmp_path / "s.yaml"
    suite.write_text(textwrap.dedent("""\
        defaults: {device: cpu, metrics: [instructions]}
        benchmarks: [{model: conv, args: {in_channels: 3, out_channels: 3, kernel_size: 1}, input_shape: [3, 4, 4]}]
    """))
    assert main(["run", str(suite), "-q"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install valgrind" in err and "Traceback" not in err


def stand_in_valgrind(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``valgrind`` on PATH (it only has to exist): what a test of another rule needs, on a machine without it."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "valgrind"
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


def test_instructions_on_a_gpu_and_cuda_kernels_on_the_cpu_are_rejected(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)  # no valgrind: the device is still the reason
    assert "counts CPU instructions" in (instructions.available("cuda:0") or "")
    monkeypatch.undo()
    stand_in_valgrind(tmp_path / "bin", monkeypatch)  # the rule about devices, on machines without valgrind too
    data = {**SUITE, "benchmarks": SUITE["benchmarks"][:1]}
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite({**data, "defaults": {**data["defaults"], "device": "cuda", "metrics": ["instructions"]}})
    assert any("counts CPU instructions and this benchmark runs on 'cuda'" in p for p in error.value.problems)
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite({**data, "defaults": {**data["defaults"], "metrics": ["cuda_kernels"]}})
    assert error.value.problems == [("metric 'cuda_kernels' cannot run for benchmark 'c8': it counts CUDA kernels and this "
                                     "benchmark runs on the CPU; count CPU instructions with 'instructions'")]


@pytest.mark.parametrize("how", ["--isolate", "--executor subprocess", "executor: subprocess"])
def test_instructions_with_a_worker_process_executor_is_bad_input_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """The counting process belongs to the run: with --isolate each benchmark failed after the others ran (exit 1)."""
    stand_in_valgrind(tmp_path / "bin", monkeypatch)
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite(SUITE, executor="subprocess")
    [problem] = error.value.problems
    assert problem == ("metric 'instructions' cannot run with the 'subprocess' executor (--executor/--isolate) for "
                       f"benchmarks 'c8', 'c16': {instructions.INLINE_ONLY}; run it with the default inline executor "
                       "(no --isolate or --executor), or leave 'instructions' out of this run (--metrics)")
    suite = tmp_path / "s.yaml"
    suite.write_text(("executor: subprocess\n" if how.startswith("executor:") else "") + textwrap.dedent("""\
        defaults: {device: cpu, metrics: [params, instructions]}
        benchmarks:
          - {name: a, model: conv, args: {in_channels: 3, out_channels: 3, kernel_size: 1}, input_shape: [3, 4, 4]}
          - {name: b, model: conv, args: {in_channels: 3, out_channels: 3, kernel_size: 1}, input_shape: [3, 4, 4]}
    """))
    options = [] if how.startswith("executor:") else how.split()
    assert main(["run", str(suite), *options, "-q", "--no-history", "--json", str(tmp_path / "run.json")]) == 2
    err = capsys.readouterr().err
    assert "metric 'instructions' cannot run with the 'subprocess' executor" in err and "Traceback" not in err
    assert ("the suite's 'executor:'" if how.startswith("executor:") else "(--executor/--isolate)") in err
    assert not (tmp_path / "run.json").exists()  # refused before the first benchmark
    assert main(["run", str(suite), *options, "--metrics", "params", "-q", "--no-history",
                 "--json", str(tmp_path / "run.json")]) == 0  # without it, the run goes on


# --------------------------------------------------------------------------- compare (synthetic run files)

CPU, SOFTWARE = "AMD EPYC; under valgrind: torch capability AVX2", "torch 2.14.1, python 3.11.7, glibc 2.36, valgrind-3.19.0"


def counted_run(count: int, **fields: Any) -> RunResult:
    record = {"benchmark": "a", "status": "ok", "model": "conv", "args": {}, "input_shape": [8, 8, 8], "device": "cpu",
              "batch_size": 2, "dtype": "float32", "mode": "eval", "channels_last": False, "threads": 2, "thresholds": {},
              "instructions": count, "instructions_cpu": CPU, "instructions_software": SOFTWARE, **fields}
    spec = {"metric": "instructions", "threshold": instructions.THRESHOLD, "settings": list(instructions.SETTINGS)}
    return RunResult(suite="s", records=[record], environment={"cpu": "c", "host": "h"}, compare={"instructions": spec})


def verdict(base: RunResult, new: RunResult, *thresholds: str) -> tuple[str, float | None]:
    [row] = compare_runs(base, new, thresholds=Thresholds.parse(thresholds)).rows
    return row.verdict.verdict, row.threshold


def test_compare_judges_counts_against_one_percent_without_statistics() -> None:
    base = counted_run(1_000_000)
    assert verdict(base, counted_run(1_009_000)) == ("unchanged", 0.01)
    assert verdict(base, counted_run(1_011_000)) == ("regressed", 0.01)
    assert verdict(base, counted_run(989_000)) == ("improved", 0.01)
    assert verdict(base, counted_run(1_011_000), "5%") == ("regressed", 0.01)  # a blanket threshold is for timings
    assert verdict(base, counted_run(1_011_000), "instructions=2%") == ("unchanged", 0.02)  # naming it changes it
    assert verdict(base, counted_run(1_011_000, thresholds={"instructions": 0.02})) == ("unchanged", 0.02)
    assert verdict(base, counted_run(1_000_000, threads=16)) == ("unchanged", 0.01)  # counting always uses one thread


def test_counts_from_another_cpu_or_software_are_not_comparable() -> None:
    base = counted_run(1_000_000)
    for change in ({"instructions_cpu": "Intel Xeon; under valgrind: torch capability AVX2"},
                   {"instructions_software": SOFTWARE.replace("2.14.1", "2.15.0")}, {"batch_size": 4}):
        comparison = compare_runs(base, counted_run(2_000_000, **change))
        [row] = comparison.rows
        assert row.verdict.verdict == "not comparable" and next(iter(change)) in (row.verdict.note or "")
        assert comparison.exit_code == 1  # nothing judged: a gate must not pass by comparing nothing


# --------------------------------------------------------------------------- under valgrind

MODEL = """\
import os, signal, sys

import torch

import benchbench

COUNTING = "callgrind_worker" in (sys.argv[0] if sys.argv else "")  # in the process under valgrind


class Repeated(torch.nn.Module):
    def __init__(self, channels: int = 8, work: int = 4, fail: str = "") -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
        self.work, self.fail = work, fail

    def forward(self, x):
        if COUNTING and self.fail == "raise":
            raise ValueError("fails only where instructions are counted")
        if COUNTING and self.fail == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        for _ in range(self.work):
            x = self.conv(x)
        return x


@benchbench.hookimpl
def benchbench_register_models(register):
    register("repeated", Repeated, family="test", input_shape=lambda a: (a.get("channels", 8), 8, 8))
"""


def counted_suite(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "counted",
        "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["params", "instructions"]},
        "benchmarks": [{"name": "w4", "model": "repeated", "args": {"work": 4}},
                       {"name": "w4_again", "model": "repeated", "args": {"work": 4}, "seed": 1},
                       {"name": "w5", "model": "repeated", "args": {"work": 5}, "baseline": "w4"}, *extra],
    }


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RunResult]:
    """Two runs of one suite, each with its own callgrind process (the first also has two failing benchmarks)."""
    require_tool("valgrind", "instruction counts run under valgrind's callgrind")
    plugin = tmp_path_factory.mktemp("plugins") / "repeated.py"
    plugin.write_text(MODEL)
    runs = []
    for extra in ([{"name": "raises", "model": "repeated", "args": {"fail": "raise"}},
                   {"name": "dies", "model": "repeated", "args": {"fail": "die"}}],
                  [{"name": "w4_fma", "model": "repeated", "args": {"work": 4},
                    "metric_options": {"instructions": {"fma": True}}}]):
        manager = PluginManager([str(plugin)], autoload=False)  # no entry points: a faster start under valgrind
        runs.append(benchbench.run_suite(counted_suite(*extra), manager=manager, quiet=True))
    return runs[0], runs[1]


def records(run: RunResult) -> dict[str, dict[str, Any]]:
    return {r["benchmark"]: r for r in run.records}


@pytest.mark.slow
def test_one_callgrind_process_counts_every_benchmark_of_a_run(counted: tuple[RunResult, RunResult]) -> None:
    first = records(counted[0])
    assert first["w4"]["instructions_startup_s"] > 0  # started by the first benchmark...
    assert "instructions_startup_s" not in first["w4_again"] and "instructions_startup_s" not in first["w5"]  # ...only
    assert instructions._SharedCallgrind.process is None  # and stopped at the end of the run


@pytest.mark.slow
def test_counts_are_deterministic_and_grow_with_the_work(counted: tuple[RunResult, RunResult]) -> None:
    first, second = records(counted[0]), records(counted[1])
    assert first["w4"]["instructions"] == second["w4"]["instructions"]  # another process: the same count
    # Another name and other weights: the heap the model is built on differs (the request's
    # objects). Equal on the development machine, 0.3% and 1.1% apart on CI's; a gate compares
    # a benchmark with itself, so this is a bound on what a renamed benchmark may see.
    assert abs(first["w4_again"]["instructions"] / first["w4"]["instructions"] - 1) <= 0.02
    assert 1.15 < first["w5"]["instructions"] / first["w4"]["instructions"] < 1.3  # 5 convolutions instead of 4
    assert first["w5"]["instructions_ratio"] == pytest.approx(first["w5"]["instructions"] / first["w4"]["instructions"])
    record = first["w4"]
    assert record["instructions_raw"] > record["instructions"] > 0
    assert record["instructions_top"][0]["instructions"] > 0
    assert [o["operator"] for o in record["instructions_operators"]][:1] == ["aten::conv2d"]
    assert "valgrind-" in record["instructions_software"] and "ONEDNN_MAX_CPU_ISA=AVX" in record["instructions_cpu"]


@pytest.mark.slow
def test_fma_kernels_are_counted_in_a_process_of_their_own(counted: tuple[RunResult, RunResult]) -> None:
    second = records(counted[1])
    capped, fma = second["w4"], second["w4_fma"]
    assert "ONEDNN_MAX_CPU_ISA=AVX" in capped["instructions_cpu"] and "FMA allowed" in fma["instructions_cpu"]
    assert fma["instructions_startup_s"] > 0  # the capped process could not count it: a new one started
    assert fma["status"] == "ok" and fma["instructions"] > 0


@pytest.mark.slow
def test_compare_of_two_runs_of_the_same_code_finds_nothing(counted: tuple[RunResult, RunResult]) -> None:
    comparison = compare_runs(counted[0], counted[1], only_fields=["instructions"])
    judged = {r.benchmark: r.verdict.verdict for r in comparison.rows}
    assert judged == {"w4": "unchanged", "w4_again": "unchanged", "w5": "unchanged", "raises": "missing in new",
                      "dies": "missing in new", "w4_fma": "new"}
    assert comparison.exit_code == 0


@pytest.mark.slow
def test_a_model_failing_or_dying_under_valgrind_fails_only_its_benchmark(counted: tuple[RunResult, RunResult]) -> None:
    first = records(counted[0])
    assert first["raises"]["status"] == "failed" and first["raises"]["params"] > 0
    assert "ValueError: fails only where instructions are counted" in first["raises"]["error"]
    assert first["dies"]["status"] == "failed"  # its fork was killed; the process counting the run goes on
    assert "the process counting this benchmark under valgrind was killed by SIGKILL" in first["dies"]["error"]
    assert first["dies"]["params"] > 0 and first["w5"]["status"] == "ok"
