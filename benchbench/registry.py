"""What plugins register: models, metrics, datasets and reporters, with their origin.

Each registration hook receives a ``register`` callable bound to one kind and one
plugin; the entries end up in a :class:`Registry`, a read-only view used by the suite
validator, the runner and ``benchbench list``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchbench.errors import PluginError, UsageError, did_you_mean


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., Any]
    plugin: str
    family: str | None = None
    input_shape: tuple[int, ...] | Callable[[dict[str, Any]], Sequence[int]] | None = None
    description: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricEntry:
    name: str
    measure: Callable[[Any], dict[str, Any]]
    plugin: str
    fields: tuple[str, ...]
    description: str | None = None
    ratio_fields: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    check_options: Callable[[dict[str, Any]], list[str]] | None = None
    compare: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    merge_rounds: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    train_options: bool = False
    needs_dataset: bool = False
    exclusive: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Callable[..., Any]
    plugin: str
    task: str = "classification"
    description: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReporterEntry:
    name: str
    render: Callable[[Any, dict[str, Any]], str]
    plugin: str
    description: str | None = None


@dataclass(frozen=True)
class ExecutorEntry:
    name: str
    factory: Callable[[], Any]
    plugin: str
    description: str | None = None


class ModelRegistrar(Protocol):
    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        family: str | None = None,
        input_shape: Sequence[int] | Callable[[dict[str, Any]], Sequence[int]] | None = None,
        description: str | None = None,
        **meta: Any,
    ) -> None: ...


class MetricRegistrar(Protocol):
    def __call__(
        self,
        name: str,
        measure: Callable[[Any], dict[str, Any]],
        *,
        fields: Sequence[str],
        description: str | None = None,
        ratio_fields: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        formats: Mapping[str, Callable[[Any], str]] | None = None,
        check_options: Callable[[dict[str, Any]], list[str]] | None = None,
        compare: Mapping[str, Mapping[str, Any]] | None = None,
        merge_rounds: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
        train_options: bool = False,
        needs_dataset: bool = False,
        exclusive: bool = False,
    ) -> None: ...


class DatasetRegistrar(Protocol):
    def __call__(
        self,
        name: str,
        loader: Callable[..., Any],
        *,
        task: str = "classification",
        description: str | None = None,
        **meta: Any,
    ) -> None: ...


class ReporterRegistrar(Protocol):
    def __call__(
        self, name: str, render: Callable[[Any, dict[str, Any]], str], *, description: str | None = None
    ) -> None: ...


class ExecutorRegistrar(Protocol):
    def __call__(self, name: str, factory: Callable[[], Any], *, description: str | None = None) -> None: ...


KINDS = ("models", "metrics", "datasets", "reporters", "executors")
_SINGULAR = {"models": "model", "metrics": "metric", "datasets": "dataset", "reporters": "reporter", "executors": "executor"}


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}

    # ---- filling (used by the plugin manager)

    def add(self, kind: str, entry: Any) -> None:
        table = self._entries[kind]
        if not isinstance(entry.name, str) or not entry.name:
            raise PluginError(f"plugin {entry.plugin!r} registered a {_SINGULAR[kind]} with an empty or non-string name")
        if entry.name in table:
            other = table[entry.name].plugin
            raise PluginError(
                f"{_SINGULAR[kind]} {entry.name!r} is registered twice: by plugin {other!r} and by plugin "
                f"{entry.plugin!r}. Rename one of them, or leave one plugin out "
                "(BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD=1 and -p to choose plugins explicitly)."
            )
        table[entry.name] = entry

    def merge(self, other: Registry) -> None:
        """Add every entry of ``other`` (a plugin's staged registrations), checking for clashes."""
        for kind in KINDS:
            for entry in other._entries[kind].values():
                self.add(kind, entry)

    def registrar(self, kind: str, plugin: str) -> Callable[..., None]:
        """The ``register`` callable handed to one plugin's registration hook."""

        def register_model(name, factory, *, family=None, input_shape=None, description=None, **meta):
            if not callable(factory):
                raise PluginError(f"plugin {plugin!r}: model {name!r} needs a callable factory, got {factory!r}")
            if input_shape is None or callable(input_shape):
                shape = input_shape  # a callable derives the shape from the suite's args
            else:
                shape = tuple(int(d) for d in input_shape)
            self.add("models", ModelEntry(name, factory, plugin, family, shape, description, dict(meta)))

        def register_metric(
            name, measure, *, fields, description=None, ratio_fields=(), options=None, formats=None,
            check_options=None, compare=None, merge_rounds=None, train_options=False, needs_dataset=False,
            exclusive=False,
        ):
            if not callable(measure):
                raise PluginError(f"plugin {plugin!r}: metric {name!r} needs a callable, got {measure!r}")
            for what, value in (("fields", fields), ("ratio_fields", ratio_fields)):
                if isinstance(value, str) or not all(isinstance(f, str) for f in value):
                    raise PluginError(f"plugin {plugin!r}: metric {name!r}: {what} must be a list of field names, got {value!r}")
            self.add(
                "metrics",
                MetricEntry(
                    name,
                    measure,
                    plugin,
                    tuple(fields),
                    description,
                    tuple(ratio_fields),
                    dict(options or {}),
                    dict(formats or {}),
                    check_options,
                    {f: dict(spec) for f, spec in (compare or {}).items()},
                    merge_rounds,
                    bool(train_options),
                    bool(needs_dataset),
                    bool(exclusive),
                ),
            )

        def register_dataset(name, loader, *, task="classification", description=None, **meta):
            self.add("datasets", DatasetEntry(name, loader, plugin, task, description, dict(meta)))

        def register_reporter(name, render, *, description=None):
            self.add("reporters", ReporterEntry(name, render, plugin, description))

        def register_executor(name, factory, *, description=None):
            if not callable(factory):
                raise PluginError(f"plugin {plugin!r}: executor {name!r} needs a callable factory, got {factory!r}")
            self.add("executors", ExecutorEntry(name, factory, plugin, description))

        return {
            "models": register_model,
            "metrics": register_metric,
            "datasets": register_dataset,
            "reporters": register_reporter,
            "executors": register_executor,
        }[kind]

    # ---- reading

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> Iterator[Any]:
        return (self._entries[kind][n] for n in self.names(kind))

    def has(self, kind: str, name: str) -> bool:
        return name in self._entries[kind]

    def get(self, kind: str, name: str) -> Any:
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UsageError(self.unknown(kind, name)) from None

    def unknown(self, kind: str, name: str) -> str:
        """The message for an unknown name: the closest registered one, or where plugins come from."""
        close = did_you_mean(name, self._entries[kind])
        if close:
            return f"unknown {_SINGULAR[kind]} {name!r}{close}; `benchbench list {kind}` shows the registered ones"
        return (
            f"unknown {_SINGULAR[kind]} {name!r}: no loaded plugin registers a {_SINGULAR[kind]} of that name "
            f"(`benchbench list {kind}` shows the registered ones). A plugin that provides it is either installed "
            "(pip install it: it registers in the 'benchbench' entry-point group) or loaded for one run with "
            "-p MODULE, -p path/to/plugin.py or --plugins-dir DIR"
        )

    @property
    def models(self) -> dict[str, ModelEntry]:
        return dict(self._entries["models"])

    @property
    def metrics(self) -> dict[str, MetricEntry]:
        return dict(self._entries["metrics"])

    @property
    def datasets(self) -> dict[str, DatasetEntry]:
        return dict(self._entries["datasets"])

    @property
    def reporters(self) -> dict[str, ReporterEntry]:
        return dict(self._entries["reporters"])

    @property
    def executors(self) -> dict[str, ExecutorEntry]:
        return dict(self._entries["executors"])
