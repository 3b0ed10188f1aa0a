"""``benchbench report``: one or more run files as a self-contained HTML page, or as text.

The page itself is :mod:`benchbench.htmlreport`. Writing it follows the rules of
:mod:`benchbench.outputs`: ``--html`` must name an ``.html`` file that is none of the
inputs and, if it exists, an earlier benchbench report (``report --html results/*.json``,
where the shell put a run file right after ``--html``, is refused, not overwritten).

An empty file among the run files (``report results/*.json``, where an older benchbench
killed before its first benchmark finished left one) is skipped with a warning; an
incomplete run (interrupted) is shown as such.

``--explain NAME`` prints, instead of the run's table, a breakdown a registration declares
(``explain=``): ``flops``, from the flops metric, says what each FLOP count is made of:
conv, matmul and attention (the "core" count torchvision and papers publish) against
norm, pool and other operators, the dispatcher's cross-check and the skipped operators.

What is shown of a field beyond its value (its format, the fields set side by side for
several runs, the breakdowns and plots) comes from the registrations of the plugins loaded
here, as ``benchbench run`` loads them (``-p``, ``--plugins-dir``); each field's footnote
comes from the run file itself, and from them for a file written before footnotes were
stored. ``--format csv`` and ``json`` print the records as they are, without loading plugins.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench.commands.common import add_plugin_arguments, check_format, load_plugins, reject_extra
from benchbench.errors import ExitCode, UsageError, did_you_mean

if TYPE_CHECKING:
    from benchbench.registry import Explainer
    from benchbench.results import RunResult


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    report = commands.add_parser(
        "report", parents=parents, help="render run files: a self-contained HTML page with plots, or text tables",
        description="Render one or more run files side by side: --html FILE writes one self-contained page "
        "(table, bar charts, latency vs FLOPs, roofline, environment); otherwise a text table is printed.",
    )
    report.add_argument("runs", nargs="*", metavar="RUN.json", help="run files (results/*.json)")
    report.add_argument("--html", metavar="FILE", help="write the HTML report here (a new .html file, or an earlier report)")
    report.add_argument("--title", help="title of the HTML page")
    report.add_argument("--format", default="simple", metavar="FMT", help="simple (default), github/markdown, grid..., csv or json")
    report.add_argument("--explain", metavar="WHAT", help="a breakdown table a plugin declares instead of the runs' "
                        "table; flops: each benchmark's FLOPs by kind of operator (conv, matmul, attention = the core "
                        "count papers and torchvision publish; norm, pool, other), the FlopCounterMode cross-check and "
                        "the operators fvcore skipped")
    add_plugin_arguments(report)
    return report


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench.results import RunResult

    reject_extra(extra, "report")
    check_format(args.format, "report", data=True)
    html_path = _check_html_output(args.html, args.runs) if args.html else None
    if not args.runs:  # checked after --html, whose message explains `--html results/one.json`
        raise UsageError("benchbench report needs at least one run file: benchbench report results/*.json")
    paths = _without_empty_files(args.runs)
    runs = [RunResult.read_json(path) for path in paths]
    if html_path is not None or args.explain is not None or args.format not in ("csv", "json"):
        registry = load_plugins(args).registry  # after the files: a missing or damaged one is refused first, fast
        runs = [run.show_with(registry) for run in runs]
    from benchbench.outputs import emit

    if html_path is not None:
        from benchbench.htmlreport import render_html
        from benchbench.outputs import atomic_write_text

        if args.explain is not None:
            explainer(runs, args.explain)  # a bad name is refused before the page is drawn
        atomic_write_text(html_path, render_html(runs, args.title), what="HTML report")
        print(f"benchbench: report written to {html_path} ({html_path.stat().st_size // 1024} KiB, self-contained)", file=sys.stderr)
    elif args.explain is not None:
        emit(explain(runs, args.explain, args.format, paths))
    elif args.format in ("csv", "json"):
        emit(render_data(runs, args.format))
    else:
        emit(render_text(runs, args.format))
    return ExitCode.OK


def _without_empty_files(paths: list[str]) -> list[str]:
    """The run files to show: an empty file among several is skipped, with a warning (an older
    benchbench killed before its first benchmark finished left it); alone, reading it says why."""
    empty = [p for p in paths if Path(p).is_file() and Path(p).stat().st_size == 0]
    if not empty or len(empty) == len(paths):
        return paths
    for path in empty:
        print(f"benchbench: warning: skipping {path}: the file is empty (a run killed before its first benchmark "
              "finished, by an older benchbench); delete it", file=sys.stderr)
    return [p for p in paths if p not in empty]


def _check_html_output(html: str, runs: list[str]) -> Path:
    """``--html FILE``: an .html name that is none of the inputs and replaces only an earlier report."""
    from benchbench.htmlreport import is_html_report
    from benchbench.outputs import check_output

    if Path(html).suffix.lower() not in (".html", ".htm"):
        raise UsageError(
            f"--html {html!r}: the report's file name must end in .html (did the shell put a run file right "
            "after --html? write the name first: benchbench report --html report.html results/*.json)"
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("the HTML report draws its plots with matplotlib: pip install 'torch-benchbench[report]'") from None
    return check_output(html, option="--html", what="benchbench HTML report", inputs=runs, ours=is_html_report)


def render_text(runs: Sequence[RunResult], tablefmt: str = "simple") -> str:
    """One run: its table. Several: one row per benchmark, the main fields of each run side by side."""
    from tabulate import tabulate

    from benchbench.htmlreport import comparison, labels
    from benchbench.reporters import TABLE_ALIASES, table

    tablefmt = TABLE_ALIASES.get(tablefmt, tablefmt)
    if len(runs) == 1:
        t = table(runs[0], {})
        return "\n".join([*t.title, "", tabulate(t.rows, headers=t.headers, tablefmt=tablefmt, colalign=t.colalign, disable_numparse=True)])
    headers, rows = comparison(runs)
    legend = [f"r{i + 1}: {name}" for i, name in enumerate(labels(runs))]
    return "\n".join([*legend, "", tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)])


def explainer(runs: Sequence[RunResult], name: str) -> Explainer:
    """The breakdown ``--explain NAME`` names, among those the runs' registrations declare."""
    from benchbench.plots import registry_of

    declared = registry_of(runs).declared().explain
    if name not in declared:
        known = ", ".join(declared) or "nothing (no loaded plugin declares a breakdown)"
        raise UsageError(f"--explain {name!r}: only {known} can be explained{did_you_mean(name, declared)}")
    return declared[name]


