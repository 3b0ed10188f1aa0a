"""Run files as one self-contained HTML page (``benchbench report --html``), and the
side-by-side comparison of several runs that the page and the text report share.

The HTML page needs nothing but a browser (the plots are PNG images embedded as data
URIs, the style is inline, no script, no network): the comparative table, bar charts of
params / FLOPs / latency / memory per benchmark, latency against FLOPs (log axes), a
roofline (achieved FLOP/s against arithmetic intensity, under the device's measured peak
and bandwidth from ``benchbench peak``), gradient-flow and training curves when the run
has them, the environment, and for several runs a side-by-side comparison.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any


from benchbench import formatting
from benchbench.reporters import table
from benchbench.errors import did_you_mean
from benchbench.peak import peak_for
from benchbench.results import RunResult, is_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COMPARED = ("params", "flops", "latency_ms", "peak_memory_bytes", "accuracy", "rmse")
BARS = (("params", "parameters"), ("flops", "FLOPs per sample (fvcore, MACs)"),
        ("latency_ms", "latency of one batch (ms)"), ("peak_memory_bytes", "peak memory of one step (bytes)"))


def labels(runs: Sequence[RunResult]) -> list[str]:
    """Short names for runs: the suite, plus the time when two share a suite."""
    names = [run.suite for run in runs]
    return [f"{name} {run.environment.get('time', i)}" if names.count(name) > 1 else name for i, (name, run) in enumerate(zip(names, runs))]


def comparison(runs: Sequence[RunResult]) -> tuple[list[str], list[list[str]]]:
    """Benchmarks (in first-seen order) against field x run, each later run with its ratio to r1.

    Runs of different suites are keyed ``suite:benchmark``: a name means one benchmark
    within a suite only (``upsample_transposed`` differs between efficiency and ci).
    """
    fields = [f for f in COMPARED if any(r.get(f) is not None for run in runs for r in run.records)]
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
                cell = formatting.format_value(field, value)
                if i and is_number(value) and is_number(first) and first:
                    cell += f" ({value / first:.3g}x)"
                row.append(cell)
        rows.append(row)
    return headers, rows


EXPLAIN_FLOPS_NOTES = (
    "core = conv + matmul (linear, mm, bmm, einsum) + attention (the two products of scaled-dot-product "
    "attention) multiply-adds: the convention of torchvision's published _ops and of most papers.",
    "flops = core + norm (BatchNorm, LayerNorm...) + pool (adaptive average pooling) + other (upsampling, "
    "grid sampling): fvcore's convention; one fused multiply-add = 1, for ONE sample, forward pass.",
    "dispatch = torch.utils.flop_counter.FlopCounterMode's count, halved to the same convention: conv, matmul "
    "and attention only, so it should equal core ('=' when it does).",
    "unsupported = operators fvcore has no formula for, counted as zero (elementwise ops, max pooling, data "
    "movement); flops_uncounted names work that flops misses.",
)


def flops_breakdown(runs: Sequence[RunResult]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every benchmark with a FLOP count, its count by kind of operator (``benchbench report --explain flops``).

    Returns the columns and one row per record (raw values). Run files written before
    the categories existed get them from ``flops_by_operator``.
    """
    from benchbench.flopcount import CATEGORIES, CORE, by_category

    several = len(runs) > 1
    columns = [*(("run",) if several else ()), "benchmark", "flops", "core", "core_share", *CATEGORIES,
               "dispatch", "unsupported", "source", "uncounted"]
    rows = []
    for name, run in zip(labels(runs), runs):
        for record in run.records:
            if not is_number(record.get("flops")):
                continue
            categories = record.get("flops_by_category")
            if not isinstance(categories, dict) and isinstance(record.get("flops_by_operator"), dict):
                categories = by_category(record["flops_by_operator"])
            categories = categories if isinstance(categories, dict) else {}
            core = record.get("flops_core")
            if not is_number(core) and categories:
                core = sum(categories.get(c, 0) for c in CORE)
            row: dict[str, Any] = {"run": name} if several else {}
            row.update(benchmark=record["benchmark"], flops=record["flops"], core=core,
                       core_share=core / record["flops"] if is_number(core) and record["flops"] else None)
            row.update({c: categories.get(c) for c in CATEGORIES})
            row.update(dispatch=record.get("flops_dispatch"), unsupported=record.get("flops_unsupported"),
                       source=record.get("flops_source") or "fvcore", uncounted=record.get("flops_uncounted"))
            rows.append(row)
    return columns, rows


