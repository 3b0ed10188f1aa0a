"""Run files as one self-contained HTML page (``benchbench report --html``), and the
side-by-side comparison of several runs that the page and the text report share.

The HTML page needs nothing but a browser (the plots are PNG images embedded as data
URIs, the style is inline, no script, no network): the comparative table, the comparison
of several runs, the breakdown tables and the plots the registrations declare (bar charts
of params / FLOPs / latency / memory per benchmark, latency against FLOPs, a roofline,
gradient-flow and training curves when the run has them: see :mod:`benchbench.plots`),
and the environment. Which fields go side by side, which breakdowns and plots there are,
all come from the registrations (``side_by_side=``, ``explain=``, ``plots=``): this module
names no metric's field.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench import formatting
from benchbench.errors import did_you_mean
from benchbench.peak import peak_for
from benchbench.plots import plots_for, registry_of
from benchbench.reporters import Breakdown, table
from benchbench.results import RunResult, is_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchbench.registry import Registry


def labels(runs: Sequence[RunResult]) -> list[str]:
    """Short names for runs: the suite, plus the time when two share a suite."""
    names = [run.suite for run in runs]
    return [f"{name} {run.environment.get('time', i)}" if names.count(name) > 1 else name for i, (name, run) in enumerate(zip(names, runs))]


def comparison(runs: Sequence[RunResult], registry: Registry | None = None) -> tuple[list[str], list[list[str]]]:
    """Benchmarks (in first-seen order) against field x run, each later run with its ratio to r1.

    The fields are those the registrations set ``side_by_side`` that some run has. Runs of
    different suites are keyed ``suite:benchmark``: a name means one benchmark within a
    suite only (``upsample_transposed`` differs between efficiency and ci).
    """
    side_by_side = (registry or registry_of(runs)).declared().side_by_side
    fields = [f for f in side_by_side if any(r.get(f) is not None for run in runs for r in run.records)]
    key = (lambda run, r: r["benchmark"]) if len({run.suite for run in runs}) == 1 else (lambda run, r: f"{run.suite}:{r['benchmark']}")
    names = list(dict.fromkeys(key(run, r) for run in runs for r in run.records))
    by_run = [{key(run, r): r for r in run.records} for run in runs]
    headers = ["benchmark"] + [f"{f} r{i + 1}" for f in fields for i in range(len(runs))]
    rows = []
    for name in names:
        row = [name]
        for field in fields:
            first = by_run[0].get(name, {}).get(field)
            for i, records in enumerate(by_run):
                value = records.get(name, {}).get(field)
                cell = formatting.format_value(field, value, runs[i].formats)
                if i and is_number(value) and is_number(first) and first:
                    cell += f" ({value / first:.3g}x)"
                row.append(cell)
        rows.append(row)
    return headers, rows


def breakdowns(runs: Sequence[RunResult], registry: Registry | None = None) -> dict[str, Breakdown]:
    """Each breakdown the registrations declare (``explain=``) that has rows for these runs, by name."""
    names = labels(runs)
    made = {name: ex.explain(runs, names) for name, ex in (registry or registry_of(runs)).declared().explain.items()}
    return {name: b for name, b in made.items() if b.rows}


# ----------------------------------------------------------------------------- HTML

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
table { border-collapse: collapse; font-size: .85rem; margin: .8rem 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.notes { font-size: .85rem; color: #555; } .notes li { margin: .15rem 0; }
img { max-width: 100%; border: 1px solid #eee; margin: .5rem 0; }
.meta { color: #555; font-size: .9rem; }
table.kv td { text-align: left; white-space: normal; max-width: 60rem; word-break: break-word; }
"""


GENERATOR = "<meta name='generator' content='benchbench'>"
"""Marks a page as a benchbench report: ``--html`` replaces such a file, and no other."""


def is_html_report(path: Path) -> bool:
    """Whether ``path`` is a report an earlier ``benchbench report --html`` wrote."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and GENERATOR in head


def render_html(runs: Sequence[RunResult], title: str | None = None, registry: Registry | None = None) -> str:
    """The whole page, as one string. ``registry``: the registrations to show the runs with
    (their breakdowns and plots); by default the runs' own (:func:`benchbench.plots.registry_of`)."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no window: files only
    return _render_html(runs, title, registry or registry_of(runs))


