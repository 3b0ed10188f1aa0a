"""``cuda_kernels``: the GPU's work items per step, counted exactly (needs a CUDA GPU; its CPU-side
validation is tested in test_instructions.py)."""

from __future__ import annotations

import pytest

import benchbench
from benchbench.compare import compare_runs
from tests.helpers import PluginFiles

MODEL = """\
import torch

import benchbench


class ConvThen(torch.nn.Module):
    \"\"\"A conv, then optionally a ReLU (its own kernel) and a channels-last copy (another).\"\"\"

    def __init__(self, relu: bool = False, copy: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.relu, self.copy = relu, copy

    def forward(self, x):
        x = self.conv(x)
        if self.relu:
            x = torch.relu(x)
        if self.copy:
            x = x.permute(0, 2, 3, 1).contiguous()
        return x


@benchbench.hookimpl
def benchbench_register_models(register):
    register("conv_then", ConvThen, family="test", input_shape=(8, 16, 16))
"""


@pytest.mark.cuda
def test_kernels_per_step_are_counted_exactly_and_an_extra_op_shows(plugins: PluginFiles) -> None:
    plugin = plugins.write("conv_then", MODEL)
    suite = {
        "name": "kernels",
        "defaults": {"device": "cuda", "batch_size": 4, "metrics": ["cuda_kernels"]},
        "benchmarks": [{"name": "plain", "model": "conv_then"},
                       {"name": "relu", "model": "conv_then", "args": {"relu": True}},
                       {"name": "relu_copy", "model": "conv_then", "args": {"relu": True, "copy": True}}],
    }
    runs = [benchbench.run_suite(suite, plugins=[str(plugin)], quiet=True) for _ in range(2)]
    first = {r["benchmark"]: r for r in runs[0].records}
    assert all(r["status"] == "ok" for r in first.values()), [r["error"] for r in first.values()]
    plain, relu, copy = (first[n]["cuda_kernels"] for n in ("plain", "relu", "relu_copy"))
    assert plain >= 1 and relu == plain + 1 and copy == relu + 1  # each extra op is one more kernel, exactly
    assert sum(first["plain"]["cuda_kernel_names"].values()) == plain
    assert "compute capability" in first["plain"]["cuda_kernels_gpu"] and "cuDNN" in first["plain"]["cuda_kernels_software"]
    comparison = compare_runs(runs[0], runs[1])
    assert {r.verdict.verdict for r in comparison.rows} == {"unchanged"} and comparison.exit_code == 0
    assert {r.threshold for r in comparison.rows} == {0.0}
