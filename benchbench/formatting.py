"""Human-readable values for tables: one place, so the table, the HTML report, compare and
history agree (:func:`format_value` is the one formatter; the rest are its pieces, which
metrics also register as formats of their fields)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
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


def percent(value: Any, decimals: int = 2) -> str:
    """0.9944 -> '99.44%' (accuracy; one decimal for a fraction of peak)."""
    if _missing(value):
        return "-"
    if _not_a_number(value):
        return str(value)
    return f"{float(value):.{decimals}%}"


def operators(value: dict[str, Any]) -> str:
    """Operator counts: {'add': 1, 'hardtanh_': 2} -> 'add, hardtanh_×2'."""
    parts = []
    for key, count in value.items():
        if isinstance(count, int) and not isinstance(count, bool):
            parts.append(f"{key}×{count}" if count > 1 else f"{key}")
        else:
            parts.append(f"{key}: {count}")
    return ", ".join(parts) or "-"


def format_value(field: str, value: Any, formats: Mapping[str, Callable[[Any], str]] | None = None, *,
                 exact: bool = False) -> str:
    """Any field's value as tables, reports, compare and history show it: the one formatter.

    A format the field's metric registered wins (``formats``, from the registration:
    absent when a run file is read back without its plugins, as ``compare`` and ``history``
    read it, so the field's name decides next: ``*_ratio``
    -> '0.115x', ``*_bytes`` -> '8.00 MiB', ``*_ms`` -> '1.234', ``*_fraction`` and
    ``accuracy`` -> '%', shapes -> '3x32x32', large counts -> '1.23M'). ``exact`` shows
    whole numbers in full ('147,968'), for comparisons where one unit matters.
    """
    if _missing(value):
        return "-"
    if formats and field in formats:
        return formats[field](value)
    if field == "compile" and isinstance(value, dict):  # torch.compile's options: {} is its defaults
        return ", ".join(f"{v}" if k == "mode" else f"{k}={v}" for k, v in value.items()) or "default"
    if isinstance(value, dict):
        return operators(value)
    if field.endswith("shape"):
        return shape(value)
    if _not_a_number(value):
        return str(value)
    if field.endswith("_ratio"):
        return ratio(value)
    if field.endswith("_fraction"):
        return percent(value, 1)
    if field.startswith("accuracy"):  # DESIGN.md's score field, whose name has no unit suffix
        return percent(value)
    if field.endswith("_bytes"):
        return nbytes(value)
    if field.endswith("_ms"):
        return ms(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}" if exact else si(value) if abs(int(value)) >= 1_000 else str(int(value))
    return f"{float(value):.4g}"
