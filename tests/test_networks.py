"""Whole networks (plugins/networks.py, plugins/torchvision_models.py): params and shapes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from benchbench.manager import PluginManager
from benchbench.registry import ModelEntry

MODELS = PluginManager().registry.table(ModelEntry)


def build(name: str, *, meta: bool = False, **args: Any) -> nn.Module:
    if meta:  # shapes without storage: big networks cost nothing
        with torch.device("meta"):
            return MODELS[name].factory(**args)
    return MODELS[name].factory(**args)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "params"),
    [("resnet18", 11_689_512), ("resnet50", 25_557_032), ("vgg16", 138_357_544), ("mobilenet_v2", 3_504_872),
     ("efficientnet_b0", 5_288_548), ("densenet121", 7_978_856)],
)
def test_torchvision_models_match_torchvision(name: str, params: int) -> None:
    import torchvision

    assert n_params(build(name, meta=True)) == params
    with torch.device("meta"):
        assert n_params(torchvision.models.get_model(name, weights=None)) == params
    entry = MODELS[name]
    assert (entry.family, entry.plugin, entry.input_shape) == ("torchvision", "torchvision_models", (3, 224, 224))


def test_every_torchvision_classifier_is_registered() -> None:
    import torchvision

    names = set(torchvision.models.list_models(module=torchvision.models))
    assert names <= set(MODELS) and len(names) > 50
    assert MODELS["inception_v3"].input_shape == (3, 299, 299)
    assert n_params(build("resnet18", meta=True, num_classes=10)) == 11_689_512 - 1000 * 513 + 10 * 513


def test_fc_classifier_on_a_224_image_exercise_8_3() -> None:
    model = build("fc_classifier", meta=True)
    assert n_params(model) == 224 * 224 * 3 * 1000 + 1000 == 150_529_000


@pytest.mark.parametrize(("depth", "params"), [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)])
def test_cifar_resnets_match_he_et_al(depth: int, params: int) -> None:
    post, pre = build("cifar_resnet", depth=depth), build("cifar_resnet", depth=depth, preact=True)
    assert n_params(post) == n_params(pre) == params  # the paper: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M
    x = torch.randn(2, 3, 32, 32)
    assert post(x).shape == pre(x).shape == (2, 10)
    convs = [m for m in post.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth - 1  # + the linear layer = depth weighted layers; option A shortcuts have none


def test_cifar_resnet_rejects_other_depths() -> None:
    with pytest.raises(ValueError, match="depth must be 6n\\+2"):
        build("cifar_resnet", depth=21)


def test_preactivation_blocks_put_bn_relu_before_the_convolutions() -> None:
    block = build("cifar_resnet", depth=20, preact=True).blocks[0]
    x = torch.randn(1, 16, 8, 8)
    block.eval()
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()  # both convolutions output zero: a pre-activation block is then the identity
        assert torch.equal(block(x), x)
        post = build("cifar_resnet", depth=20).blocks[0].eval()
        for p in post.parameters():
            p.zero_()
        assert torch.equal(post(x), torch.relu(x))  # post-activation: a ReLU after the addition


@pytest.mark.parametrize(
    ("name", "args", "x", "out"),
    [
        ("simple_cnn", {"in_channels": 1, "num_classes": 10}, torch.randn(2, 1, 8, 8), (2, 10)),
        ("simple_cnn", {}, torch.randn(2, 3, 32, 32), (2, 10)),
        ("textcnn", {"vocab_size": 50, "embed_dim": 8, "num_filters": 4}, torch.randint(0, 50, (2, 16)), (2, 2)),
        ("bag_of_embeddings", {"vocab_size": 50, "embed_dim": 8}, torch.randint(0, 50, (2, 16)), (2, 2)),
        ("temporal_cnn", {"in_channels": 3, "num_classes": 5}, torch.randn(2, 3, 64), (2, 5)),
        ("series_mlp", {"in_channels": 3, "length": 64, "num_classes": 5}, torch.randn(2, 3, 64), (2, 5)),
        ("series_linear", {"in_channels": 3, "num_classes": 5}, torch.randn(2, 3, 64), (2, 5)),
        ("downscale_transposed", {"width": 8}, torch.randn(2, 6, 16, 16), (2, 1, 64, 64)),
        ("downscale_pixel_shuffle", {"width": 8}, torch.randn(2, 6, 16, 16), (2, 1, 64, 64)),
    ],
)
def test_hand_built_network_shapes(name: str, args: dict[str, Any], x: torch.Tensor, out: tuple[int, ...]) -> None:
    model = build(name, **args).eval()
    with torch.no_grad():
        assert model(x).shape == out
    assert MODELS[name].description and MODELS[name].factory.__doc__


def test_textcnn_and_bag_of_embeddings_parameters() -> None:
    textcnn = build("textcnn", vocab_size=20000, embed_dim=128, kernel_sizes=[2, 3, 4, 5], num_filters=128, num_classes=2)
    convs = sum(128 * 128 * k + 128 for k in (2, 3, 4, 5))
    assert n_params(textcnn) == 20000 * 128 + convs + (4 * 128) * 2 + 2
    bag = build("bag_of_embeddings", vocab_size=20000, embed_dim=128, num_classes=2)
    assert n_params(bag) == 20000 * 128 + 128 * 2 + 2


def test_bag_of_embeddings_ignores_padding_and_order() -> None:
    bag = build("bag_of_embeddings", vocab_size=20, embed_dim=4).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(bag(tokens), bag(torch.tensor([[7, 5, 6]])))


def test_pixel_shuffle_downscaler_has_no_transposed_convolutions() -> None:
    shuffle, transposed = build("downscale_pixel_shuffle"), build("downscale_transposed")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in shuffle.modules())
    assert sum(isinstance(m, nn.PixelShuffle) for m in shuffle.modules()) == 2
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in transposed.modules()) == 2


def test_text_models_get_token_inputs_from_their_args() -> None:
    import benchbench

    run = benchbench.run_suite(
        {"defaults": {"device": "cpu", "metrics": ["params", "flops"], "batch_size": 2},
         "benchmarks": [{"model": "textcnn", "args": {"vocab_size": 30, "embed_dim": 4, "num_filters": 2}, "input_shape": [12]}]},
        quiet=True,
    )
    [record] = run.records
    assert record["status"] == "ok", record["error"]
    assert record["output_shape"] == [2]
