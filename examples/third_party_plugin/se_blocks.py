"""An example third-party benchbench plugin: a squeeze-and-excitation block.

Nothing here is special to first-party code: one hook, one ``register`` call.
"""

from __future__ import annotations

import torch
from torch import nn

import benchbench


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): global pool, bottleneck MLP, channel gates."""

    def __init__(self, channels: int = 64, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


@benchbench.hookimpl
def benchbench_register_models(register):
    register(
        "squeeze_excite",
        SqueezeExcite,
        family="attention",
        input_shape=lambda args: (args.get("channels", 64), 32, 32),
        description="Squeeze-and-excitation channel gating (Hu et al., 2018)",
    )
