"""``benchbench list``: what the loaded plugins registered, and the plugins themselves."""

from __future__ import annotations

import argparse
from typing import Any

from benchbench.commands.common import add_plugin_arguments, check_format, load_plugins, reject_extra
from benchbench.errors import ExitCode

KINDS = ("models", "metrics", "fields", "datasets", "reporters", "executors", "plugins")


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    lister = commands.add_parser(
        "list", parents=parents,
        help="list registered models, metrics, fields (every table column), datasets, reporters, executors or plugins",
    )
    lister.add_argument("kind", nargs="?", default="models", choices=KINDS, metavar="{" + ",".join(KINDS) + "}")
    lister.add_argument("--format", default="simple", metavar="FMT", help="tabulate format (default: simple)")
    add_plugin_arguments(lister)
    return lister


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from tabulate import tabulate

    from benchbench.reporters import TABLE_ALIASES

    reject_extra(extra, "list")
    check_format(args.format, "table")
    headers, rows = table(load_plugins(args), args.kind)
    if rows:
        print(tabulate(rows, headers=headers, tablefmt=TABLE_ALIASES.get(args.format, args.format), disable_numparse=True))
    else:
        print(f"no {args.kind} registered (plugins add them; `benchbench list plugins` shows what is loaded)")
    return ExitCode.OK


def table(manager: Any, kind: str) -> tuple[list[str], list[list[str]]]:
    """The headers and rows for one kind of thing (or the plugins, with their status)."""
    from benchbench.registry import BY_PLURAL, DatasetEntry, MetricEntry, ModelEntry

    if kind == "plugins":
        rows = [[p.name, p.source, p.module, p.distribution or "-", p.version or "-", "loaded"] for p in manager.plugins]
        rows += [[f.name, f.source, f.module, f.distribution or "-", f.version or "-", f"FAILED: {f.error}"] for f in manager.failures]
        rows += [[b.name, b.source, b.module, b.distribution or "-", b.version or "-", "blocked (-p no:NAME)"] for b in manager.blocked]
        return ["plugin", "source", "module", "distribution", "version", "status"], rows
    if kind == "fields":
        return ["field", "from", "plugin", "meaning (the table's footnote)"], fields(manager.registry)
    entry_kind = BY_PLURAL[kind]
    entries = list(manager.registry.entries(entry_kind))
    if entry_kind is ModelEntry:
        return ["model", "family", "plugin", "description"], [[e.name, e.family or "-", e.plugin, e.description or "-"] for e in entries]
    if entry_kind is MetricEntry:
        return ["metric", "fields", "plugin", "description"], [[e.name, ", ".join(e.fields), e.plugin, e.description or "-"] for e in entries]
    if entry_kind is DatasetEntry:
        return ["dataset", "task", "plugin", "description"], [[e.name, e.task, e.plugin, e.description or "-"] for e in entries]
    return [entry_kind.kind, "plugin", "description"], [[e.name, e.plugin, e.description or "-"] for e in entries]


def fields(registry: Any) -> list[list[str]]:
    """Every field a table can show (what ``run --columns`` takes): the runner's, each metric's (with
    its ``_ratio`` columns) and each field set's, with who declares it and its footnote."""
    from benchbench.registry import FieldSetEntry, MetricEntry
    from benchbench.reporters import RATIO_NOTE
    from benchbench.results import RESERVED_FIELDS

    rows = [[f, "the runner", "benchbench", "-"] for f in RESERVED_FIELDS]
    for entry in [*registry.table(MetricEntry).values(), *registry.table(FieldSetEntry).values()]:
        source = f"{entry.kind} {entry.name}"
        for field in entry.fields:
            note = entry.footnotes.get(field, "-")
            rows.append([field, source, entry.plugin, note.removeprefix(f"{field}: ")])
            if field in getattr(entry, "ratio_fields", ()):
                rows.append([f"{field}_ratio", source, entry.plugin, RATIO_NOTE.removeprefix("*_ratio: ")])
    return rows
