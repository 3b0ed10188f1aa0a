"""What plugins register, one frozen dataclass per kind, and the registry that holds them.

Each registration hook receives a ``register`` callable bound to one kind and one
plugin. Its signature *is* the kind's dataclass (``register(name, factory, *, family=...,
input_shape=..., description=..., **meta)`` builds a :class:`ModelEntry`), and each
dataclass checks its own values in ``__post_init__``, so what a plugin may register is
written down once, here. The entries end up in a :class:`Registry`, the read-only view
the suite validator, the runner and ``benchbench list`` use, keyed by entry class::

    registry.get(ModelEntry, "conv").factory
    registry.has(MetricEntry, "latency")

A metric (:class:`MetricEntry`) and a set of derived fields (:class:`FieldSetEntry`) also
declare how their fields are shown (:class:`FieldDeclarations`: footnotes, formats, bar
panels, side-by-side fields, :class:`Plot` and :class:`Explainer` objects);
:meth:`Registry.declared` gathers them for tables, the report and ``--columns``, so that
the core names no plugin's field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


CORE_PLOTS = ("bars",)
"""Plots the core draws itself from the declarations (``bars``): no registration may declare one of these names."""
PLOT_KEYS = ("draw", "heading", "alt", "explanation", "needs")
EXPLAIN_KEYS = ("explain", "heading", "explanation", "needs")


@dataclass(frozen=True)
class Plot:
    """One plot of ``benchbench report --html`` and :meth:`RunResult.plot <benchbench.results.RunResult.plot>`,
    declared in ``plots={name: {...}}`` by the registration whose fields it draws.

    ``draw(runs, labels)`` returns a matplotlib ``Figure``, or None when the runs have
    nothing for it to draw; ``heading`` titles its section of the page, ``alt`` is the
    image's text, ``explanation`` the sentence under the heading, and ``needs`` says what
    a run must have for it (in the error of ``RunResult.plot``).
    """

    name: str
    draw: Callable[[Sequence[Any], list[str]], Any]
    heading: str
    alt: str
    explanation: str
    needs: str
    plugin: str


@dataclass(frozen=True)
class Explainer:
    """A breakdown table of ``benchbench report --explain NAME``, also a section of the HTML page,
    declared in ``explain={name: {...}}``: ``explain(runs, labels)`` returns a
    :class:`~benchbench.reporters.Breakdown` (no rows: nothing to explain, and ``needs`` says what is missing)."""

    name: str
    explain: Callable[[Sequence[Any], list[str]], Any]
    heading: str
    explanation: str
    needs: str
    plugin: str


@dataclass(frozen=True)
class FieldDeclarations(Entry):
    """What a registration that adds fields to records declares about them, so that tables, the
    report and its plots show them without the core knowing their names: the fields that belong
    in tables, their formats and footnotes, their bar charts, the ones the report sets side by side
    for several runs, and plots and breakdown tables of their own. :class:`MetricEntry` and
    :class:`FieldSetEntry` (derived fields) declare them alike; each argument is documented on
    ``benchbench_register_metrics`` in :mod:`benchbench.hookspecs`.
    """

    _: KW_ONLY
    fields: tuple[str, ...]
    description: str | None = None
    formats: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    footnotes: Mapping[str, str] = field(default_factory=dict)
    bars: Mapping[str, str] = field(default_factory=dict)
    side_by_side: tuple[str, ...] = ()
    plots: Mapping[str, Plot] = field(default_factory=dict)
    explain: Mapping[str, Explainer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._field_names("fields", self.fields)
        self._field_names("side_by_side", self.side_by_side)
        object.__setattr__(self, "formats", dict(self.formats or {}))
        for what in ("footnotes", "bars"):
            texts = self._mapping(what, getattr(self, what))
            for name, text in texts.items():
                if not isinstance(text, str) or not text.strip():
                    self._fail(f"{what}[{name!r}] must be a sentence of text, got {text!r}")
            object.__setattr__(self, what, texts)
        for what in ("footnotes", "bars", "side_by_side"):
            for name in getattr(self, what):
                if name not in self.fields:
                    self._fail(f"{what} names {name!r}, which is not one of its fields "
                               f"({', '.join(self.fields) or 'none'}){did_you_mean(name, self.fields)}")
        object.__setattr__(self, "plots", {
            name: self._declared(Plot, "plots", name, spec, PLOT_KEYS, "draw", needs=self.plot_needs)
            for name, spec in self._mapping("plots", self.plots).items()})
        object.__setattr__(self, "explain", {
            name: self._declared(Explainer, "explain", name, spec, EXPLAIN_KEYS, "explain",
                                 needs=f"the fields of the {self.kind} {self.name!r} ({', '.join(self.fields)})")
            for name, spec in self._mapping("explain", self.explain).items()})
        for name in self.plots:
            if name in CORE_PLOTS:
                self._fail(f"plots: {name!r} is the core's own plot (drawn from every registration's bars=); name yours otherwise")

    @property
    def plot_needs(self) -> str:
        """What a run must have for one of this entry's plots, unless the plot says so itself."""
        return f"a benchmark measured with the {self.name} {self.kind}"

    def _fail(self, problem: str) -> None:
        raise PluginError(f"plugin {self.plugin!r}: {self.kind} {self.name!r}: {problem}")

    def _field_names(self, what: str, value: Any) -> None:
        if isinstance(value, str) or not isinstance(value, Iterable) or not all(isinstance(f, str) for f in value):
            self._fail(f"{what} must be a list of field names, got {value!r}")
        object.__setattr__(self, what, tuple(value))

    def _mapping(self, what: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
            self._fail(f"{what} must be a mapping of names, got {value!r}")
        return dict(value)

    def _declared(self, kind: type[Any], what: str, name: str, spec: Any, keys: tuple[str, ...], call: str, *,
                  needs: str) -> Any:
        """A plot or breakdown declared as a mapping (``{"draw": ..., "heading": ...}``), checked and completed."""
        if isinstance(spec, kind):
            return spec
        if not isinstance(spec, Mapping):
            self._fail(f"{what}[{name!r}] must be a mapping with {', '.join(map(repr, keys))}, got {spec!r}")
        unknown = [k for k in spec if k not in keys]
        if unknown:
            self._fail(f"{what}[{name!r}]: unknown key {unknown[0]!r}{did_you_mean(unknown[0], keys)}; "
                       f"keys: {', '.join(keys)}")
        if not callable(spec.get(call)):
            self._fail(f"{what}[{name!r}] needs a callable {call!r}, got {spec.get(call)!r}")
        heading = spec.get("heading")
        if not isinstance(heading, str) or not heading.strip():
            self._fail(f"{what}[{name!r}] needs a 'heading' (the title of its section of the report), got {heading!r}")
        texts = {k: spec.get(k) for k in keys if k not in (call, "heading")}
        for key, text in texts.items():
            if text is not None and not isinstance(text, str):
                self._fail(f"{what}[{name!r}][{key!r}] must be text, got {text!r}")
        defaults = {"alt": heading, "explanation": "", "needs": needs}
        values = {k: texts[k] if texts[k] is not None else defaults[k] for k in texts}
        return kind(name=name, heading=heading, plugin=self.plugin, **{call: spec[call]}, **values)


@dataclass(frozen=True)
class MetricEntry(FieldDeclarations):
    """``register(name, measure, *, fields, description=None, ratio_fields=(), options=None, formats=None,
    check_options=None, compare=None, merge_rounds=None, train_options=False, needs_dataset=False, exclusive=False,
    available=None, inline_only=None, applies=None, footnotes=None, bars=None, side_by_side=(), plots=None,
    explain=None)``.

    Each argument is documented on ``benchbench_register_metrics`` in :mod:`benchbench.hookspecs`.
    """

    kind: ClassVar[str] = "metric"
    plural: ClassVar[str] = "metrics"

    measure: Callable[[Any], dict[str, Any]]
    _: KW_ONLY
    ratio_fields: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    check_options: Callable[[dict[str, Any]], list[str]] | None = None
    compare: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    merge_rounds: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    train_options: bool = False
    needs_dataset: bool = False
    exclusive: bool = False
    available: Callable[[str], str | None] | None = None
    inline_only: str | None = None
    applies: Callable[[Any], str | None] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require_callable("measure function", self.measure)
        self._field_names("ratio_fields", self.ratio_fields)
        for what in ("check_options", "merge_rounds", "available", "applies"):
            if getattr(self, what) is not None:
                self._require_callable(what, getattr(self, what))
        object.__setattr__(self, "options", dict(self.options or {}))
        object.__setattr__(self, "compare", {f: dict(spec) for f, spec in (self.compare or {}).items()})
        for name, spec in self.compare.items():
            if spec.get("budget") and (spec.get("exact") or spec.get("samples") or spec.get("higher_is_better")):
                self._fail(f"compare[{name!r}]: a budget bounds a single value that is better lower; "
                           "it cannot go with exact, samples or higher_is_better")

    @property
    def budgets(self) -> tuple[str, ...]:
        """The fields whose ``thresholds:`` value is an upper bound on the value itself (``budget`` in ``compare``)."""
        return tuple(name for name, spec in self.compare.items() if spec.get("budget"))
        for what in ("train_options", "needs_dataset", "exclusive"):
            object.__setattr__(self, what, bool(getattr(self, what)))


@dataclass(frozen=True)
class FieldSetEntry(FieldDeclarations):
    """``register(name, *, fields, description=None, formats=None, footnotes=None, bars=None, side_by_side=(),
    plots=None, explain=None)``: fields a plugin derives (``benchbench_derive_fields``) declared by name.

    Each argument is documented on ``benchbench_register_fields`` in :mod:`benchbench.hookspecs`.
    """

    kind: ClassVar[str] = "field set"
    plural: ClassVar[str] = "fields"

    @property
    def plot_needs(self) -> str:
        return f"benchmarks with {' and '.join(self.fields)}"


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


KINDS: tuple[type[Entry], ...] = (ModelEntry, MetricEntry, FieldSetEntry, DatasetEntry, ReporterEntry, ExecutorEntry)
"""Every kind of entry, in the order their registration hooks are called."""
BY_PLURAL: dict[str, type[Entry]] = {kind.plural: kind for kind in KINDS}
"""``benchbench list models`` -> :class:`ModelEntry`."""
E = TypeVar("E", bound=Entry)


@dataclass(frozen=True)
class Declared:
    """Every registration's declarations about showing fields, gathered by :meth:`Registry.declared`."""

    columns: tuple[str, ...]
    """Every field a table may show by registration: the metrics' fields (and ``_ratio`` columns), the field sets'."""
    derived: tuple[str, ...]
    """The field sets' fields (what ``benchbench_derive_fields`` adds)."""
    formats: Mapping[str, Callable[[Any], str]]
    footnotes: Mapping[str, str]
    bars: Mapping[str, str]
    side_by_side: tuple[str, ...]
    plots: Mapping[str, Plot]
    explain: Mapping[str, Explainer]


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
        if isinstance(entry, FieldDeclarations):
            self._check_declared_names(entry)
        table[entry.name] = entry

    def _check_declared_names(self, entry: FieldDeclarations) -> None:
        """A plot or breakdown name is one namespace across all plugins: declared twice is an error naming both."""
        for what, thing in (("plots", "plot"), ("explain", "breakdown (report --explain)")):
            for name in getattr(entry, what):
                for kind in (MetricEntry, FieldSetEntry):
                    for other in self._entries[kind].values():
                        if name in getattr(other, what):
                            raise PluginError(
                                f"{thing} {name!r} is declared twice: by {other.kind} {other.name!r} of plugin "
                                f"{other.plugin!r} and by {entry.kind} {entry.name!r} of plugin {entry.plugin!r}. "
                                "Rename one of them, or leave one plugin out (-p no:NAME)."
                            )

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

    def declared(self) -> Declared:
        """What every metric and field set declares about showing its fields, gathered in plugin order
        (the metrics', then the field sets'; plots the other way round: overviews that combine several
        metrics first)."""
        metrics = list(self.table(MetricEntry).values())
        sets = list(self.table(FieldSetEntry).values())
        both: list[FieldDeclarations] = [*metrics, *sets]
        columns = [c for m in metrics for c in (*m.fields, *(f"{f}_ratio" for f in m.ratio_fields))]
        return Declared(
            columns=tuple(dict.fromkeys([*columns, *(f for s in sets for f in s.fields)])),
            derived=tuple(dict.fromkeys(f for s in sets for f in s.fields)),
            formats={f: fmt for e in reversed(both) for f, fmt in e.formats.items()},
            footnotes={f: text for e in reversed(both) for f, text in e.footnotes.items()},
            bars={f: title for e in both for f, title in e.bars.items()},
            side_by_side=tuple(dict.fromkeys(f for e in both for f in e.side_by_side)),
            plots={name: plot for e in [*sets, *metrics] for name, plot in e.plots.items()},
            explain={name: ex for e in both for name, ex in e.explain.items()},
        )

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
