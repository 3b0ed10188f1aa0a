"""First-party models for analysis: stacks with known receptive fields, deep plain and
residual networks, single operations, and convolution written from scratch.

Registered names: ``conv_stack``, ``deep_cnn``, ``pooling``, ``batch_norm``,
``im2col_conv``, ``naive_conv``. The from-scratch convolutions take the same arguments
and hold the same parameters as ``conv`` (``nn.Conv2d``), so one table shows what the
implementation alone costs; :func:`conv2d_backward` derives a convolution's gradients by
hand (exercise 8.x: the input gradient is a full convolution with the flipped kernel, the
weight gradient a correlation of the input with the upstream gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import benchbench


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


# --------------------------------------------------------------------------- stacks


class ConvStack(nn.Module):
    """A chain of 3x3-style convolutions (exercise 8.24: how far does a stack see?).

    ``kernel_sizes``, ``strides`` and ``dilations`` are per layer (strides and dilations
    default to 1); each convolution pads ``dilation * (kernel - 1) // 2`` and is followed
    by a ReLU, and by a 2x2 max-pool when its index (0-based) is in ``pool_after``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 8,
        kernel_sizes: Sequence[int] = (3, 3, 3),
        strides: Sequence[int] | None = None,
        dilations: Sequence[int] | None = None,
        pool_after: Sequence[int] = (),
    ) -> None:
        super().__init__()
        n = len(kernel_sizes)
        strides = list(strides) if strides is not None else [1] * n
        dilations = list(dilations) if dilations is not None else [1] * n
        if len(strides) != n or len(dilations) != n:
            raise ValueError(f"kernel_sizes, strides and dilations need one value per layer, got {n}, {len(strides)}, {len(dilations)}")
        if any(i < 0 or i >= n for i in pool_after):
            raise ValueError(f"pool_after holds layer indices 0..{n - 1}, got {list(pool_after)}")
        layers: list[nn.Module] = []
        previous = in_channels
        for i, (k, s, d) in enumerate(zip(kernel_sizes, strides, dilations)):
            layers += [nn.Conv2d(previous, channels, k, stride=s, dilation=d, padding=d * (k - 1) // 2), nn.ReLU()]
            if i in pool_after:
                layers.append(nn.MaxPool2d(2))
            previous = channels
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeepCNN(nn.Module):
    """``depth`` blocks of conv3x3-(BatchNorm)-ReLU at constant width between a stem and a
    classifier, plain or residual (``x + block(x)``): exercise 8.13's vanishing gradient.
    The blocks are ``self.blocks``, which the ``gradient_flow`` metric watches."""

    def __init__(self, depth: int = 20, channels: int = 16, residual: bool = False, batch_norm: bool = False,
                 in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.residual = residual
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm),
                *([nn.BatchNorm2d(channels)] if batch_norm else []),
                nn.ReLU(),
            )
            for _ in range(depth)
        )
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x) if self.residual else block(x)
        return self.head(x.mean(dim=(2, 3)))


