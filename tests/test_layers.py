"""The first-party layer models (plugins/layers.py): shapes, exact parameter counts, wiring.

Numbers marked "exercise 8.x" come from the CNN chapter the first suites answer
(/work/shared/reference/cnn-chapter-exercises.txt).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from torch import nn

from benchbench.registry import ModelEntry
from benchbench_plugins import layers

EXPECTED = {
    "conv": ("standard", ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")),
    "depthwise_separable": ("depthwise-separable", ("in_channels", "out_channels", "kernel_size", "stride", "padding", "bias")),
    "dilated": ("dilated", ("in_channels", "out_channels", "kernel_size", "dilation", "stride", "padding", "bias")),
    "bottleneck": ("bottleneck", ("in_channels", "mid_channels", "out_channels", "stride")),
    "inverted_residual": ("inverted-residual", ("in_channels", "out_channels", "expansion", "stride")),
    "transposed": ("transposed", ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "bias")),
    "pixel_shuffle": ("pixel-shuffle", ("in_channels", "out_channels", "upscale_factor", "kernel_size")),
}
INPUT_SIDE = {"transposed": 16, "pixel_shuffle": 16}  # the others: 32


def _collect() -> dict[str, dict[str, Any]]:
    """Call the plugin's hook with a fake ``register`` that records every call."""
    seen: dict[str, dict[str, Any]] = {}

    def register(name, factory, *, family=None, input_shape=None, description=None, **meta):
        assert name not in seen, f"{name} registered twice"
        seen[name] = dict(factory=factory, family=family, input_shape=input_shape, description=description, meta=meta)

    layers.benchbench_register_models(register)
    return seen


MODELS = _collect()


def build(name: str, **args: Any) -> nn.Module:
    return MODELS[name]["factory"](**args)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def out_shape(module: nn.Module, *shape: int) -> tuple[int, ...]:
    module.eval()
    with torch.no_grad():
        return tuple(module(torch.randn(2, *shape)).shape[1:])


# --------------------------------------------------------------------------- registration


def test_registers_exactly_the_seven_layers_with_metadata() -> None:
    assert set(MODELS) == set(EXPECTED)
    for name, entry in MODELS.items():
        assert entry["family"] == EXPECTED[name][0]
        assert isinstance(entry["description"], str) and entry["description"].strip()
        assert "\n" not in entry["description"]
        side = INPUT_SIDE.get(name, 32)
        assert tuple(entry["input_shape"]({"in_channels": 7, "out_channels": 5})) == (7, side, side)
        assert entry["factory"].__doc__, f"{name}: factory needs a docstring saying why it exists"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signature_accepts_documented_args(name: str) -> None:
    params = inspect.signature(MODELS[name]["factory"]).parameters
    assert set(EXPECTED[name][1]) <= set(params)
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()), "no **kwargs catch-all"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("conv", dict(in_channels=4, out_channels=6, kernel_size=3, padding=1)),
        ("depthwise_separable", dict(in_channels=4, out_channels=6, kernel_size=3, padding=1)),
        ("dilated", dict(in_channels=4, out_channels=6, kernel_size=3, dilation=2)),
        ("bottleneck", dict(in_channels=8, out_channels=8)),
        ("inverted_residual", dict(in_channels=4, out_channels=4)),
        ("transposed", dict(in_channels=4, out_channels=6, kernel_size=4, stride=2, padding=1)),
        ("pixel_shuffle", dict(in_channels=4, out_channels=3, upscale_factor=2)),
    ],
)
def test_default_input_shape_runs(name: str, args: dict[str, Any]) -> None:
    model = build(name, **args)
    assert isinstance(model, nn.Module)
    shape = tuple(MODELS[name]["input_shape"](args))
    assert len(out_shape(model, *shape)) == 3


def test_registry_through_real_registrar() -> None:
    from benchbench.registry import Registry

    registry = Registry()
    layers.benchbench_register_models(registry.registrar(ModelEntry, "layers"))
    assert set(registry.table(ModelEntry)) == set(EXPECTED)
    assert registry.get(ModelEntry, "bottleneck").family == "bottleneck"


def test_loaded_through_entry_point() -> None:
    from benchbench.manager import PluginManager

    models = PluginManager().registry.table(ModelEntry)
    for name, (family, _) in EXPECTED.items():
        assert models[name].plugin == "layers"
        assert models[name].family == family


