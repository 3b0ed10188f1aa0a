"""Progress on stderr, written as a plugin on the run-lifecycle hooks.

On a terminal: one progress bar (runs done of all, the benchmark's name and round, elapsed
time and the estimate of what is left: :class:`Estimate`), with failures and training epochs printed above
it. Elsewhere (CI logs, files): plain lines, no cursor tricks. ``-v`` gives the lines on
a terminal too, plus each benchmark's warnings as they happen; ``-q`` silences it (both
read from the run's configuration, ``benchbench_configure``); ``-p no:progress`` leaves
the plugin out. stdout is left to the report, so ``benchbench run ... --format csv >
out.csv`` works.

A long phase that reports its clock (:mod:`benchbench.ticker`: the first step of a compiled
benchmark) refreshes the bar every second ("compiling (torch.compile), 12 s"); as lines it
is printed when it starts, every :data:`TICK_LINES_EVERY_S` and when it ends, so that a CI
log shows a 60-second max-autotune as alive without a line a second.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from typing import Any

import benchbench
from benchbench.ticker import Tick

TICK_LINES_EVERY_S = 10.0
"""As lines (not a bar), a running phase's clock is printed at most this often."""
STYLES = ("auto", "bar", "lines", "verbose", "quiet")
_state: dict[str, Any] = {"style": "auto", "bar": None}
clock = time.perf_counter
"""Where the progress reads the time (a test gives it a clock of its own)."""


def set_style(style: str) -> None:
    """``auto`` (a bar on a terminal, lines elsewhere), ``bar``, ``lines`` or ``verbose``."""
    if style not in STYLES:
        raise ValueError(f"progress style must be one of {', '.join(STYLES)}, got {style!r}")
    _state["style"] = style


@benchbench.hookimpl
def benchbench_configure(config: Any) -> None:
    """``-q`` and ``-v`` of this run; a style set with :func:`set_style` (tests) stays otherwise.
    The command's clock starts here: the last line counts checking the suite and starting
    tools (valgrind) too, which may take longer than the benchmarks."""
    _state["configured"] = clock()
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
def benchbench_run_start(suite: Any, benchmarks: list[Any], rounds: dict[str, int]) -> None:
    _state.update(run=clock(), bar=None, estimate=Estimate(rounds))
    style = _state["style"]
    if style == "quiet":
        return
    width = _terminal_width()
    if style == "bar" or (style == "auto" and sys.stderr.isatty() and width >= 40):
        from tqdm import tqdm

        _state["bar"] = tqdm(total=_state["estimate"].runs, file=sys.stderr, unit="run", ncols=max(width, 80) if width < 40 else None,
                             dynamic_ncols=width >= 40, leave=True,
                             bar_format="{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed}{postfix}")
        _state["bar"].set_description_str(f"suite {suite.name}")
        return
    _say(f"benchbench: suite {suite.name!r}, {plan(len(benchmarks), rounds)}")


def plan(count: int, rounds: dict[str, int]) -> str:
    """``7 benchmark(s), 5 in 5 rounds, 2 once``: what a run will do, as each benchmark really runs
    (one whose metrics pool no rounds runs once, whatever the suite's ``rounds``)."""
    text = f"{count} benchmark(s)"
    if len(rounds) < count:
        text += f", {count - len(rounds)} finished before"
    kinds = Counter(rounds.values())
    if len(kinds) == 1 and max(kinds) > 1:
        text += f", {max(kinds)} rounds each"
    elif len(kinds) > 1:
        text += ", " + ", ".join(f"{n} once" if r == 1 else f"{n} in {r} rounds" for r, n in sorted(kinds.items(), reverse=True))
    return text


