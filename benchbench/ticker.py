"""A phase's clock on the progress line: "compiling (torch.compile), 12 s" while it lasts.

Some phases of a benchmark report nothing for a long time: ``torch.compile`` with
``mode: max-autotune`` compiles and tries kernels for 30-60 s in the first step, and a run
that prints nothing for a minute looks hung. :func:`ticking` reports the phase's elapsed
time every ``interval`` seconds from a daemon thread while the phase runs in the calling
thread, then once more when it ends.

Each report is a :class:`Tick`: a ``str`` (what any ``benchbench_benchmark_progress``
implementation shows) that also carries the phase's name and elapsed seconds, so that
:mod:`benchbench.progress` can refresh a terminal's bar every second but print a plain line
(CI logs) only every :data:`benchbench.progress.TICK_LINES_EVERY_S`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

INTERVAL_S = 1.0
"""Seconds between two reports of a running phase."""


class Tick(str):
    """One report of a running phase: ``"compiling (torch.compile), 12 s"``."""

    phase: str
    elapsed_s: float
    done: bool

    def __new__(cls, phase: str, elapsed_s: float, done: bool = False) -> Tick:
        shown = f"{elapsed_s:.1f} s" if elapsed_s < 10 else f"{elapsed_s:.0f} s"
        text = f"{phase}: done in {shown}" if done else f"{phase}, {shown}"
        tick = super().__new__(cls, text)
        tick.phase, tick.elapsed_s, tick.done = phase, elapsed_s, done
        return tick


@contextlib.contextmanager
def ticking(report: Callable[[str], None] | None, phase: str, *, interval: float | None = None,
            clock: Callable[[], float] = time.perf_counter) -> Iterator[None]:
    """Report ``phase`` with its elapsed time at its start, every ``interval`` seconds (default
    :data:`INTERVAL_S`) while the body runs, and when it ends (``done``). ``report`` None: the
    body runs untimed.

    A report that raises is dropped (a display must not fail the benchmark)."""
    if report is None:
        yield
        return
    every = INTERVAL_S if interval is None else interval
    started = clock()
    stop = threading.Event()

    def say(done: bool = False) -> None:
        with contextlib.suppress(Exception):
            report(Tick(phase, clock() - started, done))

    def tick() -> None:
        while not stop.wait(every):
            say()

    say()
    thread = threading.Thread(target=tick, name=f"benchbench ticker: {phase}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 1.0)
        say(done=True)
