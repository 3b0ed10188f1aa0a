"""``numerics``: how far a benchmark's outputs (and, in train mode, its gradients) are from exact.

A faster execution mode (``compile``, ``autocast``, ``tf32``, ``dtype: bfloat16``,
``cuda_graphs``, ``channels_last``) is only worth its speed if its answers stay close to
the model's; PyTorch's own compiler dashboard reports a pass rate, MLPerf one accuracy
target per model. This metric reports the error per benchmark, beside its speed:

* the **reference** is a float64 eager copy of the benchmark's model (the same weights,
  upcast; the same input, upcast where it is floating) on the same device when float64
  runs there, else on the CPU (``reference_device``); it runs without autocast, compile
  or CUDA graphs, so it is the exact result up to float64 rounding;
* the **mode's output** is ``ctx.step()``: the benchmark's own step, in its mode;
* ``numerics_rel_error`` is ``‖y − y_ref‖₂ / ‖y_ref‖₂`` over every floating tensor of the
  output (a nest of tensors is flattened in order), computed in float64;
  ``numerics_max_abs_error`` the largest absolute difference; ``numerics_cosine`` the
  cosine similarity of the two (1 = same direction);
* ``numerics_deterministic``: whether two steps of the mode give bitwise-identical
  outputs (and gradients);
* in train mode, ``numerics_grad_rel_error``: the same relative error over the gradients of
  every parameter, for the loss the step uses (the sum of the outputs).

Non-finite values in the mode's output where the reference is finite are counted
(``numerics_nonfinite``), and the errors are then not finite: a budget
(``thresholds: {numerics_rel_error: 1e-2}``) fails the benchmark.

Caveats, each stated where it applies: in train mode, dropout draws its masks from the
same seed for the mode and the reference, but a mode that draws them differently (another
dtype, a compiled kernel) then differs by the dropout too; a model whose weights are
themselves low-precision (``dtype: bfloat16``) is compared with the float64 result of those
same rounded weights (the error of the arithmetic, not of the rounding of the weights).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch

import benchbench
from benchbench.context import MeasureContext, floating_tensors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchbench.results import RunResult

OPTIONS: dict[str, Any] = {"reference_device": "auto", "seed": 0}
"""``reference_device``: ``auto`` (the benchmark's device where float64 runs there, else the
CPU) or ``cpu``; ``seed``: the seed both the mode and the reference draw random numbers
from (dropout in train mode)."""

FIELDS = ("numerics_rel_error", "numerics_max_abs_error", "numerics_cosine", "numerics_deterministic",
          "numerics_grad_rel_error")
NO_FLOAT64 = ("mps",)
"""Device types without float64 arithmetic: their reference runs on the CPU."""


def check_options(options: dict[str, Any]) -> list[str]:
    if options["reference_device"] not in ("auto", "cpu"):
        return [f"reference_device must be 'auto' or 'cpu', got {options['reference_device']!r}"]
    return []


def not_comparable(output: Any) -> str | None:
    """Why an output cannot be compared with a reference (None when it can): it holds no
    floating tensor. Called on the dry run's output, so a suite is refused before it runs."""
    if floating_tensors(output):
        return None
    return (f"the model's output ({type(output).__name__}) holds no floating-point tensor, so there is nothing "
            "to compare with a float64 reference")


def errors(output: list[torch.Tensor], reference: list[torch.Tensor]) -> dict[str, Any]:
    """Relative and largest absolute error, cosine similarity and non-finite count of ``output``
    against ``reference`` (lists of tensors of the same shapes, compared in float64)."""
    if [tuple(t.shape) for t in output] != [tuple(t.shape) for t in reference]:
        raise ValueError(f"the step's output shapes {[tuple(t.shape) for t in output]} differ from the "
                         f"float64 reference's {[tuple(t.shape) for t in reference]}")
    y, r = _flat64(output), _flat64(reference)
    nonfinite = int((~torch.isfinite(y) & torch.isfinite(r)).sum())
    if nonfinite:
        return {"rel_error": math.inf, "max_abs_error": math.inf, "cosine": None, "nonfinite": nonfinite}
    diff = y - r
    ref_norm, out_norm = float(r.norm()), float(y.norm())
    diff_norm = float(diff.norm())
    if ref_norm == 0.0:
        rel = 0.0 if diff_norm == 0.0 else math.inf
    else:
        rel = diff_norm / ref_norm
    cosine = float(torch.dot(y, r)) / (out_norm * ref_norm) if out_norm > 0 and ref_norm > 0 else None
    return {"rel_error": rel, "max_abs_error": float(diff.abs().max()) if diff.numel() else 0.0,
            "cosine": cosine, "nonfinite": 0}


