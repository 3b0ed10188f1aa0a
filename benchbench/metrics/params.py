"""``params``: how many parameters a model has, and how many of them train.

Counts each parameter tensor once, even when modules share it (tied weights), as
torchinfo and ``sum(p.numel() for p in model.parameters())`` do. Buffers (BatchNorm's
running statistics) are not parameters and are not counted.
"""

from __future__ import annotations

from typing import Any

import benchbench
from benchbench import formatting
from benchbench.context import MeasureContext


def measure(ctx: MeasureContext) -> dict[str, Any]:
    params = list(ctx.model.parameters())
    return {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
    }


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "params",
        measure,
        fields=["params", "trainable_params"],
        ratio_fields=["params"],
        compare={"params": {"exact": True}, "trainable_params": {"exact": True}},
        description="parameter count, total and trainable (shared tensors counted once)",
        formats={"params": formatting.si, "trainable_params": formatting.si},
        bars={"params": "parameters"},
        side_by_side=["params"],
    )
