"""The history store: every run appended to a SQLite file, for trends and baselines.

``benchbench run`` appends each run to ``<out>/history.sqlite`` (``results/`` by
default, :func:`benchbench.outputs.default_history`; ``--history FILE`` or ``--no-history``). ``benchbench history`` shows a field's
trend; ``benchbench compare NEW.json --baseline latest|<git ref>|<file>`` takes its
baseline from here, so "compare against main" is ``--baseline main``.

Schema (stdlib ``sqlite3``; ``SCHEMA_VERSION`` in ``PRAGMA user_version``)::

    runs(id INTEGER PRIMARY KEY, suite TEXT, time TEXT,          -- ISO 8601, UTC
         git_commit TEXT, git_branch TEXT, git_dirty INTEGER,
         host TEXT, complete INTEGER, run_file TEXT,
         run_json TEXT)                                          -- the whole run file
    measurements(run_id INTEGER REFERENCES runs(id), benchmark TEXT, status TEXT,
                 field TEXT, value REAL)                         -- every numeric field

``run_json`` keeps the run file whole, so a baseline can be rebuilt from the history
alone (CI caches this one file); ``measurements`` makes trends one SQL query.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from benchbench.errors import UsageError
from benchbench.outputs import HISTORY_NAME, check_folder
from benchbench.results import RunResult, is_number

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    suite TEXT NOT NULL,
    time TEXT NOT NULL,
    git_commit TEXT,
    git_branch TEXT,
    git_dirty INTEGER,
    host TEXT,
    complete INTEGER NOT NULL,
    run_file TEXT,
    run_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, time);
CREATE INDEX IF NOT EXISTS runs_by_commit ON runs (git_commit);
CREATE TABLE IF NOT EXISTS measurements (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    benchmark TEXT NOT NULL,
    status TEXT NOT NULL,
    field TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, benchmark, field)
);
"""