def _flat64(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Every element of ``tensors``, in order, as one float64 vector on the CPU."""
    return torch.cat([t.detach().reshape(-1).to("cpu", torch.float64) for t in tensors]) if tensors \
        else torch.zeros(0, dtype=torch.float64)


def reference_device(device: torch.device, option: str) -> torch.device:
    if option == "cpu" or device.type in NO_FLOAT64 or device.type == "meta":
        return torch.device("cpu")
    return device


def to_float64(value: Any, device: torch.device) -> Any:
    """An input (a tensor or a nest of them) on ``device``, floating tensors in float64."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device=device, dtype=torch.float64 if value.is_floating_point() else value.dtype)
    if isinstance(value, dict):
        return {k: to_float64(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_float64(v, device) for v in value)
    return value


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Random numbers (dropout) from ``seed``, leaving the process's generators as they were."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def snapshot(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies that the next step cannot overwrite (a CUDA graph's static output is reused)."""
    return [t.detach().clone() for t in tensors]


def eval_outputs(step: Callable[[], Any]) -> list[torch.Tensor]:
    return snapshot(floating_tensors(step()))


def train_outputs(model: torch.nn.Module, parameters: list[torch.nn.Parameter], forward: Callable[[], Any],
                  autocast: Callable[[], Any]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One forward + backward of the step's loss (the sum of the floating outputs, as
    :meth:`MeasureContext.eager_step` computes it), returning the outputs and every
    parameter's gradient (zero where a parameter got none), then clearing the gradients."""
    model.zero_grad(set_to_none=True)
    with autocast():
        output = forward()
        tensors = floating_tensors(output)
        loss = sum(t.float().sum() if t.dtype != torch.float64 else t.sum() for t in tensors)
    loss.backward()  # type: ignore[union-attr]
    grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in parameters]
    model.zero_grad(set_to_none=True)
    return snapshot(tensors), grads


def measure(ctx: MeasureContext) -> dict[str, Any]:
    opts = ctx.options
    where = reference_device(ctx.device, opts["reference_device"])
    eager = ctx.eager_model
    reference = copy.deepcopy(eager).to(device=where, dtype=torch.float64)
    reference_input = to_float64(ctx.inputs, where)
    seed = opts["seed"]
    fields: dict[str, Any] = {"numerics_reference_device": str(where)}
    if ctx.mode == "train":
        if ctx.replay is not None:  # suite validation refuses cuda_graphs in train mode; this keeps the rule here too
            raise ValueError("numerics in train mode needs the eager step, and cuda_graphs replays a captured one")
        mine = [p for _, p in eager.named_parameters()]
        theirs = [p for _, p in reference.named_parameters()]
        runs = []
        for _ in range(2):
            with seeded(seed, ctx.device):
                runs.append(train_outputs(eager, mine, lambda: ctx.model(ctx.inputs), ctx.autocast))
        with seeded(seed, where):
            ref_out, ref_grads = train_outputs(reference, theirs, lambda: reference(reference_input), contextlib.nullcontext)
        (out, grads), (again, grads_again) = runs
        deterministic = _identical(out, again) and _identical(grads, grads_again)
        grad_errors = errors(grads, ref_grads)
        fields["numerics_grad_rel_error"] = grad_errors["rel_error"]
        fields["numerics_grad_max_abs_error"] = grad_errors["max_abs_error"]
    else:
        with seeded(seed, ctx.device):
            out = eval_outputs(ctx.step)
        with seeded(seed, ctx.device):
            again = eval_outputs(ctx.step)
        with seeded(seed, where), torch.inference_mode():
            ref_out = snapshot(floating_tensors(reference(reference_input)))
        deterministic = _identical(out, again)
        fields["numerics_grad_rel_error"] = None
    if not out:
        raise ValueError(not_comparable(out))
    found = errors(out, ref_out)
    fields.update(
        numerics_rel_error=found["rel_error"],
        numerics_max_abs_error=found["max_abs_error"],
        numerics_cosine=found["cosine"],
        numerics_deterministic=deterministic,
        numerics_nonfinite=found["nonfinite"],
    )
    if found["nonfinite"]:
        ctx.warn(f"numerics: the step's output has {found['nonfinite']} non-finite value(s) where the float64 "
                 "reference is finite (overflow in a low precision?)")
    return fields


def _identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def _sci(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, (int, float)) and not math.isfinite(value):
        return "inf"
    return f"{value:.2e}" if isinstance(value, (int, float)) else str(value)


