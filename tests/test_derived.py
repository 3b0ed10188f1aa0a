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