class Pooling(nn.Module):
    """One pooling operation: ``max`` or ``avg`` (``kernel_size``, ``stride``), or
    ``global_avg`` (the mean over the whole map): cases for the equivariance metric."""

    def __init__(self, kind: str = "max", kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        if kind not in ("max", "avg", "global_avg"):
            raise ValueError(f"kind must be max, avg or global_avg, got {kind!r}")
        self.kind, self.kernel_size, self.stride = kind, kernel_size, stride or kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "global_avg":
            return x.mean(dim=(2, 3))
        pool = F.max_pool2d if self.kind == "max" else F.avg_pool2d
        return pool(x, self.kernel_size, self.stride)


class BatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d``: batch statistics in train mode, running ones in eval mode."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__(channels)


# --------------------------------------------------------------------------- convolution from scratch


class _ScratchConv2d(nn.Module):
    """Parameters laid out exactly as ``nn.Conv2d`` (same initialisation, same counts)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, bias: bool = True) -> None:
        super().__init__()
        reference = nn.Conv2d(in_channels, out_channels, _pair(kernel_size), stride=_pair(stride), padding=_pair(padding),
                              dilation=_pair(dilation), bias=bias)
        self.weight = reference.weight
        self.bias = reference.bias
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        sizes = [
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, p, d, k, s in zip((height, width), self.padding, self.dilation, self.kernel_size, self.stride)
        ]
        return sizes[0], sizes[1]


def im2col(x: torch.Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
           dilation: tuple[int, int]) -> torch.Tensor:
    """Patches as columns: (N, C, H, W) -> (N, C*kh*kw, H_out*W_out), written out by hand
    (one strided slice per kernel offset) rather than with ``F.unfold``."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    padded = F.pad(x, (pw, pw, ph, ph))
    columns = [
        padded[:, :, i * dh : i * dh + sh * (h_out - 1) + 1 : sh, j * dw : j * dw + sw * (w_out - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return torch.stack(columns, dim=2).reshape(n, c * kh * kw, h_out * w_out)


class Im2colConv2d(_ScratchConv2d):
    """Convolution as im2col + one matrix multiplication (what GEMM-based libraries do,
    explicitly): the patch matrix costs kh*kw times the input's memory."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        h_out, w_out = self.output_size(h, w)
        columns = im2col(x, self.kernel_size, self.stride, self.padding, self.dilation)
        out = self.weight.reshape(self.weight.shape[0], -1) @ columns  # (O, C*k*k) @ (N, C*k*k, L)
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.reshape(n, -1, h_out, w_out)


class NaiveConv2d(_ScratchConv2d):
    """Convolution with a Python loop over output positions: each step multiplies one patch
    of every image by every filter. Correct, and slow: the reason for im2col and implicit GEMM."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        h_out, w_out = self.output_size(h, w)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        padded = F.pad(x, (pw, pw, ph, ph))
        out = x.new_empty(n, self.weight.shape[0], h_out, w_out)
        for y in range(h_out):
            for xx in range(w_out):
                patch = padded[:, :, y * sh : y * sh + dh * (kh - 1) + 1 : dh, xx * sw : xx * sw + dw * (kw - 1) + 1 : dw]
                out[:, :, y, xx] = torch.einsum("nchw,ochw->no", patch, self.weight)
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out


def conv2d_backward(
    x: torch.Tensor, weight: torch.Tensor, grad_output: torch.Tensor,
    stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of ``conv2d(x, weight)`` (groups 1), derived by hand.

    * input gradient: a *full* convolution of the upstream gradient with the kernel flipped
      in both spatial directions and its in/out channels swapped; with a stride, the
      upstream gradient first gets ``stride - 1`` zeros between its elements;
    * weight gradient: the correlation of the input with the upstream gradient, i.e. for
      each (out, in) channel pair the sum over the batch of input patches weighted by
      the gradient at each output position.
    """
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    # zero-insertion for the stride
    h_g, w_g = grad_output.shape[-2:]
    spread = grad_output.new_zeros(n, o, (h_g - 1) * sh + 1, (w_g - 1) * sw + 1)
    spread[:, :, ::sh, ::sw] = grad_output
    flipped = weight.flip(-1, -2).transpose(0, 1)  # (C, O, kh, kw)
    full_h, full_w = dh * (kh - 1), dw * (kw - 1)
    grad_input = F.conv2d(F.pad(spread, (full_w, full_w, full_h, full_h)), flipped, dilation=(dh, dw))
    # undo the forward padding, and pad the rows/columns the stride never reached
    grad_input = grad_input[:, :, ph : ph + h, pw : pw + w]
    grad_input = F.pad(grad_input, (0, w - grad_input.shape[-1], 0, h - grad_input.shape[-2]))
    # weight gradient: correlate each input channel with each output channel's gradient
    padded = F.pad(x, (pw, pw, ph, ph))
    grad_weight = weight.new_zeros(weight.shape)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i * dh : i * dh + sh * (h_g - 1) + 1 : sh, j * dw : j * dw + sw * (w_g - 1) + 1 : sw]
            grad_weight[:, :, i, j] = torch.einsum("nchw,nohw->oc", window, grad_output)
    return grad_input, grad_weight


# --------------------------------------------------------------------------- registration


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    image = lambda side: lambda a: (a.get("in_channels", 1), side, side)  # noqa: E731
    register("conv_stack", ConvStack, family="analysis", input_shape=image(64),
             description="Chain of convs with per-layer kernel sizes, strides, dilations, optional 2x2 max-pools")
    register("deep_cnn", DeepCNN, family="analysis", input_shape=lambda a: (a.get("in_channels", 3), 16, 16),
             description="depth x (conv3x3-[BN]-ReLU), plain or residual: vanishing gradients")
    register("pooling", Pooling, family="analysis", input_shape=(8, 32, 32),
             description="One max / average / global average pooling")
    register("batch_norm", BatchNorm, family="analysis", input_shape=lambda a: (a.get("channels", 8), 32, 32),
             description="nn.BatchNorm2d (batch statistics in train mode, running ones in eval)")
    register("im2col_conv", Im2colConv2d, family="from-scratch", input_shape=lambda a: (a["in_channels"], 32, 32),
             description="Conv2d as explicit im2col + matmul (same args and params as conv)")
    register("naive_conv", NaiveConv2d, family="from-scratch", input_shape=lambda a: (a["in_channels"], 32, 32),
             description="Conv2d with a Python loop over output positions (same args and params as conv)")


__all__ = ["ConvStack", "DeepCNN", "Im2colConv2d", "NaiveConv2d", "Pooling", "conv2d_backward", "im2col"]
