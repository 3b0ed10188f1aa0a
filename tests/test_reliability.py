"""Faults while running: timeouts, crashes in isolation, interrupts, resume, the dry run.

The fault models live in a plugin file written per test. Each behaves normally on the
meta device (the validation dry run) and misbehaves only for real, as a real faulty
model would.
"""

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
from benchbench.errors import SuiteError
from tests.helpers import TINY_LATENCY, PluginFiles

REPO = Path(__file__).resolve().parents[1]



@pytest.fixture
def plugin_dir(plugins: PluginFiles) -> Path:
    """A plugin folder holding tests/plugin_sources/faults.py (model ``fault``)."""
    plugins.copy("faults")
    return plugins.path


def suite(*benchmarks: dict, **defaults: object) -> dict:
    return {
        "name": "faults",
        "defaults": {"device": "cpu", "metrics": ["params", "latency"], "metric_options": {"latency": dict(TINY_LATENCY)}, **defaults},
        "benchmarks": [{"name": b.pop("name"), "model": "fault", **b} for b in benchmarks],
    }


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --------------------------------------------------------------------------- timeouts


def test_inline_timeout_fails_that_benchmark_keeps_its_fields_and_the_others_run(plugin_dir: Path) -> None:
    data = suite({"name": "ok_before"}, {"name": "slow", "args": {"how": "slow_later"}, "timeout": 0.5}, {"name": "ok_after"})
    run = benchbench.run_suite(data, plugins_dir=plugin_dir, quiet=True)
    before, slow, after = run.records
    assert before["status"] == after["status"] == "ok"
    assert slow["status"] == "failed" and "timed out after 0.5 s" in slow["error"]
    assert slow["wall_time_s"] < 5
    assert slow["params"] == 20 and slow["output_shape"] == [4]  # measured before the timeout: kept


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("segfault", "its process died from a segmentation fault"),
        pytest.param("stuck", "timed out after 1 s: its process was killed", marks=pytest.mark.slow),
    ],
)
def test_isolation_turns_crashes_and_hangs_into_failed_records(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch, how: str, expected: str
) -> None:
    monkeypatch.setattr("benchbench.executors.KILL_GRACE_S", 0.5)
    data = suite({"name": "bad", "args": {"how": how}, "timeout": 1}, {"name": "good"})
    run = benchbench.run_suite(data, plugins_dir=plugin_dir, executor="subprocess", quiet=True)
    bad, good = run.records
    assert bad["status"] == "failed" and expected in bad["error"], bad["error"]
    assert good["status"] == "ok" and good["latency_ms"] > 0 and good["params"] == 20


@pytest.mark.slow
def test_suite_level_executor_key(plugin_dir: Path) -> None:
    data = suite({"name": "bad", "args": {"how": "segfault"}}, {"name": "good"})
    data["executor"] = "subprocess"
    bad, good = benchbench.run_suite(data, plugins_dir=plugin_dir, quiet=True).records
    assert "segmentation fault" in bad["error"] and good["status"] == "ok"
    data["executor"] = "subproces"
    with pytest.raises(SuiteError, match="unknown executor 'subproces' \\(did you mean 'subprocess'\\?\\)"):
        benchbench.run_suite(data, plugins_dir=plugin_dir, quiet=True)


def test_out_of_memory_is_a_failed_benchmark_with_a_hint(plugin_dir: Path) -> None:
    data = suite({"name": "oom", "args": {"how": "oom"}}, {"name": "good"})
    oom, good = benchbench.run_suite(data, plugins_dir=plugin_dir, quiet=True).records
    assert oom["status"] == "failed" and "ran out of GPU memory" in oom["error"] and "smaller batch_size" in oom["error"]
    assert good["status"] == "ok"


# --------------------------------------------------------------------------- nothing lost


