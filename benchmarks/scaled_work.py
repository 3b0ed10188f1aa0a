"""A plugin for the regression benchmarks: a layer whose amount of work changes without its args.

``scaled_work`` applies the same 3x3 convolution ``work`` times. The count comes from the
environment variable ``BENCHBENCH_SCALED_WORK`` when it is set (else from the ``work``
argument), so two runs with the same suite and args can differ in the *code's* cost, the
way a real regression does: ``BENCHBENCH_SCALED_WORK=22`` is a 10% slowdown of 20, 18 a
10% speedup. ``benchbench compare`` sees the same args on both sides and compares them.
Used by ``benchmarks/regression_detection.py`` (``-p benchmarks/scaled_work.py``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

import benchbench

WORK_ENV = "BENCHBENCH_SCALED_WORK"


class ScaledWork(nn.Module):
    """One 3x3 convolution applied ``work`` times (its cost scales linearly with ``work``)."""

    def __init__(self, channels: int = 16, work: int = 20) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.work = int(os.environ.get(WORK_ENV, work))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.work):
            x = self.conv(x)
        return x


@benchbench.hookimpl
def benchbench_register_models(register):
    register(
        "scaled_work", ScaledWork, family="test",
        input_shape=lambda args: (args.get("channels", 16), 16, 16),
        description=f"a 3x3 conv applied `work` times (${WORK_ENV} wins): injected slowdowns for regression tests",
    )