# --------------------------------------------------------------------------- conv (exercises 8.2, 8.3)


def test_conv_7x7_stride2_exercise() -> None:
    conv = build("conv", in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=3)
    assert isinstance(conv, nn.Conv2d)
    assert n_params(conv) == 9_472
    assert out_shape(conv, 3, 224, 224) == (64, 112, 112)


@pytest.mark.parametrize(
    ("args", "params"),
    [
        (dict(in_channels=64, out_channels=128, kernel_size=3, padding=1), 73_856),
        (dict(in_channels=256, out_channels=256, kernel_size=3, padding=1, groups=256), 2_560),
        (dict(in_channels=256, out_channels=512, kernel_size=1), 131_584),
    ],
)
def test_conv_params_exercise(args: dict[str, Any], params: int) -> None:
    assert n_params(build("conv", **args)) == params


@pytest.mark.parametrize(("side", "stride", "padding", "expected"), [(32, 1, 1, 32), (56, 2, 1, 28)])
def test_conv_output_sizes_exercise(side: int, stride: int, padding: int, expected: int) -> None:
    conv = build("conv", in_channels=3, out_channels=8, kernel_size=3, stride=stride, padding=padding)
    assert out_shape(conv, 3, side, side) == (8, expected, expected)


# --------------------------------------------------------------------------- depthwise separable


def test_depthwise_separable_params_and_structure() -> None:
    model = build("depthwise_separable", in_channels=512, out_channels=512, kernel_size=3, padding=1)
    assert n_params(model) == (512 * 9 + 512) + (512 * 512 + 512)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.groups, c.kernel_size) for c in convs] == [(512, (3, 3)), (1, (1, 1))]
    assert [m for m in model.modules() if not isinstance(m, nn.Conv2d)] == [model]  # nothing in between


def test_depthwise_separable_shape_and_stride() -> None:
    model = build("depthwise_separable", in_channels=8, out_channels=16, kernel_size=3, stride=2, padding=1)
    assert out_shape(model, 8, 32, 32) == (16, 16, 16)
    no_bias = build("depthwise_separable", in_channels=8, out_channels=16, kernel_size=3, bias=False)
    assert n_params(no_bias) == 8 * 9 + 8 * 16


def test_depthwise_separable_flop_ratio_exercise_8_19() -> None:
    fvcore = pytest.importorskip("fvcore.nn")
    c, k = 64, 3
    args = dict(in_channels=c, out_channels=c, kernel_size=k, padding=1)
    x = torch.randn(1, c, 8, 8)
    flops = {
        name: fvcore.FlopCountAnalysis(build(name, **args).eval(), x).unsupported_ops_warnings(False).total()
        for name in ("conv", "depthwise_separable")
    }
    assert flops["depthwise_separable"] / flops["conv"] == pytest.approx(1 / c + 1 / k**2, rel=1e-12)


# --------------------------------------------------------------------------- dilated


@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_dilated_keeps_size_by_default(kernel_size: int, dilation: int) -> None:
    model = build("dilated", in_channels=4, out_channels=6, kernel_size=kernel_size, dilation=dilation)
    assert model.dilation == (dilation, dilation)
    assert model.padding == (dilation * (kernel_size - 1) // 2,) * 2
    assert out_shape(model, 4, 32, 32) == (6, 32, 32)
    assert n_params(model) == 4 * 6 * kernel_size**2 + 6  # dilation adds no parameters


def test_dilated_with_stride_and_explicit_padding() -> None:
    strided = build("dilated", in_channels=4, out_channels=4, kernel_size=3, dilation=2, stride=2)
    assert out_shape(strided, 4, 32, 32) == (4, 16, 16)
    unpadded = build("dilated", in_channels=4, out_channels=4, kernel_size=3, dilation=2, padding=0)
    assert out_shape(unpadded, 4, 32, 32) == (4, 28, 28)


# --------------------------------------------------------------------------- bottleneck (exercise 8.6)


def _conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def test_bottleneck_512_exercise_8_6() -> None:
    block = build("bottleneck", in_channels=512, mid_channels=128, out_channels=512)
    assert _conv_weights(block) == 278_528  # 512·128 + 128·128·9 + 128·512
    assert isinstance(block.shortcut, nn.Identity)
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in block.modules()) == 3
    assert out_shape(block, 512, 8, 8) == (512, 8, 8)


