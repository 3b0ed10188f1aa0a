"""Nothing a user has is ever lost: every command that writes checks first and writes atomically.

And the exit codes a CI job acts on: 1 regression or failure, 2 bad input, 3 internal error.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench.cli import main
from benchbench.errors import ExitCode, UsageError
from benchbench.outputs import atomic_write_text, claimed_run_file, exclusive
from tests.helpers import PluginFiles, tiny_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("results")
    run = benchbench.run_suite(tiny_suite(metrics=["params", "flops"]), quiet=True)
    paths = [folder / "tiny-1.json", folder / "tiny-2.json"]
    for path in paths:
        run.write_json(path)
    return paths


def _snapshot(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


# --------------------------------------------------------------------------- report --html


def test_report_html_never_overwrites_its_inputs_or_other_files(two_runs: list[Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    before = _snapshot(two_runs)
    suite = tmp_path / "suite.yaml"
    suite.write_text("benchmarks: []\n")
    # `benchbench report --html results/*.json`: the shell put a run file right after --html
    assert main(["report", "--html", str(two_runs[0]), str(two_runs[1])]) == ExitCode.USAGE_ERROR
    assert "must end in .html" in capsys.readouterr().err
    assert main(["report", str(suite), "--html", str(suite)]) == ExitCode.USAGE_ERROR
    assert _snapshot(two_runs) == before and suite.read_text() == "benchmarks: []\n"
    # an input named .html, and an .html file that is not a benchbench report
    html_input = tmp_path / "run.html"
    html_input.write_bytes(two_runs[0].read_bytes())
    assert main(["report", str(html_input), "--html", str(html_input)]) == ExitCode.USAGE_ERROR
    assert "is also one of this command's inputs" in capsys.readouterr().err
    page = tmp_path / "index.html"
    page.write_text("<!DOCTYPE html><p>my own page</p>")
    assert main(["report", str(two_runs[0]), "--html", str(page)]) == ExitCode.USAGE_ERROR
    assert "is not a benchbench HTML report; refusing to overwrite it" in capsys.readouterr().err
    assert page.read_text() == "<!DOCTYPE html><p>my own page</p>"


def test_report_html_replaces_its_own_earlier_report_atomically(two_runs: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "report.html"
    assert main(["report", str(two_runs[0]), "--html", str(out)]) == ExitCode.OK
    first = out.read_text()
    assert main(["report", *map(str, two_runs), "--html", str(out)]) == ExitCode.OK
    assert out.read_text() != first and "<h2>Comparison</h2>" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "benchbench-cache") == ["report.html"]  # no temp files


def test_report_draws_benchmark_names_literally(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data = tiny_suite(metrics=["params", "flops", "latency"])
    data["benchmarks"][0]["name"] = r"x_$\frac{$"
    data["benchmarks"][1]["baseline"] = r"x_$\frac{$"
    path = tmp_path / "run.json"
    benchbench.run_suite(data, quiet=True).write_json(path)
    assert main(["report", str(path), "--html", str(tmp_path / "r.html")]) == ExitCode.OK
    assert r"x_$\frac{$" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("field, value", [("latency_ms", "fast"), ("params", [1, "x"]), ("batch_size", "8"),
                                          ("input_shape", "3x32x32")])
def test_a_damaged_field_is_bad_input_for_every_reader(two_runs: list[Path], tmp_path: Path, field: str, value: object,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(two_runs[0].read_text())
    data["records"][1][field] = value
    damaged = tmp_path / "damaged.json"
    damaged.write_text(json.dumps(data))
    for command in (["report", str(damaged)], ["compare", str(two_runs[0]), str(damaged)]):
        assert main(command) == ExitCode.USAGE_ERROR
        err = capsys.readouterr().err
        assert f"record 'sep': field {field!r} is" in err and "Traceback" not in err


# --------------------------------------------------------------------------- run files


def test_claimed_names_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz: object = None) -> Frozen:
            return cls(2026, 1, 1)

    monkeypatch.setattr("benchbench.outputs._dt.datetime", Frozen)
    with contextlib.ExitStack() as stack:
        names = [stack.enter_context(claimed_run_file(tmp_path, "suite")) for _ in range(5)]
        assert sorted(p.name for p in tmp_path.iterdir()) == [f".{p.name}.lock" for p in sorted(names)]
    assert sorted(p.name for p in names) == ["suite-20260101-000000-2.json", "suite-20260101-000000-3.json",
                                            "suite-20260101-000000-4.json", "suite-20260101-000000-5.json",
                                            "suite-20260101-000000.json"]
    assert not list(tmp_path.iterdir())  # a claim is its lock: released, nothing is left (the run writes the file)


def test_two_runs_started_together_keep_two_run_files(tmp_path: Path) -> None:
    suite = tmp_path / "same.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    command = [sys.executable, "-m", "benchbench", "run", str(suite), "--out", str(tmp_path / "out"), "-q", "--no-history"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 3
    assert all(json.loads(f.read_text())["complete"] for f in files)


def test_a_refused_run_leaves_no_empty_run_file(tmp_path: Path) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(yaml.safe_dump({"benchmarks": [{"model": "conv", "args": {"in_channels": 3}}]}))
    assert main(["run", str(suite), "--out", str(tmp_path / "out")]) == ExitCode.USAGE_ERROR
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_run_file_being_written_by_another_command_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    target = tmp_path / "run.json"
    with exclusive(target, "run file"):
        assert main(["run", str(suite), "--json", str(target), "--no-history"]) == ExitCode.USAGE_ERROR
    assert "another benchbench command is writing the run file" in capsys.readouterr().err
    assert main(["run", str(suite), "--json", str(target), "--no-history", "-q"]) == ExitCode.OK  # released
    assert not list(tmp_path.glob(".*.lock"))


def test_atomic_write_refuses_nothing_it_should_not(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "deep" / "x.txt", "hello")
    assert target.read_text() == "hello" and oct(target.stat().st_mode & 0o777) != "0o600"
    with pytest.raises(UsageError, match="cannot write the file"):
        atomic_write_text(tmp_path / "deep" / "x.txt" / "y.txt", "no")  # a file where a folder should be


# --------------------------------------------------------------------------- the history


@pytest.mark.parametrize("kind, expected", [
    ("folder", "is a folder, not a history file"),
    ("garbage", "is not an SQLite database (damaged, or another kind of file)"),
    ("other sqlite", "is an SQLite file but not a benchbench history"),
    ("read-only", "is read-only"),
])
def test_a_bad_history_is_refused_before_the_first_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            kind: str, expected: str) -> None:
    import sqlite3

    history = tmp_path / "h.sqlite"
    if kind == "folder":
        history.mkdir()
    elif kind == "garbage":
        history.write_bytes(b"this is not a database, it is a grocery list " * 100)
    elif kind == "other sqlite":
        with sqlite3.connect(history) as db:
            db.execute("CREATE TABLE groceries (item TEXT)")
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    run_file = tmp_path / "run.json"
    with read_only(history) if kind == "read-only" else contextlib.nullcontext():
        assert main(["run", str(suite), "--json", str(run_file), "--history", str(history)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert f"history {str(history)!r} {expected}" in err and "--no-history" in err
    assert not run_file.exists()  # refused before anything ran


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path``, an empty file, made read-only for real for the block: ``chmod`` for a user,
    ``chattr +i`` for root (who ignores permissions; skips where the file system has no such flag)."""
    path.write_bytes(b"")
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("root ignores file permissions, and this file system has no immutable flag (chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# --------------------------------------------------------------------------- checked for real, before any work


ROOT_ON_LINUX = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0 or not Path("/proc/self").is_dir(),
    reason="as root on Linux, /proc and /sys pass os.access, yet nothing can be created there",
)


