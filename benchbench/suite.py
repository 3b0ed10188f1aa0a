"""Suite files: read YAML, merge defaults, validate everything before anything runs.

Validation collects *every* problem in the file and raises one :class:`SuiteError`
listing them, each naming the benchmark and the key and suggesting the closest valid
name, so a user fixes a suite in one round instead of one typo per run.

This module does not import torch: a bad suite is reported in a fraction of a second.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchbench.errors import SuiteError, UsageError, did_you_mean

if TYPE_CHECKING:
    from benchbench.plugins import PluginManager

SUITE_KEYS = ("name", "description", "defaults", "benchmarks")
DTYPES = ("float32", "float16", "bfloat16", "float64")
MODES = ("eval", "train")
DEFAULT_METRICS = ("params", "flops", "latency", "memory")
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark after defaults are merged and every value is checked."""

    name: str
    model: str
    args: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    device: str = "auto"
    batch_size: int = 1
    cpu_batch_size: int | None = None
    metrics: tuple[str, ...] = DEFAULT_METRICS
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    dtype: str = "float32"
    channels_last: bool = False
    mode: str = "eval"
    threads: int | None = None
    seed: int = 0
    baseline: str | None = None
    skip: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    source: str
    """Where the suite came from: a file path, or ``<dict>``."""
    benchmarks: tuple[BenchmarkSpec, ...]
    description: str | None = None
    text: str | None = None
    """The suite file's contents, stored in the run file for reproducibility."""


# ----------------------------------------------------------------------------- field checks
# Each check returns (normalised value, problem or None). One table serves defaults and
# benchmarks alike, so a key means the same wherever it is written.