ZERO = 1e-17
"""Where an error of exactly 0 is drawn on the plot's log axis (below float64's rounding of 1.1e-16)."""


def draw_speed_vs_error(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    """Latency against the error, one panel per model and mode (eval: the output's
    ``numerics_rel_error``; train: the gradients' ``numerics_grad_rel_error``), one point per
    benchmark (an execution mode of that model). The fastest point under the budget (the
    suite's ``thresholds:``, a dashed line) is the mode to pick, and it is starred; a
    benchmark that failed its budget is drawn as a red cross above the line."""
    import matplotlib.pyplot as plt

    from benchbench.plots import log_axes
    from benchbench.results import is_number

    panels: dict[tuple[str, str], list[tuple[str, float, float, float | None, bool]]] = {}
    for run, name in zip(runs, names):
        for record in run.records:
            mode = record.get("mode", "eval")
            field = "numerics_grad_rel_error" if mode == "train" else "numerics_rel_error"
            x, y = record.get("latency_ms"), record.get(field)
            if is_number(x) and is_number(y) and x > 0 and math.isfinite(y):  # a failed budget keeps its fields
                label = record["benchmark"] if len(runs) == 1 else f"{name}: {record['benchmark']}"
                budget = (record.get("thresholds") or {}).get(field)
                panels.setdefault((f"{record.get('model', '?')} ({mode})", field), []).append(
                    (label, float(x), max(float(y), ZERO), budget, record.get("status") == "ok"))
    if not panels:
        return None
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.8 * rows), squeeze=False)
    for ax, ((title, field), found) in zip(axes.flat, panels.items()):
        ok = [p for p in found if p[4]]
        failed = [p for p in found if not p[4]]
        ax.scatter([p[1] for p in ok], [p[2] for p in ok], s=36)
        if failed:
            ax.scatter([p[1] for p in failed], [p[2] for p in failed], s=48, marker="x", color="tab:red",
                       label="failed (over budget)")
        for label, x, y, *_ in found:
            ax.annotate(label, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        budgets = sorted({p[3] for p in found if p[3] is not None})
        for budget in budgets:
            ax.axhline(budget, linestyle="--", linewidth=1, color="tab:red", label=f"budget {budget:g}")
        within = [p for p in ok if p[3] is None or p[2] <= p[3]]
        if within:
            best = min(within, key=lambda p: p[1])
            ax.scatter([best[1]], [best[2]], marker="*", s=220, color="tab:orange", zorder=3,
                       label="fastest within budget" if budgets else "fastest")
        log_axes(ax, "latency (ms)", field.replace("numerics_", "") + " vs float64")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


COMPARED = {"threshold": 1.0, "budget": True}
"""How compare judges an error: growing more than 2x (+100%) is a regression (a different kernel
or summation order moves a float32 error by tens of percent, a real fault by orders of
magnitude), and so is crossing the suite's budget."""


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "numerics",
        measure,
        fields=list(FIELDS),
        options=OPTIONS,
        check_options=check_options,
        applies=not_comparable,
        compare={"numerics_rel_error": COMPARED, "numerics_max_abs_error": COMPARED,
                 "numerics_grad_rel_error": COMPARED},
        description="error of the step's output (and gradients in train mode) against a float64 eager reference "
                    "of the same model and input; bitwise determinism of two steps",
        formats={"numerics_rel_error": _sci, "numerics_max_abs_error": _sci, "numerics_grad_rel_error": _sci,
                 "numerics_cosine": lambda v: "-" if v is None else f"{v:.9f}",
                 "numerics_deterministic": _sci},
        footnotes={
            "numerics_rel_error": "numerics_rel_error: |y - y_ref| / |y_ref| (2-norms over every output element) against "
            "a float64 eager copy of the model (same weights and input); 1e-7 is float32 rounding, 1e-3 bfloat16's",
            "numerics_deterministic": "numerics_deterministic: two steps of the mode gave bitwise-identical outputs "
            "(and gradients)",
            "numerics_grad_rel_error": "numerics_grad_rel_error (train): the same error over every parameter's gradient",
        },
        plots={"speed_vs_error": {
            "draw": draw_speed_vs_error, "heading": "Speed against error",
            "alt": "latency against relative error per model, log axes",
            "explanation": "One panel per model, one point per benchmark (its execution mode); log axes. Lower and "
                           "further left is better; the star is the fastest mode within the budget (the dashed "
                           "line: the suite's `thresholds:` for numerics_rel_error).",
            "needs": "benchmarks measured with both latency and numerics"}},
    )