def tiny_suite_file(tmp_path: Path) -> Path:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    return suite


@ROOT_ON_LINUX
@pytest.mark.parametrize("options, expected", [
    (["--json", "/proc/benchbench-run.json", "--no-history"],
     ("cannot write the benchbench run file of suite 'tiny' '/proc/benchbench-run.json': creating a file in the "
     "folder '/proc' failed (No such file or directory)")),
    (["--json", "/sys/benchbench/run.json", "--no-history"],
     ("cannot write the benchbench run file of suite 'tiny' '/sys/benchbench/run.json': creating the folder "
     "'/sys/benchbench' failed (Operation not permitted)")),
    (["--json", "r.json", "--history", "/proc/benchbench/h.sqlite"],
     ("cannot write the history '/proc/benchbench/h.sqlite': creating the folder '/proc/benchbench' failed (No such "
     "file or directory); give another --history FILE, or pass --no-history")),
    (["--out", "/sys/benchbench-results", "--no-history"],
     "cannot write run files into --out '/sys/benchbench-results': creating the folder '/sys/benchbench-results' failed"),
    (["--out", "/sys/benchbench-results"],
     ("cannot write run files into --out '/sys/benchbench-results': creating the folder '/sys/benchbench-results' "
      "failed (Operation not permitted); give another --out DIR, or --history FILE or --no-history")),
    (["--json", "r.json", "--out", "/sys/benchbench-results"],
     "cannot write the history into --out '/sys/benchbench-results': creating the folder"),
    (["--json", "r.json", "--no-history", "--profile", "/proc/benchbench-traces"],
     "cannot write into --profile '/proc/benchbench-traces': creating the folder '/proc/benchbench-traces' failed"),
])
def test_outputs_root_cannot_write_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               options: list[str], expected: str) -> None:
    assert main(["run", str(tiny_suite_file(tmp_path)), *options]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert expected in err and "(checked before any work)" in err, err
    assert "[1/2]" not in err and not (tmp_path / "r.json").exists()  # no benchmark ran


@ROOT_ON_LINUX
def test_report_html_root_cannot_write_is_refused_before_rendering(two_runs: list[Path], monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")

    def render_html(*args: object) -> str:
        raise AssertionError("rendered a page that cannot be written")

    monkeypatch.setattr("benchbench.htmlreport.render_html", render_html)
    assert main(["report", str(two_runs[0]), "--html", "/proc/benchbench-report.html"]) == ExitCode.USAGE_ERROR
    assert ("cannot write the benchbench HTML report '/proc/benchbench-report.html': creating a file in the folder "
            "'/proc' failed") in capsys.readouterr().err


def test_checking_a_folder_leaves_the_disk_as_it_was(tmp_path: Path) -> None:
    """The check creates the missing folders and a file, and removes them: a run refused later
    (a bad suite) leaves no empty results/ behind."""
    from benchbench.outputs import check_folder

    check_folder(tmp_path / "work" / "a" / "b", "something")
    (tmp_path / "kept").mkdir()
    check_folder(tmp_path / "kept", "something")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"cannot write something: '.*file' is a file, not a folder"):
        check_folder(tmp_path / "file" / "sub", "something")


def test_outputs_that_clash_are_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = tiny_suite_file(tmp_path)
    same = tmp_path / "x.json"
    assert main(["run", str(suite), "--json", str(same), "--history", str(same)]) == ExitCode.USAGE_ERROR
    assert f"--json and --history both name {str(same)!r}; give each output its own path" in capsys.readouterr().err
    for options in (["--json", "results/history.sqlite"], ["--json", "results/history.sqlite", "--no-history"]):
        assert main(["run", str(suite), *options]) == ExitCode.USAGE_ERROR
        err = capsys.readouterr().err
        assert "--json 'results/history.sqlite': history.sqlite is the history's name" in err and "[1/2]" not in err
    assert main(["run", str(suite), "--json", "r.json", "--profile", "r.json"]) == ExitCode.USAGE_ERROR
    assert "--json and --profile both name 'r.json'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing written, no results/ folder


def test_json_onto_an_interrupted_run_is_refused_with_the_way_to_finish_it(tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    suite = tiny_suite_file(tmp_path)
    run_file = tmp_path / "r.json"
    assert main(["run", str(suite), "--json", str(run_file), "--no-history", "-q"]) == ExitCode.OK
    data = json.loads(run_file.read_text())
    data["complete"], data["records"] = False, data["records"][:1]
    run_file.write_text(json.dumps(data))
    before = run_file.read_text()
    assert main(["run", str(suite), "--json", str(run_file), "--no-history"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert (f"--json {str(run_file)!r} holds an interrupted run of suite 'tiny' (1 benchmark(s) measured); finish it "
            f"with `benchbench run --resume {run_file}`, or delete the file to start over") in err
    assert run_file.read_text() == before and "[1/2]" not in err
    assert main(["run", "--resume", str(run_file), "--no-history", "-q"]) == ExitCode.OK  # the way it names
    assert json.loads(run_file.read_text())["complete"] is True
    assert main(["run", str(suite), "--json", str(run_file), "--no-history", "-q"]) == ExitCode.OK  # finished: a rerun
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")  # what an older benchbench killed early left: nothing to lose
    assert main(["run", str(suite), "--json", str(empty), "--no-history", "-q"]) == ExitCode.OK
    assert json.loads(empty.read_text())["complete"] is True


def test_report_skips_an_empty_run_file_among_others(two_runs: list[Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    assert main(["report", str(two_runs[0]), str(empty), "--format", "csv"]) == ExitCode.OK
    out, err = capsys.readouterr()
    assert f"benchbench: warning: skipping {empty}: the file is empty" in err and "delete it" in err
    assert out.startswith("run,") and "Traceback" not in err
    assert main(["report", str(empty)]) == ExitCode.USAGE_ERROR  # alone: reading it says what is wrong
    assert f"run file {str(empty)!r} is empty: a run that was killed before it wrote anything" in capsys.readouterr().err


def test_a_stale_lock_is_no_obstacle(tmp_path: Path) -> None:
    """A lock file left by a killed run (nobody holds it) is taken over, then removed."""
    suite = tiny_suite_file(tmp_path)
    run_file = tmp_path / "r.json"
    stale = tmp_path / ".r.json.lock"
    stale.write_text("")
    assert main(["run", str(suite), "--json", str(run_file), "--no-history", "-q"]) == ExitCode.OK
    assert run_file.exists() and not stale.exists()


# --------------------------------------------------------------------------- exit codes


def test_exit_codes_are_one_enum_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 130]
    assert main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "0 ok, 1 a benchmark failed or a regression was found, 2 bad input or usage, 3 internal error" in text
    assert "130 interrupted" in text


def test_an_internal_error_is_3_not_1(tmp_path: Path, capsys: pytest.CaptureFixture[str], plugins: PluginFiles) -> None:
    plugins.write("crashy", """
        import benchbench
        @benchbench.hookimpl
        def benchbench_run_end(run):
            raise KeyError('a bug in a hook')
    """)
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    code = main(["run", str(suite), "--json", str(tmp_path / "r.json"), "--no-history", "-q", "-p", str(plugins.path / "crashy.py")])
    assert code == ExitCode.INTERNAL_ERROR
    assert "internal error: KeyError" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["records"]  # what ran is saved all the same


# --------------------------------------------------------------------------- the tests themselves


def test_the_session_fails_when_a_test_writes_into_the_checkout(pytester: pytest.Pytester) -> None:
    """The guard in conftest.py: a test that writes into results/ fails the whole session."""
    project = pytester.path
    (project / "tests").mkdir()
    (project / "results").mkdir()
    for name in ("__init__.py", "conftest.py", "helpers.py", "tools.py"):  # conftest.py and what it loads
        if (REPO / "tests" / name).exists():
            (project / "tests" / name).write_text((REPO / "tests" / name).read_text())
    (project / "tests" / "test_leaky.py").write_text(
        "from pathlib import Path\n"
        "def test_writes_into_the_checkout():\n"
        "    (Path(__file__).resolve().parents[1] / 'results' / 'history.sqlite').write_text('oops')\n"
    )
    result = pytester.runpytest_subprocess(str(project / "tests"), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the tests changed the checkout*results/history.sqlite*"])


def test_a_run_stopped_before_any_benchmark_finished_leaves_no_file(tmp_path: Path, plugins: PluginFiles,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    plugins.write("stop_at_once", """
        import benchbench
        @benchbench.hookimpl
        def benchbench_benchmark_start(benchmark, index, total, round, rounds):
            raise KeyboardInterrupt
    """)
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    code = main(["run", str(suite), "--out", str(tmp_path / "out"), "--no-history", "--plugins-dir", str(plugins.path)])
    assert code == ExitCode.INTERRUPTED
    assert "interrupted before any benchmark finished; no run file was written" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.json"))


def test_ctrl_c_while_the_table_is_printed_keeps_the_run_file_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    def emit(text: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("benchbench.outputs.emit", emit)
    out = tmp_path / "r.json"
    assert main(["run", str(tiny_suite_file(tmp_path)), "--json", str(out), "--no-history"]) == ExitCode.INTERRUPTED
    err = capsys.readouterr().err
    assert f"interrupted while reporting; the run file {out} is written and kept" in err
    assert "nothing was written" not in err and json.loads(out.read_text())["complete"] is True


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_stdout_that_cannot_be_written_keeps_the_exit_code_and_says_so(
        two_runs: list[Path], capfd: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    base, new = two_runs
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "benchbench", "compare", str(base), str(new)], stdout=full,
                              stderr=subprocess.PIPE, text=True, check=False, timeout=120)
    assert done.returncode in (ExitCode.OK, ExitCode.FAILED), done.stderr  # the comparison's own verdict
    assert "cannot write the output to stdout (No space left on device)" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
