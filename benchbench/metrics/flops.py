"""``flops``: fvcore's FLOP count of one sample, attention included, checked against the dispatcher's.

Convention (fvcore's, and the one most CNN papers' "FLOPs" tables use): one fused
multiply-add counts as ONE flop, so the number is really a MAC count.

The count is that of one *forward* pass of the model in eval mode, whatever the
benchmark's ``mode`` (backward costs about twice the forward, but fvcore does not count it),
with ``nn.MultiheadAttention``'s inference fast path turned off so that its projections
and matrix products are counted (see :mod:`benchbench.flopcount`).

Fields:

* ``flops``: fvcore's total: convolutions (transposed too), matmuls, linear layers, einsum,
  attention, norms, adaptive average pooling and upsampling. It counts a few elementwise
  ops (ReLU, dropout) as zero on purpose; any other operator without a formula is
  *listed* in ``flops_unsupported`` (operator -> number of calls) instead of being
  silently counted as zero (``pixel_shuffle`` is pure data movement and shows up there,
  as do residual ``add``s).
* ``flops_core`` (run file): the conv + matmul + attention part alone: torchvision's
  ``_ops`` convention, comparable with papers; ``flops_by_category`` (run file) the whole
  count by kind (conv, matmul, attention, norm, pool, other); ``flops_by_operator`` (run
  file) by fvcore operator.
* ``flops_dispatch`` (run file): ``torch.utils.flop_counter.FlopCounterMode``'s count,
  halved to the same convention (it counts conv, matmul and attention only, so it is
  comparable with ``flops_core``), with ``flops_dispatch_by_operator``; it runs on meta
  tensors (nothing computed) unless the model needs real values.
* ``flops_uncounted``: empty when all is well. When fvcore's core and the dispatcher's
  count disagree, or fvcore skipped an operator that does matrix products
  (``tensordot``, an RNN, a fused attention kernel), the work ``flops`` misses, in words;
  a warning says the same.

A model fvcore cannot trace (an output that is no tensor, a ``torch.compile``d module)
still gets a count: ``flops`` is then the dispatcher's (conv, matmul, attention only),
``flops_source`` says ``dispatch`` and a warning says why.

``benchbench report RUN.json --explain flops`` (and a section of the HTML report) breaks
each count down by kind of operator: :func:`explain`, declared with the metric.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

import benchbench
from benchbench import flopcount, formatting
from benchbench.context import MeasureContext
from benchbench.reporters import Breakdown, Table
from benchbench.results import is_number

if TYPE_CHECKING:
    from benchbench.results import RunResult


def count(model: torch.nn.Module, inputs: Any) -> tuple[int, dict[str, int], dict[str, int]]:
    """(total, by operator, unsupported operator -> calls): fvcore's count of ``model(inputs)``.

    ``inputs`` is passed as the model's one argument, as :meth:`MeasureContext.step` does.
    """
    result = flopcount.fvcore_count(model, inputs)
    return result.total, result.by_operator, result.unsupported


def _failure(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}" + (f": {message[:200]}" if message else "")


def measure(ctx: MeasureContext) -> dict[str, Any]:
    # The model as written (under the suite's compile: too), on an eval-mode copy: in train mode,
    # tracing one sample would update BatchNorm's running statistics of the benchmarked model
    # (and fail on 1x1 maps with batch 1).
    model = ctx.eager_model
    model = model if not model.training else copy.deepcopy(model).eval()
    sample = ctx.sample_input()
    try:
        fvcore: flopcount.Count | None = flopcount.fvcore_count(model, sample)
        fvcore_error = None
    except Exception as exc:  # tracing fails on some models: the dispatcher still counts them
        fvcore, fvcore_error = None, exc
    try:
        dispatch: flopcount.Count | None = flopcount.dispatch_count(model, sample, meta=True)
    except Exception as exc:
        if fvcore is None:
            raise RuntimeError(f"neither counter could count the model: fvcore raised {_failure(fvcore_error)}; "  # type: ignore[arg-type]
                               f"FlopCounterMode raised {_failure(exc)}") from fvcore_error
        dispatch = None
        ctx.warn(f"flops: FlopCounterMode could not run the model ({_failure(exc)}): no cross-check of fvcore's count")
    if fvcore is None:
        assert dispatch is not None and fvcore_error is not None
        ctx.warn(f"flops: fvcore could not trace the model ({_failure(fvcore_error)}); flops is FlopCounterMode's "
                 "count instead (conv, matmul and attention only: norms, pooling and elementwise ops are not in it)")
        return {
            "flops": dispatch.total, "flops_source": "dispatch", "flops_unsupported": None, "flops_uncounted": None,
            "flops_core": dispatch.total, "flops_by_category": dispatch.by_category, "flops_by_operator": None,
            "flops_dispatch": dispatch.total, "flops_dispatch_by_operator": dispatch.by_operator,
        }
    uncounted = _uncounted(fvcore, dispatch)
    if uncounted:
        ctx.warn(f"flops is too low: {uncounted}")
    return {
        "flops": fvcore.total, "flops_source": "fvcore", "flops_unsupported": fvcore.unsupported,
        "flops_uncounted": uncounted, "flops_core": fvcore.core, "flops_by_category": fvcore.by_category,
        "flops_by_operator": fvcore.by_operator,
        "flops_dispatch": dispatch.total if dispatch else None,
        "flops_dispatch_by_operator": dispatch.by_operator if dispatch else None,
    }


def _uncounted(fvcore: flopcount.Count, dispatch: flopcount.Count | None) -> str | None:
    """What ``flops`` misses, in words (None when the counters agree and nothing heavy was skipped)."""
    problems = []
    if dispatch is not None:
        disagreement = flopcount.disagreement(fvcore, dispatch)
        if disagreement:
            problems.append(disagreement)
    hidden = flopcount.hidden_matmuls(fvcore.unsupported)
    if hidden and not any(op in p for p in problems for op in hidden):
        problems.append(f"fvcore does not count {flopcount.describe_calls(hidden)} (operators that do matrix products)")
    return "; ".join(problems) or None


def _unsupported(value: Any) -> str:
    if not value:
        return "-"
    return ", ".join(f"{op}" + (f"×{n}" if n > 1 else "") for op, n in sorted(value.items()))


# --------------------------------------------------------------------------- report --explain flops

EXPLAIN_NOTES = (
    ("core = conv + matmul (linear, mm, bmm, einsum) + attention (the two products of scaled-dot-product "
     "attention) multiply-adds: the convention of torchvision's published _ops and of most papers."),
    ("flops = core + norm (BatchNorm, LayerNorm...) + pool (adaptive average pooling) + other (upsampling, "
     "grid sampling): fvcore's convention; one fused multiply-add = 1, for ONE sample, forward pass."),
    ("dispatch = torch.utils.flop_counter.FlopCounterMode's count, halved to the same convention: conv, matmul "
     "and attention only, so it should equal core ('=' when it does)."),
    ("unsupported = operators fvcore has no formula for, counted as zero (elementwise ops, max pooling, data "
     "movement); flops_uncounted names work that flops misses."),
)


def breakdown_rows(runs: Sequence[RunResult], names: list[str]) -> list[dict[str, Any]]:
    """Every benchmark with a FLOP count, its count by kind of operator, one row each (raw values; a
    ``run`` column first when there are several runs). Run files written before the categories
    existed get them from ``flops_by_operator``."""
    several = len(runs) > 1
    rows = []
    for name, run in zip(names, runs):
        for record in run.records:
            if not is_number(record.get("flops")):
                continue
            categories = record.get("flops_by_category")
            if not isinstance(categories, dict) and isinstance(record.get("flops_by_operator"), dict):
                categories = flopcount.by_category(record["flops_by_operator"])
            categories = categories if isinstance(categories, dict) else {}
            core = record.get("flops_core")
            if not is_number(core) and categories:
                core = sum(categories.get(c, 0) for c in flopcount.CORE)
            row: dict[str, Any] = {"run": name} if several else {}
            row.update(benchmark=record["benchmark"], flops=record["flops"], core=core,
                       core_share=core / record["flops"] if is_number(core) and record["flops"] else None)
            row.update({c: categories.get(c) for c in flopcount.CATEGORIES})
            row.update(dispatch=record.get("flops_dispatch"), unsupported=record.get("flops_unsupported"),
                       source=record.get("flops_source") or "fvcore", uncounted=record.get("flops_uncounted"))
            rows.append(row)
    return rows


def explain(runs: Sequence[RunResult], names: list[str]) -> Breakdown:
    """``benchbench report --explain flops``: :func:`breakdown_rows`, and a table of them with the notes
    that say what each count includes (``source`` and ``uncounted`` become notes)."""
    rows = breakdown_rows(runs, names)
    shown = [c for c in (rows[0] if rows else {}) if c not in ("source", "uncounted")]
    cells = [[_cell(column, row) for column in shown] for row in rows]
    notes = list(EXPLAIN_NOTES)
    for row in rows:
        who = f"{row['run']}: " if "run" in row else ""
        if row["source"] != "fvcore":
            notes.append(f"{who}{row['benchmark']}: fvcore could not trace the model: flops is FlopCounterMode's count")
        if row["uncounted"]:
            notes.append(f"{who}{row['benchmark']}: flops is too low: {row['uncounted']}")
    names_left = 2 if len(runs) > 1 else 1
    colalign = ["left"] * names_left + ["right"] * (len(shown) - names_left - 1) + ["left"]
    return Breakdown(rows, Table(["FLOPs per sample (multiply-adds) by kind of operator"], shown, cells, colalign, notes))


def _cell(column: str, row: dict[str, Any]) -> str:
    value = row.get(column)
    if column == "core_share":
        return formatting.percent(value, 1)
    if column == "dispatch":
        return _against_core(value, row["core"])
    if column == "unsupported":
        return formatting.operators(dict(sorted(value.items()))) if isinstance(value, dict) else "-"
    if column in ("run", "benchmark"):
        return str(value)
    return formatting.si(value)


def _against_core(dispatch: Any, core: Any) -> str:
    """'=' when the dispatcher's count equals the core count, else the count and how far it is."""
    if not is_number(dispatch):
        return "-"
    if dispatch == core:
        return "="
    if is_number(core) and core:
        return f"{formatting.si(dispatch)} ({dispatch / core - 1:+.2%})"
    return formatting.si(dispatch)


@benchbench.hookimpl
def benchbench_register_metrics(register: Any) -> None:
    register(
        "flops",
        measure,
        fields=["flops", "flops_unsupported", "flops_uncounted"],
        ratio_fields=["flops"],
        compare={"flops": {"exact": True}, "flops_core": {"exact": True}},
        description="fvcore FLOPs of ONE sample (1 multiply-add = 1 FLOP), attention included; ops it skipped "
        "are listed, and a FlopCounterMode count checks it",
        formats={"flops": formatting.si, "flops_unsupported": _unsupported},
        footnotes={"flops": "flops: fvcore's count for ONE sample, forward pass; 1 fused multiply-add = 1 FLOP (i.e. MACs)."},
        bars={"flops": "FLOPs per sample (fvcore, MACs)"},
        side_by_side=["flops"],
        explain={"flops": {
            "explain": explain, "heading": "FLOPs by kind of operator",
            "explanation": "What each count includes: core is comparable with torchvision's published numbers and "
            "papers, flops is fvcore's total.",
            "needs": "a FLOP count (run the suite with the flops metric: --metrics params,flops)"}},
    )