class History:
    """A history file; opened per operation, so that it is never held between commands."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, *, create: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; read-only unless ``create`` (reading never changes someone's file)."""
        if not create and self.path.is_dir():
            raise UsageError(f"history {str(self.path)!r} is a folder; give the history file (e.g. {str(self.path / HISTORY_NAME)!r})")
        if not create and not self.path.is_file():
            raise UsageError(f"history {str(self.path)!r} not found; `benchbench run` creates it (see --history)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        target = str(self.path) if create else f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            with closing(sqlite3.connect(target, timeout=30, uri=not create)) as db, db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise UsageError(f"history {str(self.path)!r} has schema version {version}; this benchbench reads {SCHEMA_VERSION}")
                if create:
                    db.executescript(SCHEMA)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                else:
                    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                    if not {"runs", "measurements"} <= tables:
                        raise UsageError(f"history {str(self.path)!r} is an SQLite file but not a benchbench history")
                yield db
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"history {str(self.path)!r} is not a readable benchbench history: {exc}") from None

    def check_writable(self, *, option: str = "--history", disable: str | None = "--no-history") -> None:
        """Fail before a run, not after it, when the run could not be appended, naming the cause.

        Everything is tried for real, never judged by ``os.access`` (which says yes to root
        under ``/proc`` and knows nothing of read-only mounts): a missing file needs a folder
        in which a file can be created (:func:`benchbench.outputs.check_folder`); an existing
        one must open for writing, be a benchbench history, take SQLite's write lock
        (rolled back at once), and sit in a folder where SQLite can create its journal.
        ``option`` and ``disable`` name the options that fix it (the pytest plugin has its own).
        """
        shown = f"history {str(self.path)!r}"
        fix = f"give another {option} FILE" + (f", or pass {disable}" if disable else "")
        if self.path.is_dir():
            raise UsageError(f"{shown} is a folder, not a history file; {fix}")
        if not self.path.exists():
            check_folder(self.path.parent, f"the {shown}", fix=fix)
            return
        if not self.path.is_file():
            raise UsageError(f"{shown} is not a regular file; {fix}")
        try:
            os.close(os.open(self.path, os.O_RDWR))
        except OSError as exc:
            raise UsageError(f"{shown} is read-only ({exc.strerror or exc}); make it writable, or {fix}") from None
        try:
            with closing(sqlite3.connect(str(self.path), timeout=30)) as db:
                db.execute("BEGIN IMMEDIATE")  # the write lock an append needs
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                version = db.execute("PRAGMA user_version").fetchone()[0]
                db.rollback()
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "readonly" in text or "read-only" in text:
                cause = "is read-only (the file or its folder cannot be written)"
            elif "not a database" in text or "malformed" in text:
                cause = "is not an SQLite database (damaged, or another kind of file)"
            elif "locked" in text:
                cause = "is locked by another program for more than 30 s"
            else:
                cause = f"cannot be written: {text}"
            raise UsageError(f"{shown} {cause}; {fix}") from None
        if tables and not {"runs", "measurements"} <= tables:
            raise UsageError(f"{shown} is an SQLite file but not a benchbench history; {fix}")
        if version not in (0, SCHEMA_VERSION):
            raise UsageError(f"{shown} has schema version {version}; this benchbench writes {SCHEMA_VERSION}; {fix}")
        check_folder(self.path.parent, f"the {shown} (SQLite keeps a journal file beside it)", fix=fix)

    def append(self, run: RunResult, run_file: str | Path | None = None) -> int | None:
        """Store a run; return its id (None for a run without records, which says nothing).

        A resumed run replaces its interrupted first part (same run file, same start time),
        so the history holds each run once.
        """
        if not run.records:
            return None
        env = run.environment
        git = env.get("git") or {}
        with self._connect(create=True) as db:
            if run_file is not None:
                for (old,) in db.execute("SELECT id FROM runs WHERE run_file = ? AND time = ?", (str(run_file), env.get("time") or "")).fetchall():
                    db.execute("DELETE FROM measurements WHERE run_id = ?", (old,))
                    db.execute("DELETE FROM runs WHERE id = ?", (old,))
            cursor = db.execute(
                "INSERT INTO runs (suite, time, git_commit, git_branch, git_dirty, host, complete, run_file, run_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run.suite, env.get("time") or "", git.get("commit"), git.get("branch"),
                 None if not git else int(bool(git.get("dirty"))), env.get("host"), int(run.complete),
                 None if run_file is None else str(run_file), run.to_json()),
            )
            run_id = cursor.lastrowid
            assert run_id is not None  # sqlite3 sets it on every INSERT
            db.executemany(
                "INSERT OR REPLACE INTO measurements (run_id, benchmark, status, field, value) VALUES (?, ?, ?, ?, ?)",
                [(run_id, r["benchmark"], r.get("status", "?"), k, float(v))
                 for r in run.records for k, v in r.items() if is_number(v)],
            )
        return run_id

    def runs(self, suite: str | None = None) -> list[dict[str, Any]]:
        """Every stored run (newest last): id, suite, time, git_commit, git_branch, host, complete."""
        query = "SELECT id, suite, time, git_commit, git_branch, git_dirty, host, complete FROM runs"
        args: tuple[Any, ...] = ()
        if suite is not None:
            query, args = query + " WHERE suite = ?", (suite,)
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(query + " ORDER BY time, id", args)]

    def load(self, run_id: int) -> RunResult:
        with self._connect() as db:
            row = db.execute("SELECT run_json FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(f"history {str(self.path)!r} has no run {run_id}")
        origin = f"{self.path} run {run_id}"
        try:
            data = json.loads(row[0])
        except (TypeError, ValueError, RecursionError) as exc:
            raise UsageError(f"{origin}: its stored run file is damaged: {exc}") from None
        return RunResult.from_dict(data, origin=origin)

    def baseline(self, suite: str, which: str, *, before: str | None = None, commit: str | None = None) -> RunResult:
        """``latest`` complete run of ``suite`` that started before ``before`` (the new run's
        time), or the latest such run at the commit a git ref names (``main``, ``HEAD~1``...;
        ``commit``: the ref already resolved, see :func:`resolve_git_ref`)."""
        if which != "latest" and commit is None:
            commit = resolve_git_ref(which)  # a ref that names nothing says so, whatever the history holds
        runs = [r for r in self.runs(suite) if r["complete"] and (before is None or r["time"] < before)]
        if not runs:
            raise UsageError(f"history {str(self.path)!r} has no complete earlier run of suite {suite!r} to compare with")
        if commit is None:
            return self.load(runs[-1]["id"])
        matching = [r for r in runs if r["git_commit"] == commit]
        if not matching:
            raise UsageError(
                f"history {str(self.path)!r} has no run of suite {suite!r} at {which} ({commit[:10]}); run the suite "
                "on that commit first (CI: on the main branch), or give a run file as --baseline"
            )
        return self.load(matching[-1]["id"])

    def trend(self, suite: str | None, field: str, benchmark: str | None = None) -> list[dict[str, Any]]:
        """``field`` per run and benchmark, oldest first."""
        query = (
            "SELECT runs.id, runs.suite, runs.time, runs.git_commit, m.benchmark, m.value, m.status "
            "FROM measurements m JOIN runs ON runs.id = m.run_id WHERE m.field = ?"
        )
        args: list[Any] = [field]
        if suite is not None:
            query += " AND runs.suite = ?"
            args.append(suite)
        if benchmark is not None:
            query += " AND m.benchmark = ?"
            args.append(benchmark)
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(query + " ORDER BY runs.time, runs.id", args)]

    def fields(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT field FROM measurements ORDER BY field")]

    def benchmarks(self) -> list[str]:
        with self._connect() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT benchmark FROM measurements ORDER BY benchmark")]


def resolve_git_ref(ref: str, *, option: str = "--baseline", here: Path | None = None) -> str:
    """The full commit hash a git ref names, in the repository of ``here`` (the current folder).

    A full 40-character hash is taken as it is: a shallow CI checkout may not have the
    commit, and the history only needs its name. ``option`` names the option in messages.
    """
    if re.fullmatch(r"[0-9a-f]{40}", ref):
        return ref
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], capture_output=True, text=True,
            timeout=10, cwd=here, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"{option} {ref!r}: git is not available to resolve it ({exc})") from None
    if done.returncode != 0 or not done.stdout.strip():
        from benchbench.gitrepo import Repository

        where = (Path.cwd() if here is None else here).resolve()
        try:
            Repository.find(where)
            inside = True
        except UsageError:
            inside = False
        raise UsageError(
            f"{option} {ref!r} is neither 'latest', an existing run file, nor a git ref of this repository "
            "(git rev-parse knows no such branch, tag or commit here)" if inside else
            f"{option} {ref!r} is neither 'latest' nor an existing run file, and {str(where)!r} is not in a git "
            "repository, where it could name a commit: run the command in the repository, or give the run file"
        )
    return done.stdout.strip()


def load_baseline(which: str, suite: str, history: str | Path, *, before: str | None = None,
                  option: str = "--baseline", here: Path = Path(), hint: str = "") -> RunResult:
    """The baseline ``which`` names for a run of ``suite``: a run file (an existing file, or a
    name ending in ``.json``, relative to ``here``), else ``latest`` or a git ref looked up
    in ``history``. One rule for ``benchbench compare --baseline`` and the pytest plugin's
    ``--benchbench-compare`` (``option`` names it in messages; ``hint`` follows a history's)."""
    path = here / which
    if path.is_file() or which.endswith(".json"):
        if not path.is_file():
            raise UsageError(f"{option} {which!r}: no such run file ({str(path)!r})")
        return RunResult.read_json(path)
    commit = None if which == "latest" else resolve_git_ref(which, option=option, here=here)
    try:
        return History(history).baseline(suite, which, before=before, commit=commit)
    except UsageError as exc:
        raise UsageError(f"{exc}{hint}") from None