def flops_breakdown_table(runs: Sequence[RunResult]) -> tuple[list[str], list[list[str]], list[str]]:
    """:func:`flops_breakdown` formatted for a table: headers, rows of text, and the notes under it."""
    columns, rows = flops_breakdown(runs)
    shown = [c for c in columns if c not in ("source", "uncounted")]
    cells = []
    for row in rows:
        line = []
        for column in shown:
            value = row.get(column)
            if column == "core_share":
                line.append(formatting.percent(value, 1))
            elif column == "dispatch":
                line.append(_against_core(value, row["core"]))
            elif column == "unsupported":
                line.append(formatting.operators(dict(sorted(value.items()))) if isinstance(value, dict) else "-")
            elif column in ("run", "benchmark"):
                line.append(str(value))
            else:
                line.append(formatting.si(value))
        cells.append(line)
    notes = list(EXPLAIN_FLOPS_NOTES)
    for row in rows:
        who = f"{row['run']}: " if "run" in row else ""
        if row["source"] != "fvcore":
            notes.append(f"{who}{row['benchmark']}: fvcore could not trace the model: flops is FlopCounterMode's count")
        if row["uncounted"]:
            notes.append(f"{who}{row['benchmark']}: flops is too low: {row['uncounted']}")
    return shown, cells, notes


def _against_core(dispatch: Any, core: Any) -> str:
    """'=' when the dispatcher's count equals the core count, else the count and how far it is."""
    if not is_number(dispatch):
        return "-"
    if dispatch == core:
        return "="
    if is_number(core) and core:
        return f"{formatting.si(dispatch)} ({dispatch / core - 1:+.2%})"
    return formatting.si(dispatch)


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


def render_html(runs: Sequence[RunResult], title: str | None = None) -> str:
    """The whole page, as one string."""
    import matplotlib

    matplotlib.use("Agg")  # no display, no window: files only
    return _render_html(runs, title)


def _render_html(runs: Sequence[RunResult], title: str | None) -> str:
    names = labels(runs)
    title = title or "benchbench report: " + ", ".join(names)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>{GENERATOR}<title>{_e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    for name, run in zip(names, runs):
        parts.append(f"<h2>{_e(name)}</h2>")
        parts.append(_run_meta(run))
        parts.append(table_html(run))
    if len(runs) > 1:
        headers, rows = comparison(runs)
        parts.append("<h2>Comparison</h2>")
        parts.append("<p class='meta'>" + "; ".join(f"r{i + 1}: {_e(n)}" for i, n in enumerate(names)) + "</p>")
        parts.append(_tabulate_html(headers, rows))
    parts.append(_flops_section(runs))
    for kind, (heading, alt, explanation) in SECTIONS.items():
        drawn = figure(kind, runs, names)
        if drawn is not None:
            parts.append(f"<h2>{heading}</h2>" + (f"<p class='meta'>{explanation}</p>" if explanation else ""))
            parts.append(_img(_png(drawn), alt))
    parts.append("<h2>Environment</h2>")
    for name, run in zip(names, runs):
        parts.append(f"<h3>{_e(name)}</h3>" if len(runs) > 1 else "")
        parts.append(_environment(run))
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(text: Any) -> str:
    return html.escape(str(text))


def _flops_section(runs: Sequence[RunResult]) -> str:
    """FLOPs by kind of operator (what ``report --explain flops`` prints), or '' when no run counted FLOPs."""
    headers, rows, notes = flops_breakdown_table(runs)
    if not rows:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notes)
    return ("<h2>FLOPs by kind of operator</h2><p class='meta'>What each count includes: core is comparable with "
            "torchvision's published numbers and papers, flops is fvcore's total.</p>"
            + _tabulate_html(headers, rows) + f"<ul class='notes'>{items}</ul>")


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


