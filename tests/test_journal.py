"""Saving as a run goes: the run file written whole at its first record and at its end, a
journal line per record in between (a cost that does not grow with the run), and nothing
that finished lost to a ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench.cli import main
from benchbench.journal import Journal, fingerprint, journal_path, replay
from benchbench.manager import PluginManager
from benchbench.results import RunResult
from tests.helpers import PluginFiles, tiny_suite


def params_suite(count: int) -> dict:
    data = tiny_suite(metrics=["params"])
    data["benchmarks"] = [{"name": f"b{i}", "model": "conv", "args": {"in_channels": 2, "out_channels": i + 1, "kernel_size": 1},
                           "input_shape": [2, 4, 4]} for i in range(count)]
    return data


def test_each_record_is_appended_and_the_run_file_is_written_whole_only_at_the_first_and_at_the_end(
        tmp_path: Path, plugins: PluginFiles) -> None:
    # The hook runs just before each record is saved: it sees what the saves before left.
    plugins.write("watch", """
        import benchbench
        from pathlib import Path
        SEEN = []
        @benchbench.hookimpl
        def benchbench_result_ready(record, index, total):
            run_file, journal = Path('run.json'), Path('run.json.journal')
            SEEN.append((run_file.stat().st_size if run_file.exists() else None,
                         len(journal.read_text().splitlines()) if journal.exists() else None))
    """)
    manager = PluginManager(plugins_dir=plugins.path)
    run = benchbench.run_suite(params_suite(6), manager=manager, out=tmp_path / "run.json", quiet=True)
    seen = manager.pm.get_plugin("watch").SEEN
    assert seen[0] == (None, None)  # nothing saved before the first record
    sizes = {size for size, _ in seen[1:]}
    assert len(sizes) == 1, f"the run file was rewritten after every benchmark: sizes {sorted(sizes)}"
    assert [lines for _, lines in seen[1:]] == [1, 2, 3, 4, 5]  # the header, then one line per record after the first
    assert not journal_path(tmp_path / "run.json").exists()  # the end: the whole file, the journal removed
    again = RunResult.read_json(tmp_path / "run.json")
    assert again.complete and [r["benchmark"] for r in again.records] == [f"b{i}" for i in range(6)]
    assert again.records == json.loads(json.dumps(run.records))


def test_a_run_killed_mid_way_keeps_every_finished_benchmark_for_report_and_resume(
        tmp_path: Path, plugins: PluginFiles, capsys: pytest.CaptureFixture[str]) -> None:
    plugins.write("killer", """
        import os, signal, benchbench
        @benchbench.hookimpl
        def benchbench_benchmark_start(benchmark, index, total, round, rounds):
            if index == 4 and os.environ.get('BB_KILL') == '1':
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    suite = tmp_path / "sweep.yaml"
    suite.write_text(yaml.safe_dump(params_suite(6)))
    out = tmp_path / "run.json"
    command = [sys.executable, "-m", "benchbench", "run", str(suite), "--plugins-dir", str(plugins.path), "--json", str(out),
               "--no-history", "-q"]
    killed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "BB_KILL": "1"}, timeout=300,
                            check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(json.loads(out.read_text())["records"]) == 1  # the file as written at the first record...
    assert journal_path(out).exists()  # ...and the journal beside it holds the others
    partial = RunResult.read_json(out)
    assert not partial.complete and [r["benchmark"] for r in partial.records] == ["b0", "b1", "b2", "b3"]
    assert main(["report", str(out)]) == 0
    assert "b3" in capsys.readouterr().out
    assert main(["run", "--resume", str(out), "--plugins-dir", str(plugins.path), "--no-history", "-q"]) == 0
    done = json.loads(out.read_text())
    assert done["complete"] and [r["benchmark"] for r in done["records"]] == [f"b{i}" for i in range(6)]
    assert done["records"][:4] == partial.records
    assert not journal_path(out).exists()


def test_replay_ignores_a_line_cut_short_and_a_journal_that_continues_another_text(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    run = RunResult(suite="s", records=[{"benchmark": "a", "status": "ok", "rounds": 1}], complete=False)
    journal = Journal(path)
    journal.start(run.to_json() + "\n")
    journal.append({"benchmark": "b", "status": "ok", "rounds": 1})
    journal.append({"benchmark": "a", "status": "ok", "rounds": 2})  # a's next round replaces its first
    with journal_path(path).open("a") as handle:
        handle.write('{"record": {"benchmark": "c", "sta')  # a kill while writing
    read = RunResult.read_json(path)
    assert [(r["benchmark"], r["rounds"]) for r in read.records] == [("a", 2), ("b", 1)]
    text = path.read_text()
    data = json.loads(text)
    assert replay(path, text, data)["records"] == read.records
    assert replay(path, text + " ", data) is data  # the journal names another text: not this file's
    path.write_text(json.dumps({**data, "complete": True}))  # a kill after the final write, before the removal
    assert [r["benchmark"] for r in RunResult.read_json(path).records] == ["a"]
    assert fingerprint(text) != fingerprint(path.read_text())


def test_a_journal_line_is_whole_json_per_record(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    journal = Journal(path)
    journal.start('{"suite": "s", "records": []}\n')
    journal.append({"benchmark": "a", "status": "ok", "note": "line\nbreak"})
    lines = journal_path(path).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["record"]["note"] == "line\nbreak"
    journal.finish('{"suite": "s", "records": [], "complete": true}\n')
    assert not journal_path(path).exists() and json.loads(path.read_text())["complete"] is True


def test_an_interrupted_run_says_how_to_resume_it_with_its_plugins_and_resumes_into_its_own_history(
        tmp_path: Path, plugins: PluginFiles, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stopper = plugins.write("stopper", """
        import os, benchbench
        @benchbench.hookimpl
        def benchbench_benchmark_start(benchmark, index, total, round, rounds):
            if index == 2 and os.environ.get('BB_STOP') == '1':
                raise KeyboardInterrupt
    """)
    suite = tmp_path / "sweep.yaml"
    suite.write_text(yaml.safe_dump(params_suite(4)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BB_STOP", "1")
    assert main(["run", str(suite), "-p", str(stopper), "--out", "o"]) == 130
    err = capsys.readouterr().err
    [run_file] = (tmp_path / "o").glob("tiny-*.json")
    assert f"`benchbench run --resume o/{run_file.name} -p {stopper}` runs the rest" in err  # the plugin it needs
    from benchbench.history import History

    assert [r["complete"] for r in History(tmp_path / "o" / "history.sqlite").runs()] == [0]
    monkeypatch.delenv("BB_STOP")
    assert main(["run", "--resume", f"o/{run_file.name}", "-p", str(stopper), "-q"]) == 0
    # the finished run replaces the interrupted one in the history beside it, not in ./results/
    assert [r["complete"] for r in History(tmp_path / "o" / "history.sqlite").runs()] == [1]
    assert not (tmp_path / "results").exists()
