"""What plugins register, one frozen dataclass per kind, and the registry that holds them.

Each registration hook receives a ``register`` callable bound to one kind and one
plugin. Its signature *is* the kind's dataclass (``register(name, factory, *, family=...,
input_shape=..., description=..., **meta)`` builds a :class:`ModelEntry`), and each
dataclass checks its own values in ``__post_init__``, so what a plugin may register is
written down once, here. The entries end up in a :class:`Registry`, the read-only view
the suite validator, the runner and ``benchbench list`` use, keyed by entry class::

    registry.get(ModelEntry, "conv").factory
    registry.has(MetricEntry, "latency")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from benchbench.errors import PluginError, UsageError, did_you_mean


@dataclass(frozen=True)
class Entry:
    """What every registered thing has: a name, and the plugin that registered it."""

    kind: ClassVar[str] = "thing"
    plural: ClassVar[str] = "things"

    name: str
    _: KW_ONLY
    plugin: str = ""
    """Filled in by the registrar: the plugin whose hook registered this entry."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PluginError(f"plugin {self.plugin!r} registered a {self.kind} with an empty or non-string name: {self.name!r}")

    def _require_callable(self, what: str, value: Any) -> None:
        if not callable(value):
            raise PluginError(f"plugin {self.plugin!r}: {self.kind} {self.name!r} needs a callable {what}, got {value!r}")


@dataclass(frozen=True)
class ModelEntry(Entry):
    """``register(name, factory, *, family=None, input_shape=None, description=None, **meta)``.

    ``factory(**args)`` returns a ``torch.nn.Module``; ``input_shape`` is the per-sample
    shape used when a suite gives none, or a callable of the suite's args; ``meta`` keeps
    any other keyword (``make_input`` is understood by the core).
    """

    kind: ClassVar[str] = "model"
    plural: ClassVar[str] = "models"

    factory: Callable[..., Any]
    _: KW_ONLY
    family: str | None = None
    input_shape: tuple[int, ...] | Callable[[dict[str, Any]], Sequence[int]] | None = None
    description: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("factory", self.factory)
        if self.input_shape is not None and not callable(self.input_shape):
            try:
                shape = tuple(int(d) for d in self.input_shape)
            except (TypeError, ValueError):
                raise PluginError(f"plugin {self.plugin!r}: model {self.name!r}: input_shape must be a list of whole "
                                  f"numbers or a callable of the args, got {self.input_shape!r}") from None
            object.__setattr__(self, "input_shape", shape)


@dataclass(frozen=True)
class MetricEntry(Entry):
    """``register(name, measure, *, fields, description=None, ratio_fields=(), options=None, formats=None,
    check_options=None, compare=None, merge_rounds=None, train_options=False, needs_dataset=False, exclusive=False,
    available=None, inline_only=None)``.

    Each argument is documented on ``benchbench_register_metrics`` in :mod:`benchbench.hookspecs`.
    """

    kind: ClassVar[str] = "metric"
    plural: ClassVar[str] = "metrics"

    measure: Callable[[Any], dict[str, Any]]
    _: KW_ONLY
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
    available: Callable[[str], str | None] | None = None
    inline_only: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("measure function", self.measure)
        for what in ("fields", "ratio_fields"):
            value = getattr(self, what)
            if isinstance(value, str) or not all(isinstance(f, str) for f in value):
                raise PluginError(f"plugin {self.plugin!r}: metric {self.name!r}: {what} must be a list of field names, got {value!r}")
            object.__setattr__(self, what, tuple(value))
        for what in ("check_options", "merge_rounds", "available"):
            if getattr(self, what) is not None:
                self._require_callable(what, getattr(self, what))
        object.__setattr__(self, "options", dict(self.options or {}))
        object.__setattr__(self, "formats", dict(self.formats or {}))
        object.__setattr__(self, "compare", {f: dict(spec) for f, spec in (self.compare or {}).items()})
        for what in ("train_options", "needs_dataset", "exclusive"):
            object.__setattr__(self, what, bool(getattr(self, what)))


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """``register(name, loader, *, task="classification", description=None, **meta)``; ``loader(**args)``
    returns a :class:`benchbench.data.Dataset`; ``meta`` may hold ``input_shape`` and ``check``."""

    kind: ClassVar[str] = "dataset"
    plural: ClassVar[str] = "datasets"

    loader: Callable[..., Any]
    _: KW_ONLY
    task: str = "classification"
    description: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("loader", self.loader)


