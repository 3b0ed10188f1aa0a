"""A metric brings its own footnote, bar panel, side-by-side field, plot, breakdown and compare rule
through its registration, and a plugin declares the fields it derives: run, report --html, RunResult.plot,
compare, --columns and list all show them with no change to the core."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench.cli import main
from benchbench.errors import PluginError
from benchbench.manager import PluginManager
from benchbench.registry import FieldSetEntry, MetricEntry
from benchbench.results import RunResult
from tests.helpers import PluginFiles, tiny_suite

pytest.importorskip("matplotlib")

TOY = '''
import benchbench
from benchbench.reporters import Breakdown, Table

FOOTNOTE = "output_elements: numbers in one step's output, times the toy's scale option."
DERIVED_NOTE = "elements_per_param: output_elements / params (a made-up derived field)."


def measure(ctx):
    return {"output_elements": int(ctx.step().numel()) * ctx.options["scale"]}


def draw(runs, names):
    import matplotlib.pyplot as plt

    bars = [(r["benchmark"], r["output_elements"]) for run in runs for r in run.records if r.get("output_elements")]
    if not bars:
        return None
    fig, ax = plt.subplots()
    ax.bar([b for b, _ in bars], [n for _, n in bars])
    ax.set_title("toy elements")
    return fig


def explain(runs, names):
    rows = [{"benchmark": r["benchmark"], "elements": r["output_elements"]} for run in runs for r in run.records
            if r.get("output_elements")]
    table = Table(["Output elements, explained"], ["benchmark", "elements"],
                  [[row["benchmark"], str(row["elements"])] for row in rows], ["left", "right"], ["one note"])
    return Breakdown(rows, table)


@benchbench.hookimpl
def benchbench_register_metrics(register):
    register("toy", measure, fields=["output_elements"], options={"scale": 1},
             compare={"output_elements": {"exact": True}},
             footnotes={"output_elements": FOOTNOTE},
             bars={"output_elements": "output elements per step"},
             side_by_side=["output_elements"],
             plots={"toy_elements": {"draw": draw, "heading": "Toy elements", "alt": "toy elements per benchmark",
                                     "explanation": "Drawn by the `toy` plugin.", "needs": "a benchmark with toy"}},
             explain={"toy": {"explain": explain, "heading": "Toy breakdown", "needs": "output elements (the toy metric)"}})


@benchbench.hookimpl
def benchbench_register_fields(register):
    register("toy_ratios", fields=["elements_per_param"], footnotes={"elements_per_param": DERIVED_NOTE},
             formats={"elements_per_param": lambda v: f"{v:.2f} e/p"})


@benchbench.hookimpl
def benchbench_derive_fields(record):
    if record.get("output_elements") and record.get("params"):
        return {"elements_per_param": record["output_elements"] / record["params"]}
    return None
'''


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return PluginFiles(tmp_path_factory.mktemp("toy")).write("toy_metric", TOY)


def suite_file(folder: Path, scale: int) -> Path:
    data = tiny_suite(metrics=["params", "toy"])
    data["defaults"]["metric_options"] = {"toy": {"scale": scale}}
    path = folder / f"toy{scale}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def runs(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """Two run files of the toy suite (scale 1, then 2) made by ``benchbench run``, and the first one's table."""
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    tables = []
    for scale in (1, 2):
        out = folder / f"r{scale}.json"
        argv = ["run", str(suite_file(folder, scale)), "-p", str(toy), "--json", str(out), "--no-history", "-q"]
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(argv) == 0
        paths.append(out)
        tables.append(text.getvalue())
    return paths[0], paths[1], tables[0]


