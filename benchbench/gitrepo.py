"""What ``benchbench ab`` and ``bisect`` ask of git: the repository, its commits, and temporary worktrees.

Everything goes through the ``git`` command (no library: git is there wherever a repository
is, and its command line is its stable interface). A commit is measured in a **worktree**:
a second checkout of the same repository in a temporary folder (``git worktree add
--detach``), which shares the object store, so it costs a checkout, not a clone, and leaves
the user's working tree, index and branches alone.

A worktree is removed when its block ends, also on Ctrl-C and SIGTERM (the CLI turns both
into ``KeyboardInterrupt``). A run killed outright (``kill -9``, the out-of-memory killer)
cannot; its worktree lives in a :class:`~benchbench.scratch.Scratch` folder, whose owner
lock the kernel releases, so the next worktree's making removes the folder, and ``git
worktree prune`` then forgets the worktrees whose folders are gone (git's own ``gc`` would,
after three months).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchbench.errors import UsageError, did_you_mean
from benchbench.scratch import Scratch

WORKTREE_PREFIX = "benchbench-worktree-"
"""The temporary folders that hold worktrees (one per commit measured)."""
SUBJECT_WIDTH = 60
"""A commit's subject is cut to this many characters in messages and tables."""
GIT_TIMEOUT_S = 300.0
"""A git command that takes longer is stuck (a checkout of a huge tree takes seconds)."""


@dataclass(frozen=True)
class Repository:
    """A git repository, by the top folder of its working tree."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None, *, command: str = "benchbench ab") -> Repository:
        """The repository the folder ``start`` (the current one) is in; a clear error outside one."""
        start = Path.cwd() if start is None else start
        try:
            top = _git(["rev-parse", "--show-toplevel"], start)
        except _GitFailed as exc:
            raise UsageError(f"{command} measures commits of a git repository, and {str(start)!r} is not in one "
                             f"({exc.message}); run it inside the repository of the code to measure") from None
        return cls(Path(top).resolve())

    def git(self, *args: str) -> str:
        """Run ``git ARGS`` in the repository; its stdout, stripped. :class:`UsageError` when it fails."""
        try:
            return _git(list(args), self.root)
        except _GitFailed as exc:
            raise UsageError(f"git {' '.join(args)} failed in {str(self.root)!r}: {exc.message}") from None

    def resolve(self, ref: str, option: str) -> str:
        """The full hash of the commit ``ref`` names (a branch, a tag, ``HEAD~3``, a hash)."""
        try:
            return _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], self.root)
        except _GitFailed:
            names = self.git("for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags").split()
            raise UsageError(
                f"{option} {ref!r}: no such commit, branch or tag in the repository {str(self.root)!r}"
                f"{did_you_mean(ref, names)}; give a branch, a tag, a commit hash or HEAD~N "
                "(a shallow clone may lack older commits: git fetch --unshallow)"
            ) from None

    def describe(self, commit: str) -> str:
        """``1a2b3c4d5e subject of the commit``, for messages and tables."""
        subject = self.git("log", "-1", "--format=%s", commit)
        return f"{commit[:10]} {subject if len(subject) <= SUBJECT_WIDTH else subject[:SUBJECT_WIDTH - 3] + '...'}"

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether ``older`` is ``newer`` or one of its ancestors."""
        try:
            _git(["merge-base", "--is-ancestor", older, newer], self.root)
        except _GitFailed:
            return False
        return True

    def first_parent_line(self, good: str, bad: str) -> list[str]:
        """The commits after ``good`` up to ``bad``, oldest first, following first parents from
        ``bad`` (the line of a main branch: merges count as one commit each, as TorchBench's
        nightly bisection and asv's ``--first-parent`` walk it). ``good`` must be on that line."""
        commits = self.git("rev-list", "--first-parent", "--reverse", f"{good}..{bad}").split()
        if commits and self.git("rev-parse", f"{commits[0]}^") != good:
            raise UsageError(
                f"{good[:10]} is an ancestor of {bad[:10]}, but not on its first-parent line (it was merged from a side "
                f"branch); give --good a commit of that line, e.g. {self.git('rev-parse', f'{commits[0]}^')[:10]}, the "
                f"line's commit before {commits[0][:10]}"
            )
        return commits

    def dirty(self) -> bool:
        """Whether the working tree has changes to tracked files (what ``--new`` measures by default)."""
        return bool(self.git("status", "--porcelain", "--untracked-files=no"))

    @contextlib.contextmanager
    def worktree(self, commit: str) -> Iterator[Path]:
        """A detached checkout of ``commit`` in a temporary folder, for the length of the block."""
        scratch = Scratch(WORKTREE_PREFIX)  # removes the folders of killed runs on the way
        try:
            self._prune_abandoned()
            path = scratch.path / "checkout"
            self.git("worktree", "add", "--detach", "--quiet", str(path), commit)
            try:
                yield path
            finally:
                with contextlib.suppress(UsageError, subprocess.TimeoutExpired):
                    self.git("worktree", "remove", "--force", str(path))
        finally:
            scratch.remove()
            with contextlib.suppress(UsageError, subprocess.TimeoutExpired):
                self._prune_abandoned()

    def _prune_abandoned(self) -> None:
        """``git worktree prune`` when a worktree of ours is registered but its folder is gone
        (its run was killed and its folder removed since): git would keep listing it."""
        listing = self.git("worktree", "list", "--porcelain")
        ours = Path(tempfile.gettempdir()).resolve()
        for line in listing.splitlines():
            if not line.startswith("worktree "):
                continue
            path = Path(line.removeprefix("worktree "))
            if path.parent.name.startswith(WORKTREE_PREFIX) and _under(path, ours) and not path.exists():
                self.git("worktree", "prune")
                return


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
    except ValueError:
        return False
    return True


class _GitFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _git(args: list[str], cwd: Path) -> str:
    """``git ARGS`` in ``cwd``: stdout stripped, or :class:`_GitFailed` with git's own words."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed (or not on PATH); benchbench ab and bisect need it") from None
    except OSError as exc:
        raise _GitFailed(str(exc)) from None
    if done.returncode != 0:
        words = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
        raise _GitFailed(words[-1] if words else f"exit status {done.returncode}")
    return done.stdout.strip()
