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
  nothing is measured or read here).
"""

from __future__ import annotations

import math
from typing import Any

import benchbench
from benchbench.results import is_number

FIELDS = ("achieved_gflops", "arithmetic_intensity", "peak_fraction")
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
        fields["peak_fraction"] = rate / measured["matmul_flops"]
    return fields
