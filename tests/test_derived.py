"""Derived fields (benchbench/derived.py): achieved GFLOP/s, arithmetic intensity, fraction of peak."""

from __future__ import annotations

import pytest

from benchbench import derived


def record(**fields: object) -> dict[str, object]:
    return {"flops": 1_000_000, "latency_ms": 2.0, "batch_size": 8, "dtype": "float32", "param_bytes": 4000,
            "input_shape": [3, 8, 8], "output_shape": [4, 8, 8], **fields}


def test_achieved_rate_counts_two_flops_per_multiply_add() -> None:
    out = derived.benchbench_derive_fields(record(), {})
    assert out["achieved_gflops"] == pytest.approx(2 * 1_000_000 * 8 / 2e-3 / 1e9)
    moved = 4000 + 4 * 8 * (3 * 8 * 8 + 4 * 8 * 8)  # parameters + input batch + output batch
    assert derived.bytes_moved(record()) == moved
    assert out["arithmetic_intensity"] == pytest.approx(2 * 1_000_000 * 8 / moved)
    assert "peak_fraction" not in out  # no measured peak for this device


def test_fraction_of_the_peak_stored_in_the_environment() -> None:
    env = {"peaks": {"cpu": {"matmul_flops": 1e12}}}
    out = derived.benchbench_derive_fields(record(device="cpu"), env)
    assert out["peak_fraction"] == pytest.approx(out["achieved_gflops"] * 1e9 / 1e12)
    assert "peak_fraction" not in derived.benchbench_derive_fields(record(device="cuda:0"), env)


@pytest.mark.parametrize("change", [{"flops": None}, {"latency_ms": 0.0}, {"latency_ms": None}, {"batch_size": True}])
def test_nothing_is_derived_without_its_inputs(change: dict[str, object]) -> None:
    assert derived.benchbench_derive_fields(record(**change), {}) is None


def test_half_precision_and_unknown_shapes() -> None:
    assert derived.bytes_moved(record(dtype="bfloat16")) == 4000 + 2 * 8 * (3 * 8 * 8 + 4 * 8 * 8)
    assert derived.bytes_moved(record(output_shape=[[4, 8, 8], [2]])) is None  # several outputs
    assert "arithmetic_intensity" not in derived.benchbench_derive_fields(record(param_bytes=None), {})


def test_a_rate_above_the_peak_is_flagged_not_shown_as_a_fraction() -> None:
    rate = 2 * 1_000_000 * 8 / 2e-3  # record()'s achieved FLOP/s: 8 GFLOP/s
    limit = {"flops": 6e9, "formula": "made up", "clock_source": "made up"}
    measured = {"device": "cpu", "flops": 10e9, "flops_by_precision": {"float32": 10e9, "bfloat16": 4e9},
                "set_by": {"float32": "matmul 2048x2048", "bfloat16": "conv 3x3 512ch 32x32 batch 8"},
                "arithmetic_limit": limit, "time": "2026-01-01T00:00:00+00:00"}
    below = derived.benchbench_derive_fields(record(device="cpu"), {"peaks": {"cpu": measured}})
    assert below["peak_fraction"] == pytest.approx(rate / 10e9) and "warnings" not in below
    above = derived.benchbench_derive_fields(record(device="cpu", dtype="bfloat16"), {"peaks": {"cpu": measured}})
    assert above["peak_fraction"] == pytest.approx(2.0)
    [warning] = above["warnings"]
    assert warning.startswith("peak_fraction 200.0%: 8 GFLOP/s is above the measured bfloat16 peak of cpu (4 GFLOP/s, "
                              "set by conv 3x3 512ch 32x32 batch 8, measured 2026-01-01T00:00:00+00:00)")
    assert "arithmetic limit" not in warning  # the limit is a float32 figure
    over_limit = derived.above_peak(8e9, {**measured, "flops_by_precision": {"float32": 7e9}}, "float32")
    assert "above the processor's arithmetic limit too (6 GFLOP/s): its kernels do fewer multiplications" in over_limit
    legacy = derived.above_peak(8e9, {"matmul_flops": 4e9}, "float32")  # a run file from before the kernels
    assert "set by the matmul alone (a peak from before cache version 2)" in legacy
