"""Stopped, killed or cut off: what a command keeps and which exit code it gives.

SIGTERM and SIGHUP at any moment of any command (130, as Ctrl-C); a reader of stdout that
left (``| true``: the exit code stays the command's, everything is saved first); a run
killed with ``kill -9`` (no empty run file, a stale lock that blocks nothing and is
cleaned up); and models that print, which must not corrupt ``--format json``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from benchbench.cli import main
from benchbench.errors import ExitCode
from benchbench.history import History
from tests.helpers import PluginFiles, tiny_suite, write_plugin


def benchbench_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "benchbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def wait_for(condition: object, process: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            raise AssertionError(f"the command ended ({process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- signals


@pytest.mark.skipif(not hasattr(signal, "SIGHUP") or not hasattr(os, "mkfifo"), reason="POSIX signals and FIFOs")
@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)], ids=["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("command", ["run", "compare", "report --html"])
def test_a_signal_at_any_moment_of_any_command_exits_130(tmp_path: Path, command: str, signum: int) -> None:
    """The command blocks reading its input (a FIFO that no one writes yet): that is "while
    starting", before `run` has loaded torch, and in commands that set no handler of their own."""
    fifo = tmp_path / ("suite.yaml" if command == "run" else "run.json")
    os.mkfifo(fifo)
    argv = {
        "run": ["run", str(fifo), "--out", str(tmp_path / "out")],
        "compare": ["compare", str(fifo), str(fifo)],
        "report --html": ["report", str(fifo), "--html", str(tmp_path / "report.html")],
    }[command]
    if command == "report --html":
        pytest.importorskip("matplotlib")
    process = benchbench_process(*argv)
    writer: list[int] = []

    def reading() -> bool:  # opening the FIFO for writing succeeds once the command has opened it to read
        try:
            writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return False
        return True

    try:
        wait_for(reading, process, "the command reads its input")
        process.send_signal(signum)
        # A process-directed signal may land on a thread other than the main one (numpy's
        # OpenBLAS threads, in compare): the main thread then stays blocked in read() and
        # runs the handler only once the read returns. Closing the writer ends the read.
        time.sleep(0.5)
        while writer:
            os.close(writer.pop())
        _, err = process.communicate(timeout=60)
    finally:
        for fd in writer:
            os.close(fd)
    assert process.returncode == ExitCode.INTERRUPTED, err
    assert "benchbench: interrupted; nothing was written" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "report.html").exists()


def test_main_restores_the_signal_handlers_it_found(tmp_path: Path) -> None:
    """benchbench.cli.main called from Python (a notebook, a test) leaves the caller's handlers as they were."""
    before = signal.getsignal(signal.SIGTERM)
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == ExitCode.USAGE_ERROR
    assert signal.getsignal(signal.SIGTERM) is before


# --------------------------------------------------------------------------- a reader that left


def test_a_closed_stdout_changes_no_exit_code_and_loses_nothing(tmp_path: Path) -> None:
    """`benchbench run ... | true` with a failing benchmark: exit 1, the history row and the job
    summary written; `compare ... | true` of a regression: exit 1."""
    write_plugin(tmp_path / "plug", "toys", prefix="toy_")
    data = tiny_suite(metrics=["params"])
    data["benchmarks"].insert(1, {"model": "toy_broken"})
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(data))
    run_file, history, summary = tmp_path / "r.json", tmp_path / "h.sqlite", tmp_path / "summary.md"
    process = benchbench_process("run", str(suite), "--json", str(run_file), "--history", str(history), "--format",
                                 "csv", "--plugins-dir", str(tmp_path / "plug"), env={"GITHUB_STEP_SUMMARY": str(summary)})
    process.stdout.close()  # the reader left before the table came
    err = process.stderr.read()
    assert process.wait(timeout=300) == ExitCode.FAILED, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert [r["status"] for r in json.loads(run_file.read_text())["records"]] == ["ok", "failed", "ok"]
    assert len(History(history).runs()) == 1
    assert "toy_broken" in summary.read_text()

    grown = json.loads(run_file.read_text())
    grown["records"][0]["params"] *= 2
    (tmp_path / "grown.json").write_text(json.dumps(grown))
    process = benchbench_process("compare", str(run_file), str(tmp_path / "grown.json"))
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=120) == ExitCode.FAILED, err
    assert "benchbench: regression: std params" in err and "Traceback" not in err


# --------------------------------------------------------------------------- what benchmarks print


def test_what_plugins_and_models_print_goes_to_stderr_not_into_json(tmp_path: Path, plugins: PluginFiles,
                                                                    capfd: pytest.CaptureFixture[str]) -> None:
    """Python's print, a write to file descriptor 1 (as C code does) and a worker process
    (--isolate) all print while the suite runs; stdout holds the JSON alone."""
    plugins.write("chatty", """
        import os
        import torch
        import benchbench

        print("chatty: loaded")


        class Chatty(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(4, 4)

            def forward(self, x):
                if x.device.type != "meta":
                    print(f"chatty: python print in {os.getpid()}")
                    os.write(1, b"chatty: file descriptor 1\\n")
                return self.linear(x)


        @benchbench.hookimpl
        def benchbench_register_models(register):
            print("chatty: registering")
            register("chatty", Chatty, input_shape=(4,))
    """)
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"defaults": {"device": "cpu", "metrics": ["params", "flops"]},
                                     "benchmarks": [{"model": "chatty"}]}))
    for isolate in ([], ["--isolate"]):
        code = main(["run", str(suite), "--json", str(tmp_path / "r.json"), "--no-history", "--format", "json", "-q",
                     "--plugins-dir", str(plugins.path), *isolate])
        out, err = capfd.readouterr()
        assert code == ExitCode.OK, err
        assert json.loads(out)["records"][0]["status"] == "ok"  # nothing else on stdout
        assert "chatty: python print" in err and "chatty: file descriptor 1" in err
        if isolate:
            assert f"chatty: python print in {os.getpid()}" not in err  # it printed in the worker
    assert "chatty: loaded" in err or "chatty: registering" in err


# --------------------------------------------------------------------------- kill -9


def test_a_run_killed_in_its_first_benchmark_leaves_no_empty_file_and_no_lasting_lock(
    tmp_path: Path, plugins: PluginFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins.copy("faults")
    out, pid_file = tmp_path / "out", tmp_path / "pid"
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "faults", "defaults": {"device": "cpu", "metrics": ["params"]},
                                     "benchmarks": [{"name": "stuck", "model": "fault", "args": {"how": "stuck_pid"}}]}))
    process = benchbench_process("run", str(suite), "--out", str(out), "--no-history", "-q",
                                 "--plugins-dir", str(plugins.path), env={"BB_PID_FILE": str(pid_file)})
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), process, "the first benchmark runs")
    process.kill()
    process.communicate(timeout=60)
    [lock] = list(out.iterdir())  # no run file: it appears with the first finished benchmark
    assert lock.name.startswith(".faults-") and lock.name.endswith(".json.lock")

    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "tiny.yaml"
    other.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    assert main(["run", str(other), "--out", str(out), "--no-history", "-q"]) == ExitCode.OK
    assert lock.exists()  # too young to tell from a lock being taken right now
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert main(["run", str(other), "--out", str(out), "--no-history", "-q"]) == ExitCode.OK
    assert not lock.exists()  # nobody held it: removed by the next run into that folder
    runs = sorted(out.glob("*.json"))
    assert len(runs) == 2 and not list(out.glob(".*"))
    assert main(["report", *map(str, runs), "--format", "csv"]) == ExitCode.OK
    capsys.readouterr()
