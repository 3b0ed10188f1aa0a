"""Progress lines on stderr, written as a plugin on the run-lifecycle hooks.

Plain lines (no cursor tricks) so that CI logs stay readable; stdout is left to the
report, so ``benchbench run ... --format csv > out.csv`` works. ``-q`` unregisters it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import benchbench

_started: dict[str, float] = {}


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@benchbench.hookimpl
def benchbench_run_start(suite: Any, benchmarks: list[Any]) -> None:
    _started["run"] = time.perf_counter()
    _say(f"benchbench: suite {suite.name!r}, {len(benchmarks)} benchmark(s)")


@benchbench.hookimpl
def benchbench_benchmark_start(benchmark: Any, index: int, total: int) -> None:
    _started["benchmark"] = time.perf_counter()
    _say(f"[{index + 1}/{total}] {benchmark.name} ({benchmark.model}) ...")


@benchbench.hookimpl
def benchbench_result_ready(record: dict[str, Any], index: int, total: int) -> None:
    took = time.perf_counter() - _started.get("benchmark", time.perf_counter())
    elapsed = time.perf_counter() - _started.get("run", time.perf_counter())
    left = elapsed / (index + 1) * (total - index - 1)
    status = record["status"] + (f": {record['error']}" if record.get("error") else "")
    _say(f"[{index + 1}/{total}] {record['benchmark']}: {status} ({took:.1f} s; ~{left:.0f} s left)")


@benchbench.hookimpl
def benchbench_run_end(run: Any) -> None:
    elapsed = time.perf_counter() - _started.get("run", time.perf_counter())
    failed = len(run.failed)
    _say(f"benchbench: {len(run.records)} benchmark(s) in {elapsed:.1f} s" + (f", {failed} failed" if failed else ""))
