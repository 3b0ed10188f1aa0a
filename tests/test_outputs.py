"""Nothing a user has is ever lost: every command that writes checks first and writes atomically.

And the exit codes a CI job acts on: 1 regression or failure, 2 bad input, 3 internal error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench.cli import main
from benchbench.errors import ExitCode, UsageError
from benchbench.outputs import atomic_write_text, claim_new_file, exclusive
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


def test_claimed_names_never_collide(tmp_path: Path) -> None:
    names = {claim_new_file(tmp_path, "suite-20260101-000000", ".json") for _ in range(5)}
    assert sorted(p.name for p in names) == ["suite-20260101-000000-2.json", "suite-20260101-000000-3.json",
                                            "suite-20260101-000000-4.json", "suite-20260101-000000-5.json",
                                            "suite-20260101-000000.json"]


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
def test_a_bad_history_is_refused_before_the_first_benchmark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str], kind: str, expected: str) -> None:
    import sqlite3

    history = tmp_path / "h.sqlite"
    if kind == "folder":
        history.mkdir()
    elif kind == "garbage":
        history.write_bytes(b"this is not a database, it is a grocery list " * 100)
    elif kind == "other sqlite":
        with sqlite3.connect(history) as db:
            db.execute("CREATE TABLE groceries (item TEXT)")
    else:
        history.write_bytes(b"")
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == history else real_access(p, mode, **kw))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    run_file = tmp_path / "run.json"
    assert main(["run", str(suite), "--json", str(run_file), "--history", str(history)]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert f"history {str(history)!r} {expected}" in err and "--no-history" in err
    assert not run_file.exists()  # refused before anything ran


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
    for name in ("__init__.py", "conftest.py", "helpers.py"):
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
