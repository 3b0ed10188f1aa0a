"""Validating a suite against the loaded plugins: a :class:`~benchbench.spec.Suite` or every problem at once.

Validation collects *every* problem in the file and raises one :class:`SuiteError`
listing them, each naming the benchmark and the key and suggesting the closest valid
name, so a user fixes a suite in one round instead of one typo per run. What this
machine cannot run (a metric's tool is not installed, no GPU, a ``torch.compile`` backend
this torch lacks) is another matter: the file needs no fix, so a valid suite it concerns
is refused with :class:`UnrunnableSuite`, in its own words, and ``machine=False`` checks
the file alone (a suite that needs valgrind is valid on a machine without it). The values of
keys are checked by :mod:`benchbench.checks`, sweeps expanded by :mod:`benchbench.sweeps`,
the YAML read by :mod:`benchbench.suitefile`; what needs the registry (model, metric and
dataset names, a factory's arguments, metric options) is checked here. Running models
on the meta device (the dry run) is a preflight step of its own
(:func:`benchbench.build.preflight`), since it imports torch and runs plugin code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench import checks, modes
from benchbench.arguments import check_args, with_defaults, without_defaults
from benchbench.checks import shown
from benchbench.errors import SuiteError, did_you_mean
from benchbench.registry import DatasetEntry, ExecutorEntry, MetricEntry, ModelEntry
from benchbench.spec import DEFAULT_EXECUTOR, DEFAULT_METRICS, BenchmarkSpec, Suite, chosen_executor
from benchbench.suitefile import SuiteDocument
from benchbench.sweeps import called, expand_sweeps

if TYPE_CHECKING:
    from benchbench.manager import PluginManager

SUITE_KEYS = ("name", "description", "executor", "rounds", "defaults", "benchmarks")
TRAIN_KEYS = ("train", "seeds")
"""Shorthand for the options of the metrics that train (``accuracy``): ``train: {...}`` and
``seeds: [...]`` are folded into ``metric_options.<metric>`` (which wins where both are set)."""
BENCHMARK_ONLY = ("name",)


class UnrunnableSuite(SuiteError):
    """A valid suite that this machine cannot run (a missing tool, no GPU, a compile backend this
    torch lacks): exit 2 like bad input, in words that say the file itself is fine."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(source, problems)
        lines = "\n".join(f"  - {p}" for p in problems)
        text = (f"{source} is a valid suite, but this machine cannot run it:\n{lines}\n"
                "(install what is missing, or leave those metrics or benchmarks out: --metrics, --only)")
        self.args = (text,)


