"""A plugin for the regression benchmarks: a layer whose amount of work is an argument.

``scaled_work(work=20)`` applies the same 3x3 convolution ``work`` times, so ``work=22``
is a 10% slowdown of ``work=20`` and ``work=18`` a 10% speedup, with the same code path.
Used by ``benchmarks/regression_detection.py`` (``-p benchmarks/scaled_work.py``).
"""

from __future__ import annotations

import torch
from torch import nn

import benchbench


class ScaledWork(nn.Module):
    """One 3x3 convolution applied ``work`` times (its cost scales linearly with ``work``)."""

    def __init__(self, channels: int = 16, work: int = 20) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.work = work

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.work):
            x = self.conv(x)
        return x


@benchbench.hookimpl
def benchbench_register_models(register):
    register(
        "scaled_work", ScaledWork, family="test",
        input_shape=lambda args: (args.get("channels", 16), 16, 16),
        description="a 3x3 conv applied `work` times: injected slowdowns for regression tests",
    )