SECTIONS = {
    "bars": ("Cost per benchmark", "bar charts of params, FLOPs, latency and memory per benchmark", ""),
    "scatter": ("Latency against FLOPs", "latency against FLOPs, log axes",
                "Log axes. Equal FLOPs, different times: memory traffic and kernel efficiency, not arithmetic, set the speed."),
    "roofline": ("Roofline", "roofline plot",
                 "Achieved FLOP/s (2 per multiply-add) against arithmetic intensity (FLOPs per byte of parameters, "
                 "input and output: an upper estimate), under the device's measured peak (the fastest of several "
                 "kernels) and copy bandwidth (<code>benchbench peak</code>)."),
    "gradient_flow": ("Gradient flow", "gradient flow", ""),
    "training": ("Training curves", "training curves", ""),
}
"""The page's plots in page order, by kind: heading, alt text and the explanation under the heading."""


def figure(kind: str, runs: Sequence[RunResult], names: list[str] | None = None) -> Figure | None:
    """One of the report's plots as a matplotlib Figure, or None when the runs have nothing to draw.

    The one place a plot is made, for the HTML page (as a PNG) and for a notebook
    (:meth:`RunResult.plot <benchbench.results.RunResult.plot>`). The figure is detached from
    pyplot once drawn, so that a notebook shows it once (as the cell's value, not again as an
    open pyplot figure) and a page's many figures do not pile up in pyplot.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    if kind not in FIGURES:
        raise ValueError(f"unknown plot {kind!r}{did_you_mean(kind, FIGURES)}; plots: {', '.join(FIGURES)}")
    # Benchmark names are drawn literally: 'x_$\frac{$' must not reach matplotlib's mathtext.
    with matplotlib.rc_context({"text.parse_math": False}):
        drawn = FIGURES[kind](runs, names or labels(runs))
    if drawn is not None:
        if not drawn.get_tight_layout() and not drawn.legends:
            drawn.tight_layout()
        plt.close(drawn)
    return drawn


def _ok(run: RunResult) -> list[dict[str, Any]]:
    return [r for r in run.records if r.get("status") == "ok"]


def _bars(runs: Sequence[RunResult], names: list[str]) -> Figure:
    import matplotlib.pyplot as plt

    benchmarks = list(dict.fromkeys(r["benchmark"] for run in runs for r in _ok(run)))
    fig, axes = plt.subplots(1, len(BARS), figsize=(4.2 * len(BARS), 0.35 * max(len(benchmarks), 4) + 1.4), sharey=True)
    height = 0.8 / len(runs)
    for ax, (field, label) in zip(axes, BARS):
        values_all = []
        for i, (run, name) in enumerate(zip(runs, names)):
            by_name = {r["benchmark"]: r.get(field) for r in _ok(run)}
            values = [by_name.get(b) if is_number(by_name.get(b)) else 0 for b in benchmarks]
            values_all += [v for v in values if v]
            ax.barh([j + i * height for j in range(len(benchmarks))], values, height=height, label=name)
        if values_all and max(values_all) / max(min(values_all), 1e-30) > 100:
            ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks([j + height * (len(runs) - 1) / 2 for j in range(len(benchmarks))], benchmarks, fontsize=8)
    axes[0].invert_yaxis()
    if len(runs) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(runs), 4), fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _points(run: RunResult, x: str, y: str) -> list[tuple[str, float, float]]:
    return [(r["benchmark"], float(r[x]), float(r[y])) for r in _ok(run) if is_number(r.get(x)) and is_number(r.get(y)) and r[x] > 0 and r[y] > 0]


def _scatter(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    import matplotlib.pyplot as plt

    sets = [(name, _points(run, "flops", "latency_ms")) for run, name in zip(runs, names)]
    if sum(len(p) for _, p in sets) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (name, points) in enumerate(sets):
        _labelled_points(ax, points, name, labelled=i == 0)
    _log_axes(ax, "FLOPs per sample (fvcore: multiply-adds)", "latency of one batch (ms)")
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return fig


def _labelled_points(ax: Any, points: list[tuple[str, float, float]], name: str, *, labelled: bool) -> None:
    """One run's points, with the benchmark names when ``labelled`` (the first run's suffice)."""
    ax.scatter([p[1] for p in points], [p[2] for p in points], label=name, s=36)
    for label, x, y in points if labelled else []:
        ax.annotate(label, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")


def _log_axes(ax: Any, xlabel: str, ylabel: str) -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")


def _roofline(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    import matplotlib.pyplot as plt

    sets = []
    for run, name in zip(runs, names):
        points = [(b, x, y * 1e9) for b, x, y in _points(run, "arithmetic_intensity", "achieved_gflops")]
        if points:
            sets.append((name, run, points))
    if not sets:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = [p[1] for _, _, points in sets for p in points]
    ridges = [peak_for(m, "float32") / m["bandwidth_bytes_per_s"] for _, run, _ in sets for m in (run.environment.get("peaks") or {}).values()]
    low, high = min([min(xs) / 3, *[r / 4 for r in ridges]]), max([max(xs) * 3, *[r * 4 for r in ridges]])
    grid = [10 ** (math.log10(low) + i * (math.log10(high) - math.log10(low)) / 200) for i in range(201)]
    drawn = set()
    for name, run, points in sets:
        for device, measured in (run.environment.get("peaks") or {}).items():
            key = (device, measured.get("key"))
            if key in drawn:
                continue
            drawn.add(key)
            roof = [min(peak_for(measured, "float32"), measured["bandwidth_bytes_per_s"] * x) for x in grid]
            ax.plot(grid, roof, linestyle="--", label=f"roof: {measured.get('name', device)} "
                    f"({peak_for(measured, 'float32') / 1e9:.0f} GFLOP/s, {measured['bandwidth_bytes_per_s'] / 1e9:.0f} GB/s)")
        _labelled_points(ax, points, name, labelled=name == sets[0][0])
    _log_axes(ax, "arithmetic intensity (FLOP per byte, estimate)", "achieved FLOP/s")
    ax.legend(fontsize=8)
    if not drawn:
        ax.set_title("no measured peak for this device: run `benchbench peak` once, then the suite", fontsize=9)
    return fig


def _gradient_flow(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    import matplotlib.pyplot as plt

    series = [(r["benchmark"], r["grad_norms"]) for run in runs for r in _ok(run) if isinstance(r.get("grad_norms"), list)]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, norms in series:
        points = [(i + 1, n) for i, n in enumerate(norms) if is_number(n) and n > 0]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("block (1 = nearest the input)")
    ax.set_ylabel("gradient norm at the block's output")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def _training(runs: Sequence[RunResult], names: list[str]) -> Figure | None:
    import matplotlib.pyplot as plt

    series = [(r["benchmark"], r["test_score_curve"][0], "accuracy" in r) for run in runs for r in _ok(run)
              if isinstance(r.get("test_score_curve"), list) and r["test_score_curve"]]
    if not series:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, curve, classification in series:
        ax = axes[0] if classification else axes[1]
        ax.plot(range(1, len(curve) + 1), curve, marker=".", label=name)
    axes[0].set_title("test accuracy per epoch (classification)", fontsize=9)
    axes[1].set_title("test RMSE per epoch (regression)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return fig


FIGURES: dict[str, Callable[[Sequence[RunResult], list[str]], Figure | None]] = {
    "bars": _bars, "scatter": _scatter, "roofline": _roofline, "gradient_flow": _gradient_flow, "training": _training,
}
"""Each plot by kind: ``(runs, their labels) -> Figure``, or None when there is nothing to draw."""
