"""First-party analysis metrics: properties of a design beyond its cost.

Written on the same ``benchbench_register_metrics`` hook as the built-in cost metrics,
to show it is a real extension point. Each works on any model with the right kind of
output, and measures a copy (the benchmarked model is left as it was):

* ``receptive_field``: how many input pixels one output unit sees, measured by
  back-propagating from the centre output unit (``receptive_field``), beside the
  analytic value from kernel sizes, strides and dilations (``receptive_field_theory``);
* ``gradient_flow``: the gradient norm of the loss at each block's output
  (``grad_norms``), and first over last (``grad_norm_ratio``): vanishing gradients, drawn
  as the report's ``gradient_flow`` plot (declared with the metric, as any plugin's);
* ``equivariance``: ``|f(shift(x)) - shift(f(x))| / |shift(f(x))|`` for a shift of the
  input, borders cropped (``equivariance_error``; invariance for outputs without a map);
* ``checkerboard``: the output's std / mean for a constant input through constant weights:
  the checkerboard an upsampling design makes by itself (uneven kernel overlap);
* ``backward_check``: every convolution's input and weight gradients derived by hand
  (:func:`analysis_models.conv2d_backward`) against autograd (``backward_max_error``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

import benchbench
from benchbench.context import MeasureContext

try:  # installed as benchbench_plugins; loaded with --plugins-dir as a neighbour file
    from benchbench_plugins.analysis_models import conv2d_backward
except ImportError:  # pragma: no cover
    from analysis_models import conv2d_backward

# --------------------------------------------------------------------------- receptive field


def receptive_field(ctx: MeasureContext) -> dict[str, Any]:
    """Support of the input gradient of the centre output unit, over several random inputs.

    The copy gets positive weights and zero biases and the inputs are positive, so every
    ReLU passes and no path cancels; a max-pool passes the gradient to one input per
    window, so the support is the union over ``trials`` random inputs.
    """
    model = _probe_copy(ctx.model, lambda weight: weight.abs() + 1e-3, lambda weight: weight)
    shape = tuple(ctx.benchmark.input_shape)
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(ctx.options["trials"], *shape, generator=generator, dtype=torch.float64) + 0.5).requires_grad_()
    chain = _LeafChain(model)
    with chain:
        out = model(x)
    if out.dim() != 4:
        raise ValueError(f"receptive_field needs an output map (N, C, H, W), got shape {list(out.shape)}")
    h, w = out.shape[-2:]
    out[:, :, h // 2, w // 2].sum().backward()
    if x.grad is None:
        raise ValueError("receptive_field: the model's output does not depend on its input")
    support = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(support.any(dim=1)).flatten(), torch.nonzero(support.any(dim=0)).flatten()
    side_h, side_w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
    if rows.min() == 0 or cols.min() == 0 or rows.max() == shape[-2] - 1 or cols.max() == shape[-1] - 1:
        ctx.warn(f"the receptive field reaches the input's border ({shape[-2]}x{shape[-1]}): give a larger input_shape to measure it")
    return {
        "receptive_field": max(side_h, side_w),
        "receptive_field_hw": [side_h, side_w],
        "receptive_field_theory": analytic_receptive_field(chain.leaves) if chain.is_chain else None,
    }


def _probe_copy(model: nn.Module, weights: Any, vectors: Any) -> nn.Module:
    """An eval-mode float64 copy with every bias zeroed, each weight of 2+ dimensions
    replaced by ``weights(weight)`` and each 1-dimensional one (norm scales) by
    ``vectors(weight)``: a model whose response shows its structure, not its training."""
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for module in probe.modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor):
                weight.copy_(weights(weight) if weight.dim() > 1 else vectors(weight))
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return probe


def analytic_receptive_field(layers: list[nn.Module]) -> int:
    """r = 1 + sum over layers of (k - 1) * dilation * (product of the earlier strides)."""
    field, jump = 1, 1
    for layer in layers:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)) or hasattr(layer, "kernel_size"):
            k = _first(layer.kernel_size)
            d = _first(getattr(layer, "dilation", 1))
            s = _first(getattr(layer, "stride", None) or k)
            field += (k - 1) * d * jump
            jump *= s
    return field


def _first(value: Any) -> int:
    return int(value[0]) if isinstance(value, (tuple, list)) else int(value)


class _LeafChain:
    """Records the leaf modules in the order they run, and whether each one's input is the
    previous one's output (a chain, for which the analytic formula holds)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.leaves: list[nn.Module] = []
        self.is_chain = True
        self._last: torch.Tensor | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> _LeafChain:
        for module in self.model.modules():
            if not list(module.children()):
                self._handles.append(module.register_forward_hook(self._record))
        return self

    def _record(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if self._last is not None and not (args and args[0] is self._last):
            self.is_chain = False
        self.leaves.append(module)
        self._last = output if isinstance(output, torch.Tensor) else None

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()


# --------------------------------------------------------------------------- gradient flow


def gradient_flow(ctx: MeasureContext) -> dict[str, Any]:
    """Gradient norms of the loss at each block's output, first block to last."""
    model = copy.deepcopy(ctx.model).train()
    container = getattr(model, ctx.options["module"], None)
    blocks = list(container) if isinstance(container, (nn.ModuleList, nn.Sequential)) else list(model.children())
    if not blocks:
        raise ValueError(f"gradient_flow found no blocks: the model has no {ctx.options['module']!r} and no children")
    norms: list[float | None] = [None] * len(blocks)

    def watch(index: int) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(lambda grad: norms.__setitem__(index, float(grad.norm())))

        return hook

    handles = [block.register_forward_hook(watch(i)) for i, block in enumerate(blocks)]
    try:
        torch.manual_seed(ctx.benchmark.seed)
        out = model(ctx.inputs)
        if out.dim() == 2:  # logits: cross-entropy against random labels
            targets = torch.randint(0, out.shape[1], (out.shape[0],), device=out.device)
            loss = nn.functional.cross_entropy(out.float(), targets)
        else:
            loss = out.float().pow(2).mean()
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    measured = [n for n in norms if n is not None]
    if not measured:
        raise ValueError("gradient_flow: no block output received a gradient")
    first, last = measured[0], measured[-1]
    return {
        "grad_norm_ratio": first / last if last > 0 else math.inf,
        "grad_norm_first": first,
        "grad_norm_last": last,
        "grad_norms": norms,
    }


# --------------------------------------------------------------------------- equivariance


def equivariance(ctx: MeasureContext) -> dict[str, Any]:
    """Relative error between f(shift(x)) and shift(f(x)), on the interior of the map."""
    shift, border = ctx.options["shift"], ctx.options["border"]
    x = ctx.inputs
    if not (isinstance(x, torch.Tensor) and x.dim() == 4):
        raise ValueError("equivariance needs image inputs (N, C, H, W)")
    with torch.no_grad():
        plain = ctx.model(x).float()
        moved = ctx.model(torch.roll(x, shifts=(shift, shift), dims=(2, 3))).float()
    if plain.dim() != 4:  # no map left (global pooling, logits): shift invariance
        error = float((moved - plain).norm() / plain.norm().clamp(min=1e-12))
        return {"equivariance_error": error, "equivariance_kind": "invariance", "equivariance_output_shift": 0}
    scale = plain.shape[-1] / x.shape[-1]
    out_shift = round(shift * scale)  # a shift of 1 input pixel after a stride of 2 is half an output pixel
    expected = torch.roll(plain, shifts=(out_shift, out_shift), dims=(2, 3))
    crop = math.ceil(border * scale) + abs(out_shift)
    if 2 * crop >= min(plain.shape[-2:]):
        raise ValueError(f"the output map ({plain.shape[-2]}x{plain.shape[-1]}) is too small to crop {crop} pixels per side")
    inner = (..., slice(crop, -crop), slice(crop, -crop))
    error = float((moved[inner] - expected[inner]).norm() / expected[inner].norm().clamp(min=1e-12))
    if shift * scale != out_shift:
        ctx.warn(f"an input shift of {shift} is {shift * scale:g} output pixels: compared with a shift of {out_shift}")
    return {"equivariance_error": error, "equivariance_kind": "equivariance", "equivariance_output_shift": out_shift}


# --------------------------------------------------------------------------- checkerboard


def checkerboard(ctx: MeasureContext) -> dict[str, Any]:
    """How unevenly an upsampling design spreads its input: the structural checkerboard.

    A copy with every weight set to the same positive value (1 / fan-in) and zero biases
    gets a constant input; any pattern in the output then comes from the architecture
    alone (uneven kernel overlap), not from learned weights. The score is the coefficient
    of variation (std / mean) of the output's interior: 0 for a perfectly even design
    (sub-pixel convolution), large for a transposed convolution whose kernel size is not
    a multiple of its stride.
    """
    model = _probe_copy(
        ctx.model,
        lambda weight: torch.full_like(weight, 1.0 / max(1, weight[0].numel())),
        lambda weight: torch.ones_like(weight),  # norm layers: identity
    )
    with torch.no_grad():
        out = model(torch.ones(1, *ctx.benchmark.input_shape, dtype=torch.float64))
    if out.dim() != 4 or min(out.shape[-2:]) < 8:
        raise ValueError(f"checkerboard needs an output map of at least 8x8, got shape {list(out.shape)}")
    crop = max(2, min(out.shape[-2:]) // 4)  # borders see zero padding, not the pattern
    inner = out[..., crop:-crop, crop:-crop]
    mean = inner.mean().abs()
    return {"checkerboard": float(inner.std() / mean) if mean > 0 else math.inf}


# --------------------------------------------------------------------------- backward check


def backward_check(ctx: MeasureContext) -> dict[str, Any]:
    """Hand-derived gradients of every (groups=1) convolution against autograd's, in float64.

    One real backward pass through the whole model gives each convolution its upstream
    gradient; autograd's input and weight gradients of that layer alone (given that
    upstream gradient) are then compared with :func:`conv2d_backward`'s.
    """
    model = copy.deepcopy(ctx.model).double().train(ctx.mode == "train")
    convs = [m for m in model.modules() if _is_conv(m)]
    if not convs:
        raise ValueError("backward_check found no convolution (a module with a 4-D weight, stride and padding, groups 1)")
    seen: dict[nn.Module, dict[str, torch.Tensor]] = {m: {} for m in convs}

    def capture(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        seen[module]["x"] = args[0].detach()
        if output.requires_grad:
            output.register_hook(lambda grad: seen[module].update(grad_out=grad.detach()))

    handles = [conv.register_forward_hook(capture) for conv in convs]
    x = ctx.inputs.double() if ctx.inputs.is_floating_point() else ctx.inputs
    try:
        out = model(x)
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(out.device)
        (out * weights).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    worst = 0.0
    for conv, got in seen.items():
        if "grad_out" not in got:
            continue
        weight = conv.weight
        assert isinstance(weight, torch.Tensor)  # _is_conv chose modules with a tensor weight
        x_alone = got["x"].clone().requires_grad_()
        auto_input, auto_weight = torch.autograd.grad(conv(x_alone), (x_alone, weight), got["grad_out"])
        by_hand = conv2d_backward(got["x"], weight.detach(), got["grad_out"], conv.stride, conv.padding, conv.dilation)
        worst = max(worst, float((by_hand[0] - auto_input).abs().max()), float((by_hand[1] - auto_weight).abs().max()))
    return {"backward_max_error": worst, "backward_layers": sum("grad_out" in got for got in seen.values())}


def _is_conv(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        isinstance(weight, torch.Tensor) and weight.dim() == 4 and hasattr(module, "stride") and hasattr(module, "padding")
        and getattr(module, "groups", 1) == 1 and not isinstance(module, nn.ConvTranspose2d)
        and not isinstance(getattr(module, "padding", 0), str)
    )


def draw_gradient_flow(runs: Sequence[Any], names: list[str]) -> Any:
    """The report's gradient-flow plot: each benchmark's gradient norm at every block's output, from
    the input side, log scale (a vanishing gradient falls towards the input); None without one."""
    import matplotlib.pyplot as plt

    from benchbench.plots import log_scale

    series = [(r["benchmark"], r["grad_norms"]) for run in runs for r in run.records
              if r.get("status") == "ok" and isinstance(r.get("grad_norms"), list)]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, norms in series:
        found = [(i + 1, n) for i, n in enumerate(norms) if isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n) and n > 0]
        ax.plot([p[0] for p in found], [p[1] for p in found], marker=".", label=name)
    log_scale(ax, "y")
    ax.set_xlabel("block (1 = nearest the input)")
    ax.set_ylabel("gradient norm at the block's output")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register("receptive_field", receptive_field, fields=["receptive_field", "receptive_field_theory"],
             options={"trials": 8}, compare={"receptive_field": {"exact": True}},
             description="input pixels one output unit sees: measured (gradient support) and analytic")
    register("gradient_flow", gradient_flow, fields=["grad_norm_ratio"], options={"module": "blocks"},
             description="gradient norm at each block's output (grad_norms); first / last (vanishing gradients)",
             formats={"grad_norm_ratio": lambda v: f"{v:.3g}"},
             plots={"gradient_flow": {"draw": draw_gradient_flow, "heading": "Gradient flow", "alt": "gradient flow"}})
    register("equivariance", equivariance, fields=["equivariance_error"], options={"shift": 1, "border": 4},
             description="|f(shift x) - shift f(x)| / |shift f(x)| for a shift of the input (borders cropped)",
             formats={"equivariance_error": lambda v: f"{v:.2e}"})
    register("checkerboard", checkerboard, fields=["checkerboard"],
             description="std / mean of the output for a constant input and constant weights: uneven upsampling overlap",
             formats={"checkerboard": lambda v: f"{v:.3g}"})
    register("backward_check", backward_check, fields=["backward_max_error"],
             description="hand-derived conv gradients (full conv with flipped kernel; correlation) vs autograd",
             formats={"backward_max_error": lambda v: f"{v:.1e}"})
