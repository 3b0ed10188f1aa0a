"""The report's plots as the registrations declare them, the core's bar chart, and the pieces
plugins' plots share.

Every plot but ``bars`` belongs to the registration whose fields it draws (``plots=`` of a
metric or a field set, see ``benchbench_register_metrics``): latency against FLOPs and the
roofline to ``benchbench.derived``, training curves to the accuracy metric, gradient flow to
the analysis plugin. ``bars`` is drawn here, one panel per field some registration declares
in ``bars=``, so a new metric adds its panel without a change to the core.
:func:`benchbench.htmlreport.figure` makes any of them, for the HTML page and for
:meth:`RunResult.plot <benchbench.results.RunResult.plot>`.

Nothing here imports matplotlib or torch at import time: the built-in plugins import these
helpers, and loading a plugin stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from benchbench.registry import Plot, Registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from benchbench.results import Record, RunResult


def registry_of(runs: Sequence[RunResult]) -> Registry:
    """The registrations the runs are shown with: the first one a run has (the runner's, or
    ``benchbench report``'s), else those of the default plugins (built-ins and entry points)."""
    for run in runs:
        if run.registry is not None:
            return run.registry
    return default_registry()


@functools.cache
def default_registry() -> Registry:
    """The registry of the plugins a plain ``benchbench run`` loads, made once (a run read from a file)."""
    from benchbench.manager import PluginManager

    return PluginManager().registry


def plots_for(runs: Sequence[RunResult], registry: Registry | None = None) -> dict[str, Plot]:
    """Every plot the runs may be drawn as, by name, in page order: ``bars``, then the declared ones."""
    declared = (registry or registry_of(runs)).declared()
    panels = _drawn_panels(runs, declared.bars) or dict(declared.bars)
    bars = Plot(name="bars", draw=functools.partial(draw_bars, panels=declared.bars), heading="Cost per benchmark",
                alt=f"bar charts of {_listed(list(panels), 'and')} per benchmark", explanation="",
                needs=f"a finished benchmark with {_listed(list(declared.bars), 'or')}", plugin="benchbench")
    return {"bars": bars, **declared.plots}


def _listed(names: list[str], last: str) -> str:
    return f"{', '.join(names[:-1])} {last} {names[-1]}" if len(names) > 1 else "".join(names) or "no field"


def finished(run: RunResult) -> list[Record]:
    """The records of the benchmarks that finished (``status`` ok): what a plot draws."""
    return [r for r in run.records if r.get("status") == "ok"]


def _drawn_panels(runs: Sequence[RunResult], panels: Mapping[str, str]) -> dict[str, str]:
    """The declared panels some finished benchmark has a number for: a metric the runs did not
    measure draws no empty panel."""
    from benchbench.results import is_number

    return {f: title for f, title in panels.items() if any(is_number(r.get(f)) for run in runs for r in finished(run))}


def draw_bars(runs: Sequence[RunResult], names: list[str], *, panels: Mapping[str, str]) -> Figure | None:
    """The ``bars`` plot: a panel of horizontal bars per field the runs have (``panels``: field ->
    title), one bar per benchmark and run; a log axis when the values span more than 100x."""
    import matplotlib.pyplot as plt

    from benchbench.results import is_number

    shown = _drawn_panels(runs, panels)
    if not shown:
        return None
    benchmarks = list(dict.fromkeys(r["benchmark"] for run in runs for r in finished(run)))
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 0.35 * max(len(benchmarks), 4) + 1.4),
                             sharey=True, squeeze=False)
    axes = axes[0]
    height = 0.8 / len(runs)
    for ax, (field, label) in zip(axes, shown.items()):
        values_all = []
        for i, (run, name) in enumerate(zip(runs, names)):
            by_name = {r["benchmark"]: r.get(field) for r in finished(run)}
            values = [by_name.get(b) if is_number(by_name.get(b)) else 0 for b in benchmarks]
            values_all += [v for v in values if v]
            ax.barh([j + i * height for j in range(len(benchmarks))], values, height=height, label=name)
        if values_all and max(values_all) / max(min(values_all), 1e-30) > 100:
            log_scale(ax, "x")
        ax.set_title(label, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks([j + height * (len(runs) - 1) / 2 for j in range(len(benchmarks))], benchmarks, fontsize=8)
    axes[0].invert_yaxis()
    if len(runs) > 1:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(runs), 4), fontsize=8)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def points(run: RunResult, x: str, y: str) -> list[tuple[str, float, float]]:
    """``(benchmark, x, y)`` of each finished benchmark with both fields above 0: what a log-log scatter can show."""
    from benchbench.results import is_number

    return [(r["benchmark"], float(r[x]), float(r[y])) for r in finished(run)
            if is_number(r.get(x)) and is_number(r.get(y)) and r[x] > 0 and r[y] > 0]


def labelled_points(ax: Any, points: list[tuple[str, float, float]], name: str, *, labelled: bool) -> None:
    """One run's points, with the benchmark names when ``labelled`` (the first run's suffice)."""
    ax.scatter([p[1] for p in points], [p[2] for p in points], label=name, s=36)
    for label, x, y in points if labelled else []:
        ax.annotate(label, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")


def log_scale(ax: Any, which: str) -> None:
    """A logarithmic axis whose tick labels are plain text (``1e-03``, ``300``): the report draws
    with mathtext off (benchmark names are drawn literally), and matplotlib's default log labels
    are mathtext (they showed as ``$\\mathdefault{10^{-3}}$``)."""
    from matplotlib import ticker

    getattr(ax, f"set_{which}scale")("log")
    axis = getattr(ax, f"{which}axis")
    axis.set_major_formatter(ticker.LogFormatter())
    axis.set_minor_formatter(ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def log_axes(ax: Any, xlabel: str, ylabel: str) -> None:
    """Both axes logarithmic, labelled, with a light grid."""
    log_scale(ax, "x")
    log_scale(ax, "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
