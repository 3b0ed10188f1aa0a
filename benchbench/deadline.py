"""A time limit for code running in this process: ``with deadline(seconds): ...``.

Used for a benchmark's ``timeout`` by the inline executor (and inside each worker of
the subprocess executor, whose parent also kills it a little later), and for the dry
run while a suite is validated. ``with paused(): ...`` stops the clock for work that is
not the benchmark's own (starting the run's valgrind process for ``instructions``), which
then keeps a limit of its own.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

MAX_SECONDS = 1e7
"""The longest limit (about 115 days); setitimer overflows on much larger values."""


class DeadlineExceeded(BaseException):
    """Raised in the limited code when its time is up.

    A ``BaseException`` so that the ``except Exception`` of a metric or a model cannot
    swallow it and carry on past the deadline.
    """


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`DeadlineExceeded` in this thread after ``seconds`` (``None``: no limit).

    Works with ``SIGALRM``, so only on Unix and in the main thread (elsewhere there is no
    limit). The signal is handled between Python bytecodes: one long C++ operator
    finishes first. Killing a worker process (``--isolate``) always works.
    """
    usable = bool(seconds) and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if seconds is None or not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise DeadlineExceeded

    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)  # a caller's own alarm, if any
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, MAX_SECONDS))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:  # re-arm it with what is left (at once if it ran out meanwhile)
            left = max(outer_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Stop the clock of the deadline in force while the block runs, and restart it after with
    the time it had left: the block's time counts against no benchmark's ``timeout``.

    For one-off work of the run that happens to start inside a benchmark (the ``instructions``
    metric starts python under valgrind for the whole run: 20-40 s), which must then limit
    its own time. Outside a deadline (or off the main thread) it does nothing.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    left, interval = signal.getitimer(signal.ITIMER_REAL) if usable else (0.0, 0.0)
    if left <= 0:
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, left, interval)