def _positive_int(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return value, f"must be a positive whole number, got {value!r}"
    return value, None


def _optional_positive_int(value: Any) -> tuple[Any, str | None]:
    return (None, None) if value is None else _positive_int(value)


def _shape(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return value, f"must be a list of positive whole numbers such as [3, 224, 224], got {value!r}"
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in value):
        return value, f"must be a list of positive whole numbers such as [3, 224, 224], got {value!r}"
    return tuple(value), None


def _choice(choices: tuple[str, ...]) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if value not in choices:
            return value, f"must be one of {', '.join(choices)}, got {value!r}{did_you_mean(value, choices)}"
        return value, None

    return check


def _device(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        return value, f"must be auto, cpu, cuda or cuda:N, got {value!r}"
    return value, None


def _bool(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {value!r}")


def _int(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return value, f"must be a whole number, got {value!r}"
    return value, None


def _str(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, str) and value else (value, f"must be a non-empty string, got {value!r}")


def _optional_str(value: Any) -> tuple[Any, str | None]:
    return (None, None) if value is None else _str(value)


def _mapping(value: Any) -> tuple[Any, str | None]:
    if value is None:
        return {}, None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        return value, f"must be a mapping of names to values, got {value!r}"
    return dict(value), None


def _str_list(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return value, f"must be a list of names such as [params, flops], got {value!r}"
    return tuple(value), None


def _skip(value: Any) -> tuple[Any, str | None]:
    if value is None or value is False:
        return None, None
    if value is True:
        return "skipped in the suite file", None
    return _str(value)


FIELD_CHECKS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "name": _str,
    "model": _str,
    "args": _mapping,
    "input_shape": _shape,
    "device": _device,
    "batch_size": _positive_int,
    "cpu_batch_size": _optional_positive_int,
    "metrics": _str_list,
    "metric_options": _mapping,
    "dtype": _choice(DTYPES),
    "channels_last": _bool,
    "mode": _choice(MODES),
    "threads": _optional_positive_int,
    "seed": _int,
    "baseline": _optional_str,
    "skip": _skip,
    "description": _optional_str,
}
BENCHMARK_ONLY = ("name",)


# ----------------------------------------------------------------------------- loading


def read_suite_file(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read and parse a suite file; every failure is a UsageError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"suite file {str(path)!r} not found (check the path; suites/ holds the ready ones)") from None
    except IsADirectoryError:
        raise UsageError(f"suite file {str(path)!r} is a folder; give a .yaml file in it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {str(path)!r} cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise UsageError(
            f"{path}: a suite file must be a mapping with a 'benchmarks' list, got {type(data).__name__}"
        )
    return data, text


def load_suite(
    source: str | Path | Mapping[str, Any],
    manager: PluginManager,
    *,
    overrides: Mapping[str, Any] | None = None,
    only: list[str] | None = None,
) -> Suite:
    """Read (if a path), merge defaults and ``overrides``, and validate against the registry.

    ``overrides`` (from the command line, e.g. ``{"device": "cpu"}``) win over the file.
    ``only`` keeps the benchmarks with those names (validated too).
    """
    if isinstance(source, Mapping):
        data, text, origin, stem = dict(source), None, "<dict>", "suite"
    else:
        data, text = read_suite_file(source)
        origin, stem = str(source), Path(source).stem
    problems: list[str] = []
    for key in data:
        if key not in SUITE_KEYS:
            problems.append(f"unknown top-level key {key!r}{did_you_mean(key, SUITE_KEYS)}")
    name, problem = _str(data.get("name", stem))
    if problem:
        problems.append(f"key 'name' {problem}")
    description, problem = _optional_str(data.get("description"))
    if problem:
        problems.append(f"key 'description' {problem}")

    defaults, problem = _mapping(data.get("defaults"))
    if problem:
        problems.append(f"key 'defaults' {problem}")
        defaults = {}
    defaults = _check_fields(defaults, "defaults", problems, allowed=set(FIELD_CHECKS) - set(BENCHMARK_ONLY))
    cli = _check_fields(dict(overrides or {}), "command-line option", problems, allowed=set(FIELD_CHECKS))

    raw = data.get("benchmarks")
    if not isinstance(raw, list) or not raw:
        problems.append("key 'benchmarks' must be a non-empty list of benchmarks (each with at least 'model')")
        raw = []
    specs: list[BenchmarkSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw, start=1):
        spec = _benchmark(item, i, defaults, cli, manager, problems)
        if spec is None:
            continue
        if spec.name in seen:
            problems.append(
                f"benchmark {spec.name!r} (#{i}): duplicate name, also used by benchmark #{seen[spec.name]}; "
                "give each benchmark a unique 'name'"
            )
        seen.setdefault(spec.name, i)
        specs.append(spec)
    # Names of benchmarks that failed validation still count: a baseline naming one is
    # not a second problem.
    declared = {n for item in raw if isinstance(item, Mapping) for n in [item.get("name") or item.get("model")] if isinstance(n, str)}
    for spec in specs:
        if spec.baseline is not None and spec.baseline not in declared:
            problems.append(
                f"benchmark {spec.name!r}: key 'baseline' names no benchmark of this suite: "
                f"{spec.baseline!r}{did_you_mean(spec.baseline, seen)}"
            )
    if only:
        for wanted in only:
            if wanted not in seen:
                problems.append(f"--only {wanted!r}: no such benchmark{did_you_mean(wanted, seen)}")
        specs = [s for s in specs if s.name in only]
    if problems:
        raise SuiteError(origin, problems)
    return Suite(name=name, source=origin, benchmarks=tuple(specs), description=description, text=text)


def _check_fields(
    values: dict[str, Any], where: str, problems: list[str], *, allowed: set[str]
) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}")
            continue
        value, problem = FIELD_CHECKS[key](value)
        if problem:
            problems.append(f"{where}: key {key!r} {problem}")
            continue
        checked[key] = value
    return checked


def _benchmark(
    item: Any,
    index: int,
    defaults: dict[str, Any],
    cli: dict[str, Any],
    manager: PluginManager,
    problems: list[str],
) -> BenchmarkSpec | None:
    if not isinstance(item, Mapping):
        problems.append(f"benchmark #{index}: must be a mapping with at least 'model', got {item!r}")
        return None
    called = item.get("name") or item.get("model")
    label = f"benchmark {called!r} (#{index})" if isinstance(called, str) else f"benchmark #{index}"
    own = _check_fields(dict(item), label, problems, allowed=set(FIELD_CHECKS))
    if "model" not in item:
        problems.append(f"{label}: missing key 'model' (the registered model to build; `benchbench list models`)")
        return None
    merged = {**defaults, **own, **cli}
    if "model" not in merged:
        return None  # its type problem is already reported
    merged.setdefault("name", merged["model"])
    registry = manager.registry
    model = merged["model"]
    if not registry.has("models", model):
        problems.append(f"{label}: key 'model': {manager.unknown('models', model)}")
        return None
    entry = registry.get("models", model)
    args = merged.get("args", {})
    if "args" in own or "args" not in item:  # a rejected 'args' is reported once, not as missing ones
        problems.extend(f"{label}: key 'args': {p}" for p in _check_args(entry.factory, args))
    if "input_shape" not in merged:
        shape = _default_shape(entry, args)
        if shape is None:
            problems.append(
                f"{label}: key 'input_shape' is needed: model {model!r} registers no default input shape "
                "(give the per-sample shape, e.g. input_shape: [3, 224, 224])"
            )
            return None
        merged["input_shape"] = shape
    for metric in merged.get("metrics", DEFAULT_METRICS):
        if not registry.has("metrics", metric):
            problems.append(f"{label}: key 'metrics': {manager.unknown('metrics', metric)}")
    merged["metric_options"] = _check_metric_options(merged.get("metric_options", {}), manager, label, problems)
    try:
        return replace(BenchmarkSpec(name=merged["name"], model=model), **merged)
    except TypeError as exc:  # a check above let a wrong type through: report, don't crash
        problems.append(f"{label}: {exc}")
        return None


def _default_shape(entry: Any, args: dict[str, Any]) -> tuple[int, ...] | None:
    shape = entry.input_shape
    if callable(shape):
        try:
            shape = shape(args)
        except Exception:  # noqa: BLE001 - a shape rule that cannot apply means "no default"
            return None
    return tuple(int(d) for d in shape) if shape is not None else None


def _check_args(factory: Callable[..., Any], args: dict[str, Any]) -> list[str]:
    """Argument names the factory cannot take, and required ones that are missing."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return []  # builtins without a signature: the factory call will tell
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    problems = [
        f"unknown argument {name!r}{did_you_mean(name, accepted)}; accepted: {', '.join(accepted)}"
        for name in args
        if name not in accepted
    ]
    missing = [
        n
        for n, p in params.items()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in args
    ]
    if missing:
        problems.append(f"missing required argument(s): {', '.join(missing)}")
    return problems


def _check_metric_options(
    options: dict[str, Any], manager: PluginManager, label: str, problems: list[str]
) -> dict[str, dict[str, Any]]:
    registry = manager.registry
    checked: dict[str, dict[str, Any]] = {}
    for metric, values in options.items():
        if not registry.has("metrics", metric):
            problems.append(f"{label}: key 'metric_options': {manager.unknown('metrics', metric)}")
            continue
        if not isinstance(values, Mapping):
            problems.append(f"{label}: key 'metric_options.{metric}' must be a mapping, got {values!r}")
            continue
        known = registry.get("metrics", metric).options
        for key, value in values.items():
            if key not in known:
                choices = ", ".join(known) or "none"
                problems.append(
                    f"{label}: key 'metric_options.{metric}': unknown option {key!r}"
                    f"{did_you_mean(key, known)}; options of {metric}: {choices}"
                )
            elif not _same_kind(value, known[key]):
                problems.append(
                    f"{label}: key 'metric_options.{metric}.{key}' must be like its default "
                    f"{known[key]!r} ({type(known[key]).__name__}), got {value!r}"
                )
        checked[metric] = dict(values)
    return checked


def _same_kind(value: Any, default: Any) -> bool:
    """Whether an option value has the type of its registered default (ints pass for floats)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (int, str)):
        return isinstance(value, type(default))
    return True
