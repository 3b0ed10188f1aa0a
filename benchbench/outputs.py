"""Writing files without ever losing what a user has: one set of rules for every command.

Every file benchbench writes (run files, HTML reports, the history, profiler traces) is
checked before any work starts (:func:`check_output`, :func:`check_folder`) and written
atomically at the end (:func:`atomic_write_text`):

* a folder is checked by really doing what the write will do: creating the missing
  folders and a temporary file in the last one, then removing them all again. ``os.access``
  says yes to root for ``/proc`` and ``/sys`` (and knows nothing of read-only mounts), where
  the write after an hour of work would fail; the check leaves the disk as it found it, so
  a command refused later (a bad suite) leaves no empty ``results/`` behind;
* a path that is a folder, a device or another special file is refused (``os.replace``
  onto ``/dev/null`` would replace the device node itself);
* a path that is one of the command's own inputs, or another output of the same command
  (:func:`check_distinct`: ``--json x.json --history x.json``), is refused;
* an existing file is only replaced when it is the same kind of file benchbench made
  (a run file for ``--json``, a benchbench report for ``--html``): ``report --html
  results/*.json``, where the shell put a run file right after ``--html``, is refused
  instead of overwriting that run file with HTML;
* the text goes to a temporary file in the same folder, then is renamed over the target,
  so a crash or Ctrl-C never leaves half a file.

Run files get their names here (:func:`claimed_run_file`: ``<suite>-<time>.json`` in the
output folder, ``results/`` by default, beside the history ``history.sqlite``), for
``benchbench run`` and the pytest plugin alike. A name is claimed by creating its lock
file (``.<name>.lock``) with ``O_EXCL``, which only one process can win, and locking it:
two runs started in the same second get two names, and a run killed with ``kill -9``
leaves no empty run file (the run file appears with the first finished benchmark). A lock
dies with its process: a stale lock file is no obstacle (the next writer takes it over)
and is removed by the next run that claims a name in that folder.

What a command prints for a program to read (``--format csv``) goes through :func:`emit`
(a reader that left, ``| head``, changes nothing: the exit code stays the command's), and
while benchmarks run, whatever they print goes to stderr (:func:`stdout_to_stderr`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from benchbench.errors import UsageError

try:
    import fcntl
except ImportError:  # not on Unix: run files are claimed by name alone, and not locked
    fcntl = None  # type: ignore[assignment]

DEFAULT_FOLDER = "results"
"""Where ``benchbench run`` writes run files (``--out``), and where every command looks for
the history by default."""
HISTORY_NAME = "history.sqlite"
"""The history's file name in its folder."""
STALE_LOCK_S = 60.0
"""A lock file nobody holds is removed only once it is this old: a process creates its lock
file and then locks it, and must not lose it in between."""


def default_history(folder: str | os.PathLike[str] = DEFAULT_FOLDER) -> Path:
    """The history a command uses without ``--history``: ``<folder>/history.sqlite``
    (``run --out DIR`` and the pytest plugin's ``--benchbench-save DIR`` name the folder)."""
    return Path(folder) / HISTORY_NAME


