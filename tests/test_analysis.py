"""Analysis metrics and from-scratch convolution (plugins/analysis_*.py): small cases, known answers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import benchbench
from benchbench_plugins.analysis_models import Im2colConv2d, NaiveConv2d, conv2d_backward


def run(*benchmarks: dict[str, Any], **defaults: Any) -> list[dict[str, Any]]:
    records = benchbench.run_suite({"defaults": {"device": "cpu", "batch_size": 2, **defaults}, "benchmarks": list(benchmarks)}, quiet=True).records
    for record in records:
        assert record["status"] == "ok", record["error"]
    return records


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"kernel_sizes": [3, 3, 3]}, 7),
        ({"kernel_sizes": [3, 3, 3], "strides": [2, 2, 1]}, 15),
        ({"kernel_sizes": [3, 3, 3], "dilations": [1, 2, 4]}, 15),
        ({"kernel_sizes": [3, 3, 3], "pool_after": [0, 1]}, 18),  # 3 + 1 (pool) + 2*2 + 1*2 (pool) + 2*4
        ({"kernel_sizes": [5]}, 5),
    ],
)
def test_receptive_field_measured_and_analytic(args: dict[str, Any], expected: int) -> None:
    [record] = run({"model": "conv_stack", "args": args, "metrics": ["receptive_field"]})
    assert record["receptive_field"] == record["receptive_field_theory"] == expected
    assert not record["warnings"]


def test_receptive_field_warns_when_the_input_is_too_small() -> None:
    [record] = run({"model": "conv_stack", "args": {"kernel_sizes": [3] * 10}, "input_shape": [1, 9, 9], "metrics": ["receptive_field"]})
    assert record["receptive_field"] == 9 and record["receptive_field_theory"] == 21
    assert any("reaches the input's border" in w for w in record["warnings"])


class _IgnoresInput(torch.nn.Module):
    """A map made of its own parameter: the output does not depend on the input."""

    def __init__(self) -> None:
        super().__init__()
        self.map = torch.nn.Parameter(torch.zeros(1, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.map.expand(x.shape[0], 1, 4, 4) * 1.0


class _Flat(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@pytest.mark.parametrize(("model", "message"), [
    (_IgnoresInput(), "receptive_field: the model's output does not depend on its input"),
    (_Flat(), r"receptive_field needs an output map \(N, C, H, W\), got shape \[3, 48\]"),
])
def test_receptive_field_of_a_model_it_cannot_measure_says_why(model: torch.nn.Module, message: str) -> None:
    from types import SimpleNamespace

    from benchbench_plugins.analysis_metrics import receptive_field

    ctx = SimpleNamespace(model=model, benchmark=SimpleNamespace(input_shape=[3, 4, 4]), options={"trials": 3},
                          warn=lambda text: None)
    with pytest.raises(ValueError, match=message):
        receptive_field(ctx)


def test_no_analytic_value_for_networks_that_are_not_a_chain() -> None:
    [record] = run({"model": "bottleneck", "args": {"in_channels": 8, "out_channels": 8}, "input_shape": [8, 16, 16],
                    "metrics": ["receptive_field"]})
    assert record["receptive_field"] == 3 and record["receptive_field_theory"] is None  # 1x1, 3x3, 1x1 + shortcut


def test_gradient_flow_vanishes_without_residuals() -> None:
    plain, residual = run(
        {"name": "plain", "model": "deep_cnn", "args": {"depth": 30}},
        {"name": "residual", "model": "deep_cnn", "args": {"depth": 30, "residual": True}},
        metrics=["gradient_flow"],
    )
    assert plain["grad_norm_ratio"] < 1e-3 < 0.5 < residual["grad_norm_ratio"]
    assert len(plain["grad_norms"]) == 30 and plain["grad_norms"][-1] == plain["grad_norm_last"]


def test_the_gradient_flow_plot_labels_its_log_axis_in_plain_text() -> None:
    pytest.importorskip("matplotlib")
    from benchbench.results import RunResult

    run = RunResult(suite="s", records=[{"benchmark": "b", "status": "ok", "grad_norms": [1e-6, 1e-3, 1.0]}])
    figure = run.plot("gradient_flow")  # as the report draws it: mathtext off, names drawn literally
    figure.canvas.draw()  # tick labels get their text when drawn
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert ticks and not any("$" in t for t in ticks), ticks


@pytest.mark.parametrize(
    ("bench", "equivariant"),
    [
        ({"model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1}, "input_shape": [4, 24, 24]}, True),
        ({"model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1, "stride": 2},
          "input_shape": [4, 24, 24]}, False),
        ({"model": "pooling", "args": {"kind": "max"}}, False),
        ({"model": "pooling", "args": {"kind": "global_avg"}}, True),
        ({"model": "batch_norm", "mode": "train"}, True),
        ({"model": "batch_norm"}, True),
    ],
    ids=["conv", "strided-conv", "max-pool", "global-avg-pool", "bn-train", "bn-eval"],
)
def test_shift_equivariance(bench: dict[str, Any], equivariant: bool) -> None:
    [record] = run({**bench, "metrics": ["equivariance"]})
    if equivariant:
        assert record["equivariance_error"] < 1e-5
    else:
        assert record["equivariance_error"] > 0.1


CASES = [
    dict(stride=s, padding=p, dilation=d, kernel_size=k)
    for s, p, d, k in itertools.product([1, 2], [0, 1], [1, 2], [1, 3])
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k[0]}{v}" for k, v in c.items()))
def test_from_scratch_convolutions_match_f_conv2d(case: dict[str, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 10)
    for cls in (Im2colConv2d, NaiveConv2d):
        conv = cls(3, 5, **case)
        expected = F.conv2d(x, conv.weight, conv.bias, stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
        assert torch.allclose(conv(x), expected, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k[0]}{v}" for k, v in c.items()))
def test_hand_derived_conv_gradients_match_autograd(case: dict[str, int]) -> None:
    torch.manual_seed(1)
    k = case.pop("kernel_size")
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, k, k, dtype=torch.float64, requires_grad=True)
    y = F.conv2d(x, w, **case)
    grad = torch.randn_like(y)
    y.backward(grad)
    grad_input, grad_weight = conv2d_backward(x.detach(), w.detach(), grad, **case)
    assert torch.allclose(grad_input, x.grad, atol=1e-10)
    assert torch.allclose(grad_weight, w.grad, atol=1e-10)


def test_from_scratch_convs_have_convs_parameters() -> None:
    reference = torch.nn.Conv2d(16, 8, 3, padding=1)
    for cls in (Im2colConv2d, NaiveConv2d):
        conv = cls(16, 8, 3, padding=1)
        assert {k: v.shape for k, v in conv.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


def test_backward_check_metric_on_layers_with_inplace_relu() -> None:
    records = run(
        {"name": "conv", "model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1},
         "input_shape": [4, 8, 8]},
        {"name": "bottleneck", "model": "bottleneck", "args": {"in_channels": 8, "out_channels": 16, "stride": 2}, "input_shape": [8, 8, 8]},
        {"name": "im2col", "model": "im2col_conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3}, "input_shape": [4, 8, 8]},
        metrics=["backward_check"],
    )
    assert [r["backward_layers"] for r in records] == [1, 4, 1]
    assert all(r["backward_max_error"] < 1e-10 for r in records)


def test_checkerboard_tells_uneven_from_even_upsampling() -> None:
    uneven, even, divisible = run(
        {"name": "uneven", "model": "downscale_transposed", "args": {"width": 8}},
        {"name": "even", "model": "downscale_pixel_shuffle", "args": {"width": 8}},
        {"name": "divisible", "model": "transposed", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 4, "stride": 2, "padding": 1}},
        metrics=["checkerboard"],
    )
    assert uneven["checkerboard"] > 0.1
    assert even["checkerboard"] < 1e-9 and divisible["checkerboard"] < 1e-9  # kernel 4, stride 2: even overlap
