"""Suite files: read YAML, merge defaults, validate everything before anything runs.

Validation collects *every* problem in the file and raises one :class:`SuiteError`
listing them, each naming the benchmark and the key and suggesting the closest valid
name, so a user fixes a suite in one round instead of one typo per run.

This module does not import torch: a bad suite is reported in a fraction of a second.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchbench.arguments import check_args, without_defaults
from benchbench.errors import SuiteError, UsageError, did_you_mean

if TYPE_CHECKING:
    from benchbench.plugins import PluginManager

SUITE_KEYS = ("name", "description", "executor", "rounds", "defaults", "benchmarks")
DEFAULT_TIMEOUT_S = 600.0
DTYPES = ("float32", "float16", "bfloat16", "float64")
MODES = ("eval", "train")
DEFAULT_METRICS = ("params", "flops", "latency", "memory")
MAX_THREADS = 1024  # beyond this OpenMP fails to start threads, or crashes
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
    timeout: float | None = DEFAULT_TIMEOUT_S
    """Seconds the benchmark may take (building, measuring); ``None``: no limit."""
    dry_run: bool = True
    """Check args and input shape on the meta device while validating (see build.dry_run)."""
    thresholds: dict[str, float] = field(default_factory=dict)
    """For ``benchbench compare``: field (or metric) -> allowed relative change (0.05 = 5%)."""
    dataset: str | None = None
    """A registered dataset: metrics that train use it, and its inputs feed the others."""
    dataset_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    source: str
    """Where the suite came from: a file path, or ``<dict>``."""
    benchmarks: tuple[BenchmarkSpec, ...]
    description: str | None = None
    text: str | None = None
    """The suite file's contents, stored in the run file for reproducibility."""
    notes: tuple[str, ...] = ()
    """Remarks for the user about how the suite was read (baselines added to --only...)."""
    executor: str | None = None
    """The suite's ``executor:`` (``inline``, ``subprocess``, a plugin's); the command line wins."""
    rounds: int = 1
    """How many times the whole suite runs, interleaved (A, B, C, A, B, C...); timed samples pool."""


# ----------------------------------------------------------------------------- field checks
# Each check returns (normalised value, problem or None). One table serves defaults and
# benchmarks alike, so a key means the same wherever it is written.


