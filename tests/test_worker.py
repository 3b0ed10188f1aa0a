"""The worker process (benchbench/worker.py) on its own: one job in, one record out, atomically."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

from benchbench import worker
from benchbench.executors import _death, _last_words
from benchbench.job import Job, JobRunner
from benchbench.spec import BenchmarkSpec


def job(**spec: object) -> Job:
    fields = {"name": "w", "model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1},
              "input_shape": (3, 8, 8), "device": "cpu", "metrics": ("params", "flops"), **spec}
    return Job(0, 1, BenchmarkSpec(**fields), "s", "cpu")


def test_a_worker_writes_its_record_and_says_when_it_was_ready(tmp_path: Path) -> None:
    request, result = tmp_path / "job.pickle", tmp_path / "record.json"
    request.write_bytes(pickle.dumps({"plugins": {"plugins": [], "plugins_dir": None, "autoload": None}, "job": job()}))
    done = subprocess.run([sys.executable, "-m", "benchbench.worker", str(request), str(result)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(result.read_text())
    assert record["status"] == "ok" and record["params"] == 3 * 4 + 4 and record["benchmark"] == "w"
    assert (tmp_path / "ready").exists() and not list(tmp_path.glob("*.tmp"))


def test_one_job_runner_per_plugin_configuration() -> None:
    config = {"plugins": [], "plugins_dir": None, "autoload": None}
    job_runner = worker.job_runner_for(config)
    assert isinstance(job_runner, JobRunner) and worker.job_runner_for(dict(config)) is job_runner
    record = worker.jsonable_record(job_runner, job(metrics=("params",)))
    json.dumps(record)  # plain JSON, ready to send back
    assert record["params"] == 16


def test_the_names_of_0_1_0_still_work_for_executor_plugins() -> None:
    """An executor plugin written against 0.1.0 called ``worker.runner_for`` and ``worker.run_job``."""
    config = {"plugins": [], "plugins_dir": None, "autoload": None}
    assert worker.runner_for(config) is worker.job_runner_for(config)
    assert worker.run_job(worker.runner_for(config), job(metrics=("params",)))["params"] == 16


def test_a_dead_worker_is_described_in_words() -> None:
    assert _death(-11, ["Fatal Python error: Segmentation fault", '  File "model.py", line 3 in forward'])\
        .startswith("its process died from a segmentation fault; Fatal Python error: Segmentation fault at File")
    assert "often the kernel's out-of-memory killer" in _death(-9, [])
    assert _death(3, ["a", "last words"]) == "its process exited with code 3 without a result; last output: last words"
    assert _last_words(["", "only line"]) == "last output: only line"
