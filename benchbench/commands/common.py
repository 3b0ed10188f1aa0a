"""What several commands share: the plugin options, loading the plugins, formats, the job summary."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from benchbench.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from benchbench.manager import PluginManager


def debug_parent() -> argparse.ArgumentParser:
    """``--debug`` after the command too: ``benchbench run --debug s.yaml``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    return parent


def add_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    """``-p MODULE`` (``-p no:NAME`` blocks one) and ``--plugins-dir DIR``: the commands that load plugins."""
    group = parser.add_argument_group("plugins")
    group.add_argument(
        "-p", "--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
        help="load a plugin module (importable name or path to a .py file), or block one with no:NAME; repeatable",
    )
    group.add_argument("--plugins-dir", metavar="DIR", help="load every *.py file in DIR as a plugin")


def load_plugins(args: argparse.Namespace) -> PluginManager:
    """The plugin manager for ``-p`` and ``--plugins-dir``; plugins that failed to load are warned about."""
    from benchbench.manager import PluginManager

    manager = PluginManager(args.plugins, args.plugins_dir)
    for note in manager.failure_notes():
        print(f"benchbench: warning: {note}; going on without it", file=sys.stderr)
    return manager


def reject_extra(extra: list[str], command: str) -> None:
    """Arguments left over after parsing are a usage error (only ``run`` takes plugins' options)."""
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see `benchbench {command} --help`)")


def check_format(fmt: str, kind: str, *, data: bool = False) -> None:
    """``--format`` of list, history (table formats) and compare, report (also csv, json)."""
    from benchbench.reporters import table_formats

    formats = [*table_formats(), *(("csv", "json") if data else ())]
    if fmt not in formats:
        hint = "; csv, json or a table format (simple, github, grid...)" if data else ""
        raise UsageError(f"--format {fmt!r} is not a {kind} format{did_you_mean(fmt, formats)}{hint}")


def step_summary(markdown: str) -> None:
    """Append to the GitHub Actions job summary, when ``$GITHUB_STEP_SUMMARY`` names one."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n\n")
    except OSError as exc:
        print(f"benchbench: warning: cannot write the job summary: {exc}", file=sys.stderr)