def _positive_int(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return value, f"must be a positive whole number, got {value!r}"
    return value, None


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


def _int_between(low: int, high: int) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return value, f"must be a whole number from {low} to {high}, got {value!r}"
        return value, None

    return check


def _optional(check: Callable[[Any], tuple[Any, str | None]]) -> Callable[[Any], tuple[Any, str | None]]:
    return lambda value: (None, None) if value is None else check(value)


def _str(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, str) and value else (value, f"must be a non-empty string, got {value!r}")


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


MAX_TIMEOUT_S = 1e7  # about 115 days: longer is "no limit" in all but name, and overflows timers


def _timeout(value: Any) -> tuple[Any, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and _is_float(value):
        return value, f"must be a number of seconds; YAML reads {value!r} as text: write it as 1000 or 1.0e+3"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_S:
        return value, f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, or null for no limit, got {value!r}"
    return float(value), None


def _is_float(text: str) -> bool:
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
        return None, f"must be a percentage such as 5% (or a fraction such as 0.05), got {value!r}"
    if not math.isfinite(number) or number < 0:
        return None, f"must be 0% or more, got {value!r}"
    return number, None


def _thresholds(value: Any) -> tuple[Any, str | None]:
    mapping, problem = _mapping(value)
    if problem:
        return value, "must map fields or metrics to percentages, e.g. {latency: 5%, flops: 0%}"
    parsed = {}
    for key, given in mapping.items():
        number, problem = parse_threshold(given)
        if problem:
            return value, f"entry {key!r} {problem}"
        parsed[key] = number
    return parsed, None


def _seeds(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        return value, f"must be a list of whole numbers 0 or more, such as [0, 1, 2], got {value!r}"
    return value, None


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
    "cpu_batch_size": _optional(_positive_int),
    "metrics": _str_list,
    "metric_options": _mapping,
    "dtype": _choice(DTYPES),
    "channels_last": _bool,
    "mode": _choice(MODES),
    "threads": _optional(_int_between(1, MAX_THREADS)),
    "seed": _int_between(0, 2**63 - 1),
    "baseline": _optional(_str),
    "skip": _skip,
    "description": _optional(_str),
    "timeout": _timeout,
    "dry_run": _bool,
    "thresholds": _thresholds,
    "dataset": _str,
    "dataset_args": _mapping,
    "train": _mapping,
    "seeds": _seeds,
}
TRAIN_KEYS = ("train", "seeds")
"""Shorthand for the options of the metrics that train (``accuracy``): ``train: {...}`` and
``seeds: [...]`` are folded into ``metric_options.<metric>`` (which wins where both are set)."""
BENCHMARK_ONLY = ("name",)


# ----------------------------------------------------------------------------- loading


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that rejects a key written twice in one mapping.

    Plain YAML keeps the last value silently, so ``{in_channels: 3, in_channels: 64}``
    would benchmark a different layer than its author read.
    """


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            continue  # unhashable or exotic keys: the suite checks report them
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class SuiteText:
    """A suite given as YAML text rather than a file: the copy a run file keeps (``--resume``)."""

    text: str
    origin: str
    name: str
    """The suite's name when the text has no ``name:`` (it came from the file's stem)."""


def parse_suite_text(text: str, origin: str | Path) -> dict[str, Any]:
    """Parse a suite's YAML; every failure is a UsageError naming ``origin``."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise UsageError(f"{origin}: {kind}{where}: {problem}") from None
    except RecursionError:
        raise UsageError(f"{origin}: YAML nested too deeply to read; a suite needs only a few levels") from None
    if data is None:
        raise UsageError(f"{origin}: the file is empty; a suite needs at least a 'benchmarks' list (see suites/)")
    if not isinstance(data, dict):
        raise UsageError(
            f"{origin}: a suite file must be a mapping with a 'benchmarks' list, got {type(data).__name__}"
        )
    return data


def read_suite_file(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read and parse a suite file; every failure is a UsageError naming the file.

    Cheap (no torch, no plugins), so the CLI calls it first: a typo in a path or a YAML
    error is reported in a fraction of a second.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"suite file {str(path)!r} not found (check the path; suites/ holds the ready ones)") from None
    except IsADirectoryError:
        raise UsageError(f"suite file {str(path)!r} is a folder; give a .yaml file in it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"suite file {str(path)!r} cannot be read: {exc}") from None
    return parse_suite_text(text, path), text


def load_suite(
    source: str | Path | Mapping[str, Any] | SuiteText,
    manager: PluginManager,
    *,
    overrides: Mapping[str, Any] | None = None,
    only: list[str] | None = None,
    executor: str | None = None,
) -> Suite:
    """Read (if a path), merge defaults and ``overrides``, and validate against the registry.

    ``overrides`` (from the command line, e.g. ``{"device": "cpu"}``) win over the file.
    ``only`` keeps the benchmarks with those names (validated too), plus the baselines
    they name, so that their ratio columns still mean something. ``executor`` (from the
    command line) matters because the dry run executes model code in this process: it is
    skipped when the benchmarks will run elsewhere (``subprocess``, a plugin's executor).
    """
    if isinstance(source, Mapping):
        data, text, origin, stem = dict(source), None, "<dict>", "suite"
    elif isinstance(source, SuiteText):
        data, text, origin, stem = parse_suite_text(source.text, source.origin), source.text, source.origin, source.name
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
    description, problem = _optional(_str)(data.get("description"))
    if problem:
        problems.append(f"key 'description' {problem}")
    rounds, problem = _positive_int(data.get("rounds", 1))
    if problem:
        problems.append(f"key 'rounds' {problem}")
    executor, problem = _optional(_str)(data.get("executor"))
    if problem:
        problems.append(f"key 'executor' {problem}")
    elif executor is not None and not manager.registry.has("executors", executor):
        problems.append(f"key 'executor': {manager.unknown('executors', executor)}")

    defaults, problem = _mapping(data.get("defaults"))
    if problem:
        problems.append(f"key 'defaults' {problem}")
        defaults = {}
    defaults = _check_fields(defaults, "defaults", problems, allowed=set(FIELD_CHECKS) - set(BENCHMARK_ONLY))
    _check_registered(defaults, "defaults", manager, problems)  # once, not once per benchmark
    cli = _check_fields(dict(overrides or {}), "command-line option", problems, allowed=set(FIELD_CHECKS))

    raw = data.get("benchmarks")
    if not isinstance(raw, list) or not raw:
        problems.append("key 'benchmarks' must be a non-empty list of benchmarks (each with at least 'model')")
        raw = []
    raw = _expand_sweeps(raw, problems)
    # Names come from the raw items, so that a benchmark with other problems still takes
    # part in the duplicate and baseline checks (every problem is reported at once).
    declared: dict[str, int] = {}
    for i, item in enumerate(raw, start=1):
        called = _called(item)
        if called is None:
            continue
        if called in declared:
            problems.append(
                f"benchmark {called!r} (#{i}): duplicate name, also used by benchmark #{declared[called]}; "
                "give each benchmark a unique 'name'"
            )
        declared.setdefault(called, i)
    specs = [spec for i, item in enumerate(raw, start=1) if (spec := _benchmark(item, i, defaults, cli, manager, problems))]
    for spec in specs:
        if spec.baseline is not None and spec.baseline not in declared:
            problems.append(
                f"benchmark {spec.name!r} (#{declared.get(spec.name, '?')}): key 'baseline' names no benchmark "
                f"of this suite: {spec.baseline!r}{did_you_mean(spec.baseline, declared)}"
            )
    notes: list[str] = []
    if only:
        for wanted in only:
            if wanted not in declared:
                problems.append(f"--only {wanted!r}: no such benchmark{did_you_mean(wanted, declared)}")
        specs, notes = _select(specs, only)
    if (executor or data.get("executor") or "inline") == "inline":
        problems.extend(_dry_run_problems(specs, manager))  # the benchmarks that passed the other checks
    if problems:
        raise SuiteError(origin, problems)
    return Suite(
        name=name, source=origin, benchmarks=tuple(specs), description=description, text=text,
        notes=tuple(notes), executor=executor, rounds=rounds if isinstance(rounds, int) else 1,
    )


def _dry_run_problems(specs: list[BenchmarkSpec], manager: PluginManager) -> list[str]:
    """Args a model rejects and input shapes it cannot take, found on the meta device."""
    wanted = [s for s in specs if s.dry_run and not s.skip]
    if not wanted:
        return []
    from benchbench.build import dry_run  # imports torch: only now that it is needed

    problems = []
    for spec in wanted:
        problem = dry_run(spec, manager.registry.get("models", spec.model))
        if problem:
            problems.append(
                f"benchmark {spec.name!r}: model {spec.model!r} cannot run with these 'args' and "
                f"'input_shape' {list(spec.input_shape)}: {problem} (found by a dry run on the meta device; "
                "set dry_run: false on the benchmark if that is wrong)"
            )
    return problems


MAX_SWEEP = 10_000


def _expand_sweeps(raw: list[Any], problems: list[str]) -> list[Any]:
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
        label = f"benchmark {_called(base) or '#' + str(i)!r} (#{i})"
        sweep = item["sweep"]
        if not isinstance(sweep, Mapping) or not sweep:
            problems.append(f"{label}: key 'sweep' must map keys to lists of values, e.g. {{args.kernel_size: [3, 5]}}")
            continue
        axes: list[tuple[str, list[Any]]] = []
        for key, values in sweep.items():
            head, _, rest = str(key).partition(".")
            if not isinstance(values, list) or not values:
                problems.append(f"{label}: key 'sweep.{key}' must be a non-empty list of values, got {values!r}")
            elif rest and head not in ("args", "dataset_args"):
                problems.append(f"{label}: key 'sweep.{key}': only args.NAME and dataset_args.NAME reach inside a key")
            elif not rest and (key not in FIELD_CHECKS or key in ("name", "model")):
                problems.append(f"{label}: key 'sweep.{key}' is no suite key{did_you_mean(str(key), FIELD_CHECKS)}")
            else:
                axes.append((str(key), values))
        if len(axes) != len(sweep):
            continue
        if math.prod(len(v) for _, v in axes) > MAX_SWEEP:
            problems.append(f"{label}: key 'sweep' makes more than {MAX_SWEEP} benchmarks; split the suite")
            continue
        name = _called(base) or f"benchmark{i}"
        for combination in itertools.product(*(values for _, values in axes)):
            one = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in base.items()}
            parts = []
            for (key, _), value in zip(axes, combination):
                head, _, rest = key.partition(".")
                if rest:
                    one[head] = {**(one.get(head) if isinstance(one.get(head), Mapping) else {}), rest: value}
                else:
                    one[head] = value
                parts.append(f"{rest or head}={value}")
            one["name"] = f"{name}[{','.join(parts)}]"
            expanded.append(one)
    return expanded


def _called(item: Any) -> str | None:
    """The name a raw benchmark item goes by (its ``name``, else its ``model``), if any."""
    if not isinstance(item, Mapping):
        return None
    called = item.get("name") or item.get("model")
    return called if isinstance(called, str) else None


def _select(specs: list[BenchmarkSpec], only: list[str]) -> tuple[list[BenchmarkSpec], list[str]]:
    """The benchmarks named by --only, plus the baselines they need, in suite order."""
    by_name = {s.name: s for s in specs}
    wanted = {n for n in only if n in by_name}
    added: list[str] = []
    for name in list(wanted):
        baseline = by_name[name].baseline
        if baseline in by_name and baseline not in wanted:
            wanted.add(baseline)
            added.append(f"baseline {baseline!r} also runs, for the ratio columns of {name!r} (--only)")
    return [s for s in specs if s.name in wanted], added


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


def _check_registered(values: dict[str, Any], where: str, manager: PluginManager, problems: list[str]) -> None:
    """Names in ``metrics`` and ``metric_options`` that no plugin registered, and bad option values.

    Unknown names are dropped from ``values`` so that they are not reported again.
    """
    registry = manager.registry
    _fold_train(values, manager)
    if "metrics" in values:
        for metric in values["metrics"]:
            if not registry.has("metrics", metric):
                problems.append(f"{where}: key 'metrics': {manager.unknown('metrics', metric)}")
        values["metrics"] = tuple(m for m in values["metrics"] if registry.has("metrics", m))
    checked: dict[str, dict[str, Any]] = {}
    for metric, given in values.get("metric_options", {}).items():
        if not registry.has("metrics", metric):
            problems.append(f"{where}: key 'metric_options': {manager.unknown('metrics', metric)}")
            continue
        if not isinstance(given, Mapping):
            problems.append(f"{where}: key 'metric_options.{metric}' must be a mapping of option: value, got {given!r}")
            continue
        entry = registry.get("metrics", metric)
        known = entry.options
        good: dict[str, Any] = {}
        for key, value in given.items():
            if key not in known:
                choices = ", ".join(known) or "none"
                problems.append(
                    f"{where}: key 'metric_options.{metric}': unknown option {key!r}"
                    f"{did_you_mean(key, known)}; options of {metric}: {choices}"
                )
            elif not _same_kind(value, known[key]):
                problems.append(
                    f"{where}: key 'metric_options.{metric}.{key}' must be like its default "
                    f"{known[key]!r} ({type(known[key]).__name__}), got {value!r}"
                )
            else:
                good[key] = value
        if entry.check_options is not None and len(good) == len(given):
            problems.extend(f"{where}: key 'metric_options.{metric}': {p}" for p in entry.check_options({**known, **good}))
        checked[metric] = good
    if "metric_options" in values:
        values["metric_options"] = checked
    if "thresholds" in values:
        comparable = {f: m for m in registry.entries("metrics") for f in m.compare}
        names = {*comparable, *registry.names("metrics")}
        for key in values["thresholds"]:
            if key not in names:
                problems.append(
                    f"{where}: key 'thresholds': {key!r} is no metric or compared field{did_you_mean(key, names)}; "
                    f"compared fields: {', '.join(sorted(comparable))}"
                )


def _fold_train(values: dict[str, Any], manager: PluginManager) -> None:
    """Move ``train:`` and ``seeds:`` into the metric_options of every metric that trains."""
    train, seeds = values.pop("train", None), values.pop("seeds", None)
    if train is None and seeds is None:
        return
    extra = {**(train or {}), **({"seeds": seeds} if seeds is not None else {})}
    options = dict(values.get("metric_options", {}))
    for entry in manager.registry.entries("metrics"):
        if entry.train_options:
            current = options.get(entry.name, {})
            options[entry.name] = {**extra, **current} if isinstance(current, Mapping) else current
    values["metric_options"] = options


def _check_dataset(merged: dict[str, Any], label: str, manager: PluginManager, problems: list[str]) -> Any:
    """The benchmark's dataset entry (or None), with its args checked; needs of metrics."""
    registry = manager.registry
    name = merged.get("dataset")
    needing = [m for m in merged.get("metrics", DEFAULT_METRICS) if registry.has("metrics", m) and registry.get("metrics", m).needs_dataset]
    if name is None:
        if needing:
            problems.append(
                f"{label}: metric {needing[0]!r} needs a dataset: add 'dataset:' (`benchbench list datasets` shows them)"
            )
        if merged.get("dataset_args"):
            problems.append(f"{label}: key 'dataset_args' is given but no 'dataset'")
        return None
    if not registry.has("datasets", name):
        problems.append(f"{label}: key 'dataset': {manager.unknown('datasets', name)}")
        return None
    entry = registry.get("datasets", name)
    args = merged.get("dataset_args", {})
    arg_problems = check_args(entry.loader, args, key="dataset_args")
    problems.extend(f"{label}: {p}" for p in arg_problems)
    check = entry.meta.get("check")
    if check is not None and not arg_problems:
        problem = check(**args)
        if problem:
            problems.append(f"{label}: key 'dataset': {name}: {problem}")
    return entry


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
    called = _called(item)
    label = f"benchmark {called!r} (#{index})" if called else f"benchmark #{index}"
    known_problems = len(problems)
    own = _check_fields(dict(item), label, problems, allowed=set(FIELD_CHECKS))
    _check_registered(own, label, manager, problems)
    if "model" not in item:
        problems.append(f"{label}: missing key 'model' (the registered model to build; `benchbench list models`)")
        return None
    merged = {**defaults, **own, **cli}
    merged["metric_options"] = {
        metric: {**defaults.get("metric_options", {}).get(metric, {}), **own.get("metric_options", {}).get(metric, {})}
        for metric in {*defaults.get("metric_options", {}), *own.get("metric_options", {})}
    }
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
    arg_problems = check_args(entry.factory, args) if "args" in own or "args" not in item else ["reported"]
    problems.extend(f"{label}: {p}" for p in arg_problems if p != "reported")
    merged["args"] = without_defaults(entry.factory, args)  # `stride: 1` and no stride are one benchmark
    dataset = _check_dataset(merged, label, manager, problems)
    if "input_shape" not in merged:
        shape, problem = _default_shape(dataset or entry, merged.get("dataset_args", {}) if dataset else args)
        if problem and not arg_problems:
            problems.append(f"{label}: key 'input_shape' is needed: {problem}")
        if shape is None:
            return None
        merged["input_shape"] = shape
    if len(problems) > known_problems:
        return None  # a benchmark with problems is not dry-run (its errors would repeat them)
    try:
        return replace(BenchmarkSpec(name=merged["name"], model=model), **merged)
    except TypeError as exc:  # a check above let a wrong type through: report, don't crash
        problems.append(f"{label}: {exc}")
        return None


def _default_shape(entry: Any, args: dict[str, Any]) -> tuple[tuple[int, ...] | None, str | None]:
    """The model's registered per-sample input shape for these args, or why there is none."""
    example = "give the per-sample shape, e.g. input_shape: [3, 224, 224]"
    shape = entry.input_shape if hasattr(entry, "input_shape") else entry.meta.get("input_shape")
    if shape is None:
        return None, f"model {entry.name!r} registers no default input shape ({example})"
    if callable(shape):
        try:
            shape = shape(args)
        except Exception as exc:  # noqa: BLE001 - a plugin's rule failing is the user's to fix
            return None, (
                f"model {entry.name!r} (plugin {entry.plugin!r}) could not derive its input shape from these args "
                f"({type(exc).__name__}: {exc}); {example}"
            )
    checked, problem = _shape(list(shape) if isinstance(shape, (list, tuple)) else shape)
    if problem:
        return None, f"model {entry.name!r} (plugin {entry.plugin!r}) gave an invalid default input shape: {problem}"
    return checked, None


def _same_kind(value: Any, default: Any) -> bool:
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