def _render_html(runs: Sequence[RunResult], title: str | None, registry: Registry) -> str:
    names = labels(runs)
    title = title or "benchbench report: " + ", ".join(names)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{GENERATOR}<title>{_e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    for name, run in zip(names, runs):
        parts.append(f"<h2>{_e(name)}</h2>")
        parts.append(_run_meta(run))
        parts.append(table_html(run))
    if len(runs) > 1:
        headers, rows = comparison(runs, registry)
        parts.append("<h2>Comparison</h2>")
        parts.append("<p class='meta'>" + "; ".join(f"r{i + 1}: {_e(n)}" for i, n in enumerate(names)) + "</p>")
        parts.append(_tabulate_html(headers, rows))
    explainers = registry.declared().explain
    for name, made in breakdowns(runs, registry).items():
        parts.append(_section(explainers[name].heading, explainers[name].explanation))
        parts.append(_tabulate_html(made.table.headers, made.table.rows))
        parts.append(f"<ul class='notes'>{''.join(f'<li>{_e(n)}</li>' for n in made.table.notes)}</ul>" if made.table.notes else "")
    for kind, plot in plots_for(runs, registry).items():
        drawn = figure(kind, runs, names, registry)
        if drawn is not None:
            parts.append(_section(plot.heading, plot.explanation))
            parts.append(_img(_png(drawn), plot.alt))
    parts.append("<h2>Environment</h2>")
    for name, run in zip(names, runs):
        parts.append(f"<h3>{_e(name)}</h3>" if len(runs) > 1 else "")
        parts.append(_environment(run))
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(heading: str, explanation: str) -> str:
    """A heading, and the plain-text sentence under it (a word in `backquotes` shown as code)."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(explanation))
    return f"<h2>{_e(heading)}</h2>" + (f"<p class='meta'>{text}</p>" if explanation else "")


def _e(text: Any) -> str:
    return html.escape(str(text))


def _run_meta(run: RunResult) -> str:
    env = run.environment
    git = env.get("git") or {}
    facts = [f"time {env.get('time', '?')}", f"host {env.get('host', '?')}", f"torch {env.get('torch', '?')}"]
    if git.get("commit"):
        facts.append(f"commit {git['commit'][:10]}" + (" (dirty)" if git.get("dirty") else ""))
    if not run.complete:
        facts.append("INCOMPLETE (interrupted)")
    return f"<p class='meta'>{_e(' · '.join(facts))}</p>"


def table_html(run: RunResult, *, heading: bool = False) -> str:
    """The run's table as HTML with its notes: the terminal's table (:func:`benchbench.reporters.table`).

    The page gives the suite a heading of its own; a notebook cell (``heading``) starts
    with the title line instead.
    """
    t = table(run, {})
    notes = "".join(f"<li>{_e(n)}</li>" for n in t.notes)
    title = f"<p><strong>{_e(t.title[0])}</strong></p>" if heading else ""
    return (title + f"<p class='meta'>{_e(' — '.join(t.title[1:]))}</p>" + _tabulate_html(t.headers, t.rows)
            + (f"<ul class='notes'>{notes}</ul>" if notes else ""))


def _tabulate_html(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _environment(run: RunResult) -> str:
    env = dict(run.environment)
    rows = []
    for key, value in env.items():
        if key == "plugins":
            value = ", ".join(f"{p.get('name')} ({p.get('distribution') or p.get('source')})" for p in value or [])
        elif key == "peaks" and isinstance(value, dict):
            value = "; ".join(f"{d}: {m.get('name')}, {peak_for(m, 'float32') / 1e9:.0f} GFLOP/s, "
                              f"{m.get('bandwidth_bytes_per_s', 0) / 1e9:.0f} GB/s (measured {m.get('time')})" for d, m in value.items())
        elif isinstance(value, (dict, list)):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) if isinstance(value, dict) else "; ".join(map(str, value))
        rows.append([key, value if value not in (None, "") else "-"])
    return _tabulate_html(["fact", "value"], [[str(k), str(v)] for k, v in rows], css="kv")


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def figure(kind: str, runs: Sequence[RunResult], names: list[str] | None = None,
           registry: Registry | None = None) -> Figure | None:
    """One of the report's plots (:func:`benchbench.plots.plots_for`) as a matplotlib Figure, or None
    when the runs have nothing to draw.

    The one place a plot is made, for the HTML page (as a PNG) and for a notebook
    (:meth:`RunResult.plot <benchbench.results.RunResult.plot>`). The figure is detached from
    pyplot once drawn, so that a notebook shows it once (as the cell's value, not again as an
    open pyplot figure) and a page's many figures do not pile up in pyplot.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    plots = plots_for(runs, registry)
    if kind not in plots:
        raise ValueError(f"unknown plot {kind!r}{did_you_mean(kind, plots)}; plots: {', '.join(plots)} (a plugin's "
                         "plot needs the plugin loaded: installed, or RunResult.show_with(PluginManager([...]).registry))")
    # Benchmark names are drawn literally: 'x_$\frac{$' must not reach matplotlib's mathtext.
    with matplotlib.rc_context({"text.parse_math": False}):
        drawn = plots[kind].draw(runs, names or labels(runs))
    if drawn is not None:
        if not drawn.get_tight_layout() and not drawn.legends:
            drawn.tight_layout()
        plt.close(drawn)
    return drawn
