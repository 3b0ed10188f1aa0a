"""Human-readable numbers for tables: one place, so every reporter agrees."""

from __future__ import annotations

import math
from typing import Any


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def si(value: Any, digits: int = 3) -> str:
    """1234567 -> '1.23M' (k, M, G, T); counts such as params and FLOPs."""
    if _missing(value):
        return "-"
    value = float(value)
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g}{unit}"
    return f"{value:.{digits}g}" if value != int(value) else str(int(value))


def nbytes(value: Any) -> str:
    """Bytes in binary units: 8388608 -> '8.00 MiB'."""
    if _missing(value):
        return "-"
    value = float(value)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{int(value)} B"


def ms(value: Any) -> str:
    """Milliseconds with 3 significant digits (at least 3 decimals below 1 ms)."""
    if _missing(value):
        return "-"
    value = float(value)
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.4g}"


def ratio(value: Any) -> str:
    """A ratio against the baseline row: '0.115x'."""
    if _missing(value):
        return "-"
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
