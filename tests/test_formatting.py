"""Numbers in tables: units change after rounding, so 999.7k is 1M, never '1e+03k'."""

from __future__ import annotations

import math

import pytest

from benchbench import formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (999.7, "1k"), (1000, "1k"), (999_700, "1M"), (1_234_567, "1.23M"),
     (2.42e9, "2.42G"), (57.49, "57.5"), (0.5, "0.5"), (None, "-"), (math.nan, "-")],
)
def test_si(value: object, text: str) -> None:
    assert formatting.si(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.00 KiB"), (1_048_575, "1.00 MiB"), (41 * 2**20, "41.00 MiB"),
     (3 * 2**30, "3.00 GiB"), (None, "-")],
)
def test_nbytes(value: object, text: str) -> None:
    assert formatting.nbytes(value) == text


def test_ms_ratio_and_shape() -> None:
    assert formatting.ms(0.0481) == "0.048" and formatting.ms(131.9) == "131.9"
    assert formatting.ratio(0.11328) == "0.113x"
    assert formatting.shape([64, 112, 112]) == "64x112x112"
    assert formatting.shape([[3, 4], [5]]) == "3x4, 5"
    assert formatting.shape([]) == "scalar"
