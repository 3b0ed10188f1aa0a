"""Built-in reporters: the comparative table, CSV and JSON, registered like any plugin's.

``--format`` takes a reporter name (``table``, ``csv``, ``json``, or one a plugin adds)
or any tabulate table format (``github``, ``grid``, ``simple``, ``markdown``...), which
means the ``table`` reporter in that format.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate, tabulate_formats

import benchbench
from benchbench import formatting
from benchbench.results import RunResult

TABLE_ALIASES = {"markdown": "github", "md": "github"}
SETTINGS = ("device", "batch_size", "dtype", "mode", "compile", "autocast", "tf32", "cuda_graphs")
"""How a row ran: a column when rows differ, the title when they share it. The execution
modes (compile and after) are left out where no row sets them."""
IDENTITY = ("benchmark", "model", "output_shape")  # family is in `benchbench list models` and the CSV
RATIO_NOTE = "*_ratio: this row's value divided by its baseline row's value (0.5x = half)."
"""The one footnote the core writes: what every ``_ratio`` column means. Each other field's comes
from its registration (``footnotes=``), kept in the run's :attr:`~benchbench.results.RunResult.footnotes`."""


def table_formats() -> list[str]:
    return sorted({*tabulate_formats, *TABLE_ALIASES})


@dataclass
class Table:
    """A run as a table: what every table-like output (text, markdown, HTML) shows."""

    title: list[str]
    headers: list[str]
    rows: list[list[str]]
    colalign: list[str]
    notes: list[str]


@dataclass
class Breakdown:
    """What a registration's ``explain`` callable returns (``benchbench report --explain NAME``, and a
    section of the HTML page): the raw ``rows`` (one mapping per row, the same keys in each), which
    ``--format csv`` and ``json`` print, and the same rows as a :class:`Table` (``title``, formatted
    cells, ``colalign``, ``notes``) for the text and the page. No rows: nothing to explain."""

    rows: list[dict[str, Any]]
    table: Table


def table(run: RunResult, options: dict[str, Any]) -> Table:
    """Title lines, one formatted row per benchmark, and the notes (failures, warnings, meanings)."""
    records = run.records
    shared = _shared_settings(records)
    if options.get("columns"):
        columns = ["benchmark", *[c for c in options["columns"] if c != "benchmark"]]
    else:
        columns = [c for c in IDENTITY if c != "model" or any(r["model"] != r["benchmark"] for r in records)]
        columns += [c for c in SETTINGS if c not in shared and not _unset(records, c)]
        columns += [f for f in run.fields if any(r.get(f) is not None for r in records)]
        if any(r.get("baseline") for r in records):
            columns.append("baseline")
        columns.append("status")
    rows = [[formatting.format_value(c, r.get(c), run.formats) for c in columns] for r in records]
    colalign = ["left" if c in IDENTITY or (c in ("baseline", "status", *SETTINGS) and c != "batch_size") else "right" for c in columns]
    title = [f"suite {run.suite}" + (f": {run.description}" if run.description else "")]
    if shared:
        title.append(", ".join(f"{k} {v}" for k, v in shared.items()))
    if not run.complete:
        title.append("(INCOMPLETE run: interrupted)")
    notes = [f"{r['benchmark']}: {r['status']}: {r['error']}" for r in records if r.get("error")]
    notes += [f"{r['benchmark']}: warning: {w}" for r in records for w in r.get("warnings") or []]
    notes += run.notes
    notes += [run.footnotes[c] for c in columns if c in run.footnotes]  # each registration's, in column order
    if any(c.endswith("_ratio") for c in columns):
        notes.append(RATIO_NOTE)
    return Table(title, columns, rows, colalign, notes)


def render_table(run: RunResult, options: dict[str, Any]) -> str:
    """The table as text, in a tabulate format (``options["tablefmt"]``)."""
    tablefmt = TABLE_ALIASES.get(options.get("tablefmt", "simple"), options.get("tablefmt", "simple"))
    t = table(run, options)
    body = tabulate(t.rows, headers=t.headers, tablefmt=tablefmt, colalign=t.colalign, disable_numparse=True)
    return "\n".join([*t.title, "", body, *(["", *t.notes] if t.notes else [])])


def render_csv(run: RunResult, options: dict[str, Any]) -> str:
    """Every field of every record, unformatted, for spreadsheets and pandas.

    Lists and mappings (args, shapes, flops_unsupported, warnings) are JSON text in their
    cell; the raw latency samples are left to the run file.
    """
    frame = run.to_dataframe()
    frame = frame[[c for c in frame.columns if "_samples_" not in c]]
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (dict, list, tuple))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v)
    out = io.StringIO()
    frame.to_csv(out, index=False)
    return out.getvalue().rstrip("\r\n")  # printed with print(): one line end, not two


def render_json(run: RunResult, options: dict[str, Any]) -> str:
    """The run file's contents (records, environment, raw samples)."""
    return run.to_json()


@benchbench.hookimpl
def benchbench_register_reporters(register: Callable[..., None]) -> None:
    register("table", render_table, description="comparative table (tabulate; --format github|grid|simple|markdown|...)")
    register("csv", render_csv, description="all scalar fields as CSV")
    register("json", render_json, description="the full run file as JSON, raw samples included")


def _unset(records: list[dict[str, Any]], key: str) -> bool:
    return key in SETTINGS[4:] and all(r.get(key) in (None, False) for r in records)


def _shared_settings(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Settings every row has in common go in the title instead of a repeated column."""
    shared: dict[str, Any] = {}
    for key in SETTINGS:
        values = {formatting.format_value(key, r.get(key)) for r in records}
        if len(values) == 1 and records and not _unset(records, key):
            shared[key] = values.pop()
    threads = {r.get("threads") for r in records if r.get("threads") is not None}  # skipped rows have none
    if len(threads) == 1 and shared.get("device") == "cpu":
        shared["threads"] = threads.pop()
    return shared