@dataclass(frozen=True)
class ReporterEntry(Entry):
    """``register(name, render, *, description=None)``; ``render(run, options) -> str``."""

    kind: ClassVar[str] = "reporter"
    plural: ClassVar[str] = "reporters"

    render: Callable[[Any, dict[str, Any]], str]
    _: KW_ONLY
    description: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("render function", self.render)


@dataclass(frozen=True)
class ExecutorEntry(Entry):
    """``register(name, factory, *, description=None)``; ``factory()`` returns an executor."""

    kind: ClassVar[str] = "executor"
    plural: ClassVar[str] = "executors"

    factory: Callable[[], Any]
    _: KW_ONLY
    description: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("factory", self.factory)


KINDS: tuple[type[Entry], ...] = (ModelEntry, MetricEntry, DatasetEntry, ReporterEntry, ExecutorEntry)
"""Every kind of entry, in the order their registration hooks are called."""
BY_PLURAL: dict[str, type[Entry]] = {kind.plural: kind for kind in KINDS}
"""``benchbench list models`` -> :class:`ModelEntry`."""
E = TypeVar("E", bound=Entry)


def registrar(kind: type[E], plugin: str, add: Callable[[Entry], None]) -> Callable[..., None]:
    """The ``register`` callable handed to one plugin's hook for one kind.

    Its arguments are the kind's dataclass fields; a keyword the kind does not name goes
    into ``meta`` where the kind keeps one (models, datasets), else it is an error.
    """
    known = {f.name for f in fields(kind)} - {"plugin"}

    def register(*args: Any, **kwargs: Any) -> None:
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known}
        if extra:
            if "meta" not in known:
                raise TypeError(f"register() got unexpected keyword argument(s) {', '.join(map(repr, extra))} "
                                f"for a {kind.kind}{did_you_mean(next(iter(extra)), known)}")
            kwargs["meta"] = {**kwargs.get("meta", {}), **extra}
        add(kind(*args, plugin=plugin, **kwargs))

    register.__doc__ = kind.__doc__
    return register


class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    def __init__(self) -> None:
        self._entries: dict[type[Entry], dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, entry: Entry) -> None:
        """Add one entry; a name registered twice is an error naming both plugins."""
        table = self._entries[type(entry)]
        if entry.name in table:
            other = table[entry.name].plugin
            raise PluginError(
                f"{entry.kind} {entry.name!r} is registered twice: by plugin {other!r} and by plugin "
                f"{entry.plugin!r}. Rename one of them, or leave one plugin out "
                "(BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD=1 and -p to choose plugins explicitly, or -p no:NAME)."
            )
        table[entry.name] = entry

    def merge(self, other: Registry) -> None:
        """Add every entry of ``other`` (a plugin's staged registrations), checking for clashes."""
        for table in other._entries.values():
            for entry in table.values():
                self.add(entry)

    def registrar(self, kind: type[Entry], plugin: str) -> Callable[..., None]:
        return registrar(kind, plugin, self.add)

    # ---- reading

    def names(self, kind: type[Entry]) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: type[E]) -> Iterator[E]:
        """The entries of one kind, sorted by name."""
        return (self._entries[kind][n] for n in self.names(kind))  # type: ignore[misc]

    def table(self, kind: type[E]) -> Mapping[str, E]:
        """The entries of one kind by name, read-only."""
        return MappingProxyType(self._entries[kind])  # type: ignore[arg-type]

    def has(self, kind: type[Entry], name: str) -> bool:
        return name in self._entries[kind]

    def get(self, kind: type[E], name: str) -> E:
        try:
            return self._entries[kind][name]  # type: ignore[return-value]
        except KeyError:
            raise UsageError(self.unknown(kind, name)) from None

    def unknown(self, kind: type[Entry], name: str) -> str:
        """The message for an unknown name: the closest registered one, or where plugins come from."""
        close = did_you_mean(name, self._entries[kind])
        if close:
            return f"unknown {kind.kind} {name!r}{close}; `benchbench list {kind.plural}` shows the registered ones"
        return (
            f"unknown {kind.kind} {name!r}: no loaded plugin registers a {kind.kind} of that name "
            f"(`benchbench list {kind.plural}` shows the registered ones). A plugin that provides it is either "
            "installed (pip install it: it registers in the 'benchbench' entry-point group) or loaded for one run "
            "with -p MODULE, -p path/to/plugin.py or --plugins-dir DIR"
        )