class Estimate:
    """The time a run has left, from the rounds each benchmark really runs and the time the
    finished runs took.

    A benchmark's first round measures every metric (FLOPs, instruction counts...); its later
    rounds only those that pool rounds (latency), usually far quicker. So each kind of run
    (first round, later round) is estimated from the finished runs of that kind: the time
    between one start and the next (for an executor that runs several at once, that is the
    time per run it achieves). Until a later round has finished, only the first round's time
    is estimated, and said so, rather than a guess that the later rounds take as long.
    """

    def __init__(self, rounds: dict[str, int]) -> None:
        self.rounds = dict(rounds)
        self.runs = sum(rounds.values())
        """Runs (a benchmark's round) to do in all: the bar's total."""
        self.total = {"first": len(rounds), "later": self.runs - len(rounds)}
        self.finished = {"first": 0, "later": 0}
        self.took = {"first": 0.0, "later": 0.0}
        """Seconds the finished runs of each kind took, in all (running sums: O(1) a run)."""
        self.started = 0
        self._last: tuple[float, str] | None = None

    def start(self, round: int, now: float) -> None:
        """A run starts: the one before it (if any) has finished."""
        if self._last is not None:
            since, kind = self._last
            self.took[kind] += now - since
            self.finished[kind] += 1
        self._last = (now, "first" if round == 0 else "later")
        self.started += 1

    def ended(self, name: str, rounds: int) -> None:
        """A benchmark is final after ``rounds`` runs: one that failed or was skipped runs no more."""
        unused = self.rounds.pop(name, rounds) - rounds
        if unused > 0:
            self.runs -= unused
            self.total["later"] -= unused

    def left(self) -> str:
        """``~40 s left``, ``~12 s left in the first round``, or "" with nothing to go by yet."""
        first, later = (self._left(kind) for kind in ("first", "later"))
        if first is None or (later is None and self.finished["first"] >= self.total["first"]):
            return ""  # nothing of this kind has finished yet
        return f"~{_duration(first + (later or 0.0))} left" + (" in the first round" if later is None else "")

    def _left(self, kind: str) -> float | None:
        """Seconds the runs of one kind still need (the one running included); None if unknown."""
        done = self.finished[kind]
        todo = self.total[kind] - done
        if todo <= 0:
            return 0.0
        return todo * self.took[kind] / done if done else None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.0f} min"


@benchbench.hookimpl
def benchbench_benchmark_start(benchmark: Any, index: int, total: int, round: int, rounds: int) -> None:
    estimate: Estimate | None = _state.get("estimate")
    left = ""
    if estimate is not None:
        estimate.start(round, clock())
        left = estimate.left()
    which = f", round {round + 1}/{rounds}" if rounds > 1 else ""
    bar = _state.get("bar")
    if bar is not None:
        bar.n = estimate.started - 1 if estimate is not None else bar.n
        bar.set_description_str(f"[{index + 1}/{total}] {benchmark.name}{which}" + (f" ({left})" if left else ""))
        bar.refresh()
        return
    _say(f"[{index + 1}/{total}] {benchmark.name} ({benchmark.model}{which}{'; ' + left if left else ''}) ...")


@benchbench.hookimpl
def benchbench_benchmark_progress(benchmark: Any, message: str) -> None:
    bar = _state.get("bar")
    if bar is not None and _state["style"] != "verbose":
        bar.set_postfix_str(message[:70])
        return
    if isinstance(message, Tick) and not _tick_line_due(benchmark.name, message):
        return
    _say(f"      {benchmark.name}: {message}")


def _tick_line_due(name: str, tick: Tick) -> bool:
    """Whether a phase's clock deserves a line now: at its start, at its end, and when
    :data:`TICK_LINES_EVERY_S` passed since the last line of that phase."""
    shown: dict[tuple[str, str], float] = _state.setdefault("ticks", {})
    key = (name, tick.phase)
    last = shown.get(key)
    if tick.done:
        shown.pop(key, None)
        return True
    if last is not None and tick.elapsed_s - last < TICK_LINES_EVERY_S:
        return False
    shown[key] = tick.elapsed_s
    return True


@benchbench.hookimpl
def benchbench_result_ready(record: dict[str, Any], index: int, total: int) -> None:
    estimate: Estimate | None = _state.get("estimate")
    if estimate is not None:
        estimate.ended(record["benchmark"], record.get("rounds") or 1)
    bar = _state.get("bar")
    if bar is not None:
        if estimate is not None:
            bar.total = estimate.runs
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
        estimate = _state.get("estimate")
        bar.n = estimate.runs if run.complete and estimate is not None else bar.n
        bar.refresh()
        bar.close()
    elapsed = clock() - _state.get("configured", _state.get("run", clock()))
    failed = len(run.failed)
    estimate = _state.get("estimate")
    planned = len(estimate.rounds) if estimate is not None else len(run.records)
    done = f"{len(run.records)} benchmark(s)" if run.complete else f"interrupted: {len(run.records)} of {planned} benchmark(s) finished"
    _say(f"benchbench: {done} in {elapsed:.1f} s" + (f", {failed} failed" if failed else ""))
