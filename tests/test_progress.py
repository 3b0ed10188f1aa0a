"""The progress lines: what a run will do and how long it has left, as each benchmark really runs."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import benchbench
from benchbench import progress
from tests.helpers import tiny_suite


class Clock:
    """The time as the test says: ``clock.now = 25.0``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    monkeypatch.setattr(progress, "clock", fake)
    progress.set_style("lines")
    try:
        yield fake
    finally:
        progress.set_style("auto")


def bench(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, model="conv")


def test_the_banner_counts_the_rounds_each_benchmark_really_runs(capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_suite(metrics=["params"])
    data["rounds"] = 5  # params pools no rounds: each benchmark runs once
    benchbench.run_suite(data)
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "benchbench: suite 'tiny', 2 benchmark(s)"
    assert "round" not in err
    data = tiny_suite(metrics=["params", "latency"])
    data["rounds"] = 2
    data["benchmarks"].append({**data["benchmarks"][0], "name": "once", "metrics": ["params"]})
    benchbench.run_suite(data)
    assert capsys.readouterr().err.splitlines()[0] == "benchbench: suite 'tiny', 3 benchmark(s), 2 in 2 rounds, 1 once"


def test_time_left_counts_each_benchmarks_own_rounds_and_the_time_the_finished_ones_took(
        clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    # The case: 7 benchmarks of 5 rounds each; the first round also counts instructions
    # (25 s for the first benchmark: valgrind's start-up, then 4 s each), later rounds time only
    # latency (1 s each). It took 77 s; the old estimate said ~850 s left after the first benchmark.
    names = [f"b{i}" for i in range(7)]
    progress.benchbench_run_start(suite=SimpleNamespace(name="ci", rounds=5), benchmarks=names, rounds=dict.fromkeys(names, 5))
    lines = []

    def start(i: int, round: int, at: float) -> str:
        clock.now = at
        progress.benchbench_benchmark_start(benchmark=bench(names[i]), index=i, total=7, round=round, rounds=5)
        return capsys.readouterr().err.strip()

    assert capsys.readouterr().err.strip() == "benchbench: suite 'ci', 7 benchmark(s), 5 rounds each"
    assert start(0, 0, 0.0) == "[1/7] b0 (conv, round 1/5) ..."  # nothing finished: no estimate
    assert start(1, 0, 25.0) == "[2/7] b1 (conv, round 1/5; ~150 s left in the first round) ..."  # 6 x 25 s
    at = 25.0
    for i in range(2, 7):
        at += 4.0
        lines.append(start(i, 0, at))
    assert lines[-1] == "[7/7] b6 (conv, round 1/5; ~8 s left in the first round) ..."  # 45 s / 6 runs so far, one to go
    assert start(0, 1, at + 4.0) == "[1/7] b0 (conv, round 2/5) ..."  # later rounds: nothing to go by yet
    assert start(1, 1, at + 5.0) == "[2/7] b1 (conv, round 2/5; ~27 s left) ..."  # 27 later runs of 1 s each
    clock.now = at + 6.0
    progress.benchbench_result_ready(record={"benchmark": "b1", "status": "failed", "error": "boom", "rounds": 2,
                                             "wall_time_s": 5.0}, index=1, total=7)
    capsys.readouterr()
    assert start(2, 1, at + 6.0) == "[3/7] b2 (conv, round 2/5; ~23 s left) ..."  # b1 failed: its 3 rounds are off


def test_benchmarks_that_run_once_are_not_counted_as_five_rounds(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    rounds = {"lat": 5, "p1": 1, "p2": 1, "p3": 1}
    progress.benchbench_run_start(suite=SimpleNamespace(name="mixed", rounds=5), benchmarks=list(rounds), rounds=rounds)
    assert capsys.readouterr().err.strip() == "benchbench: suite 'mixed', 4 benchmark(s), 1 in 5 rounds, 3 once"
    for i, (name, at) in enumerate([("lat", 0.0), ("p1", 2.0), ("p2", 4.0), ("p3", 6.0)]):
        clock.now = at
        progress.benchbench_benchmark_start(benchmark=bench(name), index=i, total=4, round=0, rounds=rounds[name])
    clock.now = 8.0
    progress.benchbench_benchmark_start(benchmark=bench("lat"), index=0, total=4, round=1, rounds=5)
    clock.now = 8.5
    progress.benchbench_benchmark_start(benchmark=bench("lat"), index=0, total=4, round=2, rounds=5)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "[1/4] lat (conv, round 3/5; ~2 s left) ..."  # 3 later rounds of 0.5 s, not 16 runs of 2 s


def test_the_bar_counts_runs(capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_suite(metrics=["params", "latency"])
    data["rounds"] = 2
    data["benchmarks"].append({**data["benchmarks"][0], "name": "once", "metrics": ["params"]})
    progress.set_style("bar")
    try:
        benchbench.run_suite(data)
    finally:
        progress.set_style("auto")
    assert "5/5 |" in capsys.readouterr().err  # 2 x 2 rounds + 1


def test_the_last_line_counts_the_whole_command_and_says_when_the_run_was_interrupted(
        clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C 0.6 s after the run started, which was 12 s after the command (checking the suite, starting valgrind).
    progress.benchbench_configure(config=SimpleNamespace(quiet=False, verbose=False))
    clock.now = 12.0
    progress.benchbench_run_start(suite=SimpleNamespace(name="ci", rounds=1), benchmarks=["a", "b"], rounds={"a": 1, "b": 1})
    clock.now = 12.6
    progress.benchbench_run_end(run=SimpleNamespace(records=[], failed=[], complete=False))
    assert capsys.readouterr().err.splitlines()[-1] == "benchbench: interrupted: 0 of 2 benchmark(s) finished in 12.6 s"
    clock.now = 20.0
    progress.benchbench_run_end(run=SimpleNamespace(records=[{}, {}], failed=[{}], complete=True))
    assert capsys.readouterr().err.splitlines()[-1] == "benchbench: 2 benchmark(s) in 20.0 s, 1 failed"
