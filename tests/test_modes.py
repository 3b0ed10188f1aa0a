"""How PyTorch runs a step: torch.compile, autocast, TF32 and cuDNN flags, CUDA graphs (benchbench/modes.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import benchbench
from benchbench import derived, modes, peak, timing
from benchbench.cli import main
from benchbench.errors import ExitCode
from benchbench.manager import PluginManager
from benchbench.spec import BenchmarkSpec
from tests.helpers import TINY_LATENCY, PluginFiles

PROBES = """
    import torch
    import benchbench

    SEEN = []

    class Probe(torch.nn.Module):
        \"\"\"A linear layer that notes the dtype its output has (autocast changes it).\"\"\"

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)

        def forward(self, x):
            y = self.linear(x)
            if y.device.type != "meta":
                SEEN.append(str(y.dtype))
            return y

    class Branchy(torch.nn.Module):
        \"\"\"Data-dependent control flow: a graph break, fatal under compile: {fullgraph: true}.\"\"\"

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 8)

        def forward(self, x):
            if x.sum().item() > 0:
                return self.linear(x)
            return -self.linear(x)

    @benchbench.hookimpl
    def benchbench_register_models(register):
        register("probe", Probe, input_shape=(8,))
        register("branchy", Branchy, input_shape=(8,))
