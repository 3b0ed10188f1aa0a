"""Sweeps: one suite entry that stands for a benchmark per combination of listed values.

``sweep: {args.in_channels: [64, 128], args.kernel_size: [3, 5], batch_size: [1, 8]}``
expands, before anything else is checked, into 8 ordinary benchmarks named like
``conv[in_channels=64,kernel_size=3,batch_size=1]``; each is then validated like a
benchmark written out by hand.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from benchbench.checks import FIELD_CHECKS, shown
from benchbench.errors import did_you_mean

MAX_SWEEP = 10_000


def expand_sweeps(raw: list[Any], problems: list[str]) -> list[Any]:
    """A benchmark with ``sweep:`` becomes one benchmark per combination of the listed values.

    ``sweep: {args.in_channels: [64, 128], args.kernel_size: [3, 5], batch_size: [1, 8]}``
    gives 8 benchmarks named like ``conv[in_channels=64,kernel_size=3,batch_size=1]``.
    Keys are suite keys (``batch_size``, ``dtype``...) or ``args.NAME`` /
    ``dataset_args.NAME`` for one argument.
    """
    expanded: list[Any] = []
    for i, item in enumerate(raw, start=1):
        if not isinstance(item, Mapping) or "sweep" not in item:
            expanded.append(item)
            continue
        base = {k: v for k, v in item.items() if k != "sweep"}
        label = f"benchmark {shown(called(base) or '#' + str(i))} (#{i})"
        sweep = item["sweep"]
        if not isinstance(sweep, Mapping) or not sweep:
            problems.append(f"{label}: key 'sweep' must map keys to lists of values, e.g. {{args.kernel_size: [3, 5]}}")
            continue
        axes: list[tuple[str, list[Any]]] = []
        for key, values in sweep.items():
            head, _, rest = str(key).partition(".")
            if not isinstance(values, list) or not values:
                problems.append(f"{label}: key 'sweep.{key}' must be a non-empty list of values, got {shown(values)}")
            elif rest and head not in ("args", "dataset_args"):
                problems.append(f"{label}: key 'sweep.{key}': only args.NAME and dataset_args.NAME reach inside a key")
            elif not rest and (key not in FIELD_CHECKS or key in ("name", "model")):
                problems.append(f"{label}: key 'sweep.{shown(key)}' is no suite key{did_you_mean(str(key), FIELD_CHECKS)}")
            else:
                axes.append((str(key), values))
        if len(axes) != len(sweep):
            continue
        if math.prod(len(v) for _, v in axes) > MAX_SWEEP:
            problems.append(f"{label}: key 'sweep' makes more than {MAX_SWEEP} benchmarks; split the suite")
            continue
        name = called(base) or f"benchmark{i}"
        for combination in itertools.product(*(values for _, values in axes)):
            one = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
            parts = []
            for (key, _), value in zip(axes, combination):
                head, _, rest = key.partition(".")
                if rest:
                    current = one.get(head)
                    one[head] = {**(current if isinstance(current, Mapping) else {}), rest: value}
                else:
                    one[head] = value
                parts.append(f"{rest or head}={value}")
            one["name"] = f"{name}[{','.join(parts)}]"
            expanded.append(one)
    return expanded


def called(item: Any) -> str | None:
    """The name a raw benchmark item goes by (its ``name``, else its ``model``), if any."""
    if not isinstance(item, Mapping):
        return None
    called = item.get("name") or item.get("model")
    return called if isinstance(called, str) else None


