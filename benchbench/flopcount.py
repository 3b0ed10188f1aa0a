"""Multiply-adds of one forward pass, counted two independent ways, and sorted by kind of operator.

* :func:`fvcore_count`: fvcore's ``FlopCountAnalysis`` (a ``torch.jit.trace`` of the
  model; one handle per traced operator). fvcore counts convolutions, linear layers,
  matmuls, einsum, norms, adaptive average pooling and upsampling; benchbench adds
  handles for attention (``scaled_dot_product_attention``, the multi-head attention
  fast path ``_native_multi_head_attention``) and ``baddbmm``, which fvcore leaves out.
* :func:`dispatch_count`: ``torch.utils.flop_counter.FlopCounterMode``, which sees every
  operator the dispatcher runs (so it works where tracing fails: Python objects in the
  output, ``torch.compile``d modules, custom ``F.*`` calls; and on the meta device, which
  counts the biggest model in a fraction of a second without allocating it). It counts
  matrix products, convolutions and attention only, 2 per multiply-add; benchbench halves
  it and adds formulas for the attention kernels it misses (the CPU's
  ``_scaled_dot_product_flash_attention_for_cpu``, ``_native_multi_head_attention``).

Both count with the attention *fast paths* off: under ``no_grad`` an eval-mode
``nn.MultiheadAttention`` otherwise runs its projections and matrix products as one fused
operator (``torch.backends.mha.set_fastpath_enabled(False)``; torch < 2.2 has no switch,
and counts with autograd enabled instead, which also turns the fast path off).

Categories (:data:`CATEGORIES`): ``conv``, ``matmul`` (linear, mm, bmm, matmul, einsum),
``attention`` (the two matrix products of scaled-dot-product attention; the whole layer
for the fused multi-head operator) make up the **core** count, the convention of
torchvision's published ``_ops`` and of most papers; ``norm``, ``pool`` and ``other``
(upsampling, grid sampling) are what fvcore counts beyond it.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a count runs: the report reads categories without it
    import torch

CATEGORIES = ("conv", "matmul", "attention", "norm", "pool", "other")
"""Kinds of operator, in the order tables show them."""
CORE = ("conv", "matmul", "attention")
"""The kinds that make the core count (torchvision's ``_ops``: conv + linear + matmul multiply-adds)."""

_MATMUL = {"linear", "addmm", "mm", "bmm", "baddbmm", "matmul", "einsum", "_scaled_mm", "addbmm", "addmv", "mv", "dot"}
_NORM = {"batch_norm", "group_norm", "layer_norm", "instance_norm", "rms_norm"}

MATMUL_BEARING = {
    "_native_multi_head_attention", "_transformer_encoder_layer_fwd", "scaled_dot_product_attention",
    "tensordot", "linalg_multi_dot", "chain_matmul", "bilinear", "_trilinear", "baddbmm", "addbmm", "addmv", "mv",
    "dot", "vdot", "inner", "kron", "cdist", "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell",
    "rnn_tanh_cell", "rnn_relu_cell", "conv_tbc", "_addmm_activation", "embedding_bag", "flex_attention",
}
"""Operators that do matrix products (or worse): when fvcore lists one of these as unsupported, ``flops``
is missing real work, not elementwise ops, and the flops metric says so."""


def category(op: str) -> str:
    """The kind of an operator, by the name fvcore or the dispatcher gives it (``aten::`` / ``aten.`` dropped)."""
    name = op.split("::")[-1].removeprefix("aten.").split(".")[0]
    if "conv" in name:
        return "conv"
    if "attention" in name:
        return "attention"
    if name in _MATMUL:
        return "matmul"
    if name in _NORM or name.endswith("_norm"):
        return "norm"
    if "pool" in name:
        return "pool"
    return "other"


def by_category(by_operator: Mapping[str, int | float]) -> dict[str, int]:
    """Operator -> count, summed by :func:`category` (every category present, zeros included)."""
    out = dict.fromkeys(CATEGORIES, 0)
    for op, value in by_operator.items():
        out[category(op)] += int(value)
    return out


def core(by_operator: Mapping[str, int | float]) -> int:
    """The conv + matmul + attention part of a by-operator count."""
    categories = by_category(by_operator)
    return sum(categories[c] for c in CORE)


# --------------------------------------------------------------------------- formulas (multiply-adds)


def attention_macs(query: list[int], key: list[int], value: list[int]) -> int:
    """``softmax(q kᵀ) v`` for q (..., L, E), k (..., S, E), v (..., S, Ev): L·S·E + L·S·Ev per batch and head
    (the softmax and scaling are elementwise: not counted, as fvcore counts none either)."""
    *batch, length, embed = query
    source, value_embed = key[-2], value[-1]
    return math.prod(batch) * length * source * (embed + value_embed)


def multi_head_attention_macs(query: list[int], key: list[int], value: list[int]) -> int:
    """``torch._native_multi_head_attention`` (``nn.MultiheadAttention``'s fast path), inputs (B, L, E):
    q, k, v and output projections (E·E each per token) plus the attention's two products."""
    *batch, length, embed = query
    source = key[-2]
    per_batch = (length + 2 * source) * embed * embed + length * embed * embed + 2 * length * source * embed
    return math.prod(batch) * per_batch


# --------------------------------------------------------------------------- fast paths


@contextlib.contextmanager
def attention_fast_path_off() -> Iterator[None]:
    """No grad, and ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` on their composite path.

    torch >= 2.2 has a switch (``torch.backends.mha``); before it, the fast path is not taken
    while autograd records, so the count runs with grad enabled there (weights that require
    no grad still take the fused operator, which has a formula of its own).
    """
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        with torch.enable_grad():
            yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            yield
    finally:
        mha.set_fastpath_enabled(before)


# --------------------------------------------------------------------------- fvcore


@dataclass
class Count:
    """One counter's result, in multiply-adds: the total, by operator, and (fvcore) what it skipped."""

    total: int
    by_operator: dict[str, int]
    unsupported: dict[str, int] = field(default_factory=dict)

    @property
    def core(self) -> int:
        return core(self.by_operator)

    @property
    def by_category(self) -> dict[str, int]:
        return by_category(self.by_operator)


def _fvcore_handles() -> dict[str, Callable[[list[Any], list[Any]], Any]]:
    from fvcore.nn.jit_handles import get_shape

    def sdpa(inputs: list[Any], outputs: list[Any]) -> int:
        return attention_macs(*(get_shape(v) for v in inputs[:3]))

    def mha(inputs: list[Any], outputs: list[Any]) -> int:
        return multi_head_attention_macs(*(get_shape(v) for v in inputs[:3]))

    def baddbmm(inputs: list[Any], outputs: list[Any]) -> int:
        batch, rows, inner = get_shape(inputs[1])
        return batch * rows * inner * get_shape(inputs[2])[-1]

    return {"aten::scaled_dot_product_attention": sdpa, "aten::_native_multi_head_attention": mha, "aten::baddbmm": baddbmm}


def fvcore_count(model: torch.nn.Module, inputs: Any) -> Count:
    """fvcore's count of ``model(inputs)`` (``inputs`` is the one argument), attention included."""
    with warnings.catch_warnings():
        # fvcore's import uses the deprecated torch.jit.script, and its tracing warns about
        # Python control flow: neither is the user's business.
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        with attention_fast_path_off():
            analysis = FlopCountAnalysis(model, (inputs,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            for name, handle in _fvcore_handles().items():
                analysis.set_op_handle(name, handle)
            total = int(analysis.total())
            by_operator = {str(k): int(v) for k, v in analysis.by_operator().items()}
            unsupported = {str(k).removeprefix("aten::"): int(v) for k, v in analysis.unsupported_ops().items()}
    return Count(total, by_operator, unsupported)


# --------------------------------------------------------------------------- FlopCounterMode


_SDPA_KERNELS = (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable",
)


def _dispatch_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode formulas (2 per multiply-add, shapes in) for the attention kernels it lacks."""
    import torch
    from torch.utils import flop_counter

    known = set(getattr(flop_counter, "flop_registry", None) or getattr(flop_counter, "flop_mapping", {}))

    def sdpa(query: list[int], key: list[int], value: list[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * attention_macs(query, key, value)

    def mha(query: list[int], key: list[int], value: list[int], *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return 2 * multi_head_attention_macs(query, key, value)

    formulas: dict[Any, Callable[..., int]] = {}
    for name, formula in [*((n, sdpa) for n in _SDPA_KERNELS), ("_native_multi_head_attention", mha)]:
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in known:
            formulas[op] = formula
    return formulas


def dispatch_count(model: torch.nn.Module, inputs: Any, *, meta: bool = False) -> Count:
    """``FlopCounterMode``'s count of ``model(inputs)``, in multiply-adds, by operator (``mm``, ``convolution``...).

    Runs the model once. ``meta=True`` runs it with its parameters, buffers and inputs
    swapped for meta tensors (``torch.func.functional_call``: the model is not copied nor
    changed), which computes nothing: a model that needs real values (``.item()``, tensors
    made on the CPU inside ``forward``) raises, and is then counted on its own tensors.
    """
    if meta:
        try:
            return _dispatch_count_on_meta(model, inputs)
        except Exception:
            pass
    return _dispatch_count(lambda: model(inputs))


def _dispatch_count_on_meta(model: torch.nn.Module, inputs: Any) -> Count:
    import torch
    from torch.func import functional_call

    def to_meta(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to("meta")
        if isinstance(value, (list, tuple)):
            return type(value)(to_meta(v) for v in value)
        if isinstance(value, dict):
            return {k: to_meta(v) for k, v in value.items()}
        return value

    state = {name: to_meta(t) for name, t in [*model.named_parameters(), *model.named_buffers()]}
    return _dispatch_count(lambda: functional_call(model, state, (to_meta(inputs),)))


def _dispatch_count(forward: Callable[[], Any]) -> Count:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_dispatch_formulas())
    with warnings.catch_warnings(), attention_fast_path_off(), counter:
        warnings.simplefilter("ignore")  # the model warned in its first forward pass already
        forward()
    flops = counter.get_flop_counts().get("Global", {})
    by_operator = {str(op).removeprefix("aten.").split(".")[0]: int(n) // 2 for op, n in flops.items() if n}
    return Count(sum(by_operator.values()), by_operator)


# --------------------------------------------------------------------------- the two side by side


def disagreement(fvcore: Count, dispatch: Count, tolerance: float = 1e-3) -> str | None:
    """Why the two counters' core counts differ by more than ``tolerance``, naming the ops; None when they agree.

    The dispatcher counts only conv, matmul and attention, so the comparison is of fvcore's
    core against its total; attention done as plain matmuls counts on both sides.
    """
    from benchbench.formatting import si

    ours, theirs = fvcore.core, dispatch.total
    if abs(ours - theirs) <= tolerance * max(ours, theirs):
        return None
    gap = f"fvcore {si(ours)} vs FlopCounterMode {si(theirs)} conv/matmul/attention multiply-adds"
    gap += f" ({(ours - theirs) / theirs:+.1%})" if theirs else ""
    if ours < theirs:
        # What fvcore skipped that may hold the difference: operators known to do matrix products, and
        # any outside aten (autograd Functions, custom ops); failing those, everything it skipped.
        suspects = {op: n for op, n in fvcore.unsupported.items() if op in MATMUL_BEARING or "::" in op}
        return f"{gap}: fvcore does not count {describe_calls(suspects or fvcore.unsupported) or 'an operator it did not list'}"
    seen = ", ".join(sorted(dispatch.by_operator)) or "nothing"
    counted = ", ".join(sorted(op for op in fvcore.by_operator if category(op) in CORE))
    return f"{gap}: FlopCounterMode counted {seen}; fvcore counted {counted}"


def hidden_matmuls(unsupported: dict[str, int]) -> dict[str, int]:
    """The operators fvcore skipped that do matrix products (see :data:`MATMUL_BEARING`)."""
    return {op: n for op, n in unsupported.items() if op in MATMUL_BEARING}


def describe_calls(ops: dict[str, int]) -> str:
    """{'lstm': 2, 'tensordot': 1} -> 'lstm×2, tensordot'."""
    return ", ".join(f"{op}×{n}" if n > 1 else op for op, n in sorted(ops.items()))


# --------------------------------------------------------------------------- big models


@contextlib.contextmanager
def weights_on_meta() -> Iterator[None]:
    """Build modules with their parameters and buffers on the meta device (no memory, no initialisation).

    ``with torch.device("meta")`` does the same for most models, but also turns every
    tensor the constructor computes with into a meta tensor, which fails where a builder
    reads values back (torchvision's RegNets compute their widths with torch); here the
    constructor computes on the CPU and only what it registers moves to meta.
    """
    import torch

    module = torch.nn.Module
    register_parameter, register_buffer = module.register_parameter, module.register_buffer

    def parameter(self: torch.nn.Module, name: str, param: Any) -> None:
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer(self: torch.nn.Module, name: str, tensor: Any, persistent: bool = True) -> None:
        if tensor is not None and tensor.device.type != "meta":
            tensor = tensor.to("meta")
        register_buffer(self, name, tensor, persistent)

    module.register_parameter, module.register_buffer = parameter, buffer  # type: ignore[method-assign]  # patched for the block
    try:
        yield
    finally:
        module.register_parameter, module.register_buffer = register_parameter, register_buffer  # type: ignore[method-assign]


def on_meta(factory: Callable[..., torch.nn.Module], **args: Any) -> torch.nn.Module:
    """``factory(**args)`` with its weights on the meta device, in eval mode: for counting without memory."""
    import torch

    try:
        with torch.device("meta"):
            model = factory(**args)
    except (NotImplementedError, RuntimeError):
        with weights_on_meta():
            model = factory(**args)
    return model.eval()
