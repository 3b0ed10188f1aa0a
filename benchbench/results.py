"""Run results: one record per benchmark, the environment, and the run file (JSON).

A record is a plain ``dict`` (a row of the DataFrame): the core fields
(:data:`CORE_FIELDS`, listed in the README's "Results" section) plus whatever metrics
add. The run file keeps everything, raw timing samples included, so a later comparison
can use statistics rather than two medians.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from benchbench.checks import shown, unstorable
from benchbench.errors import UsageError
from benchbench.modes import COMPILE_FIELDS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from benchbench.registry import Registry

Record = dict[str, Any]
RUN_FILE_FORMAT = 1
"""The run file's ``format``: raised when what a reader must know about a file changes, with
an upgrade (:data:`UPGRADES`) from the format before, so that older files stay readable."""
UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""``format N`` -> a function that turns a run file's data of format N into format N + 1.
Format 1 is the first: nothing to upgrade yet. A change that gives format 2 adds
``UPGRADES[1]`` here (as asv upgrades its result files), and :func:`upgrade` applies them."""

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"

CORE_FIELDS = (
    "suite", "benchmark", "model", "family", "plugin", "args", "device", "batch_size", "suite_batch_size",
    "input_shape", "output_shape", "dtype", "mode", "channels_last", "threads", "baseline", "status", "error",
    "warnings", "wall_time_s", "host", "rounds", "thresholds",
    "compile", "autocast", "tf32", "cudnn_benchmark", "cuda_graphs", "backend_flags",
)
"""The fields the runner writes in every record; metrics add theirs beside them."""
RESERVED_FIELDS = (*CORE_FIELDS, *COMPILE_FIELDS)
"""Fields only the runner writes: a metric or a derived field may not overwrite them."""

RUN_FILE_TYPES: dict[str, type | tuple[type, ...]] = {
    "complete": bool, "description": str, "suite_source": str, "suite_text": str, "fields": list,
    "notes": list, "options": dict, "compare": dict, "footnotes": dict, "environment": dict,
}
"""The type of each optional key of a run file, checked when one is read."""

MODEL_SETTINGS = ("model", "args", "input_shape")
"""What decides the model itself: a deterministic count (params, FLOPs) depends on these alone."""
RUN_SETTINGS = ("device", "batch_size", "dtype", "mode", "channels_last", "threads",
                "compile", "autocast", "tf32", "cudnn_benchmark", "cuda_graphs")
"""How the model was run: a measurement (latency, memory) depends on these too. A ratio
column between rows that differ here compares more than the models (a warning says so),
and ``benchbench compare`` judges a measured field only when both runs agree on them."""
EXECUTION_MODES = ("dtype", "channels_last", "compile", "autocast", "tf32", "cudnn_benchmark", "cuda_graphs")
"""The run settings a suite varies on purpose to compare ways of running one model
(``suites/modes.yaml``, ``suites/numerics.yaml``): a ratio across them is the point, so the
baseline warning leaves them out (``compare`` still requires them equal)."""


