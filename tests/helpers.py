"""Test helpers: fake installed distributions and tiny plugins written to tmp folders."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

TINY_MODEL_PLUGIN = '''
import torch
import benchbench


class Scale(torch.nn.Module):
    """Multiplies by a learnable scalar; `work` repeats the op to make it slower."""

    def __init__(self, features: int = 4, work: int = 1) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, features)
        self.work = work

    def forward(self, x):
        for _ in range(self.work):
            x = self.linear(x)
        return x


class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("this model always fails")


@benchbench.hookimpl
def benchbench_register_models(register):
    register("{prefix}scale", Scale, family="toy", input_shape=(4,), description="a tiny linear model")
    register("{prefix}broken", Broken, family="toy", input_shape=(4,), description="raises in forward")
'''


def write_plugin(folder: Path, module: str, prefix: str = "") -> Path:
    """A plugin module registering ``<prefix>scale`` and ``<prefix>broken``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(TINY_MODEL_PLUGIN.replace("{prefix}", prefix))
    return path


def fake_distribution(site: Path, dist: str, entry_points: dict[str, str], version: str = "1.0") -> None:
    """Make ``site`` look like site-packages holding distribution ``dist`` with entry points."""
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(textwrap.dedent(f"[benchbench]\n{lines}\n"))


TINY_LATENCY = {"warmup_s": 0.0, "min_run_time_s": 0.01, "min_runs": 3, "min_block_s": 0.001}


def tiny_suite(**defaults: object) -> dict[str, object]:
    """A two-benchmark suite of small layers that runs in well under a second."""
    return {
        "name": "tiny",
        "defaults": {
            "device": "cpu",
            "batch_size": 2,
            "metric_options": {"latency": dict(TINY_LATENCY)},
            **defaults,
        },
        "benchmarks": [
            {"name": "std", "model": "conv", "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1}, "input_shape": [8, 8, 8]},
            {
                "name": "sep",
                "model": "depthwise_separable",
                "args": {"in_channels": 8, "out_channels": 8, "kernel_size": 3, "padding": 1},
                "input_shape": [8, 8, 8],
                "baseline": "std",
            },
        ],
    }


def require_tool(name: str, why: str) -> str:
    """The path of a tool a test needs; skips without it, except where ``BENCHBENCH_REQUIRE_TOOLS``
    is set (``.ci/run`` installs the tools, so there a missing one is a failure, not a skip)."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("BENCHBENCH_REQUIRE_TOOLS", "") not in ("", "0"):
            pytest.fail(f"{name} is required here (BENCHBENCH_REQUIRE_TOOLS is set) but not installed: {why}")
        pytest.skip(f"needs {name} ({why})")
    return path