def safe_filename(name: str) -> str:
    """A suite name as a file name: no folders, nothing a shell or Windows would trip on."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "suite"


# --------------------------------------------------------------------------- checks before work


def check_output(
    path: str | os.PathLike[str],
    *,
    option: str,
    what: str,
    inputs: Sequence[str | os.PathLike[str]] = (),
    ours: Callable[[Path], bool] | None = None,
    hint: str = "",
) -> Path:
    """Refuse, before any work, an output path that cannot or must not be written.

    ``option`` names where the path came from (``--json``, ``--html``); ``what`` is the
    kind of file (``run file``); ``ours(path)`` says whether an existing file may be
    replaced (it is one benchbench made of that kind); ``hint`` ends the message when an
    existing file is refused (a likely cause and the fix).
    """
    target = Path(path)
    shown = f"{option} {str(target)!r}"
    if target.is_dir():
        raise UsageError(f"{shown} is a folder; give a file name for the {what}")
    if target.exists() or target.is_symlink():
        if not target.is_file():
            raise UsageError(f"{shown} exists and is not a regular file; give another file name for the {what}")
        for given in inputs:
            if Path(given).exists() and target.samefile(given):
                raise UsageError(f"{shown} is also one of this command's inputs; give another file name for the {what}")
        if ours is not None and not ours(target):
            raise UsageError(
                f"{shown} exists and is not a {what}; refusing to overwrite it{hint} "
                "(delete it first if you really mean to replace it)"
            )
    check_folder(target.parent, f"the {what} {str(target)!r}")
    return target


def check_folder(folder: str | os.PathLike[str], purpose: str, *,
                 fix: str = "give a path in a folder this user can write") -> None:
    """Make sure files can be written into ``folder`` by doing it: create the folders that
    are missing and a temporary file in ``folder``, then remove all of them again.

    ``purpose`` completes "cannot write ..."; ``fix`` ends the message. Raises
    :class:`UsageError` naming the step that failed and the system's reason.
    """
    folder = Path(folder)
    missing: list[Path] = []
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        missing.insert(0, existing)  # outermost first
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"cannot write {purpose}: {str(existing)!r} is a file, not a folder")
    created: list[Path] = []
    step = ""
    try:
        for path in missing:
            step = f"creating the folder {str(path)!r}"
            path.mkdir()
            created.append(path)
        step = f"creating a file in the folder {str(folder)!r}"
        fd, probe = tempfile.mkstemp(prefix=".benchbench-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"cannot write {purpose}: {step} failed ({reason}); {fix} (checked before any work)"
        ) from None
    finally:
        for path in reversed(created):  # leave the disk as it was: the write creates them again
            with contextlib.suppress(OSError):
                path.rmdir()


def check_distinct(outputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """Refuse two outputs of one command that name the same path (``--json x.json
    --history x.json``): the second write would destroy the first. ``outputs`` maps each
    option to its path (None: not given)."""
    seen: dict[Path, str] = {}
    for option, given in outputs.items():
        if given is None:
            continue
        key = Path(os.path.abspath(given)).resolve()
        if key in seen:
            raise UsageError(
                f"{seen[key]} and {option} both name {str(given)!r}; give each output its own path"
            )
        seen[key] = option


def atomic_write_text(path: str | os.PathLike[str], text: str, *, what: str = "file") -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    The file gets ordinary permissions (``mkstemp`` makes it private). An ``OSError`` is
    a :class:`UsageError` naming the file (a full disk, a folder made read-only meanwhile).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"cannot write the {what} {str(target)!r}: {exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise UsageError(f"cannot write the {what} {str(target)!r}: {exc}") from None
        raise
    return target


# --------------------------------------------------------------------------- run files and their locks


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The hidden lock file beside ``path`` (``.<name>.lock``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class _Held(Exception):
    """Another living process holds the lock."""


def _lock(lock: Path, *, new: bool) -> int | None:
    """Open ``lock`` (``new``: create it, and fail if it exists) and lock it; return its descriptor.

    None when the name is not to be had: ``new`` and the file exists, or the file we locked
    is no longer the one at ``lock`` (its holder removed it between our open and our lock;
    the caller tries again, or another name). :class:`_Held` when a living process holds it.
    """
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | (os.O_EXCL if new else 0), 0o666)
    except FileExistsError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        if new:
            return None
        raise _Held from None
    try:
        same = os.stat(lock).st_ino == os.fstat(fd).st_ino
    except OSError:
        same = False
    if not same:
        os.close(fd)
        return None
    return fd


def _unlock(lock: Path, fd: int) -> None:
    """Remove the lock file, then release it (closing releases the lock)."""
    with contextlib.suppress(OSError):
        lock.unlink()
    os.close(fd)


def _remove_stale_locks(folder: Path) -> None:
    """Remove the lock files in ``folder`` that no living process holds (left by a killed
    run), once they are :data:`STALE_LOCK_S` old: a stale lock is no obstacle, and no litter."""
    for lock in folder.glob(".*.json.lock"):  # run files' locks: another program's lock files are its own
        with contextlib.suppress(OSError):
            if time.time() - lock.stat().st_mtime < STALE_LOCK_S:
                continue
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while its holder lives
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    lock.unlink()
            finally:
                os.close(fd)


@contextlib.contextmanager
def claimed_run_file(folder: str | os.PathLike[str], suite: str) -> Iterator[Path]:
    """A new run file's name, ``folder/<suite>-<time>.json`` (``-2``, ``-3``... when taken),
    locked for this process for the length of the block.

    The name is claimed by creating its lock file with ``O_CREAT | O_EXCL`` (the check and
    the creation are one step, so two processes choosing a name at the same moment always
    get two names); the run file itself is first written by the run. Stale lock files in
    ``folder`` are removed on the way.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {str(folder)!r}: {exc.strerror or exc}") from None
    if fcntl is not None:
        _remove_stale_locks(folder)
    stem = f"{safe_filename(suite)}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = folder / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        if path.exists() or path.is_symlink():
            continue
        lock = lock_path(path)
        fd = None
        if fcntl is not None:
            try:
                fd = _lock(lock, new=True)
            except OSError as exc:
                raise UsageError(f"cannot create {str(lock)!r}: {exc.strerror or exc}") from None
            if fd is None:
                continue
        if path.exists():  # written by another command meanwhile
            if fd is not None:
                _unlock(lock, fd)
            continue
        try:
            yield path
        finally:
            if fd is not None:
                _unlock(lock, fd)
        return
    raise UsageError(f"{str(folder)!r} already holds 10,000 run files named {stem}-N.json; clean it up")


