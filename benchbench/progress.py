"""Progress on stderr, written as a plugin on the run-lifecycle hooks.

On a terminal: one progress bar (benchmark i of n, its name and round, elapsed time and
the estimate of what is left, tqdm's), with failures and training epochs printed above
it. Elsewhere (CI logs, files): plain lines, no cursor tricks. ``-v`` gives the lines on
a terminal too, plus each benchmark's warnings as they happen; ``-q`` silences it (both
read from the run's configuration, ``benchbench_configure``); ``-p no:progress`` leaves
the plugin out. stdout is left to the report, so ``benchbench run ... --format csv >
out.csv`` works.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import benchbench

STYLES = ("auto", "bar", "lines", "verbose", "quiet")
_state: dict[str, Any] = {"style": "auto", "bar": None}


def set_style(style: str) -> None:
    """``auto`` (a bar on a terminal, lines elsewhere), ``bar``, ``lines`` or ``verbose``."""
    if style not in STYLES:
        raise ValueError(f"progress style must be one of {', '.join(STYLES)}, got {style!r}")
    _state["style"] = style


@benchbench.hookimpl
def benchbench_configure(config: Any) -> None:
    """``-q`` and ``-v`` of this run; a style set with :func:`set_style` (tests) stays otherwise."""
    if config.quiet:
        _state["style"] = "quiet"
    elif config.verbose:
        _state["style"] = "verbose"
    elif _state["style"] in ("quiet", "verbose"):
        _state["style"] = "auto"


def _terminal_width() -> int:
    """Columns of the terminal behind stderr (0 when unknown: some pseudo-terminals say 0)."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def _say(text: str) -> None:
    if _state["style"] == "quiet":
        return
    bar = _state.get("bar")
    if bar is not None:
        bar.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)


@benchbench.hookimpl
def benchbench_run_start(suite: Any, benchmarks: list[Any]) -> None:
    rounds = getattr(suite, "rounds", 1)
    _state.update(run=time.perf_counter(), total=len(benchmarks) * rounds, bar=None)
    style = _state["style"]
    if style == "quiet":
        return
    width = _terminal_width()
    if style == "bar" or (style == "auto" and sys.stderr.isatty() and width >= 40):
        from tqdm import tqdm

        _state["bar"] = tqdm(total=_state["total"], file=sys.stderr, unit="benchmark", ncols=max(width, 80) if width < 40 else None,
                             dynamic_ncols=width >= 40, leave=True,
                             bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining}{postfix}")
        _state["bar"].set_description_str(f"suite {suite.name}")
        return
    _say(f"benchbench: suite {suite.name!r}, {len(benchmarks)} benchmark(s)" + (f", {rounds} rounds" if rounds > 1 else ""))


@benchbench.hookimpl
def benchbench_benchmark_start(benchmark: Any, index: int, total: int, round: int, rounds: int) -> None:
    step = round * total + index
    which = f", round {round + 1}/{rounds}" if rounds > 1 else ""
    bar = _state.get("bar")
    if bar is not None:
        bar.n = step
        bar.set_description_str(f"[{index + 1}/{total}] {benchmark.name}{which}")
        bar.refresh()
        return
    elapsed = time.perf_counter() - _state.get("run", time.perf_counter())
    left = f"; ~{elapsed / step * (total * rounds - step):.0f} s left" if step else ""
    _say(f"[{index + 1}/{total}] {benchmark.name} ({benchmark.model}{which}{left}) ...")


@benchbench.hookimpl
def benchbench_benchmark_progress(benchmark: Any, message: str) -> None:
    bar = _state.get("bar")
    if bar is not None and _state["style"] != "verbose":
        bar.set_postfix_str(message[:70])
        return
    _say(f"      {benchmark.name}: {message}")


@benchbench.hookimpl
def benchbench_result_ready(record: dict[str, Any], index: int, total: int) -> None:
    bar = _state.get("bar")
    if bar is not None:
        if record["status"] == "failed":
            _say(f"{record['benchmark']}: failed: {record.get('error')}")
        return
    status = record["status"] + (f": {record['error']}" if record.get("error") else "")
    took = f" ({record['wall_time_s']:.1f} s)" if record.get("wall_time_s") else ""
    _say(f"[{index + 1}/{total}] {record['benchmark']}: {status}{took}")
    if _state["style"] == "verbose":
        for warning in record.get("warnings") or []:
            _say(f"      warning: {warning}")


@benchbench.hookimpl
def benchbench_run_end(run: Any) -> None:
    bar = _state.pop("bar", None)
    _state["bar"] = None
    if bar is not None:
        bar.n = _state.get("total", bar.n) if run.complete else bar.n
        bar.refresh()
        bar.close()
    elapsed = time.perf_counter() - _state.get("run", time.perf_counter())
    failed = len(run.failed)
    _say(f"benchbench: {len(run.records)} benchmark(s) in {elapsed:.1f} s" + (f", {failed} failed" if failed else ""))