def load_suite(
    source: str | Path | Mapping[str, Any] | SuiteDocument,
    manager: PluginManager,
    *,
    overrides: Mapping[str, Any] | None = None,
    only: list[str] | None = None,
    preflight: Callable[[list[BenchmarkSpec]], list[str]] | None = None,
    executor: str | None = None,
    machine: bool = True,
) -> Suite:
    """Read (if a path), merge defaults and ``overrides``, and validate against the registry.

    ``overrides`` (from the command line, e.g. ``{"device": "cpu"}``) win over the file.
    ``only`` keeps the benchmarks with those names (validated too), plus the baselines
    they name, so that their ratio columns still mean something. ``preflight(specs)``
    returns more problems for the benchmarks that passed every other check (the dry run,
    :func:`benchbench.build.preflight`), reported together with the rest. ``executor``:
    the command line's (``--executor``, ``--isolate``), which wins over the suite's; a
    metric that runs only inline (``inline_only``) is checked against it.

    A file with problems raises :class:`SuiteError`; a valid one that this machine cannot
    run raises :class:`UnrunnableSuite`, unless ``machine`` is false (the file alone).
    """
    document = SuiteDocument.of(source)
    data, origin = document.data, document.origin
    problems = [f"at {where}: {problem}" for where, problem in checks.unstorable(data)]
    problems += [f"--only: {problem}" for _, problem in checks.unstorable(list(only or []))]
    name, description, rounds, suite_executor = _top_level(document, manager, problems)
    defaults, problem = checks.mapping(data.get("defaults"))
    if problem:
        problems.append(f"key 'defaults' {problem}")
        defaults = {}
    defaults = _check_fields(defaults, "defaults", problems, allowed=set(checks.FIELD_CHECKS) - set(BENCHMARK_ONLY))
    _check_registered(defaults, "defaults", manager, problems)  # once, not once per benchmark
    cli = _check_fields(dict(overrides or {}), "command-line option", problems, allowed=set(checks.FIELD_CHECKS))

    raw = data.get("benchmarks")
    if not isinstance(raw, list) or not raw:
        problems.append("key 'benchmarks' must be a non-empty list of benchmarks (each with at least 'model')")
        raw = []
    raw = expand_sweeps(raw, problems)
    declared = _declared_names(raw, problems)
    specs = [spec for i, item in enumerate(raw, start=1) if (spec := _benchmark(item, i, defaults, cli, manager, problems))]
    for spec in specs:
        if spec.baseline is not None and spec.baseline not in declared:
            problems.append(
                f"benchmark {shown(spec.name)} (#{declared.get(spec.name, '?')}): key 'baseline' names no benchmark "
                f"of this suite: {shown(spec.baseline)}{did_you_mean(spec.baseline, declared)}"
            )
    notes: list[str] = []
    if only:
        for wanted in only:
            if wanted not in declared:
                problems.append(f"--only {shown(wanted)}: no such benchmark{did_you_mean(wanted, declared)}")
        specs, notes = _select(specs, only)
    problems.extend(_inline_only(specs, manager, executor, suite_executor))
    if preflight is not None:
        problems.extend(preflight(specs))
    unrunnable = (_unavailable(specs, manager) + _compile_backends(specs)) if machine else []
    if problems:
        raise SuiteError(origin, problems + [f"(and this machine cannot run it) {p}" for p in unrunnable])
    if unrunnable:
        raise UnrunnableSuite(origin, unrunnable)
    return Suite(
        name=name, source=origin, benchmarks=tuple(specs), description=description, text=document.text,
        notes=tuple(notes), executor=suite_executor, rounds=rounds if isinstance(rounds, int) else 1,
    )


def _top_level(document: SuiteDocument, manager: PluginManager, problems: list[str]) -> tuple[Any, Any, Any, Any]:
    """The suite's own keys: (name, description, rounds, executor), each checked."""
    data = document.data
    for key in data:
        if key not in SUITE_KEYS:
            hint = did_you_mean(str(key), SUITE_KEYS) or (
                f" (a suite's keys are {', '.join(SUITE_KEYS)}"
                + ("; settings every benchmark shares go under 'defaults', and a benchmark's variants merge "
                   "it with an anchor: <<: *name" if isinstance(data[key], dict) else "") + ")")
            problems.append(f"unknown top-level key {shown(key)}{hint}")
    values = []
    for key, check, default in (("name", checks.nonempty_str, document.stem),
                                ("description", checks.optional(checks.nonempty_str), None),
                                ("rounds", checks.rounds, 1),
                                ("executor", checks.optional(checks.nonempty_str), None)):
        value, problem = check(data.get(key, default))
        if problem:
            problems.append(f"key {key!r} {problem}")
        values.append(value)
    executor = values[3]
    if isinstance(executor, str) and not manager.registry.has(ExecutorEntry, executor):
        problems.append(f"key 'executor': {manager.unknown(ExecutorEntry, executor)}")
    return tuple(values)