@contextlib.contextmanager
def exclusive(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an advisory lock for writing ``path`` (a hidden ``.<name>.lock`` beside it).

    Two commands writing one file (two ``--resume`` of one run, two runs given the same
    ``--json``) would each replace the other's records; the second is refused instead.
    The lock dies with its process, so a killed run never blocks the next one: its lock
    file is taken over, and removed at the end.
    """
    if fcntl is None:  # not on Unix: no lock
        yield
        return
    path = Path(path)
    lock = lock_path(path)
    fd = None
    for _ in range(3):  # the holder may remove the lock file between our open and our lock
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = _lock(lock, new=False)
        except _Held:
            raise UsageError(
                f"another benchbench command is writing the {what} {str(path)!r} right now; wait for it to "
                "finish, or write to another file"
            ) from None
        except OSError:  # cannot create a lock (a read-only folder): the write itself will say so
            break
        if fd is not None:
            break
    else:
        raise UsageError(f"cannot lock the {what} {str(path)!r} for writing; try again")
    try:
        yield
    finally:
        if fd is not None:
            _unlock(lock, fd)


# --------------------------------------------------------------------------- stdout


def emit(text: str) -> None:
    """Print ``text`` on stdout for whoever reads it; one who left (``| head``, ``| true``)
    is no error: the rest is dropped and the command's exit code stays its own. Nor is a
    stdout that cannot take it (a full disk, ``> /dev/full``): that is said on stderr, and
    the exit code stays the command's (a regression still exits 1; files are saved first)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        drop_stdout()
    except OSError as exc:
        print(f"benchbench: warning: cannot write the output to stdout ({exc.strerror or exc}); files the command "
              "saves are saved", file=sys.stderr)
        drop_stdout()


def drop_stdout() -> None:
    """Send what is left for stdout to /dev/null: the reader of the pipe has left, and
    Python's last flush at exit must not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout in the block goes to stderr instead: at the level of the
    file descriptor (C code, and worker processes started in the block, follow) and of
    ``sys.stdout``. A model or a plugin that prints while a suite runs then cannot corrupt
    ``--format csv`` or ``json``, which is printed after the block."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        saved: int | None = os.dup(1)
        sys.stderr.flush()
        os.dup2(2, 1)
    except OSError:  # no file descriptor 1 or 2 (closed by the caller): Python's level only
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
