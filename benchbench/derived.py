"""Derived fields: how well a benchmark uses the machine, from fields other metrics measured.

A built-in plugin on ``benchbench_derive_fields``, called once per finished record:

* ``achieved_gflops``: ``2 x flops x batch_size / latency`` in GFLOP/s. fvcore counts a
  multiply-add as one FLOP; the factor 2 converts to the hardware convention (a
  multiply-add is two), the one peak figures and ``benchbench peak`` use.
* ``arithmetic_intensity``: those FLOPs over an *estimate* of the bytes one step must move
  at least: the parameters once (``param_bytes``), the input batch and the output batch.
  Intermediate activations that spill out of cache are not counted, so the real intensity
  is lower: a layer this estimate places under the roofline's ridge is surely bound by
  memory bandwidth.
* ``peak_fraction``: achieved FLOP/s over the device's measured peak (``benchbench peak``,
  when it has been run on this machine: the runner stores it in the run's environment;
  nothing is measured or read here) *in the precision the benchmark ran in*
  (``peak_precision``): the autocast dtype under ``autocast:``, else the dtype, except that
  float32 on CUDA runs in TF32 where the flags allow it (convolutions, by default). The
  peak is the fastest of several kernels (:mod:`benchbench.peak`), so a fraction above 1
  means this benchmark beat all of them, or the peak was measured on a busier machine:
  either way the figure cannot be read as a fraction, and the record gets a warning that
  says so (and whether it is also above the processor's arithmetic limit).
"""

from __future__ import annotations

import math
from typing import Any

import benchbench
from benchbench.peak import peak_for
from benchbench.results import is_number

FIELDS = ("achieved_gflops", "arithmetic_intensity", "peak_fraction", "peak_precision")
ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def bytes_moved(record: dict[str, Any]) -> float | None:
    """Parameters + input batch + output batch, in bytes (None when a piece is unknown)."""
    size = ELEMENT_BYTES.get(record.get("dtype") or "float32", 4)
    batch = record.get("batch_size")
    shapes = [record.get("input_shape"), record.get("output_shape")]
    if not is_number(record.get("param_bytes")) or not is_number(batch):
        return None
    if not all(isinstance(s, list) and s and all(isinstance(d, int) for d in s) for s in shapes):
        return None  # several outputs, or unknown shapes
    return record["param_bytes"] + size * batch * sum(math.prod(s) for s in shapes)


@benchbench.hookimpl
def benchbench_derive_fields(record: dict[str, Any], environment: dict[str, Any]) -> dict[str, Any] | None:
    flops, latency, batch = record.get("flops"), record.get("latency_ms"), record.get("batch_size")
    if not (is_number(flops) and is_number(latency) and is_number(batch)) or latency <= 0:
        return None
    work = 2.0 * flops * batch  # FLOPs of one step, 2 per multiply-add
    rate = work / (latency / 1e3)
    fields: dict[str, Any] = {"achieved_gflops": rate / 1e9}
    moved = bytes_moved(record)
    if moved:
        fields["arithmetic_intensity"] = work / moved
    measured = (environment.get("peaks") or {}).get(record.get("device") or "cpu")  # stored by the runner
    if measured:
        fields["peak_precision"] = precision_of(record)
        fields["peak_fraction"] = rate / peak_for(measured, fields["peak_precision"])
        if fields["peak_fraction"] > 1:
            fields["warnings"] = [above_peak(rate, measured, fields["peak_precision"])]
    return fields


def above_peak(rate: float, measured: dict[str, Any], precision: str) -> str:
    """Why a ``peak_fraction`` above 1 is no fraction, and what to do about it."""
    peak = peak_for(measured, precision)
    set_by = (measured.get("set_by") or {}).get(precision) or "the matmul alone (a peak from before cache version 2)"
    text = (f"peak_fraction {rate / peak:.1%}: {rate / 1e9:.4g} GFLOP/s is above the measured {precision} peak of "
            f"{measured.get('device', 'the device')} ({peak / 1e9:.4g} GFLOP/s, set by {set_by}, measured "
            f"{measured.get('time', '?')}): this benchmark beat every kernel `benchbench peak` tried, or the peak was "
            "measured while other work slowed it; `benchbench peak --refresh` on an otherwise idle machine")
    limit = measured.get("arithmetic_limit") if precision == "float32" else None
    if limit and rate > limit["flops"]:
        text += (f"; it is above the processor's arithmetic limit too ({limit['flops'] / 1e9:.4g} GFLOP/s): its "
                 "kernels do fewer multiplications than its FLOP count says (Winograd, FFT)")
    return text


def precision_of(record: dict[str, Any]) -> str:
    """The arithmetic a benchmark's matmuls and convolutions ran in: the autocast dtype, else its
    dtype; float32 on CUDA is TF32 where the flags allowed it (cuDNN convolutions do by default)."""
    if record.get("autocast"):
        return str(record["autocast"])
    dtype = str(record.get("dtype") or "float32")
    flags = record.get("backend_flags") or {}
    if dtype == "float32" and str(record.get("device", "")).startswith("cuda"):
        convolutions = any("conv" in op for op in record.get("flops_by_operator") or {})
        if flags.get("tf32_matmul") or (flags.get("tf32_cudnn") and convolutions):
            return "tf32"
    return dtype
