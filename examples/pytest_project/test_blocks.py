"""Cost tests: the block must stay small and cheap next to the 3x3 convolution it replaces."""

import torch
from torch import nn

from blocks import SeparableConv


def test_separable_conv_costs(benchbench):
    x = torch.randn(8, 64, 32, 32)
    benchbench(nn.Conv2d(64, 64, 3, padding=1, bias=False), x, name="conv3x3", metrics=["params", "flops"])
    r = benchbench(SeparableConv(64), x, metrics=["params", "flops", "latency"])
    assert r.params < 50_000
    assert r.flops_ratio_to("conv3x3") < 0.2
    assert r.latency_ms > 0


def test_separable_conv_keeps_the_shape(benchbench):
    r = benchbench(SeparableConv(32), torch.randn(4, 32, 16, 16), metrics=["params"])
    assert r.output_shape == [32, 16, 16]
    assert r.params == 32 * 9 + 32 * 32 + 2 * 32  # depthwise, pointwise, BatchNorm's weight and bias
