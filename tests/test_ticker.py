"""A compiling benchmark shows that it is compiling, and for how long, while its first step runs
(issue 23, item 4): a 60-second max-autotune must not look like a hang."""

from __future__ import annotations

import itertools
import re
import time
from typing import Any

import pytest
import torch

import benchbench
from benchbench import modes, progress, ticker
from benchbench.ticker import Tick, ticking
from tests.helpers import tiny_suite

SLOW_COMPILE_S = 0.6


@pytest.fixture
def slow_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compile stood in for by a wrapper whose first call sleeps as a long compilation would."""

    class SlowFirstCall(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = model
            self.compiled = False

        def forward(self, x: Any) -> Any:
            if not self.compiled:
                time.sleep(SLOW_COMPILE_S)
                self.compiled = True
            return self._orig_mod(x)

    monkeypatch.setattr(modes, "compiled", lambda model, options: SlowFirstCall(model))
    monkeypatch.setattr(ticker, "INTERVAL_S", 0.1)


def compiled_suite() -> dict[str, Any]:
    data = tiny_suite(metrics=["params"])
    data["benchmarks"] = [{**data["benchmarks"][0], "compile": True}]
    return data


def seconds(lines: list[str]) -> list[float]:
    return [float(m[1]) for line in lines if (m := re.search(r"compiling \(torch\.compile\), ([\d.]+) s", line))]


def test_lines_show_the_compile_clock_growing_and_its_end(slow_compile: None, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress, "TICK_LINES_EVERY_S", 0.25)
    progress.set_style("lines")
    try:
        run = benchbench.run_suite(compiled_suite())
    finally:
        progress.set_style("auto")
    assert run.records[0]["status"] == "ok"
    lines = capsys.readouterr().err.splitlines()
    shown = seconds(lines)
    assert len(shown) >= 2 and shown == sorted(shown) and shown[-1] > shown[0], lines  # growing
    assert shown[0] == 0.0
    assert all(b - a >= 0.25 - 1e-9 for a, b in itertools.pairwise(shown)), shown  # lines are rate-limited
    done = [line for line in lines if "compiling (torch.compile): done in" in line]
    assert len(done) == 1 and float(done[0].rsplit("in ", 1)[1].split()[0]) >= SLOW_COMPILE_S - 0.05


def test_the_bar_is_refreshed_with_every_tick(slow_compile: None, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = progress.benchbench_benchmark_progress

    def spy(benchmark: Any, message: str) -> None:
        seen.append(message)
        original(benchmark=benchmark, message=message)

    monkeypatch.setattr(progress, "benchbench_benchmark_progress", benchbench.hookimpl(spy))
    progress.set_style("quiet")
    try:
        benchbench.run_suite(compiled_suite())
    finally:
        progress.set_style("auto")
    ticks = [m for m in seen if isinstance(m, Tick)]
    running = [t.elapsed_s for t in ticks if not t.done]
    assert len(running) >= 4 and running == sorted(running)  # ~0.6 s at one tick per 0.1 s
    assert ticks[-1].done and ticks[-1].elapsed_s >= SLOW_COMPILE_S - 0.05


def test_an_eager_benchmark_reports_no_compile_clock(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    progress.set_style("lines")
    try:
        benchbench.run_suite(tiny_suite(metrics=["params"]))
    finally:
        progress.set_style("auto")
    assert "compiling" not in capsys.readouterr().err


def test_a_report_that_raises_does_not_fail_the_phase() -> None:
    def broken(message: str) -> None:
        raise RuntimeError("display gone")

    with ticking(broken, "phase", interval=0.01):
        time.sleep(0.05)


def test_tick_text() -> None:
    assert Tick("compiling", 3.25) == "compiling, 3.2 s"
    assert Tick("compiling", 42.4) == "compiling, 42 s"
    assert Tick("compiling", 42.4, done=True) == "compiling: done in 42 s"
