"""Progress lines on stderr, written as a plugin on the run-lifecycle hooks.

Plain lines (no cursor tricks) so that CI logs stay readable; stdout is left to the
report, so ``benchbench run ... --format csv > out.csv`` works. ``-q`` unregisters it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import benchbench

_state: dict[str, float] = {}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@benchbench.hookimpl
def benchbench_run_start(suite: Any, benchmarks: list[Any]) -> None:
    _state["run"] = time.perf_counter()
    rounds = getattr(suite, "rounds", 1)
    _say(f"benchbench: suite {suite.name!r}, {len(benchmarks)} benchmark(s)" + (f", {rounds} rounds" if rounds > 1 else ""))


@benchbench.hookimpl
def benchbench_benchmark_start(benchmark: Any, index: int, total: int, round: int, rounds: int) -> None:
    step, steps = round * total + index, total * rounds
    elapsed = time.perf_counter() - _state.get("run", time.perf_counter())
    left = f"; ~{elapsed / step * (steps - step):.0f} s left" if step else ""
    which = f", round {round + 1}/{rounds}" if rounds > 1 else ""
    _say(f"[{index + 1}/{total}] {benchmark.name} ({benchmark.model}{which}{left}) ...")


@benchbench.hookimpl
def benchbench_benchmark_progress(benchmark: Any, message: str) -> None:
    _say(f"      {benchmark.name}: {message}")


@benchbench.hookimpl
def benchbench_result_ready(record: dict[str, Any], index: int, total: int) -> None:
    status = record["status"] + (f": {record['error']}" if record.get("error") else "")
    took = f" ({record['wall_time_s']:.1f} s)" if record.get("wall_time_s") else ""
    _say(f"[{index + 1}/{total}] {record['benchmark']}: {status}{took}")


@benchbench.hookimpl
def benchbench_run_end(run: Any) -> None:
    elapsed = time.perf_counter() - _state.get("run", time.perf_counter())
    failed = len(run.failed)
    _say(f"benchbench: {len(run.records)} benchmark(s) in {elapsed:.1f} s" + (f", {failed} failed" if failed else ""))
