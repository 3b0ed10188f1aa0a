"""``flops``: fvcore's FLOP count of one sample, with the operators it could not count.

Convention (fvcore's, and the one most CNN papers' "FLOPs" tables use): one fused
multiply-add counts as ONE flop, so the number is really a MAC count.
``torch.utils.flop_counter.FlopCounterMode`` counts the same convolution as 2 per
multiply-add; the tests check the two agree up to that factor.

The count is that of one *forward* pass of the model in eval mode, whatever the
benchmark's ``mode`` (backward costs about twice the forward, but fvcore does not count it).

fvcore has formulas for convolutions (transposed too), matmuls, linear layers, norms,
adaptive average pooling and upsampling. It deliberately counts a few elementwise ops
(ReLU, dropout) as zero; any other operator it meets without a formula is *listed* in ``flops_unsupported``
(operator -> number of calls) instead of being silently counted as zero, so a table
never claims a layer is free when fvcore simply could not see it (``pixel_shuffle``
is pure data movement and shows up there, as do residual ``add``s).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

import benchbench
from benchbench import formatting
from benchbench.context import MeasureContext


def count(model: torch.nn.Module, inputs: Any) -> tuple[int, dict[str, int], dict[str, int]]:
    """(total, by operator, unsupported operator -> calls) for ``model(inputs)``.

    ``inputs`` is passed as the model's one argument, as :meth:`MeasureContext.step` does.
    """
    args = (inputs,)
    with warnings.catch_warnings():
        # fvcore's import uses the deprecated torch.jit.script, and its tracing warns about
        # Python control flow: neither is the user's business.
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        with torch.no_grad():
            analysis = FlopCountAnalysis(model, args)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            total = int(analysis.total())
            by_operator = {str(k): int(v) for k, v in analysis.by_operator().items()}
            unsupported = {str(k).removeprefix("aten::"): int(v) for k, v in analysis.unsupported_ops().items()}
    return total, by_operator, unsupported


def measure(ctx: MeasureContext) -> dict[str, Any]:
    # Count on an eval-mode copy: in train mode, tracing one sample would update BatchNorm's
    # running statistics of the benchmarked model (and fail on 1x1 maps with batch 1).
    model = ctx.model if not ctx.model.training else copy.deepcopy(ctx.model).eval()
    total, by_operator, unsupported = count(model, ctx.sample_input())
    return {"flops": total, "flops_unsupported": unsupported, "flops_by_operator": by_operator}


def _unsupported(value: Any) -> str:
    if not value:
        return "-"
    return ", ".join(f"{op}" + (f"×{n}" if n > 1 else "") for op, n in sorted(value.items()))


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "flops",
        measure,
        fields=["flops", "flops_unsupported"],
        ratio_fields=["flops"],
        compare={"flops": {"exact": True}},
        description="fvcore FLOPs of ONE sample (1 multiply-add = 1 FLOP); ops it skipped are listed",
        formats={"flops": formatting.si, "flops_unsupported": _unsupported},
    )