def explain(runs: Sequence[RunResult], name: str, fmt: str = "simple", paths: Sequence[str] = ()) -> str:
    """``--explain NAME``: the breakdown as a table with its title and notes, or its raw rows as CSV / JSON."""
    import json

    from tabulate import tabulate

    from benchbench.htmlreport import labels
    from benchbench.reporters import TABLE_ALIASES

    declared = explainer(runs, name)
    made = declared.explain(runs, labels(runs))
    if not made.rows:
        raise UsageError(f"--explain {name}: no benchmark in {', '.join(paths) or 'these runs'} has {declared.needs}")
    if fmt == "json":
        return json.dumps(made.rows, indent=1)
    if fmt == "csv":
        import csv

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(made.rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()} for row in made.rows)
        return out.getvalue().rstrip("\n")
    t = made.table
    body = tabulate(t.rows, headers=t.headers, tablefmt=TABLE_ALIASES.get(fmt, fmt), colalign=t.colalign, disable_numparse=True)
    return "\n".join([*t.title, "", body, *(["", *t.notes] if t.notes else [])])


def render_data(runs: Sequence[Any], fmt: str) -> str:
    """Every record of every run, with a ``run`` column: CSV, or the run files as a JSON list."""
    if fmt == "json":
        return "[\n" + ",\n".join(run.to_json() for run in runs) + "\n]"
    import pandas as pd

    from benchbench.htmlreport import labels
    from benchbench.reporters import render_csv

    frames = []
    for name, run in zip(labels(runs), runs):
        frame = pd.read_csv(io.StringIO(render_csv(run, {})))
        frame.insert(0, "run", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True).to_csv(index=False).rstrip("\r\n")
