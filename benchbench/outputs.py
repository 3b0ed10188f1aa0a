"""Writing files without ever losing what a user has: one set of rules for every command.

Every file benchbench writes (run files, HTML reports, the peak cache) goes through
:func:`check_output` before any work starts and :func:`atomic_write_text` at the end:

* a path that is a folder, a device or another special file is refused (``os.replace``
  onto ``/dev/null`` would replace the device node itself);
* a path that is one of the command's own inputs is refused (``report X.json --html
  X.json``);
* an existing file is only replaced when it is the same kind of file benchbench made
  (a run file for ``--json``, a benchbench report for ``--html``): ``report --html
  results/*.json``, where the shell put a run file right after ``--html``, is refused
  instead of overwriting that run file with HTML;
* the text goes to a temporary file in the same folder, then is renamed over the target,
  so a crash or Ctrl-C never leaves half a file.

:func:`claim_new_file` gives two runs started in the same second two different run
files: the name is created with ``O_EXCL``, which only one process can win.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from benchbench.errors import UsageError


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


def check_folder(folder: str | os.PathLike[str], purpose: str) -> None:
    """The folder (or the first of its parents that exists) must be a writable folder."""
    folder = Path(folder)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"cannot write {purpose}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {purpose}: folder {str(existing)!r} is not writable")


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


def claim_new_file(folder: str | os.PathLike[str], stem: str, suffix: str) -> Path:
    """Create ``folder/stem<suffix>`` (``stem-2``, ``stem-3``... when taken), empty, and return it.

    ``O_CREAT | O_EXCL`` makes the check and the creation one step, so two processes
    choosing a name at the same moment always get two names.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {str(folder)!r}: {exc}") from None
    for n in range(1, 10_000):
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create {str(path)!r}: {exc}") from None
        return path
    raise UsageError(f"{str(folder)!r} already holds 10,000 files named {stem}-N{suffix}; clean it up")


@contextlib.contextmanager
def released_if_unused(path: Path) -> Iterator[Path]:
    """Remove a claimed file again if it is still empty when the block ends (the work
    failed before writing anything), so a refused run leaves no empty run file behind."""
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an advisory lock for writing ``path`` (a hidden ``.<name>.lock`` beside it).

    Two commands writing one file (two ``--resume`` of one run, two runs given the same
    ``--json``) would each replace the other's records; the second is refused instead.
    The lock dies with its process, so a killed run never blocks the next one.
    """
    try:
        import fcntl
    except ImportError:  # not on Unix: no lock, as before
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    for _ in range(3):  # the holder may remove the lock file between our open and our flock
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a+")  # noqa: SIM115 - held for the block
        except OSError:
            yield  # cannot create a lock (read-only folder): the write itself will report it
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise UsageError(
                f"another benchbench command is writing the {what} {str(path)!r} right now; wait for it to "
                "finish, or write to another file"
            ) from None
        try:
            current = os.stat(lock).st_ino
        except OSError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # we locked a lock file its holder had just removed: take the new one
    else:
        raise UsageError(f"cannot lock the {what} {str(path)!r} for writing; try again")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        handle.close()  # closing releases the lock