def _declared_names(raw: list[Any], problems: list[str]) -> dict[str, int]:
    """Each benchmark's name -> its position, duplicates reported. Names come from the raw
    items, so that a benchmark with other problems still takes part in the duplicate and
    baseline checks (every problem is reported at once)."""
    declared: dict[str, int] = {}
    for i, item in enumerate(raw, start=1):
        given = called(item)
        if given is None:
            continue
        if given in declared:
            problems.append(
                f"benchmark {shown(given)} (#{i}): duplicate name, also used by benchmark #{declared[given]}; "
                "give each benchmark a unique 'name'"
            )
        declared.setdefault(given, i)
    return declared


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
            problems.append(f"{where}: unknown key {shown(key)}{did_you_mean(str(key), allowed)}")
            continue
        value, problem = checks.FIELD_CHECKS[key](value)
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
            if not registry.has(MetricEntry, metric):
                problems.append(f"{where}: key 'metrics': {manager.unknown(MetricEntry, metric)}")
        values["metrics"] = tuple(m for m in values["metrics"] if registry.has(MetricEntry, m))
    checked: dict[str, dict[str, Any]] = {}
    for metric, given in values.get("metric_options", {}).items():
        if not registry.has(MetricEntry, metric):
            problems.append(f"{where}: key 'metric_options': {manager.unknown(MetricEntry, metric)}")
            continue
        if not isinstance(given, Mapping):
            problems.append(f"{where}: key 'metric_options.{metric}' must be a mapping of option: value, got {shown(given)}")
            continue
        entry = registry.get(MetricEntry, metric)
        known = entry.options
        good: dict[str, Any] = {}
        for key, value in given.items():
            if key not in known:
                choices = ", ".join(known) or "none"
                problems.append(
                    f"{where}: key 'metric_options.{metric}': unknown option {shown(key)}"
                    f"{did_you_mean(key, known)}; options of {metric}: {choices}"
                )
            elif not checks.same_kind(value, known[key]):
                problems.append(
                    f"{where}: key 'metric_options.{metric}.{key}' must be like its default "
                    f"{known[key]!r} ({type(known[key]).__name__}), got {shown(value)}"
                )
            else:
                good[key] = value
        if entry.check_options is not None and len(good) == len(given):
            problems.extend(f"{where}: key 'metric_options.{metric}': {p}" for p in entry.check_options({**known, **good}))
        checked[metric] = good
    if "metric_options" in values:
        values["metric_options"] = checked
    if "thresholds" in values:
        comparable = {f: m for m in registry.entries(MetricEntry) for f in m.compare}
        names = {*comparable, *registry.names(MetricEntry)}
        for key in values["thresholds"]:
            if key not in names:
                problems.append(
                    f"{where}: key 'thresholds': {shown(key)} is no metric or compared field{did_you_mean(key, names)}; "
                    f"compared fields: {', '.join(sorted(comparable))}"
                )


def _unavailable(specs: list[BenchmarkSpec], manager: PluginManager) -> list[str]:
    """Metrics that say they cannot run here (``available``: a missing tool, the wrong device),
    one problem per metric and reason, naming the benchmarks (not one line per benchmark)."""
    found: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        for metric in spec.metrics if not spec.skip else ():
            entry = manager.registry.table(MetricEntry).get(metric)
            problem = entry.available(spec.device) if entry is not None and entry.available is not None else None
            if problem:
                found.setdefault((metric, problem), []).append(spec.name)
    return [f"metric {metric!r} cannot run for {_names(names)}: {problem}" for (metric, problem), names in found.items()]


def _inline_only(specs: list[BenchmarkSpec], manager: PluginManager, given: str | None, suite: Any) -> list[str]:
    """Metrics that run only with the inline executor (``inline_only``), asked for with another one."""
    executor = chosen_executor(given, suite)
    if executor == DEFAULT_EXECUTOR:
        return []
    source = "--executor/--isolate" if given else "the suite's 'executor:'"
    found: dict[str, list[str]] = {}
    for spec in specs:
        for metric in spec.metrics if not spec.skip else ():
            entry = manager.registry.table(MetricEntry).get(metric)
            if entry is not None and entry.inline_only:
                found.setdefault(metric, []).append(spec.name)
    return [
        f"metric {metric!r} cannot run with the {executor!r} executor ({source}) for {_names(names)}: "
        f"{manager.registry.get(MetricEntry, metric).inline_only}; run it with the default inline executor "
        f"(no --isolate or --executor), or leave {metric!r} out of this run (--metrics)"
        for metric, names in found.items()
    ]


def _compile_backends(specs: list[BenchmarkSpec]) -> list[str]:
    """``compile: {backend: NAME}`` naming a backend this torch does not have, one problem per name."""
    named: dict[str, list[str]] = {}
    for spec in specs:
        backend = (spec.compile or {}).get("backend")
        if isinstance(backend, str) and not spec.skip:
            named.setdefault(backend, []).append(spec.name)
    if not named:
        return []
    from benchbench.modes import unknown_backend  # imports torch._dynamo: only when a backend is named

    return [f"{_names(names)}: key 'compile': {problem}"
            for backend, names in named.items() if (problem := unknown_backend(backend))]