def test_interrupted_run_leaves_a_valid_file_and_resume_finishes_it(plugin_dir: Path, tmp_path: Path, plugins: PluginFiles) -> None:
    plugins.write("stopper", """
        import os, benchbench
        @benchbench.hookimpl
        def benchbench_result_ready(record, index, total):
            if index == 0 and os.environ.get('BB_STOP') == '1':
                raise KeyboardInterrupt
    """, folder=plugin_dir)
    path = write(tmp_path, suite({"name": "first"}, {"name": "second"}, {"name": "third"}))
    out = tmp_path / "run.json"
    os.environ["BB_STOP"] = "1"
    try:
        code = main(["run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out), "-q", "--device", "cpu"])
    finally:
        del os.environ["BB_STOP"]
    assert code == 130
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and [r["benchmark"] for r in partial["records"]] == ["first"]
    assert partial["options"] == {"device": "cpu"}

    assert main(["run", "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 0
    done = json.loads(out.read_text())
    assert done["complete"] is True
    assert [r["benchmark"] for r in done["records"]] == ["first", "second", "third"]
    assert done["records"][0] == partial["records"][0]  # kept, not run again
    assert any(n.startswith("resumed at") and "2 of 3 benchmarks run then" in n for n in done["notes"])
    assert main(["run", "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 2  # nothing is missing
    other = write(tmp_path, {**suite({"name": "x"}), "name": "another"})
    done["complete"] = False
    out.write_text(json.dumps(done))
    assert main(["run", str(other), "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 2  # other suite


@pytest.mark.slow
def test_a_killed_run_leaves_what_finished(plugin_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path, suite({"name": "first"}, {"name": "killer", "args": {"how": "crash_if_env"}}, {"name": "third"}))
    out = tmp_path / "run.json"
    command = [sys.executable, "-m", "benchbench", "run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out), "-q"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "BB_CRASH": "1"}, timeout=300)
    assert done.returncode == -signal.SIGKILL
    partial = json.loads(out.read_text())  # valid JSON: every write is atomic
    assert partial["complete"] is False and [r["benchmark"] for r in partial["records"]] == ["first"]
    resumed = subprocess.run([*command[:4], "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["status"] for r in json.loads(out.read_text())["records"]] == ["ok", "ok", "ok"]


# --------------------------------------------------------------------------- the dry run


def test_dry_run_rejects_an_input_shape_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {
        "defaults": {"device": "cpu"},
        "benchmarks": [
            {"name": "wrong_channels", "model": "conv", "args": {"in_channels": 64, "out_channels": 8, "kernel_size": 3}, "input_shape": [3, 32, 32]},
            {"name": "negative", "model": "conv", "args": {"in_channels": 3, "out_channels": -8, "kernel_size": 3}},
            {"name": "too_small", "model": "conv", "args": {"in_channels": 3, "out_channels": 8, "kernel_size": 7}, "input_shape": [3, 4, 4]},
        ],
    }
    path = write(tmp_path, data)
    assert main(["run", str(path), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "[1/" not in err and not (tmp_path / "r.json").exists()
    # benchbench's part of each message (torch words its own errors differently from release to release)
    for name, shape in (("wrong_channels", [3, 32, 32]), ("negative", [3, 32, 32]), ("too_small", [3, 4, 4])):
        assert f"benchmark {name!r}: model 'conv' cannot run with these 'args' and 'input_shape' {shape}: " in err
    assert "(in the model, StandardConv2d(64, 8, kernel_size=(3, 3), stride=(1, 1)), given input 1x3x32x32)" in err
    assert "(in the model, StandardConv2d(3, 8, kernel_size=(7, 7), stride=(1, 1)), given input 1x3x4x4)" in err
    assert err.count("found by a dry run on the meta device") == 3


def test_dry_run_does_not_blame_the_suite_for_the_models_own_faults(plugin_dir: Path, plugins: PluginFiles) -> None:
    data = suite({"name": "meta_shy", "args": {"how": "item"}}, metrics=["params"])
    [record] = benchbench.run_suite(data, plugins_dir=plugin_dir, quiet=True).records
    assert record["status"] == "ok"  # .item() fails on meta; for real it is fine
    plugins.write("buggy", """
        import torch, benchbench
        class Buggy(torch.nn.Module):
            def forward(self, x):
                raise RuntimeError('a bug in the model')
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('buggy', Buggy, input_shape=(4,))
    """, folder=plugin_dir)
    [record] = benchbench.run_suite(
        {"defaults": {"device": "cpu"}, "benchmarks": [{"model": "buggy", "metrics": ["params"]}]}, plugins_dir=plugin_dir, quiet=True
    ).records
    assert record["status"] == "failed" and "a bug in the model" in record["error"]


def test_a_model_calling_sys_exit_fails_only_itself(plugin_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path, suite({"name": "a"}, {"name": "quits", "args": {"how": "exit"}}, {"name": "c"}))
    out = tmp_path / "run.json"
    assert main(["run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out), "-q"]) == 1
    records = json.loads(out.read_text())["records"]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert "raised SystemExit" in records[1]["error"]


@pytest.mark.slow
def test_terminating_the_parent_kills_the_isolated_worker(plugin_dir: Path, tmp_path: Path) -> None:
    import time

    path = write(tmp_path, suite({"name": "a"}, {"name": "stuck", "args": {"how": "stuck_pid"}}))
    out, pid_file = tmp_path / "run.json", tmp_path / "worker.pid"
    command = [sys.executable, "-m", "benchbench", "run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out),
               "-q", "--isolate"]
    parent = subprocess.Popen(command, env={**os.environ, "BB_PID_FILE": str(pid_file)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == 130
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)
    data = json.loads(out.read_text())
    assert data["complete"] is False and [r["benchmark"] for r in data["records"]] == ["a"]


def test_resume_keeps_its_suite_and_options(plugin_dir: Path, tmp_path: Path) -> None:
    path = write(tmp_path, suite({"name": "a"}, {"name": "b"}, metrics=["params"]))
    out = tmp_path / "run.json"
    assert main(["run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out), "-q", "--batch-size", "2"]) == 0
    data = json.loads(out.read_text())
    data["complete"], data["records"] = False, data["records"][:1]
    out.write_text(json.dumps(data))
    assert main(["run", "--resume", str(out), "--plugins-dir", str(plugin_dir), "--batch-size", "4"]) == 2
    changed = yaml.safe_load(path.read_text())
    changed["benchmarks"][1]["args"] = {"how": "none", "seconds": 1.0}
    path.write_text(yaml.safe_dump(changed))
    assert main(["run", str(path), "--resume", str(out), "--plugins-dir", str(plugin_dir)]) == 2
    assert main(["run", "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 0
    done = json.loads(out.read_text())
    assert [r["batch_size"] for r in done["records"]] == [2, 2]  # the replayed --batch-size


def test_resuming_with_another_suite_or_a_changed_one_says_which(plugin_dir: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """One check, where the run starts, names what is wrong with the suite given beside --resume (the
    other suite's case used to be refused as a file not to overwrite, with "delete it first")."""
    path = write(tmp_path, suite({"name": "a"}, {"name": "b"}, metrics=["params"]))
    out = tmp_path / "run.json"
    assert main(["run", str(path), "--plugins-dir", str(plugin_dir), "--json", str(out), "-q", "--no-history"]) == 0
    data = json.loads(out.read_text())
    data["complete"], data["records"] = False, data["records"][:1]
    out.write_text(json.dumps(data))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**suite({"name": "a"}, metrics=["params"]), "name": "another"}))
    capsys.readouterr()
    assert main(["run", str(other), "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--resume: the run file holds a run of suite 'faults', and {other} is suite 'another'" in err
    assert "delete it" not in err
    path.write_text(path.read_text().replace("name: b", "name: c"))
    assert main(["run", str(path), "--resume", str(out), "--plugins-dir", str(plugin_dir), "-q"]) == 2
    assert f"--resume: {path} has changed since the run was made; resume with the run file alone" in capsys.readouterr().err
    assert json.loads(out.read_text()) == data  # refused before anything was written


def test_run_file_paths_that_must_not_be_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"defaults": {"device": "cpu", "metrics": ["params"]},
                            "benchmarks": [{"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}}]})
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    assert main(["run", str(path), "--json", str(path)]) == 2
    assert main(["run", str(path), "--json", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "is also one of this command's inputs" in err and "is not a benchbench run file of suite" in err
    assert "refusing to overwrite it" in err
    assert notes.read_text() == "precious" and "benchmarks" in path.read_text()
    ours = tmp_path / "ours.json"
    assert main(["run", str(path), "--json", str(ours), "-q", "--no-history"]) == 0
    assert main(["run", str(path), "--json", str(ours), "-q", "--no-history"]) == 0  # a rerun replaces its own run
    other = tmp_path / "other.yaml"
    other.write_text(path.read_text().replace("benchmarks:", "name: other\nbenchmarks:", 1))
    before = ours.read_text()
    assert main(["run", str(other), "--json", str(ours), "-q", "--no-history"]) == 2  # another suite's run stays
    err = capsys.readouterr().err
    assert "is not a benchbench run file of suite 'other'; refusing to overwrite it (it holds a run of suite" in err
    assert ours.read_text() == before


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"options": "device=cpu"}, "key 'options' must be dict"),
        ({"complete": "false"}, "key 'complete' must be bool"),
        ({"records": [{"benchmark": "a"}]}, "record 'a' has no valid 'status'"),
        ({"records": [["a"]]}, "record #1 needs a 'benchmark' name"),
    ],
)
def test_malformed_run_files_are_usage_errors(tmp_path: Path, change: dict, expected: str) -> None:
    from benchbench.errors import UsageError
    from benchbench.results import RunResult

    data = {"suite": "s", "records": [], "complete": False, **change}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        RunResult.read_json(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UsageError, match="not a readable JSON run file"):
        RunResult.read_json(path)


def test_timeout_bounds_and_the_yaml_exponent_trap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("defaults: {timeout: 1e3}\nbenchmarks:\n  - model: conv\n")
    assert main(["run", str(path)]) == 2
    assert "YAML reads '1e3' as text: write it as 1000 or 1.0e+3" in capsys.readouterr().err
    assert main(["run", str(path), "--timeout", "1e10"]) == 2
    assert "at most 1e+07" in capsys.readouterr().err


def test_deadline_keeps_an_outer_alarm() -> None:
    import time

    from benchbench.deadline import deadline

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with deadline(5):
            pass
        time.sleep(0.6)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_dry_run_uses_the_batch_and_sees_errors_of_operators_in_model_code(plugin_dir: Path, plugins: PluginFiles) -> None:
    plugins.write("nets", """
        import torch, benchbench
        class Flat(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(400, 10)
            def forward(self, x):
                return self.fc(x.view(-1, 400))
        class Norm(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
            def forward(self, x):
                return self.net(x)
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('flat', Flat, input_shape=(16, 5, 5))
            register('norm', Norm, input_shape=(4,))
    """, folder=plugin_dir)
    with pytest.raises(SuiteError, match=r"model 'flat' cannot run .* 'input_shape' \[3, 5, 5\]: RuntimeError"):
        benchbench.run_suite({"defaults": {"device": "cpu", "metrics": ["params"]},
                              "benchmarks": [{"model": "flat", "input_shape": [3, 5, 5]}]}, plugins_dir=plugin_dir, quiet=True)
    [record] = benchbench.run_suite({"defaults": {"device": "cpu", "metrics": ["params"], "batch_size": 8},
                                     "benchmarks": [{"model": "norm", "mode": "train"}]}, plugins_dir=plugin_dir, quiet=True).records
    assert record["status"] == "ok"
