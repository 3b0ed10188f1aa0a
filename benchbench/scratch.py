"""Temporary folders that a killed run does not leave behind.

A process removes its temporary folders when it is done; one killed with ``kill -9`` (or by
the out-of-memory killer) cannot, and every such run used to leave a
``/tmp/benchbench-callgrind-*`` folder (valgrind's log and dumps) behind, or a
``benchbench-worker-*`` one. A :class:`Scratch` folder holds an owner lock (``.owner``, an
``flock`` held while its process lives, which the kernel releases when the process dies,
however it dies), and making one first removes the folders of the same kind whose lock is
free: their owner is gone. A lock rather than a process id, since ids are reused and
differ between containers that share one ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # not on Unix: folders are removed by their process only, as tempfile does
    fcntl = None  # type: ignore[assignment]

OWNER = ".owner"
UNMARKED_AGE_S = 3600.0
"""A folder of the kind without an owner lock (made by a benchbench before locks, or being made
at this very moment) is left alone until it is this old."""


class Scratch:
    """A new private folder in the temporary folder, named ``PREFIX...``, owned by this process.

    Use it as a context manager, or call :meth:`remove` when done.
    """

    def __init__(self, prefix: str) -> None:
        remove_abandoned(prefix)
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._lock: int | None = None
        if fcntl is not None:
            self._lock = os.open(self.path / OWNER, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def remove(self) -> None:
        """Remove the folder and everything in it (again: nothing happens)."""
        shutil.rmtree(self.path, ignore_errors=True)
        lock, self._lock = self._lock, None
        if lock is not None:
            os.close(lock)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.remove()


def remove_abandoned(prefix: str) -> list[Path]:
    """Remove the temporary folders named ``PREFIX...`` whose owner process is gone; the removed."""
    removed = []
    if fcntl is None:
        return removed
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        if folder.is_symlink() or not folder.is_dir():
            continue
        with _abandoned(folder) as gone:
            if gone:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


@contextlib.contextmanager
def _abandoned(folder: Path) -> Iterator[bool]:
    """Whether the folder's owner is gone; if so, its lock is held (here) while the block runs."""
    try:
        fd = os.open(folder / OWNER, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        yield _age(folder) > UNMARKED_AGE_S
        return
    except OSError:  # another user's, or not a lock we can take: not ours to judge
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            free = True
        except OSError:  # held: its process lives
            free = False
        yield free
    finally:
        os.close(fd)


def _age(folder: Path) -> float:
    try:
        return time.time() - folder.stat().st_mtime
    except OSError:
        return 0.0