def _names(names: list[str], most: int = 3) -> str:
    listed = ", ".join(map(shown, names[:most])) + (f" and {len(names) - most} more" if len(names) > most else "")
    return f"benchmark{'s' if len(names) > 1 else ''} {listed}"


def _fold_train(values: dict[str, Any], manager: PluginManager) -> None:
    """Move ``train:`` and ``seeds:`` into the metric_options of every metric that trains."""
    train, seeds = values.pop("train", None), values.pop("seeds", None)
    if train is None and seeds is None:
        return
    extra = {**(train or {}), **({"seeds": seeds} if seeds is not None else {})}
    options = dict(values.get("metric_options", {}))
    for entry in manager.registry.entries(MetricEntry):
        if entry.train_options:
            current = options.get(entry.name, {})
            options[entry.name] = {**extra, **current} if isinstance(current, Mapping) else current
    values["metric_options"] = options


def _check_dataset(merged: dict[str, Any], label: str, manager: PluginManager, problems: list[str]) -> Any:
    """The benchmark's dataset entry (or None), with its args checked; needs of metrics."""
    registry = manager.registry
    name = merged.get("dataset")
    needing = [m for m in merged.get("metrics", DEFAULT_METRICS) if registry.has(MetricEntry, m) and registry.get(MetricEntry, m).needs_dataset]
    if name is None:
        if needing:
            problems.append(
                f"{label}: metric {needing[0]!r} needs a dataset: add 'dataset:' (`benchbench list datasets` shows them)"
            )
        if merged.get("dataset_args"):
            problems.append(f"{label}: key 'dataset_args' is given but no 'dataset'")
        return None
    if not registry.has(DatasetEntry, name):
        problems.append(f"{label}: key 'dataset': {manager.unknown(DatasetEntry, name)}")
        return None
    entry = registry.get(DatasetEntry, name)
    args = merged.get("dataset_args", {})
    arg_problems = check_args(entry.loader, args, key="dataset_args")
    problems.extend(f"{label}: {p}" for p in arg_problems)
    check = entry.meta.get("check")
    if check is not None and not arg_problems:
        problem = check(**with_defaults(entry.loader, args))
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
        problems.append(f"benchmark #{index}: must be a mapping with at least 'model', got {shown(item)}")
        return None
    given = called(item)
    label = f"benchmark {shown(given)} (#{index})" if given else f"benchmark #{index}"
    known_problems = len(problems)
    own = _check_fields(dict(item), label, problems, allowed=set(checks.FIELD_CHECKS))
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
    if not registry.has(ModelEntry, model):
        problems.append(f"{label}: key 'model': {manager.unknown(ModelEntry, model)}")
        return None
    entry = registry.get(ModelEntry, model)
    args = merged.get("args", {})
    arg_problems = check_args(entry.factory, args) if "args" in own or "args" not in item else ["reported"]
    problems.extend(f"{label}: {p}" for p in arg_problems if p != "reported")
    merged["args"] = without_defaults(entry.factory, args)  # `stride: 1` and no stride are one benchmark
    dataset = _check_dataset(merged, label, manager, problems)
    problems.extend(f"{label}: {p}" for p in modes.conflicts(merged))
    if "input_shape" not in merged:
        source, given = (dataset, merged.get("dataset_args", {})) if dataset else (entry, args)
        shape, problem = _default_shape(source, with_defaults(dataset.loader if dataset else entry.factory, given))
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
        except Exception as exc:  # deliberately broad: a plugin's rule failing is the user's to fix
            return None, (
                f"model {entry.name!r} (plugin {entry.plugin!r}) could not derive its input shape from these args "
                f"({type(exc).__name__}: {exc}); {example}"
            )
    checked, problem = checks.shape(list(shape) if isinstance(shape, (list, tuple)) else shape)
    if problem:
        return None, f"model {entry.name!r} (plugin {entry.plugin!r}) gave an invalid default input shape: {problem}"
    return checked, None


