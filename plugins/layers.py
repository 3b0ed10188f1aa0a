"""First-party layer models: the convolution families that a CNN course compares.

Written only against benchbench's public plugin API, exactly as a third-party plugin
would be, and loaded through the ``benchbench`` entry-point group (``layers``).
Every model takes torch-style keyword arguments, so a suite's ``args:`` mapping reads
like the PyTorch call it stands for::

    - model: depthwise_separable
      args: {in_channels: 512, out_channels: 512, kernel_size: 3, padding: 1}

Registered names: ``conv``, ``depthwise_separable``, ``dilated``, ``bottleneck``,
``inverted_residual``, ``transposed``, ``pixel_shuffle``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

import benchbench

__all__ = [
    "Bottleneck",
    "DepthwiseSeparableConv2d",
    "DilatedConv2d",
    "InvertedResidual",
    "PixelShuffleUpsample",
    "StandardConv2d",
    "TransposedConv2d",
    "benchbench_register_models",
]


class StandardConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d``: the baseline every efficient convolution is compared with.

    Exercises 8.2/8.3 (output sizes and parameter counts) and the standard side of
    8.19 (FLOPs and wall-clock of standard vs depthwise separable convolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=bias,
        )


class DepthwiseSeparableConv2d(nn.Module):
    """Depthwise k×k convolution (``groups=in_channels``) followed by a pointwise 1×1.

    The MobileNet factorisation of a standard convolution (exercise 8.19). Nothing sits
    between the two convolutions, so its FLOPs relative to ``StandardConv2d`` with the
    same arguments are exactly ``1/out_channels + 1/kernel_size**2``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, kernel_size, stride=stride, padding=padding,
            groups=in_channels, bias=bias,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class DilatedConv2d(nn.Conv2d):
    """An atrous ``nn.Conv2d``: a larger receptive field for the same parameters.

    Exercise 8.24 (stacking dilations 1, 2, 4 reaches a 15×15 receptive field). With
    ``padding=None`` (the default) the padding is ``dilation * (kernel_size - 1) // 2``,
    which keeps the spatial size for odd kernels at stride 1 and, unlike torch's
    ``padding="same"``, also works with a stride.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        dilation: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str | None = None,
        bias: bool = True,
    ) -> None:
        if padding is None:
            (kh, kw), (dh, dw) = _pair(kernel_size), _pair(dilation)
            padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, bias=bias,
        )


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1
) -> list[nn.Module]:
    """A bias-free convolution with 'same' padding and its BatchNorm (torchvision style)."""
    return [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
            groups=groups, bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck block: 1×1 reduce → 3×3 → 1×1 expand, plus a shortcut.

    As in torchvision (ResNet v1.5): bias-free convolutions each followed by BatchNorm,
    ReLU after the first two and after the addition, the stride on the 3×3, and a
    projection shortcut (1×1 conv + BN) only when the stride or the channel count
    changes. Exercise 8.6 compares it with a plain two-layer 3×3 residual block.
    ``mid_channels`` defaults to ``out_channels // 4`` (ResNet's expansion of 4).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        mid = mid_channels if mid_channels is not None else out_channels // 4
        self.branch = nn.Sequential(
            *_conv_bn(in_channels, mid, 1), nn.ReLU(inplace=True),
            *_conv_bn(mid, mid, 3, stride=stride), nn.ReLU(inplace=True),
            *_conv_bn(mid, out_channels, 1),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride=stride))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual block (exercise 8.20).

    1×1 expand (skipped when ``expansion == 1``) → BN → ReLU6 → 3×3 depthwise with the
    stride → BN → ReLU6 → 1×1 linear projection → BN. The shortcut is added only when
    ``stride == 1`` and ``in_channels == out_channels`` (``use_shortcut``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: int = 6,
        stride: int = 1,
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*_conv_bn(in_channels, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [
            *_conv_bn(hidden, hidden, 3, stride=stride, groups=hidden), nn.ReLU6(inplace=True),
            *_conv_bn(hidden, out_channels, 1),
        ]
        self.branch = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)
        return x + out if self.use_shortcut else out


class TransposedConv2d(nn.ConvTranspose2d):
    """A plain ``nn.ConvTranspose2d``: learned upsampling, as in encoder-decoders.

    The transposed-convolution side of exercise 8.28 (4× climate downscaling,
    16×16 → 64×64), compared with ``PixelShuffleUpsample``; prone to checkerboard
    artifacts when ``kernel_size`` is not a multiple of ``stride``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            output_padding=output_padding, bias=bias,
        )


class PixelShuffleUpsample(nn.Module):
    """Sub-pixel convolution (Shi et al., 2016): conv to ``out_channels·r²`` channels,
    then ``nn.PixelShuffle(r)`` rearranges them into an ``r``× larger map.

    The pixel-shuffle side of exercise 8.28, compared with ``TransposedConv2d``. The
    convolution uses padding ``kernel_size // 2``, so the output is
    ``(out_channels, r·H, r·W)`` for odd kernels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        upscale_factor: int,
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels * upscale_factor**2, kernel_size,
            padding=kernel_size // 2, bias=bias,
        )
        self.shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


def _square_input(size: int) -> Callable[[dict[str, Any]], Sequence[int]]:
    """Default per-sample input: ``(in_channels, size, size)`` from the suite's args."""
    return lambda args: (args["in_channels"], size, size)


# name, factory, family, default input side, description
MODELS: tuple[tuple[str, Callable[..., nn.Module], str, int, str], ...] = (
    ("conv", StandardConv2d, "standard", 32, "Standard nn.Conv2d (the baseline)"),
    ("depthwise_separable", DepthwiseSeparableConv2d, "depthwise-separable", 32,
     "Depthwise k×k then pointwise 1×1 convolution (MobileNet)"),
    ("dilated", DilatedConv2d, "dilated", 32,
     "Dilated (atrous) nn.Conv2d, 'same' padding by default"),
    ("bottleneck", Bottleneck, "bottleneck", 32,
     "ResNet-50 bottleneck: 1×1 → 3×3 → 1×1 with BN, ReLU and shortcut"),
    ("inverted_residual", InvertedResidual, "inverted-residual", 32,
     "MobileNetV2 block: 1×1 expand → 3×3 depthwise → 1×1 linear project"),
    ("transposed", TransposedConv2d, "transposed", 16,
     "nn.ConvTranspose2d learned upsampling"),
    ("pixel_shuffle", PixelShuffleUpsample, "pixel-shuffle", 16,
     "Sub-pixel upsampling: conv to C·r² channels then nn.PixelShuffle(r)"),
)


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    for name, factory, family, side, description in MODELS:
        register(name, factory, family=family, input_shape=_square_input(side), description=description)