def test_bottleneck_mid_channels_default_is_a_quarter() -> None:
    assert _conv_weights(build("bottleneck", in_channels=512, out_channels=512)) == 278_528


@pytest.mark.parametrize(("in_channels", "stride"), [(256, 1), (512, 2)])
def test_bottleneck_projection_shortcut(in_channels: int, stride: int) -> None:
    block = build("bottleneck", in_channels=in_channels, out_channels=512, stride=stride)
    convs = [m for m in block.shortcut.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (1, 1) and convs[0].stride == (stride, stride)
    assert any(isinstance(m, nn.BatchNorm2d) for m in block.shortcut.modules())
    assert _conv_weights(block) == in_channels * 128 + 128 * 128 * 9 + 128 * 512 + in_channels * 512
    strides = [m.stride for m in block.branch.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [(1, 1), (stride, stride), (1, 1)]  # stride on the 3x3 (ResNet v1.5)
    assert out_shape(block, in_channels, 8, 8) == (512, 8 // stride, 8 // stride)


# --------------------------------------------------------------------------- inverted residual


def _zero_last_bn(block: nn.Module) -> None:
    bn = [m for m in block.branch.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    with torch.no_grad():
        bn.weight.zero_()
        bn.bias.zero_()


def test_inverted_residual_with_shortcut() -> None:
    block = build("inverted_residual", in_channels=16, out_channels=16)
    assert block.use_shortcut
    _zero_last_bn(block)
    block.eval()
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        assert torch.equal(block(x), x)


@pytest.mark.parametrize(("in_channels", "out_channels", "stride"), [(16, 24, 1), (16, 16, 2)])
def test_inverted_residual_without_shortcut(in_channels: int, out_channels: int, stride: int) -> None:
    block = build("inverted_residual", in_channels=in_channels, out_channels=out_channels, stride=stride)
    assert not block.use_shortcut
    assert out_shape(block, in_channels, 32, 32) == (out_channels, 32 // stride, 32 // stride)
    _zero_last_bn(block)
    with torch.no_grad():
        assert not block(torch.randn(2, in_channels, 32, 32)).any()


def test_inverted_residual_structure() -> None:
    block = build("inverted_residual", in_channels=16, out_channels=24, expansion=6, stride=2)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.groups) for c in convs] == [
        (16, 96, (1, 1), (1, 1), 1),
        (96, 96, (3, 3), (2, 2), 96),
        (96, 24, (1, 1), (1, 1), 1),
    ]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.ReLU6) for m in block.modules()) == 2  # linear bottleneck: none after project
    assert n_params(block) == 16 * 96 + 96 * 9 + 96 * 24 + 2 * (96 + 96 + 24)


def test_inverted_residual_expansion_one_skips_expand() -> None:
    block = build("inverted_residual", in_channels=32, out_channels=16, expansion=1)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.groups) for c in convs] == [((3, 3), 32), ((1, 1), 1)]
    assert out_shape(block, 32, 8, 8) == (16, 8, 8)


# --------------------------------------------------------------------------- upsampling (exercise 8.28)


def test_transposed_4x_upsampling() -> None:
    model = build("transposed", in_channels=64, out_channels=64, kernel_size=8, stride=4, padding=2)
    assert isinstance(model, nn.ConvTranspose2d)
    assert out_shape(model, 64, 16, 16) == (64, 64, 64)
    assert n_params(model) == 64 * 64 * 8 * 8 + 64


def test_transposed_output_padding() -> None:
    model = build("transposed", in_channels=4, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1)
    assert out_shape(model, 4, 16, 16) == (2, 32, 32)


def test_pixel_shuffle_4x_upsampling() -> None:
    model = build("pixel_shuffle", in_channels=64, out_channels=1, upscale_factor=4)
    assert out_shape(model, 64, 16, 16) == (1, 64, 64)
    assert n_params(model) == 64 * 16 * 9 + 16
    wide = build("pixel_shuffle", in_channels=6, out_channels=8, upscale_factor=4, kernel_size=5)
    assert out_shape(wide, 6, 16, 16) == (8, 64, 64)
    assert n_params(wide) == 6 * 8 * 16 * 25 + 8 * 16
