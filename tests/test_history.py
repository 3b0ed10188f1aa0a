"""The history store (benchbench/history.py) on its own: what it keeps, what it refuses, two writers at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from benchbench.errors import UsageError
from benchbench.history import SCHEMA_VERSION, History
from benchbench.results import RunResult


def run(suite: str = "s", time: str = "2026-01-01T00:00:00+00:00", **fields: float) -> RunResult:
    record = {"benchmark": "a", "status": "ok", "params": 100, "latency_ms": 1.5, "note": "text is not stored", **fields}
    return RunResult(suite=suite, records=[record], environment={"time": time, "host": "h"})


def test_every_numeric_field_is_a_measurement_and_the_run_file_is_kept_whole(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    run_id = store.append(run(flops=2000), tmp_path / "r.json")
    assert store.fields() == ["flops", "latency_ms", "params"] and store.benchmarks() == ["a"]
    assert store.load(run_id).records[0]["note"] == "text is not stored"  # the whole run file, not just numbers
    [row] = store.runs()
    assert (row["suite"], row["complete"], row["git_commit"]) == ("s", 1, None)
    with sqlite3.connect(tmp_path / "h.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_reading_never_creates_or_changes_a_file(tmp_path: Path) -> None:
    missing = History(tmp_path / "none.sqlite")
    with pytest.raises(UsageError, match="not found"):
        missing.runs()
    assert not (tmp_path / "none.sqlite").exists()


def test_a_newer_schema_and_foreign_databases_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.sqlite"
    History(newer).append(run())
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UsageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        History(newer).runs()
    with pytest.raises(UsageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        History(newer).check_writable()
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(UsageError, match="not a benchbench history"):
        History(foreign).runs()


def test_check_writable_accepts_what_append_can_write(tmp_path: Path) -> None:
    History(tmp_path / "new" / "h.sqlite").check_writable()  # a folder that will be created
    existing = History(tmp_path / "h.sqlite")
    existing.append(run())
    existing.check_writable()
    (tmp_path / "empty.sqlite").write_bytes(b"")
    History(tmp_path / "empty.sqlite").check_writable()  # SQLite's empty database
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        History(tmp_path / "blocker" / "h.sqlite").check_writable()


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    code = (
        "import sys; from benchbench.history import History; from benchbench.results import RunResult\n"
        "for i in range(20):\n"
        "    History(sys.argv[1]).append(RunResult(suite='s', records=[{'benchmark': 'a', 'status': 'ok', 'x': i}],"
        " environment={'time': f'2026-01-01T00:00:{i:02d}+00:00'}))\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert len(History(path).runs()) == 40


def test_baseline_latest_is_the_latest_complete_earlier_run(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    store.append(run(time="2026-01-01T00:00:00+00:00", params=1))
    unfinished = run(time="2026-01-02T00:00:00+00:00", params=2)
    unfinished.complete = False
    store.append(unfinished)
    store.append(run(suite="other", time="2026-01-03T00:00:00+00:00", params=3))
    assert store.baseline("s", "latest").records[0]["params"] == 1  # not the incomplete one, not another suite's
    with pytest.raises(UsageError, match="no complete earlier run"):
        store.baseline("s", "latest", before="2026-01-01T00:00:00+00:00")


def test_a_baseline_that_names_no_git_ref_says_so_whatever_the_history_holds(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`compare --baseline nosuchbranch`: the ref is resolved first (not "no complete earlier run")."""
    from benchbench.cli import main

    new = tmp_path / "new.json"
    run().write_json(new)
    empty, other = tmp_path / "none.sqlite", tmp_path / "other.sqlite"
    History(other).append(run(suite="other"))
    for history in (empty, other):
        assert main(["compare", str(new), "--baseline", "nosuchbranch", "--history", str(history)]) == 2
        err = capsys.readouterr().err
        assert "--baseline 'nosuchbranch' is neither 'latest' nor an existing run file, and " in err  # outside a repository
        assert "is not in a git repository, where it could name a commit" in err
        assert "no complete earlier run" not in err and "not found" not in err


def test_a_git_ref_outside_a_git_repository_says_so(tmp_path: Path) -> None:
    from benchbench.errors import UsageError
    from benchbench.history import resolve_git_ref

    with pytest.raises(UsageError, match=r"--baseline 'main' is neither 'latest' nor an existing run file, and .* is not "
                                         r"in a git repository, where it could name a commit"):
        resolve_git_ref("main", here=tmp_path)
