"""The value checks of suite keys: one table, so a key means the same wherever it is written.

Each check takes a value as YAML (or the command line) gives it and returns
``(normalised value, problem or None)``; the problem is a phrase that follows the key's
name (``key 'batch_size' must be a positive whole number, got 0``). The suite loader
applies them to ``defaults``, to every benchmark and to command-line overrides; the
command line reuses them as argparse ``type=`` functions (:func:`argparse_type`), so
``--batch-size 0`` and ``batch_size: 0`` get the same words.
"""

from __future__ import annotations

import argparse
import math
import re
import reprlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from benchbench.errors import did_you_mean
from benchbench.spec import AUTOCAST_DTYPES, COMPILE_MODES, DTYPES, MODES

MAX_THREADS = 1024  # beyond this OpenMP fails to start threads, or crashes
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
Check = Callable[[Any], "tuple[Any, str | None]"]


SHOWN_CHARS = 120
"""The most characters of a user's value an error message echoes (:func:`shown`)."""
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict, _SHORT.maxset = 3, 6, 6, 6, 6
_SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = SHOWN_CHARS - 2, 30, 60  # a name shows whole


def shown(value: Any) -> str:
    """``repr(value)`` cut to a few lines' worth: how every error message echoes input.

    A benchmark that is a list of a million items (or an alias bomb: YAML aliases that
    repeat each other) would otherwise be printed whole; reprlib shortens each level
    (nested items, long strings, 400-digit numbers) and the result is cut to
    :data:`SHOWN_CHARS` characters.
    """
    text = _SHORT.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def unstorable(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(where, problem)`` for each string or number in ``value`` that a run file, the history
    or a terminal cannot take: text that is not valid Unicode (a lone surrogate such as
    ``"\\ud800"``, which YAML and JSON escapes can write but UTF-8 cannot encode) and whole
    numbers beyond the largest float (``10**400``: no statistic, ratio or table can use them).

    Mapping keys are checked too, and each object once (aliases share objects; a
    self-referring structure ends). ``where`` is a path such as ``benchmarks[2].name``.
    """
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                yield path or "the value", problem
        elif isinstance(item, int) and not isinstance(item, bool):
            if not _fits_float(item):
                yield path or "the value", (f"the number {shown(item)} ({len(str(abs(item)))} digits) is beyond the "
                                            f"largest a float holds ({sys.float_info.max:.3g})")
        elif isinstance(item, (Mapping, list, tuple)) and id(item) not in seen:
            seen.add(id(item))
            if isinstance(item, Mapping):
                for key, inner in reversed(list(item.items())):
                    name = key if isinstance(key, str) and not _text_problem(key) else shown(key)
                    stack.append((f"{path}.{name}" if path else str(name), inner))
                    if isinstance(key, str) and _text_problem(key):
                        stack.append((f"{path} key {shown(key)}" if path else f"key {shown(key)}", key))
            else:
                stack.extend((f"{path}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))


def _text_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"the text {shown(text)} holds {shown(text[exc.start:exc.end])}, a lone surrogate, which is no character "
                "and cannot be written as UTF-8 (in a run file, the history or a terminal); write the character itself")
    return None


def _fits_float(number: int) -> bool:
    try:
        float(number)
    except OverflowError:
        return False
    return True


def _whole(value: Any, low: int, high: float = float("inf")) -> bool:
    """Whether ``value`` is a whole number (an int, not a bool) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def positive_int(value: Any) -> tuple[Any, str | None]:
    if not _whole(value, 1):
        return value, f"must be a positive whole number, got {shown(value)}"
    return value, None


def non_negative_int(value: Any) -> tuple[Any, str | None]:
    if not _whole(value, 0):
        return value, f"must be a whole number, 0 or more, got {shown(value)}"
    return value, None


MAX_ROUNDS = 1000
"""The most ``rounds`` a run may have. A round reruns every timed benchmark: with the latency
metric's defaults (0.2 s warm-up, 1 s of timing) 1000 rounds are over 20 minutes per
benchmark, and the statistics (a bootstrap over rounds) stop gaining long before; a larger
number is a typo (``rounds: 1000000000`` would run for decades)."""


def rounds(value: Any) -> tuple[Any, str | None]:
    """``rounds:`` in a suite, ``--rounds`` and ``run_suite(rounds=...)``: one rule for all three."""
    if not _whole(value, 1, MAX_ROUNDS):
        return value, (f"must be a whole number from 1 to {MAX_ROUNDS}, got {shown(value)} (each round reruns every "
                       f"timed benchmark: {MAX_ROUNDS} rounds already take over 20 minutes a benchmark with the "
                       "latency defaults; suites/ci.yaml uses 5)")
    return value, None


def pairs(value: Any) -> tuple[Any, str | None]:
    """``--rounds`` of ``benchbench ab`` and ``bisect``: pairs of rounds, one of each side."""
    if not _whole(value, 1, MAX_ROUNDS):
        return value, (f"must be a whole number of pairs from 1 to {MAX_ROUNDS}, got {shown(value)} (each pair runs "
                       "every timed benchmark once on each side)")
    return value, None


def shape(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return value, f"must be a list of positive whole numbers such as [3, 224, 224], got {shown(value)}"
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value):
        return value, f"must be a list of positive whole numbers such as [3, 224, 224], got {shown(value)}"
    return tuple(value), None


def choice(choices: tuple[str, ...]) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if value not in choices:
            return value, f"must be one of {', '.join(choices)}, got {shown(value)}{did_you_mean(value, choices)}"
        return value, None

    return check


def device(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        return value, f"must be auto, cpu, cuda or cuda:N, got {shown(value)}"
    return value, None


def boolean(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {shown(value)}")


def int_between(low: int, high: int) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if not _whole(value, low, high):
            return value, f"must be a whole number from {low} to {high}, got {shown(value)}"
        return value, None

    return check


def optional(check: Callable[[Any], tuple[Any, str | None]]) -> Callable[[Any], tuple[Any, str | None]]:
    return lambda value: (None, None) if value is None else check(value)


def nonempty_str(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, str) and value else (value, f"must be a non-empty string, got {shown(value)}")


def mapping(value: Any) -> tuple[Any, str | None]:
    if value is None:
        return {}, None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        return value, f"must be a mapping of names to values, got {shown(value)}"
    return dict(value), None


def name_list(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return value, f"must be a list of names such as [params, flops], got {shown(value)}"
    return tuple(value), None


MAX_TIMEOUT_S = 1e7  # about 115 days: longer is "no limit" in all but name, and overflows timers


def timeout(value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and numeric_text(value):
        return value, f"must be a number of seconds; YAML reads {shown(value)} as text: write it as 1000 or 1.0e+3"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        return value, f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, or null for no limit, got {shown(value)}"
    return float(value), None


def numeric_text(text: str) -> bool:
    """Whether a string reads as a number (``"8"``, ``"1e3"``): YAML quoted it, or read it as text."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_threshold(value: Any) -> tuple[float | None, str | None]:
    """``"5%"`` or ``0.05`` -> 0.05; the problem in words otherwise."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(text, str) and text.endswith("%"):
            number = float(text[:-1]) / 100
        elif isinstance(text, str):
            number = float(text)  # "0.05" from a command line
        elif isinstance(text, (int, float)) and not isinstance(text, bool):
            number = float(text)
        else:
            raise ValueError
    except ValueError:
        return None, f"must be a percentage such as 5% (or a fraction such as 0.05), got {shown(value)}"
    if not math.isfinite(number) or number < 0:
        return None, f"must be 0% or more, got {shown(value)}"
    return number, None


def thresholds(value: Any) -> tuple[Any, str | None]:
    entries, problem = mapping(value)
    if problem:
        return value, "must map fields or metrics to percentages, e.g. {latency: 5%, flops: 0%}"
    parsed = {}
    for key, given in entries.items():
        number, problem = parse_threshold(given)
        if problem:
            return value, f"entry {shown(key)} {problem}"
        parsed[key] = number
    return parsed, None


def seeds(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        return value, f"must be a list of whole numbers 0 or more, such as [0, 1, 2], got {shown(value)}"
    return value, None


def skip(value: Any) -> tuple[Any, str | None]:
    if value is None or value is False:
        return None, None
    if value is True:
        return "skipped in the suite file", None
    return nonempty_str(value)


COMPILE_KEYS: dict[str, Any] = {"mode": COMPILE_MODES, "backend": None, "fullgraph": bool, "dynamic": (bool, type(None))}


def compile_options(value: Any) -> tuple[Any, str | None]:
    """``compile: true`` (torch.compile's defaults), ``false``/``null`` (eager), or a mapping of
    its options: ``{mode: max-autotune, backend: inductor, fullgraph: true, dynamic: false}``."""
    usage = "must be true, false, or a mapping of torch.compile options (mode, backend, fullgraph, dynamic)"
    if value is None or value is False:
        return None, None
    if value is True:
        return {}, None
    if not isinstance(value, Mapping):
        return value, f"{usage}, got {shown(value)}"
    for key, given in value.items():
        kind = COMPILE_KEYS.get(key, "unknown") if isinstance(key, str) else "unknown"
        if kind == "unknown":
            return value, f"has unknown option {shown(key)}{did_you_mean(str(key), COMPILE_KEYS)}; {usage}"
        if key == "mode" and given not in COMPILE_MODES:
            return value, f"mode must be one of {', '.join(COMPILE_MODES)}, got {shown(given)}{did_you_mean(str(given), COMPILE_MODES)}"
        if key == "backend" and (not isinstance(given, str) or not given):
            return value, f"backend must be a backend's name such as inductor, got {shown(given)}"
        if key in ("fullgraph", "dynamic") and not isinstance(given, COMPILE_KEYS[key]):
            return value, f"{key} must be true or false{' or null' if key == 'dynamic' else ''}, got {shown(given)}"
    return dict(value), None


def autocast(value: Any) -> tuple[Any, str | None]:
    """``none`` (or null) for no autocast, else one of :data:`~benchbench.spec.AUTOCAST_DTYPES`."""
    if value is None or value == "none":
        return None, None
    if value in AUTOCAST_DTYPES:
        return value, None
    return value, f"must be none, {' or '.join(AUTOCAST_DTYPES)}, got {shown(value)}{did_you_mean(str(value), ('none', *AUTOCAST_DTYPES))}"


FIELD_CHECKS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "name": nonempty_str,
    "model": nonempty_str,
    "args": mapping,
    "input_shape": shape,
    "device": device,
    "batch_size": positive_int,
    "cpu_batch_size": optional(positive_int),
    "metrics": name_list,
    "metric_options": mapping,
    "dtype": choice(DTYPES),
    "channels_last": boolean,
    "mode": choice(MODES),
    "threads": optional(int_between(1, MAX_THREADS)),
    "seed": int_between(0, 2**63 - 1),
    "baseline": optional(nonempty_str),
    "skip": skip,
    "description": optional(nonempty_str),
    "timeout": timeout,
    "dry_run": boolean,
    "thresholds": thresholds,
    "dataset": nonempty_str,
    "dataset_args": mapping,
    "train": mapping,
    "seeds": seeds,
    "compile": compile_options,
    "autocast": autocast,
    "tf32": optional(boolean),
    "cudnn_benchmark": optional(boolean),
    "cuda_graphs": boolean,
}


def argparse_type(check: Check, convert: Callable[[str], Any] = str) -> Callable[[str], Any]:
    """A check as an argparse ``type=``: ``--batch-size 0`` fails with the suite key's words."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            names: dict[Callable[[str], Any], str] = {int: "a whole number", float: "a number"}
            kind = names.get(convert, "a value")
            raise argparse.ArgumentTypeError(f"expected {kind}, got {shown(text)}") from None
        checked, problem = check(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return checked

    return parse


def same_kind(value: Any, default: Any) -> bool:
    """Whether an option value has the type of its registered default (ints pass for floats).

    Numbers must also be finite; ``null`` is accepted only where the default is ``null``.
    """
    if default is None:
        return True
    if value is None:
        return False
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    if isinstance(default, (int, str)):
        return isinstance(value, type(default))
    return True
