"""What people look at: the HTML report, text reports, profiler traces, progress, peak."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench import peak, progress, timing
from benchbench.cli import main
from benchbench.results import RunResult
from tests.helpers import require_tool, tiny_suite

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    data = tiny_suite()
    data["benchmarks"].append({"name": "deep", "model": "deep_cnn", "args": {"depth": 4, "channels": 4},
                               "metrics": ["params", "gradient_flow"]})
    path = folder / "tiny.json"
    benchbench.run_suite(data, quiet=True).write_json(path)
    return path


def test_html_report_is_self_contained_with_every_benchmark_and_plot(run_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(run_file), "--html", str(out)]) == 0
    page = out.read_text()
    for name in ("std", "sep", "deep"):
        assert f"<td>{name}</td>" in page
    images = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", page)
    assert images == ["bar charts of params, flops, latency_ms and peak_memory_bytes per benchmark",
                      "latency against FLOPs, log axes", "roofline plot", "gradient flow"]  # no training: no accuracy
    assert not re.search(r"(src|href)=['\"]https?://", page)  # nothing to fetch: opens offline
    assert "<h2>Environment</h2>" in page and "torch" in page


def test_a_run_file_from_before_footnotes_were_stored_gets_them_from_the_plugins(run_file: Path, tmp_path: Path) -> None:
    data = json.loads(run_file.read_text())
    assert data["footnotes"]["flops"].startswith("flops: fvcore's count for ONE sample")  # stored by the run
    del data["footnotes"]
    old, out = tmp_path / "old.json", tmp_path / "old.html"
    old.write_text(json.dumps(data))
    assert main(["report", str(old), "--html", str(out)]) == 0
    notes = re.findall(r"<li>([a-z_]+): (?!warning|failed)", out.read_text())  # the footnotes, not a row's warnings
    in_column_order = ["flops", "latency_ms", "throughput", "peak_memory_bytes", "achieved_gflops", "arithmetic_intensity"]
    assert notes in (in_column_order, [*in_column_order, "peak_fraction"])  # peak_fraction once `benchbench peak` ran here


def test_several_runs_are_compared_side_by_side(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "two.html"
    assert main(["report", str(run_file), str(run_file), "--html", str(out)]) == 0
    page = out.read_text()
    assert "<h2>Comparison</h2>" in page and "latency_ms r2" in page
    assert main(["report", str(run_file), str(run_file), "--format", "markdown"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| benchmark") and "params r2" in table[0]
    assert set(table[1]) <= set("|-: ") and all(line.count("|") == table[0].count("|") for line in table)
    assert "(1x)" in table[2]


def test_report_bad_input(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "none.json")]) == 2
    assert main(["report", str(run_file), "--html", str(tmp_path)]) == 2
    assert main(["report", str(run_file), "--format", "gird"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_real_browser_renders_the_report(run_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    CHROMIUM = require_tool("chromium", "Debian package chromium: the report in a real browser")
    page, shot = tmp_path / "report.html", tmp_path / "shot.png"
    assert main(["report", str(run_file), "--html", str(page)]) == 0
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=1200,3000",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), done.stderr
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 3000)
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50  # text and plots, not a blank page


def test_profile_writes_tensorboard_traces_with_convolutions(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params"])))
    folder = tmp_path / "profiles"
    assert main(["run", str(suite), "--profile", str(folder), "--json", str(tmp_path / "r.json"), "-q", "--no-history"]) == 0
    traces = sorted(folder.glob("*/*.pt.trace.json"))
    assert [t.parent.name for t in traces] == ["sep", "std"]
    events = json.loads(traces[1].read_text())["traceEvents"]
    assert any("convolution" in str(e.get("name")) for e in events)
    record = json.loads((tmp_path / "r.json").read_text())["records"][0]
    assert "convolution" in record["profile_top"] and record["profile_top_ops"][0]["share"] > 0


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    benchbench.run_suite(tiny_suite(metrics=["params"]))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "benchbench: suite 'tiny', 2 benchmark(s)" and "\r" not in "".join(lines)
    assert any(line.startswith("[2/2] sep: ok") for line in lines)
    progress.set_style("bar")
    try:
        benchbench.run_suite(tiny_suite(metrics=["params"]))
    finally:
        progress.set_style("auto")
    err = capsys.readouterr().err
    assert "2/2 |" in err and "\r" in err


def test_peak_is_measured_once_cached_and_used_for_the_fraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(peak.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(timing.OtherWork, "cores_busy", lambda self: 0.0)  # a quiet CPU: the peak is cached
    assert peak.load("cpu") is None
    entry = peak.measure("cpu", kernels=[peak.matmul(128)], copy_bytes=1 << 20, seconds=0.05)
    assert entry["flops"] > 0 and entry["bandwidth_bytes_per_s"] > 0
    assert peak.load("cpu") == entry
    run = benchbench.run_suite(tiny_suite(), quiet=True)
    std = run.records[0]
    assert std["peak_fraction"] == pytest.approx(std["achieved_gflops"] * 1e9 / entry["flops"])
    assert std["achieved_gflops"] == pytest.approx(2 * std["flops"] * std["batch_size"] / (std["latency_ms"] / 1e3) / 1e9)
    assert run.environment["peaks"]["cpu"]["flops"] == entry["flops"]
    assert "peak_fraction" in run.fields
    assert main(["peak"]) == 0  # from the cache


def test_report_reads_run_files_without_registered_formats(run_file: Path) -> None:
    from benchbench.reporters import render_table

    run = RunResult.read_json(run_file)
    assert run.formats == {}  # formats are not stored in run files
    text = render_table(run, {"columns": ["peak_memory_bytes", "latency_ms"]})
    row = next(line for line in text.splitlines() if line.startswith("std "))
    assert re.search(r"\d+(\.\d\d)? (B|KiB|MiB|GiB)\s+\d+(\.\d+)?$", row), row  # bytes and ms formatted by the field's name


def test_report_as_csv_and_json(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    assert main(["report", str(run_file), str(run_file), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6 and rows[0]["run"].startswith("tiny") and rows[0]["benchmark"] == "std"
    assert main(["report", str(run_file), "--format", "json"]) == 0
    [data] = json.loads(capsys.readouterr().out)
    assert data["suite"] == "tiny" and len(data["records"]) == 3