def test_the_table_shows_the_plugins_footnotes_and_the_run_file_keeps_them(runs: tuple[Path, Path, str]) -> None:
    first, _, table = runs
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("benchmark"))
    assert "output_elements" in header and "elements_per_param" in header  # the derived field joined the table
    assert re.search(r"\d\.\d\d e/p", table)  # in the format its declaration gives
    assert "output_elements: numbers in one step's output, times the toy's scale option." in lines
    assert "elements_per_param: output_elements / params (a made-up derived field)." in lines
    stored = json.loads(first.read_text())
    assert stored["footnotes"]["output_elements"].startswith("output_elements: numbers in one step's output")
    assert stored["footnotes"]["elements_per_param"].startswith("elements_per_param:")
    assert stored["compare"]["output_elements"] == {"metric": "toy", "exact": True}  # compare's rule, as before


def test_columns_take_declared_fields_and_list_fields_shows_them(toy: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = suite_file(tmp_path, 1)
    argv = ["run", str(path), "-p", str(toy), "--columns", "elements_per_param,output_elements", "--no-history",
            "-q", "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[3].split() == ["benchmark", "elements_per_param", "output_elements"]
    assert main(["run", str(path), "-p", str(toy), "--columns", "elements_per_parm", "--no-history", "-q"]) == 2
    assert "(did you mean 'elements_per_param'?)" in capsys.readouterr().err
    assert main(["list", "fields", "-p", str(toy)]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "field set toy_ratios" in listed["elements_per_param"] and "output_elements / params" in listed["elements_per_param"]
    assert "metric toy" in listed["output_elements"] and "metric flops" in listed["flops"]
    assert "fvcore's count for ONE sample" in listed["flops"] and "field set roofline" in listed["peak_fraction"]


def test_the_html_report_draws_the_plugins_plot_panel_breakdown_and_comparison(toy: Path, runs: tuple[Path, Path, str],
                                                                               tmp_path: Path) -> None:
    first, second, _ = runs
    page_path = tmp_path / "report.html"
    assert main(["report", str(first), str(second), "--html", str(page_path), "-p", str(toy)]) == 0
    page = page_path.read_text()
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert images == ["bar charts of params and output_elements per benchmark", "toy elements per benchmark"]
    assert "<h2>Toy elements</h2><p class='meta'>Drawn by the <code>toy</code> plugin.</p>" in page
    assert "<h2>Toy breakdown</h2>" in page and "<li>one note</li>" in page
    assert "<th>output_elements r2</th>" in page  # set side by side for the two runs
    assert "<li>output_elements: numbers in one step&#x27;s output" in page


def test_a_report_without_the_plugin_keeps_its_footnote_but_not_its_plot(runs: tuple[Path, Path, str], tmp_path: Path) -> None:
    first, _, _ = runs
    page_path = tmp_path / "report.html"
    assert main(["report", str(first), "--html", str(page_path)]) == 0  # the toy plugin is not loaded here
    page = page_path.read_text()
    assert "<li>output_elements: numbers in one step&#x27;s output" in page  # from the run file
    assert "Toy elements" not in page  # a plot is code: it needs its plugin


def test_explain_takes_the_plugins_breakdown(toy: Path, runs: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    first, _, _ = runs
    assert main(["report", str(first), "--explain", "toy", "-p", str(toy)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Output elements, explained" and out[-1] == "one note"
    assert main(["report", str(first), "--explain", "toy", "-p", str(toy), "--format", "json"]) == 0
    assert [r["benchmark"] for r in json.loads(capsys.readouterr().out)] == ["std", "sep"]
    assert main(["report", str(first), "--explain", "toy"]) == 2  # not loaded: not known
    assert "--explain 'toy': only flops can be explained" in capsys.readouterr().err


def test_run_result_plot_draws_the_plugins_plot(toy: Path, tmp_path: Path) -> None:
    run = benchbench.run_suite(yaml.safe_load(suite_file(tmp_path, 1).read_text()), plugins=[str(toy)], quiet=True)
    figure = run.plot("toy_elements")
    assert figure.axes[0].get_title() == "toy elements"
    assert [ax.get_title() for ax in run.plot("bars").axes] == ["parameters", "output elements per step"]
    run.write_json(tmp_path / "r.json")
    back = RunResult.read_json(tmp_path / "r.json")
    with pytest.raises(ValueError, match=r"unknown plot 'toy_elements'.*needs the plugin loaded"):
        back.plot("toy_elements")  # the default plugins have no such plot
    back.show_with(PluginManager([str(toy)]).registry)
    assert back.plot("toy_elements").axes[0].get_title() == "toy elements"
    empty = RunResult.from_dict({**back.to_dict(), "records": [{**back.records[0], "output_elements": None}]}, origin="t")
    with pytest.raises(ValueError, match="nothing to draw as 'toy_elements': a benchmark with toy; plots: bars, scatter"):
        empty.show_with(back.registry).plot("toy_elements")


def test_compare_judges_the_plugins_field_by_its_rule(runs: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    first, second, _ = runs
    assert main(["compare", str(first), str(first)]) == 0
    capsys.readouterr()
    assert main(["compare", str(first), str(second)]) == 1  # exact: the doubled count is a regression
    out = capsys.readouterr().out
    assert re.search(r"std\s+output_elements\s+1,024\s+2,048", out), out


# --------------------------------------------------------------------------- checked at registration


def entry(**changes: object) -> MetricEntry:
    arguments: dict[str, object] = {"fields": ["a", "b"], "plugin": "mine", **changes}
    return MetricEntry("m", lambda ctx: {}, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "message"), [
    ({"footnotes": {"c": "c: what"}}, "metric 'm': footnotes names 'c', which is not one of its fields (a, b)"),
    ({"footnotes": {"a": ""}}, "footnotes['a'] must be a sentence of text"),
    ({"bars": {"aa": "title"}}, "bars names 'aa', which is not one of its fields (a, b) (did you mean 'a'?)"),
    ({"side_by_side": "a"}, "side_by_side must be a list of field names, got 'a'"),
    ({"plots": {"p": {"heading": "P"}}}, "plots['p'] needs a callable 'draw'"),
    ({"plots": {"p": {"draw": print}}}, "plots['p'] needs a 'heading'"),
    ({"plots": {"p": {"draw": print, "heading": "P", "titel": "x"}}}, "unknown key 'titel'"),
    ({"plots": {"bars": {"draw": print, "heading": "P"}}}, "'bars' is the core's own plot"),
    ({"explain": {"e": {"explain": 1, "heading": "E"}}}, "explain['e'] needs a callable 'explain'"),
])
def test_declarations_are_checked_when_registered(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        entry(**changes)


def test_declared_plots_get_defaults_and_a_field_set_needs_its_fields() -> None:
    plot = entry(plots={"p": {"draw": print, "heading": "P"}}).plots["p"]
    assert (plot.alt, plot.explanation, plot.needs, plot.plugin) == ("P", "", "a benchmark measured with the m metric", "mine")
    derived = FieldSetEntry("s", fields=["x", "y"], plugin="mine", plots={"q": {"draw": print, "heading": "Q"}})
    assert derived.plots["q"].needs == "benchmarks with x and y"


def test_a_plot_name_declared_by_two_plugins_is_an_error_naming_both(plugins_folder: PluginFiles) -> None:
    source = '''
        import benchbench

        @benchbench.hookimpl
        def benchbench_register_metrics(register):
            register("{name}", lambda ctx: {{}}, fields=["f_{name}"], plots={{"same": {{"draw": print, "heading": "S"}}}})
    '''
    one = plugins_folder.write("one", source.format(name="one"))
    two = plugins_folder.write("two", source.format(name="two"))
    with pytest.raises(PluginError, match=r"plot 'same' is declared twice: by metric 'one' of plugin '.*one.py' and by "
                                          r"metric 'two' of plugin '.*two.py'"):
        PluginManager([str(one), str(two)], autoload=False)


def test_a_run_file_with_footnotes_that_are_not_text_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"suite": "s", "records": [], "footnotes": {"a": 1}}))
    assert main(["report", str(path)]) == 2
    assert "key 'footnotes' must map field names to text" in capsys.readouterr().err


@pytest.fixture
def plugins_folder(tmp_path: Path) -> PluginFiles:
    return PluginFiles(tmp_path / "plugins")