@dataclass
class RunResult:
    """A finished (or interrupted) run: records in suite order plus the environment."""

    suite: str
    records: list[Record] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    suite_source: str | None = None
    suite_text: str | None = None
    description: str | None = None
    complete: bool = True
    fields: list[str] = field(default_factory=list)
    """Metric fields worth a table column, in metric order (``<f>_ratio`` follows ``f``)."""
    formats: dict[str, Callable[[Any], str]] = field(default_factory=dict, repr=False)
    """Table formatters by field, from the metric registrations (not stored in the file)."""
    notes: list[str] = field(default_factory=list)
    """Run-level remarks for the user (device fallback, batch scaled for CPU...)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The command-line overrides (device, batch_size, only...), replayed by ``--resume``."""
    compare: dict[str, dict[str, Any]] = field(default_factory=dict)
    """How ``benchbench compare`` judges each field (from the metrics' registrations), so
    that comparing two run files needs neither the plugins nor torch."""
    footnotes: dict[str, str] = field(default_factory=dict)
    """What each field means, by field (the registrations' ``footnotes``): the table prints those of
    its columns under it. Stored in the run file, since they say how this run was measured."""
    registry: Registry | None = field(default=None, repr=False, compare=False)
    """The registrations the run is shown with (formats, bar panels, plots, breakdowns): the runner's,
    or those of the plugins ``benchbench report`` loaded (:meth:`show_with`); not stored. None: the
    default plugins', loaded when a plot needs them."""

    def __repr__(self) -> str:  # the records and raw samples would fill a notebook cell
        state = "complete" if self.complete else "INCOMPLETE"
        return (
            f"<RunResult suite={self.suite!r}: {len(self.records)} benchmark(s), {len(self.failed)} failed, "
            f"{state}; .to_dataframe() for the table>"
        )

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r.get("status") == STATUS_FAILED]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per benchmark; lists (shapes, raw samples) stay Python lists."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    # ------------------------------------------------------------------ notebooks

    def _repr_html_(self) -> str:
        """How Jupyter shows a run: the terminal's table (title, rows, notes) as HTML."""
        from benchbench.htmlreport import table_html

        return table_html(self, heading=True)

    def plot(self, kind: str = "bars") -> Figure:
        """One of ``benchbench report``'s plots of this run, as a matplotlib Figure (shown inline
        in a notebook; ``.savefig(path)`` elsewhere).

        ``kind``: ``bars`` (a panel per field a metric draws as bars: params, FLOPs, latency,
        memory), or a plot a plugin declares: ``scatter`` (latency against FLOPs, log axes),
        ``roofline``, ``training``, ``gradient_flow``... (those of :attr:`registry`; of the
        default plugins for a run read from a file). A kind this run has no data for is a
        ``ValueError`` saying what it needs.
        """
        from benchbench.htmlreport import figure
        from benchbench.plots import plots_for

        drawn = figure(kind, [self])
        if drawn is None:
            plots = plots_for([self])
            raise ValueError(f"this run has nothing to draw as {kind!r}: {plots[kind].needs}; "
                             f"plots: {', '.join(plots)}")
        return drawn

    def show_with(self, registry: Registry) -> RunResult:
        """Show this run with ``registry``'s declarations (of the plugins loaded here): their formats,
        bar panels, plots and breakdowns, and the footnotes of the fields it keeps none for (a run
        file written before footnotes were stored). Returns the run itself."""
        declared = registry.declared()
        present = {*self.fields, *declared.derived, *(key for record in self.records for key in record)}
        self.registry = registry
        self.formats = {**declared.formats, **self.formats}
        self.footnotes = {**{f: text for f, text in declared.footnotes.items() if f in present}, **self.footnotes}
        return self

    # ------------------------------------------------------------------ run file

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RUN_FILE_FORMAT,
            "suite": self.suite,
            "description": self.description,
            "complete": self.complete,
            "suite_source": self.suite_source,
            "suite_text": self.suite_text,
            "fields": self.fields,
            "notes": self.notes,
            "options": self.options,
            "compare": self.compare,
            "footnotes": self.footnotes,
            "environment": self.environment,
            "records": self.records,
        }

    def to_json(self) -> str:
        """The run file's text: JSON-safe (NaN -> null, tuples -> lists, tensors -> numbers)."""
        return json.dumps(jsonable(self.to_dict()), indent=1, allow_nan=False)

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the run file atomically (temp file, then rename): never half a file."""
        from benchbench.outputs import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n", what="run file")

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> RunResult:
        from benchbench.journal import replay

        try:
            text = Path(path).read_text(encoding="utf-8")
            if not text.strip():
                raise UsageError(f"run file {str(path)!r} is empty: a run that was killed before it wrote anything, "
                                 "or a file made for it that it never got to write")
            data = json.loads(text)
        except FileNotFoundError:
            raise UsageError(f"run file {str(path)!r} not found") from None
        except (OSError, ValueError, RecursionError) as exc:
            raise UsageError(f"run file {str(path)!r} is not a readable JSON run file: {exc}") from None
        return cls.from_dict(replay(path, text, data), origin=str(path))  # with the records a killed run journaled

    @classmethod
    def from_dict(cls, data: Any, origin: str) -> RunResult:
        """A run from the run file's structure (upgraded to the current format); ``origin`` names it in errors.

        Refused (a :class:`UsageError`, exit 2), since a compare, report or resume would
        otherwise judge or show something false: a file of a newer format, text that is no
        valid Unicode or numbers beyond a float anywhere, a benchmark recorded twice, fields
        of the wrong type, and compared values below 0 (compare judges by ratios).
        """
        if not isinstance(data, dict) or not isinstance(data.get("records"), list) or not isinstance(data.get("suite"), str):
            raise UsageError(f"{origin}: not a benchbench run file (needs 'suite' and a 'records' list)")
        data = upgrade(data, origin)
        odd = [f"at {where}: {problem}" for where, problem in unstorable(data)]
        if odd:
            raise UsageError(f"{origin}: not a valid benchbench run file: {'; '.join(odd[:3])}"
                             + (f" (and {len(odd) - 3} more)" if len(odd) > 3 else ""))
        problems = [
            f"key {key!r} must be {kind.__name__ if isinstance(kind, type) else ' or '.join(k.__name__ for k in kind)}"
            for key, kind in RUN_FILE_TYPES.items()
            if key in data and data[key] is not None and not isinstance(data[key], kind)
        ]
        if isinstance(data.get("footnotes"), dict) and not all(isinstance(t, str) for t in data["footnotes"].values()):
            problems.append("key 'footnotes' must map field names to text")
        compare = data["compare"] if isinstance(data.get("compare"), dict) else {}
        seen: dict[str, int] = {}
        for i, record in enumerate(data["records"], start=1):
            if not isinstance(record, dict) or not isinstance(record.get("benchmark"), str):
                problems.append(f"record #{i} needs a 'benchmark' name")
            elif record["benchmark"] in seen:
                problems.append(f"record #{i}: benchmark {shown(record['benchmark'])} is recorded twice (also record "
                                f"#{seen[record['benchmark']]}): which one counts?")
            elif record.get("status") not in (STATUS_OK, STATUS_FAILED, STATUS_SKIPPED):
                problems.append(f"record {shown(record['benchmark'])} has no valid 'status' (ok, failed or skipped)")
            else:
                problems.extend(f"record {shown(record['benchmark'])}: {p}" for p in _field_problems(record, compare))
            if isinstance(record, dict) and isinstance(record.get("benchmark"), str):
                seen.setdefault(record["benchmark"], i)
        if problems:
            raise UsageError(f"{origin}: not a valid benchbench run file (edited or damaged?): {'; '.join(problems[:5])}"
                             + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
        return cls(
            suite=data["suite"],
            records=data["records"],
            environment=data.get("environment") or {},
            suite_source=data.get("suite_source"),
            suite_text=data.get("suite_text"),
            description=data.get("description"),
            complete=bool(data.get("complete", True)),
            fields=list(data.get("fields") or []),
            notes=list(data.get("notes") or []),
            options=dict(data.get("options") or {}),
            compare=dict(data.get("compare") or {}),
            footnotes=dict(data.get("footnotes") or {}),
        )


RECORD_TYPES: dict[str, type | tuple[type, ...]] = {
    "suite": str, "model": str, "family": str, "plugin": str, "args": dict, "device": str, "input_shape": list,
    "output_shape": (list, dict), "dtype": str, "mode": str, "channels_last": bool, "baseline": str, "error": str,
    "warnings": list, "host": str, "thresholds": dict, "compile": dict, "autocast": str, "tf32": bool,
    "cudnn_benchmark": bool, "cuda_graphs": bool, "backend_flags": dict,
}
"""The type of each non-numeric core field of a record (``None`` is always allowed)."""
NUMERIC_CORE = ("batch_size", "suite_batch_size", "threads", "wall_time_s", "rounds", *COMPILE_FIELDS)
NUMERIC_SUFFIXES = ("_ratio", "_ms", "_bytes", "_s", "_gflops", "_fraction")
"""Fields whose names promise numbers (alone, or lists of them for raw samples)."""


def _numbers(value: Any) -> list[Any] | None:
    """The numbers in a field (a number, or lists of them for raw samples), or None if anything else is there."""
    if isinstance(value, list):
        found = []
        for item in value:
            inner = _numbers(item)
            if inner is None:
                return None
            found += inner
        return found
    return [value] if is_number(value) else None


def _field_problems(record: Record, compare: dict[str, Any]) -> list[str]:
    """Fields of a record read from a file whose type or value cannot be right (the file was edited or damaged).

    A compared field, and the samples it is judged on, must be 0 or more: compare judges by
    the ratio new / base, which a negative count or time turns upside down.
    """
    problems = []
    compared = set(compare)
    samples = {spec[part] for spec in compare.values() if isinstance(spec, dict)
               for part in ("samples", "rounds") if isinstance(spec.get(part), str)}
    for key, value in record.items():
        if value is None:
            continue
        kind = RECORD_TYPES.get(key)
        numbers = _numbers(value)
        if kind is not None and not isinstance(value, kind):
            problems.append(f"field {shown(key)} is {shown(value)}, not {kind.__name__ if isinstance(kind, type) else 'a list or mapping'}")
        elif (key in NUMERIC_CORE or key in compared or key in samples or key.endswith(NUMERIC_SUFFIXES)) and numbers is None:
            problems.append(f"field {shown(key)} is {shown(value)}, not a number")
        elif (key in compared or key in samples) and numbers and min(numbers) < 0:
            problems.append(f"field {shown(key)} is {shown(value)}: below 0, which no count, time or size can be "
                            "(compare would read a negative value as an improvement)")
    return problems


def add_ratios(records: Iterable[Record], ratio_fields: Iterable[str]) -> None:
    """Give each record with a ``baseline`` a ``<field>_ratio`` = value / baseline's value."""
    records = list(records)
    by_name = {r["benchmark"]: r for r in records}
    fields = list(ratio_fields)
    for record in records:
        base = by_name.get(record.get("baseline") or "")
        if base is None:
            continue
        computed = False
        for name in fields:
            value, reference = record.get(name), base.get(name)
            if is_number(value) and is_number(reference) and reference != 0:
                record[f"{name}_ratio"] = value / reference
                computed = True
        differ = [f"{k} {base.get(k)} vs {record.get(k)}" for k in RUN_SETTINGS
                  if k not in EXECUTION_MODES and base.get(k) != record.get(k)]
        warning = (
            f"its baseline {base['benchmark']!r} ran with other settings ({'; '.join(differ)}): "
            "the ratios compare more than the model"
        )
        warnings = record.setdefault("warnings", [])
        if computed and differ and warning not in warnings:  # idempotent: a resumed run adds ratios again
            warnings.append(warning)


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float, not a bool: what can be stored, compared and divided (an int beyond
    the largest float, such as ``10**400`` from a JSON file, is not: no ratio can use it)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def upgrade(data: dict[str, Any], origin: str) -> dict[str, Any]:
    """A run file's data in the current format: older formats upgraded step by step
    (:data:`UPGRADES`), a newer one refused with both versions named."""
    given = data.get("format", 1)  # every file benchbench wrote has one; a hand-made one may not
    if isinstance(given, bool) or not isinstance(given, int):
        raise UsageError(f"{origin}: not a valid benchbench run file: its 'format' is {shown(given)}, not a whole number")
    if given > RUN_FILE_FORMAT:
        from benchbench import __version__

        env = data.get("environment")
        writer = env.get("benchbench") if isinstance(env, dict) else None
        if writer is not None and not (isinstance(writer, str) and writer.isprintable() and len(writer) < 40):
            writer = shown(writer)
        raise UsageError(
            f"{origin}: written by a newer benchbench ({f'version {writer}, ' if writer else ''}run-file "
            f"format {given}); this is benchbench {__version__}, which reads formats up to {RUN_FILE_FORMAT}: "
            "upgrade benchbench (pip install -U from the clone or git URL you installed it from) to read it"
        )
    while given < RUN_FILE_FORMAT:
        step = UPGRADES.get(given)
        if step is None:
            raise UsageError(f"{origin}: run-file format {given} is none that benchbench ever wrote "
                             f"(formats 1 to {RUN_FILE_FORMAT}); the file was edited or damaged")
        data = {**step(data), "format": given + 1}
        given += 1
    return data


def jsonable(value: Any) -> Any:
    """Make metric outputs JSON-safe: tuples to lists, numpy/torch scalars to numbers, NaN to null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)
