"""Human-readable numbers for tables: one place, so every reporter agrees."""

from __future__ import annotations

import math
import numbers
from typing import Any


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _not_a_number(value: Any) -> bool:
    """A value a number format cannot take (a damaged run file, a plugin's odd field): shown as it is."""
    return not isinstance(value, numbers.Real) or isinstance(value, bool)


def si(value: Any, digits: int = 3) -> str:
    """1234567 -> '1.23M' (k, M, G, T); counts such as params and FLOPs."""
    if _missing(value):
        return "-"
    if _not_a_number(value):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return str(value)
    if value == int(value) and abs(value) < 1e3:
        return str(int(value))
    return _scaled(value, digits, 1e3, ("", "k", "M", "G", "T"))


def _scaled(value: float, digits: int, base: float, units: tuple[str, ...]) -> str:
    """``value`` in the largest unit that keeps it below ``base`` *after* rounding."""
    for power, unit in enumerate(units):
        scaled = value / base**power
        text = f"{scaled:.{digits}g}"
        if abs(float(text)) < base or power == len(units) - 1:
            return f"{text}{unit}"
    raise AssertionError("unreachable")


def nbytes(value: Any) -> str:
    """Bytes in binary units: 8388608 -> '8.00 MiB'."""
    if _missing(value):
        return "-"
    if _not_a_number(value):
        return str(value)
    value = float(value)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for power, unit in enumerate(("KiB", "MiB", "GiB", "TiB"), start=1):
        text = f"{value / 1024**power:.2f}"
        if abs(float(text)) < 1024 or unit == "TiB":
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def ms(value: Any) -> str:
    """Milliseconds with 3 significant digits (at least 3 decimals below 1 ms)."""
    if _missing(value):
        return "-"
    if _not_a_number(value):
        return str(value)
    value = float(value)
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.4g}"


def ratio(value: Any) -> str:
    """A ratio against the baseline row: '0.115x'."""
    if _missing(value):
        return "-"
    if _not_a_number(value):
        return str(value)
    return f"{float(value):.3g}x"


def shape(value: Any) -> str:
    """[64, 112, 112] -> '64x112x112'; nested lists (several outputs) joined with ', '."""
    if _missing(value):
        return "-"
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return ", ".join(shape(v) for v in value)
    if isinstance(value, (list, tuple)):
        return "x".join(str(d) for d in value) if value else "scalar"
    return str(value)
