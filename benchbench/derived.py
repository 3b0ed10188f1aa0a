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

The plugin declares these fields (``benchbench_register_fields``) with their footnotes and
two plots of the report that set the metrics against each other: latency against FLOPs
(``scatter``) and the ``roofline``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import benchbench
from benchbench.peak import peak_for
from benchbench.plots import labelled_points, log_axes, points
from benchbench.results import is_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchbench.results import RunResult

FIELDS = ("achieved_gflops", "arithmetic_intensity", "peak_precision", "peak_fraction")
"""What this plugin derives, in column order."""
FOOTNOTES = {
    "achieved_gflops": "achieved_gflops: 2 x flops x batch / latency (2 FLOPs per multiply-add, as peak figures count).",
    "arithmetic_intensity": "arithmetic_intensity: those FLOPs per byte of parameters + input + output (an upper estimate).",
    "peak_fraction": "peak_fraction: achieved FLOP/s over the device's peak in the row's precision: the fastest of the "
    "kernels benchbench peak measured (matmuls, convolutions); above 100% is no fraction (a warning says why). "
    "The processor's arithmetic limit is a separate figure (benchbench peak shows it).",
}
ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def bytes_moved(record: dict[str, Any]) -> float | None:
    """Parameters + input batch + output batch, in bytes (None when a piece is unknown)."""
    size = ELEMENT_BYTES.get(record.get("dtype") or "float32", 4)
    batch = record.get("batch_size")
    shapes: list[Any] = [record.get("input_shape"), record.get("output_shape")]
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


# ----------------------------------------------------------------------------- the report's plots


def draw_scatter(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    """Latency against FLOPs, log axes: equal FLOPs at different times show that memory traffic
    and kernel efficiency, not arithmetic, set the speed."""
    import matplotlib.pyplot as plt

    sets = [(name, points(run, "flops", "latency_ms")) for run, name in zip(runs, names)]
    if sum(len(p) for _, p in sets) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (name, found) in enumerate(sets):
        labelled_points(ax, found, name, labelled=i == 0)
    log_axes(ax, "FLOPs per sample (fvcore: multiply-adds)", "latency of one batch (ms)")
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return fig


def draw_roofline(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    """Achieved FLOP/s against arithmetic intensity, under each device's measured roof (the peak
    and the copy bandwidth ``benchbench peak`` stored in the run's environment)."""
    import matplotlib.pyplot as plt

    sets = []
    for run, name in zip(runs, names):
        found = [(b, x, y * 1e9) for b, x, y in points(run, "arithmetic_intensity", "achieved_gflops")]
        if found:
            sets.append((name, run, found))
    if not sets:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [p[1] for _, _, found in sets for p in found]
    ridges = [peak_for(m, "float32") / m["bandwidth_bytes_per_s"] for _, run, _ in sets for m in (run.environment.get("peaks") or {}).values()]
    low, high = min([min(xs) / 3, *[r / 4 for r in ridges]]), max([max(xs) * 3, *[r * 4 for r in ridges]])
    grid = [10 ** (math.log10(low) + i * (math.log10(high) - math.log10(low)) / 200) for i in range(201)]
    drawn = set()
    for name, run, found in sets:
        for device, measured in (run.environment.get("peaks") or {}).items():
            key = (device, measured.get("key"))
            if key in drawn:
                continue
            drawn.add(key)
            roof = [min(peak_for(measured, "float32"), measured["bandwidth_bytes_per_s"] * x) for x in grid]
            ax.plot(grid, roof, linestyle="--", label=f"roof: {measured.get('name', device)} "
                    f"({peak_for(measured, 'float32') / 1e9:.0f} GFLOP/s, {measured['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s)")
        labelled_points(ax, found, name, labelled=name == sets[0][0])
    log_axes(ax, "arithmetic intensity (FLOP per byte, estimate)", "achieved FLOP/s")
    ax.legend(fontsize=8)
    if not drawn:
        ax.set_title("no measured peak for this device: run `benchbench peak` once, then the suite", fontsize=9)
    return fig


@benchbench.hookimpl
def benchbench_register_fields(register: Callable[..., None]) -> None:
    register(
        "roofline",
        fields=list(FIELDS),
        description="achieved GFLOP/s, arithmetic intensity and fraction of the measured peak, from flops and latency",
        footnotes=FOOTNOTES,
        plots={
            "scatter": {"draw": draw_scatter, "heading": "Latency against FLOPs", "alt": "latency against FLOPs, log axes",
                        "explanation": "Log axes. Equal FLOPs, different times: memory traffic and kernel efficiency, "
                        "not arithmetic, set the speed.",
                        "needs": "at least two benchmarks with both flops and latency"},
            "roofline": {"draw": draw_roofline, "heading": "Roofline", "alt": "roofline plot",
                         "explanation": "Achieved FLOP/s (2 per multiply-add) against arithmetic intensity (FLOPs per "
                         "byte of parameters, input and output: an upper estimate), under the device's measured peak "
                         "(the fastest of several kernels) and copy bandwidth (`benchbench peak`).",
                         "needs": "benchmarks with achieved_gflops and arithmetic_intensity (metrics flops and latency)"},
        },
    )
