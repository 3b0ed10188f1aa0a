"""The run's valgrind process: its start-up is not a benchmark's time, has a limit of its own,
and its temporary folder does not outlive a killed run. No valgrind needed: stand-ins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

import benchbench
from benchbench import callgrind
from benchbench.callgrind import CallgrindError, CallgrindProcess, Profile
from benchbench.deadline import DeadlineExceeded, deadline, paused
from benchbench.metrics import instructions
from benchbench.scratch import Scratch, remove_abandoned

PLUGINS = {"plugins": [], "plugins_dir": None, "autoload": False}


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder of this process and its children: one of the test's own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def program(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_a_paused_deadline_does_not_count_the_block_and_keeps_what_it_had_left() -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), deadline(0.5):
        with paused():
            time.sleep(1.0)  # past the limit, but paused: no expiry here
        assert time.monotonic() - started >= 1.0
        time.sleep(5)  # the half second it had left runs out here
    assert time.monotonic() - started < 4
    with paused():  # no deadline in force: nothing to pause
        pass


class SlowToStart:
    """A stand-in for the callgrind process: slow to start (as valgrind importing torch), then quick."""

    started = 0

    def __init__(self, plugin_arguments: dict[str, Any], environment: dict[str, str], options: tuple[str, ...] = ()) -> None:
        time.sleep(1.5)
        SlowToStart.started += 1
        self.plugin_arguments, self.environment, self.options = plugin_arguments, environment, options
        self.startup_s, self.facts, self.alive = 1.5, {}, True

    def count(self, request: dict[str, Any]) -> tuple[Profile, Profile]:
        return Profile(100), Profile(100 + 1000 * request["steps"])

    def close(self) -> None:
        self.alive = False


def test_valgrinds_start_up_does_not_count_against_the_first_benchmarks_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    program(tmp_path / "bin" / "valgrind", "#!/bin/sh\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")  # available() finds one
    monkeypatch.setattr(instructions, "CallgrindProcess", SlowToStart)
    suite = {"defaults": {"device": "cpu", "batch_size": 1, "metrics": ["params", "instructions"], "timeout": 0.5},
             "benchmarks": [{"name": "first", "model": "conv", "args": {"in_channels": 2, "out_channels": 2, "kernel_size": 1},
                             "input_shape": [2, 4, 4]}]}
    [record] = benchbench.run_suite(suite, quiet=True).records
    assert record["status"] == "ok", record["error"]
    assert record["instructions"] == 1000 and record["instructions_startup_s"] == 1.5
    assert SlowToStart.started == 1


def test_a_start_up_that_never_ends_is_given_up_after_its_own_limit(
        tmp_path: Path, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck = program(tmp_path / "stuck-valgrind", "#!/bin/sh\nexec sleep 60\n")
    monkeypatch.setattr(callgrind, "STARTUP_LIMIT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(CallgrindError, match="did not finish starting within 1 s: given up"):
        CallgrindProcess(PLUGINS, valgrind=str(stuck))
    assert time.monotonic() - started < 30
    assert not list(scratch.iterdir())  # its folder is removed, and it was killed (else: a 60 s sleep left behind)


KILLED_RUN = """
import sys
from benchbench.callgrind import CallgrindProcess
CallgrindProcess({"plugins": [], "plugins_dir": None, "autoload": False}, valgrind=sys.argv[1])
"""


def test_the_folder_of_a_run_killed_with_sigkill_is_removed_when_the_next_one_starts(tmp_path: Path, scratch: Path) -> None:
    # A run killed while its callgrind process starts (the stand-in says when, then waits a while).
    marker = tmp_path / "starting"
    waiting = program(tmp_path / "waiting-valgrind", f"#!/bin/sh\necho $$ > {marker}.tmp\nmv {marker}.tmp {marker}\nexec sleep 60\n")
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(waiting)])
    try:
        give_up = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < give_up and child.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the stand-in valgrind never started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if marker.exists():
            os.kill(int(marker.read_text()), signal.SIGKILL)  # the stand-in (its own session: not killed with the run)
    [left] = list(scratch.glob("benchbench-callgrind-*"))  # what kill -9 leaves
    live = Scratch(callgrind.FOLDER_PREFIX)  # a run still going: its folder must stay
    failing = program(tmp_path / "failing-valgrind", "#!/bin/sh\nexit 3\n")
    with pytest.raises(CallgrindError):
        CallgrindProcess(PLUGINS, valgrind=str(failing))  # the next run's start
    assert not left.exists()
    assert live.path.exists()
    live.remove()
    assert not list(scratch.iterdir())


def test_only_folders_whose_owner_is_gone_are_removed(scratch: Path) -> None:
    with Scratch("benchbench-test-") as mine:
        (mine / "data").write_text("kept")
        assert remove_abandoned("benchbench-test-") == []  # its owner (this process) lives
        unmarked = scratch / "benchbench-test-old"
        unmarked.mkdir()  # made by a benchbench before owner locks: removed only once it is old
        assert remove_abandoned("benchbench-test-") == []
        os.utime(unmarked, (time.time() - 7200, time.time() - 7200))
        assert remove_abandoned("benchbench-test-") == [unmarked]
        assert (mine / "data").read_text() == "kept"
    assert not mine.exists()