"""


def suite(*benchmarks: dict, **defaults: object) -> dict:
    return {"name": "modes", "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["params", "latency"],
                                          "metric_options": {"latency": dict(TINY_LATENCY)}, **defaults},
            "benchmarks": list(benchmarks)}


@pytest.fixture
def probes(plugins: PluginFiles) -> Path:
    plugins.write("probes", PROBES)
    return plugins.path


def test_compile_is_timed_apart_and_watched_for_breaks_and_recompiles(probes: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    conv = {"model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1}, "input_shape": [4, 8, 8]}
    data = suite({"name": "eager", **conv}, {"name": "compiled", **conv, "compile": True, "baseline": "eager"},
                 {"name": "strict", "model": "branchy", "compile": {"fullgraph": True}},
                 {"name": "restless", "model": "probe", "compile": True})
    run = benchbench.run_suite(data, plugins_dir=probes, quiet=True)
    eager, compiled, strict, restless = run.records
    assert eager["status"] == compiled["status"] == "ok" and eager["compile"] is None and compiled["compile"] == {}
    assert compiled["compile_time_s"] > 0 and compiled["graph_breaks"] == 0 and compiled["recompilations"] == 0
    assert compiled["latency_ms"] > 0 and "compile_time_s" in run.fields and "compile_time_s" not in eager
    # the compile fields are modes.py's: what the record holds, the columns, what no metric may overwrite
    assert [f for f in compiled if f in modes.COMPILE_FIELDS] == list(modes.COMPILE_FIELDS) == run.fields[-3:]
    assert set(modes.COMPILE_FIELDS) <= set(benchbench.results.RESERVED_FIELDS)
    # a model whose guards change on every call (it appends to a global list) recompiles while timed
    assert restless["status"] == "ok" and restless["recompilations"] > 0
    assert any("recompiled" in w and "those timings include compiling" in w for w in restless["warnings"])
    # a model that cannot be compiled fails with the compiler's reason; the others are kept
    assert strict["status"] == "failed"
    assert strict["error"].startswith("compiling the model (torch.compile) and running its first step raised")
    text = benchbench.reporters.render_table(run, {})
    assert "compile" in text.splitlines()[3] or "compile" in text  # the column that tells the rows apart


def test_autocast_runs_every_step_in_the_lower_precision_and_is_recorded(probes: Path) -> None:
    from benchbench.manager import PluginManager

    manager = PluginManager(plugins_dir=probes)
    seen = manager.pm.get_plugin("probes").SEEN
    run = benchbench.run_suite(suite({"name": "bf16", "model": "probe", "autocast": "bfloat16"}), manager=manager, quiet=True)
    [bf16] = run.records
    assert (bf16["autocast"], bf16["dtype"], bf16["status"]) == ("bfloat16", "float32", "ok")
    assert set(seen) == {"torch.bfloat16"}  # every step ran under autocast; the weights stay float32
    seen.clear()
    benchbench.run_suite(suite({"name": "fp32", "model": "probe"}), manager=manager, quiet=True)
    assert set(seen) == {"torch.float32"}


def test_precision_flags_apply_to_one_benchmark_and_are_put_back() -> None:
    before = modes.effective_flags()
    spec = BenchmarkSpec(name="x", model="conv", tf32=not before["tf32_matmul"], cudnn_benchmark=not before["cudnn_benchmark"])
    with modes.precision_flags(spec, torch.device("cpu")) as flags:
        assert flags["tf32_matmul"] is spec.tf32 and flags["tf32_cudnn"] is spec.tf32
        assert flags["cudnn_benchmark"] is spec.cudnn_benchmark and "no effect on the CPU" in flags["note"]
        assert flags["float32_matmul_precision"] == ("high" if spec.tf32 else "highest")
    assert modes.effective_flags() == before


def test_settings_are_recorded_in_each_record_and_the_environment(tmp_path: Path) -> None:
    data = suite({"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}, "input_shape": [3, 4, 4],
                  "tf32": False, "cudnn_benchmark": True}, metrics=["params"])
    run = benchbench.run_suite(data, quiet=True)
    [record] = run.records
    assert (record["tf32"], record["cudnn_benchmark"], record["cuda_graphs"]) == (False, True, False)
    assert record["backend_flags"]["tf32_matmul"] is False and record["backend_flags"]["cudnn_benchmark"] is True
    for key in ("float32_matmul_precision", "tf32_matmul", "tf32_cudnn", "cudnn_benchmark", "deterministic"):
        assert key in run.environment["backend_flags"]


@pytest.mark.parametrize("keys, expected", [
    ({"cuda_graphs": True, "device": "cpu"}, "a CUDA graph needs a CUDA device"),
    ({"cuda_graphs": True, "device": "auto", "mode": "train"}, "only mode: eval is captured"),
    ({"compile": {"mode": "max-autotun"}}, "(did you mean 'max-autotune'?)"),
    ({"compile": {"fullgrph": True}}, "unknown option 'fullgrph' (did you mean 'fullgraph'?)"),
    ({"autocast": "bf16"}, "must be none, bfloat16 or float16, got 'bf16'"),
    ({"tf32": "yes"}, "must be true or false"),
])
def test_modes_that_cannot_work_are_bad_input(keys: dict, expected: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite({"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1},
                                          **keys})))
    assert main(["run", str(path), "--json", str(tmp_path / "r.json"), "--no-history", "-q"]) == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the CPU-only machine")
def test_cuda_graphs_with_device_auto_is_skipped_without_a_gpu() -> None:
    data = suite({"name": "graphed", "model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1},
                  "input_shape": [3, 4, 4], "cuda_graphs": True}, device="auto")
    [record] = benchbench.run_suite(data, quiet=True).records
    assert record["status"] == "skipped" and "needs a CUDA GPU" in record["error"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the CPU-only machine")
def test_train_mode_without_a_floating_output_says_so(plugins: PluginFiles) -> None:
    """Train mode backpropagates from the sum of the floating outputs; a model with none (an argmax)
    fails with that reason, not with "'int' object has no attribute 'backward'"."""
    plugins.write("argmax", """
        import torch, benchbench
        class ArgMax(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(4, 3)
            def forward(self, x):
                return self.lin(x).argmax(dim=-1)
        @benchbench.hookimpl
        def benchbench_register_models(register):
            register('argmax', ArgMax, input_shape=(4,))
    """)
    run = benchbench.run_suite({"defaults": {"device": "cpu", "mode": "train"}, "benchmarks": [{"model": "argmax", "metrics": ["params"]}]},
                               plugins_dir=plugins.path, quiet=True)
    [record] = run.records
    assert record["status"] == "failed"
    assert "train mode needs a floating-point output to backpropagate from, got Tensor" in record["error"]


def test_a_remote_executor_resolves_auto_where_the_job_runs_and_skips_cuda_graphs_there(plugins: PluginFiles) -> None:
    """``device: auto`` reaches a remote executor as given; where the job runs (here, standing for
    a CPU-only node) the same rules as inline decide the device and skip a CUDA graph without a GPU
    (which a node used to try to capture, and fail)."""
    plugins.write("remote", """
        import benchbench
        SEEN = []
        class Remote:
            remote = True
            def run(self, jobs, session):
                for job in jobs:
                    SEEN.append(job.device)
                    session.started(job)
                    yield job, session.run_here(job)
        @benchbench.hookimpl
        def benchbench_register_executors(register):
            register("remote", Remote)
    """)
    conv = {"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}, "input_shape": [3, 4, 4]}
    data = suite({"name": "graphed", **conv, "cuda_graphs": True}, {"name": "eager", **conv}, device="auto", metrics=["params"])
    manager = PluginManager(plugins_dir=plugins.path)
    graphed, eager = benchbench.run_suite(data, manager=manager, executor="remote", quiet=True).records
    assert manager.pm.get_plugin("remote").SEEN == ["auto", "auto"]
    assert graphed["status"] == "skipped" and graphed["error"] == "cuda_graphs: true needs a CUDA GPU, and device auto found none"
    assert eager["status"] == "ok" and graphed["device"] == eager["device"] == "cpu"


def test_one_rule_says_whether_cuda_graphs_without_a_gpu_is_an_error_or_a_skip() -> None:
    assert not modes.cuda_graphs_without_gpu("cpu").skip  # the suite asks for the CPU: an error in the suite
    assert modes.cuda_graphs_without_gpu("auto", "cpu").skip  # auto found no GPU here: skipped
    assert modes.cuda_graphs_without_gpu("auto") is None and modes.cuda_graphs_without_gpu("auto", "cuda") is None


def test_a_sweep_compares_modes_in_one_table() -> None:
    data = suite({"model": "conv", "args": {"in_channels": 3, "out_channels": 4, "kernel_size": 1}, "input_shape": [3, 4, 4],
                  "sweep": {"autocast": ["none", "bfloat16"]}}, metrics=["params"])
    names = [r["benchmark"] for r in benchbench.run_suite(data, quiet=True).records]
    assert names == ["conv[autocast=none]", "conv[autocast=bfloat16]"]


def test_compile_watch_counts_what_dynamo_compiled_after_it_started() -> None:
    from torch._dynamo.utils import counters

    watch = modes.CompileWatch()
    counters["frames"]["ok"] += 2
    try:
        assert watch.compiled_frames() == 2
    finally:
        counters["frames"]["ok"] -= 2


def test_the_fraction_of_peak_uses_the_precision_the_benchmark_ran_in() -> None:
    peaks = {"cuda:0": {"matmul_flops": 50e12, "matmul_flops_by_precision": {"float32": 50e12, "tf32": 400e12, "bfloat16": 800e12}}}
    conv = {"flops": 1e9, "latency_ms": 1.0, "batch_size": 1, "device": "cuda:0", "flops_by_operator": {"conv": 1e9},
            "backend_flags": {"tf32_cudnn": True, "tf32_matmul": False}}
    assert derived.precision_of(conv) == "tf32"
    assert derived.benchbench_derive_fields(conv, {"peaks": peaks})["peak_fraction"] == pytest.approx(2e12 / 400e12)
    assert derived.precision_of({**conv, "flops_by_operator": {"linear": 1}}) == "float32"  # matmuls: TF32 off
    assert derived.precision_of({**conv, "autocast": "bfloat16"}) == "bfloat16"
    assert derived.precision_of({**conv, "device": "cpu"}) == "float32"
    assert peak.peak_for({"matmul_flops": 1.0}, "tf32") == 1.0  # a cache from before: the float32 peak


def test_peak_measures_each_precision_of_the_cpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(peak.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(timing.OtherWork, "cores_busy", lambda self: 0.0)  # a quiet CPU: the peak is cached
    entry = peak.measure("cpu", kernels=[peak.matmul(64)], copy_bytes=1 << 20, seconds=0.02)
    assert set(entry["flops_by_precision"]) == {"float32", "bfloat16"}
    assert entry["flops"] == entry["flops_by_precision"]["float32"] > 0
    assert json.loads((tmp_path / "peak.json").read_text())


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_graphs_replay_the_step_and_time_it_without_launch_gaps() -> None:
    data = suite({"name": "eager", "model": "inverted_residual", "args": {"in_channels": 32, "out_channels": 32},
                  "input_shape": [32, 16, 16]},
                 {"name": "graphed", "model": "inverted_residual", "args": {"in_channels": 32, "out_channels": 32},
                  "input_shape": [32, 16, 16], "cuda_graphs": True, "baseline": "eager"},
                 device="cuda", batch_size=8, metrics=["params", "latency", "memory"])
    eager, graphed = benchbench.run_suite(data, quiet=True).records
    assert eager["status"] == graphed["status"] == "ok" and graphed["cuda_graphs"] is True
    assert graphed["latency_ms"] <= eager["latency_ms"] * 1.05  # launch overhead gone (or already hidden)


@pytest.mark.cuda
def test_cuda_modes_compile_autocast_and_tf32() -> None:
    data = suite({"name": "eager", "model": "conv", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "padding": 1},
                  "input_shape": [64, 32, 32], "tf32": True},
                 {"name": "fp16", "model": "conv", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "padding": 1},
                  "input_shape": [64, 32, 32], "autocast": "float16"},
                 {"name": "compiled", "model": "conv", "args": {"in_channels": 64, "out_channels": 64, "kernel_size": 3, "padding": 1},
                  "input_shape": [64, 32, 32], "compile": True},
                 device="cuda", batch_size=8)
    records = benchbench.run_suite(data, quiet=True).records
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
    assert records[0]["backend_flags"]["tf32_cudnn"] is True and records[2]["compile_time_s"] > 0


@pytest.mark.cuda
def test_a_launch_bound_noisy_step_suggests_cuda_graphs() -> None:
    from benchbench.metrics import latency

    noisy = {"latency_samples_ms": [0.05, 0.05, 0.2, 0.2] * 4, "latency_kernel_ms": 0.01, "latency_noise_threshold": 0.1}
    [warning] = latency.merge_rounds([{**noisy, "batch_size": 1}])["warnings"]
    assert "launch-bound" in warning and "cuda_graphs: true" in warning


def test_the_modes_rules_and_fields_load_without_torch() -> None:
    """Suite validation and the run file's fields read modes.py: importing it must not import torch."""
    import subprocess
    import sys

    probe = "import sys, benchbench.modes, benchbench.results; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"
