"""A run in a notebook: it shows itself as the terminal's table, and draws the report's plots."""

from __future__ import annotations

import html

import pytest

import benchbench
from benchbench.reporters import table
from benchbench.results import RunResult
from tests.helpers import tiny_suite


@pytest.fixture(scope="module")
def run() -> RunResult:
    """The tiny suite (a conv and its separable twin, with a baseline), measured once for the module."""
    return benchbench.run_suite(tiny_suite(metrics=["params", "flops", "latency"]), quiet=True)


def test_a_run_displays_as_the_terminal_table_with_its_notes(run: RunResult) -> None:
    page = run._repr_html_()
    terminal = table(run, {})
    assert page.startswith("<p><strong>suite tiny</strong></p>")
    assert "<table" in page and "<script" not in page
    for header in terminal.headers:
        assert f"<th>{header}</th>" in page
    for row in terminal.rows:
        assert "".join(f"<td>{html.escape(cell)}</td>" for cell in row) in page
    for note in terminal.notes:  # failures, warnings, the footnotes that say what a column means
        assert f"<li>{html.escape(note)}</li>" in page
    assert "flops: fvcore&#x27;s count for ONE sample" in page
    assert repr(run).startswith("<RunResult suite='tiny'")  # the plain repr stays short


def test_names_are_escaped_in_the_notebook_table(run: RunResult) -> None:
    odd = RunResult.from_dict({**run.to_dict(), "records": [{**run.records[0], "benchmark": "<b>x</b>"}]}, origin="test")
    page = odd._repr_html_()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_plots_are_the_reports_figures_detached_from_pyplot(run: RunResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    open_before = plt.get_fignums()
    bars = run.plot()
    # a panel per field a metric draws as bars that the run has: params, FLOPs, latency (memory was not measured)
    assert [ax.get_title() for ax in bars.axes] == ["parameters", "FLOPs per sample (fvcore, MACs)", "latency of one batch (ms)"]
    scatter = run.plot("scatter")
    assert scatter.axes[0].get_xscale() == "log"
    assert plt.get_fignums() == open_before  # a notebook shows each once, as the cell's value
    import io

    buffer = io.BytesIO()
    scatter.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_a_plot_the_run_cannot_draw_says_what_it_needs(run: RunResult) -> None:
    with pytest.raises(ValueError, match="nothing to draw as 'gradient_flow': a benchmark measured with the gradient_flow metric"):
        run.plot("gradient_flow")
    with pytest.raises(ValueError, match=r"unknown plot 'bar' \(did you mean 'bars'\?\); plots: bars, scatter, roofline"):
        run.plot("bar")
