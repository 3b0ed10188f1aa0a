"""First-party whole networks: the ones CNN courses build by hand, and their baselines.

Written only against benchbench's public plugin API (``benchbench_register_models``),
loaded through the ``benchbench`` entry-point group (``networks``). Every network takes
torch-style keyword arguments and documents the exercise of the CNN chapter it answers.

Registered names: ``simple_cnn``, ``fc_classifier``, ``cifar_resnet``, ``textcnn``,
``bag_of_embeddings``, ``temporal_cnn``, ``series_mlp``, ``series_linear``,
``downscale_transposed``, ``downscale_pixel_shuffle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import benchbench

# --------------------------------------------------------------------------- images


class SimpleCNN(nn.Module):
    """A small CIFAR-style CNN (exercise 8.10): three blocks of conv3x3-BN-ReLU-maxpool
    (32, 64, 128 channels by default), global average pooling and a linear classifier.

    The global pooling makes it work on any image size (8x8 digits as well as 32x32 CIFAR).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, channels: Sequence[int] = (32, 64, 128), dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            previous = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(previous, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FCClassifier(nn.Module):
    """A single fully connected layer on the flattened image: the parameter-count baseline of
    exercise 8.8 (on a 224x224x3 image with 1,000 classes: 150,529,000 parameters)."""

    def __init__(self, in_channels: int = 3, image_size: int = 224, num_classes: int = 1000) -> None:
        super().__init__()
        self.linear = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class _BasicBlock(nn.Module):
    """A CIFAR ResNet block: two 3x3 convolutions, post- or pre-activation, with a
    parameter-free shortcut (option A of He et al., 2016: subsample, pad channels with zeros)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, preact: bool) -> None:
        super().__init__()
        self.preact = preact
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels if preact else out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride, self.extra = stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra:
            x = F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:  # He et al. 2016b: BN-ReLU-conv, nothing after the addition
            out = self.conv1(F.relu(self.bn1(x)))
            out = self.conv2(F.relu(self.bn2(out)))
            return out + self.shortcut(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The CIFAR ResNets of He et al. (2016): depth 6n+2 (20, 32, 44, 56, 110), three stages of
    n blocks at 16, 32 and 64 channels, global pooling and a linear classifier.

    ``preact=True`` uses pre-activation blocks (exercise 8.15 compares the two). ResNet-20
    has 0.27M parameters, ResNet-56 0.85M, ResNet-110 1.7M, as in the paper.
    """

    def __init__(self, depth: int = 20, preact: bool = False, num_classes: int = 10, in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stem_bn = None if preact else nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        channels = width
        for stage, out_channels in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(_BasicBlock(channels, out_channels, 2 if stage and i == 0 else 1, preact))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(channels) if preact else None
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if self.stem_bn is not None:
            x = F.relu(self.stem_bn(x))
        x = self.blocks(x)
        if self.final_bn is not None:
            x = F.relu(self.final_bn(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- text


class TextCNN(nn.Module):
    """TextCNN (Kim, 2014; exercise 8.16): embeddings, parallel 1D convolutions of several
    widths (n-gram detectors), max over time, dropout and a linear classifier."""

    def __init__(
        self,
        vocab_size: int = 20000,
        embed_dim: int = 128,
        kernel_sizes: Sequence[int] = (2, 3, 4, 5),
        num_filters: int = 128,
        num_classes: int = 2,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_filters * len(kernel_sizes), num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embedding(tokens).transpose(1, 2)  # (batch, embed, length)
        pooled = [F.relu(conv(x)).amax(dim=-1) for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


class BagOfEmbeddings(nn.Module):
    """The text baseline of exercise 8.16: the mean of the word embeddings (padding left
    out) and a linear classifier. Word order is invisible to it."""

    def __init__(self, vocab_size: int = 20000, embed_dim: int = 128, num_classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.fc = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        summed = (self.embedding(tokens) * mask).sum(dim=1)
        return self.fc(summed / mask.sum(dim=1).clamp(min=1))


def token_input(
    batch_size: int, input_shape: tuple[int, ...], device: torch.device, dtype: torch.dtype, args: dict[str, Any]
) -> torch.Tensor:
    """Random token ids (1 .. vocab_size-1) for timing text models without a dataset."""
    return torch.randint(1, args.get("vocab_size", 20000), (batch_size, *input_shape), device=device)


# --------------------------------------------------------------------------- series


class TemporalCNN(nn.Module):
    """A 1D CNN for multivariate series (exercise 8.18): blocks of conv-BN-ReLU (halving the
    length after each but the last), global average pooling over time, a linear classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5, channels: Sequence[int] = (32, 64, 128), kernel_size: int = 5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(channels):
            layers += [nn.Conv1d(previous, width, kernel_size, padding=kernel_size // 2, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool1d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=-1))


class SeriesMLP(nn.Module):
    """Baseline (ii) of exercise 8.18: an MLP on the flattened series (no notion of time)."""

    def __init__(self, in_channels: int = 3, length: int = 128, num_classes: int = 5, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * length, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SeriesLinear(nn.Module):
    """Baseline (i) of exercise 8.18: the global average of each input channel over time,
    then a linear classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=-1))


# --------------------------------------------------------------------------- downscaling


def _encoder(in_channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
    )


class DownscaleTransposed(nn.Module):
    """Exercise 8.28 (i): encoder at the coarse 16x16 resolution, then two transposed
    convolutions for the 4x upsampling to 64x64, and a 3x3 head.

    The transposed convolutions have kernel 3 and stride 2 (``padding=1,
    output_padding=1``), the common choice in encoder-decoders: as 3 is not a multiple of
    2, output pixels receive alternately one and two kernel taps (uneven overlap), the
    source of the checkerboard artifacts that ``DownscalePixelShuffle`` avoids.
    """

    def __init__(self, in_channels: int = 6, out_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.encoder = _encoder(in_channels, width)
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(width, width, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.upsample(self.encoder(x)))


class DownscalePixelShuffle(nn.Module):
    """Exercise 8.28 (ii): the same encoder, then sub-pixel convolution (Shi et al., 2016): a
    3x3 conv to width·r² channels and ``nn.PixelShuffle(r)``, twice with r=2, and a 3x3 head.
    Every output pixel comes from one input position: no uneven overlap, no checkerboard."""

    def __init__(self, in_channels: int = 6, out_channels: int = 1, width: int = 64) -> None:
        super().__init__()
        self.encoder = _encoder(in_channels, width)
        self.upsample = nn.Sequential(
            nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.upsample(self.encoder(x)))


# --------------------------------------------------------------------------- registration


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    image = lambda size: lambda a: (a.get("in_channels", 3), size, size)  # noqa: E731
    register("simple_cnn", SimpleCNN, family="network", input_shape=image(32),
             description="Small CIFAR-style CNN: 3x (conv3x3-BN-ReLU-maxpool), global pool, linear")
    register("fc_classifier", FCClassifier, family="network",
             input_shape=lambda a: (a.get("in_channels", 3), a.get("image_size", 224), a.get("image_size", 224)),
             description="One fully connected layer on the flattened image (the parameter baseline)")
    register("cifar_resnet", CifarResNet, family="network", input_shape=image(32),
             description="CIFAR ResNet-20/32/44/56/110 (He et al. 2016), post- or pre-activation (preact)")
    register("textcnn", TextCNN, family="network", input_shape=(256,), make_input=token_input,
             description="TextCNN (Kim 2014): embeddings, 1D convs of several widths, max over time")
    register("bag_of_embeddings", BagOfEmbeddings, family="network", input_shape=(256,), make_input=token_input,
             description="Mean of word embeddings + linear: the text baseline")
    register("temporal_cnn", TemporalCNN, family="network", input_shape=lambda a: (a.get("in_channels", 3), 128),
             description="1D CNN for multivariate series: conv-BN-ReLU blocks, global average, linear")
    register("series_mlp", SeriesMLP, family="network", input_shape=lambda a: (a.get("in_channels", 3), a.get("length", 128)),
             description="MLP on the flattened series (baseline)")
    register("series_linear", SeriesLinear, family="network", input_shape=lambda a: (a.get("in_channels", 3), 128),
             description="Global average over time + linear (baseline)")
    register("downscale_transposed", DownscaleTransposed, family="network", input_shape=lambda a: (a.get("in_channels", 6), 16, 16),
             description="4x downscaling 16x16x6 -> 64x64: encoder + 2 transposed convs (stride 2)")
    register("downscale_pixel_shuffle", DownscalePixelShuffle, family="network", input_shape=lambda a: (a.get("in_channels", 6), 16, 16),
             description="4x downscaling 16x16x6 -> 64x64: encoder + 2 sub-pixel convs (PixelShuffle)")
