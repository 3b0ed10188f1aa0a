"""The ray executor (plugins/ray_executor.py) on a local Ray instance.

Marked ``ray``: they run in the main test command when Ray is installed (the dev extra
has it) and are skipped otherwise. One Ray instance serves the module (starting Ray
takes seconds); the suites are small so the whole module stays within a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import benchbench
from tests.tools import require_tool

require_tool("ray", module=True)  # skips without Ray, fails where BENCHBENCH_REQUIRE_TOOLS requires it
import ray  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # slow: one local Ray instance for the module, 15 s to over a minute

SWEEP = {
    "name": "sweep",
    "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["params", "flops"]},
    "benchmarks": [
        {"model": "conv", "args": {"in_channels": 4, "padding": 1},
         "sweep": {"args.out_channels": [4, 8, 16], "args.kernel_size": [1, 3, 5]}},
        {"model": "depthwise_separable", "args": {"in_channels": 8, "out_channels": 8, "padding": 1},
         "sweep": {"args.kernel_size": [3, 5]}},
    ],
}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # address="local": a new instance even when RAY_ADDRESS is set or `ray start` recorded a
    # cluster on this machine (ray.init() would join that one, and refuse num_cpus).
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_gives_the_same_params_and_flops_as_inline_in_suite_order() -> None:
    inline = benchbench.run_suite(SWEEP, quiet=True)
    remote = benchbench.run_suite(SWEEP, executor="ray", quiet=True)
    assert [r["benchmark"] for r in remote.records] == [r["benchmark"] for r in inline.records]
    assert len(remote.records) == 11 and remote.records[0]["benchmark"] == "conv[out_channels=4,kernel_size=1]"
    for a, b in zip(inline.records, remote.records):
        assert (a["params"], a["flops"], a["output_shape"]) == (b["params"], b["flops"], b["output_shape"])
        assert b["status"] == "ok" and b["host"]


def test_ray_measures_latency_for_every_benchmark_and_records_failures(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "import os, torch, benchbench\n"
        "class Dies(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        if x.device.type != 'meta':\n"
        "            os._exit(3)\n"
        "        return x\n"
        "class Raises(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('broken on purpose')\n"
        "@benchbench.hookimpl\n"
        "def benchbench_register_models(register):\n"
        "    register('dies', Dies, input_shape=(4,))\n"
        "    register('raises', Raises, input_shape=(4,))\n"
    )
    data = {
        "defaults": {"device": "cpu", "metrics": ["params", "latency"],
                     "metric_options": {"latency": {"warmup_s": 0.0, "min_run_time_s": 0.02, "min_runs": 3}}},
        "benchmarks": [
            {"name": "a", "model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3}, "input_shape": [4, 8, 8]},
            {"name": "raises", "model": "raises"},
            {"name": "dies", "model": "dies"},
            {"name": "b", "model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 1}, "input_shape": [4, 8, 8]},
        ],
    }
    out = tmp_path / "run.json"
    run = benchbench.run_suite(data, executor="ray", plugins_dir=tmp_path, out=out, quiet=True)
    a, raises, dies, b = run.records
    assert a["latency_ms"] > 0 and b["latency_ms"] > 0 and a["latency_runs"] >= 3
    assert raises["status"] == "failed" and "broken on purpose" in raises["error"]
    assert dies["status"] == "failed" and "Ray task failed" in dies["error"]
    assert run.complete and out.exists()


def test_timed_jobs_ask_for_whole_devices() -> None:
    from benchbench.executors import Job
    from benchbench.spec import BenchmarkSpec
    from benchbench_plugins.ray_executor import _resources

    spec = BenchmarkSpec(name="x", model="conv", threads=2)
    assert _resources(Job(0, 1, spec, "s", "cpu"), True, 16, False) == (2, 0)
    assert _resources(Job(0, 1, spec, "s", "cuda"), True, 16, True) == (1, 1)
    assert _resources(Job(0, 1, spec, "s", "cuda"), False, 16, True) == (1, 0.1)
    assert _resources(Job(0, 1, spec, "s", "auto"), True, 16, True) == (1, 1)
    assert _resources(Job(0, 1, spec, "s", "cpu"), False, 16, False) == (1, 0)
