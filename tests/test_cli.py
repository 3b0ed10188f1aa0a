"""The command line end to end: run, list, formats, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchbench.cli import main
from tests.helpers import tiny_suite, write_plugin

REPO = Path(__file__).resolve().parents[1]


def write_suite(tmp_path: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_prints_the_table_and_writes_the_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, tiny_suite())
    out = tmp_path / "run.json"
    assert main(["run", str(suite), "--json", str(out), "--format", "github"]) == 0
    captured = capsys.readouterr()
    table = captured.out
    for text in ("| benchmark", "std", "sep", "flops_ratio", "latency_ms", "peak_memory_bytes", "8x8x8", "1 fused multiply-add = 1 FLOP"):
        assert text in table
    assert "[2/2] sep" in captured.err and "run file written to" in captured.err
    data = json.loads(out.read_text())
    assert data["suite"] == "tiny" and data["complete"] is True
    env = data["environment"]
    for key in ("benchbench", "torch", "cuda", "cudnn", "cpu", "torch_threads", "host", "time", "git", "gpus", "plugins"):
        assert key in env
    assert any(p["name"] == "layers" for p in env["plugins"])
    std, sep = data["records"]
    assert std["status"] == "ok" and std["output_shape"] == [8, 8, 8]
    assert len(std["latency_samples_ms"]) == std["latency_runs"] >= 3
    assert sep["flops_ratio"] == pytest.approx(sep["flops"] / std["flops"])


def test_run_without_json_writes_into_the_out_folder(tmp_path: Path) -> None:
    suite = write_suite(tmp_path, tiny_suite())
    assert main(["run", str(suite), "--out", str(tmp_path / "res"), "-q", "--only", "std"]) == 0
    [run_file] = (tmp_path / "res").glob("tiny-*.json")
    assert [r["benchmark"] for r in json.loads(run_file.read_text())["records"]] == ["std"]


@pytest.mark.parametrize("fmt", ["csv", "json", "grid", "markdown"])
def test_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    suite = write_suite(tmp_path, tiny_suite(metrics=["params"]))
    assert main(["run", str(suite), "--json", str(tmp_path / "r.json"), "--format", fmt, "-q"]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        assert not out.endswith("\n\n")  # one line end, no empty row for a CSV reader
        header = out.splitlines()[0].split(",")
        assert {"benchmark", "params", "params_ratio", "status"} <= set(header)
    elif fmt == "json":
        assert json.loads(out)["records"][1]["params_ratio"] < 1
    elif fmt == "grid":
        assert "+====" in out or "+=" in out
    else:
        assert "|:" in out or "| benchmark" in out


def test_a_failing_benchmark_exits_1_and_keeps_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_plugin(tmp_path / "plug", "toys", prefix="toy_")
    data = tiny_suite(metrics=["params", "flops"])
    data["benchmarks"].insert(1, {"model": "toy_broken"})
    suite = write_suite(tmp_path, data)
    out = tmp_path / "r.json"
    code = main(["run", str(suite), "--json", str(out), "--plugins-dir", str(tmp_path / "plug"), "-q"])
    assert code == 1
    records = json.loads(out.read_text())["records"]
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert "RuntimeError: this model always fails" in records[1]["error"]
    assert "toy_broken: failed: the first forward pass raised RuntimeError" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_message_and_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_suite()
    data["benchmarks"][0]["model"] = "convv"
    suite = write_suite(tmp_path, data)
    assert main(["run", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "tiny.yaml" in err and "unknown model 'convv' (did you mean 'conv'?)" in err
    assert "Traceback" not in err

    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err

    assert main(["run", str(suite), "--format", "githb"]) == 2
    assert "did you mean 'github'?" in capsys.readouterr().err

    assert main(["run", str(suite), "--device", "tpu"]) == 2
    assert "must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, tiny_suite())
    assert main(["run", str(suite), "--device", "cuda"]) == 2
    assert "torch sees no CUDA GPU" in capsys.readouterr().err


def test_list_models_shows_family_plugin_and_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name in ("conv", "depthwise_separable", "dilated", "bottleneck", "inverted_residual", "transposed", "pixel_shuffle"):
        assert name in lines and "layers" in lines[name]
    assert "depthwise-separable" in lines["depthwise_separable"]


@pytest.mark.parametrize("kind", ["metrics", "reporters", "plugins", "datasets"])
def test_list_other_kinds(capsys: pytest.CaptureFixture[str], kind: str) -> None:
    assert main(["list", kind]) == 0
    out = capsys.readouterr().out
    expected = {"metrics": "latency_ms", "reporters": "csv", "plugins": "benchbench.metrics.flops", "datasets": "synthetic_timeseries"}
    assert expected[kind] in out


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchbench", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


def test_help_does_not_import_torch() -> None:
    probe = "import sys; from benchbench.cli import main; code = main(['--help']); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: benchbench")
    assert done.stdout.strip().endswith("NO-TORCH")


def test_console_entry_and_usage_errors_in_a_real_process(tmp_path: Path) -> None:
    done = run_cli("run")  # missing SUITE: argparse usage error
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = run_cli("run", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "not found" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("run", str(REPO / "suites" / "efficiency.yaml"), "-p", "no_such_module_xyz")
    assert done.returncode == 2 and "could not import plugin 'no_such_module_xyz'" in done.stderr


def test_columns_pick_the_table_and_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, tiny_suite(metrics=["params", "flops"]))
    args = ["run", str(suite), "--json", str(tmp_path / "r.json"), "-q", "--format", "github"]
    assert main([*args, "--columns", "flops,flops_ratio"]) == 0
    header = capsys.readouterr().out.splitlines()[3]
    assert [c.strip() for c in header.strip("|").split("|")] == ["benchmark", "flops", "flops_ratio"]
    assert main([*args, "--columns", "flop"]) == 2
    assert "--columns: 'flop' is not a table field (did you mean 'flops'?)" in capsys.readouterr().err


def test_unwritable_run_file_is_refused_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, tiny_suite(metrics=["params"]))
    assert main(["run", str(suite), "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert main(["run", str(suite), "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "[1/2]" not in err  # nothing ran


def test_suite_name_cannot_escape_the_out_folder(tmp_path: Path) -> None:
    data = tiny_suite(metrics=["params"])
    data["name"] = "../../escape me"
    suite = write_suite(tmp_path, data)
    assert main(["run", str(suite), "--out", str(tmp_path / "res"), "-q"]) == 0
    [written] = (tmp_path / "res").glob("*.json")
    assert written.name.startswith("escape_me-")


def test_debug_works_after_the_command_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--debug", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "not found" in err


def test_csv_keeps_lists_and_mappings_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    data = tiny_suite(metrics=["params", "flops"])
    data["benchmarks"][0] = {"name": "up", "model": "pixel_shuffle", "args": {"in_channels": 4, "out_channels": 2, "upscale_factor": 2}}
    data["benchmarks"][1]["baseline"] = "up"
    suite = write_suite(tmp_path, data)
    assert main(["run", str(suite), "--json", str(tmp_path / "r.json"), "--format", "csv", "-q"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert json.loads(rows[0]["flops_unsupported"]) == {"pixel_shuffle": 1}
    assert json.loads(rows[0]["args"])["upscale_factor"] == 2
    assert json.loads(rows[0]["output_shape"]) == [2, 32, 32]


BAD_SUITES = [
    ("empty", "", "the file is empty"),
    ("not a mapping", "- model: conv\n", "must be a mapping with a 'benchmarks' list, got list"),
    ("yaml syntax", "benchmarks: [\n", "YAML syntax error at line 2"),
    ("duplicate key", "benchmarks:\n  - model: conv\n    model: conv\n", "key 'model' appears twice"),
    ("top-level typo", "benchmark: []\n", "unknown top-level key 'benchmark' (did you mean 'benchmarks'?)"),
    ("top-level anchor", "common: &c {batch_size: 2}\nbenchmarks:\n  - {<<: *c, model: conv}\n",
     ("unknown top-level key 'common' (a suite's keys are name, description, executor, rounds, defaults, benchmarks; "
     "settings every benchmark shares go under 'defaults'")),
    ("key typo", "benchmarks:\n  - model: conv\n    batchsize: 4\n", "unknown key 'batchsize' (did you mean 'batch_size'?)"),
    ("wrong type", "benchmarks:\n  - model: conv\n    batch_size: big\n", "key 'batch_size' must be a positive whole number, got 'big'"),
    ("negative size", "benchmarks:\n  - model: conv\n    input_shape: [3, -1, 8]\n", "key 'input_shape' must be a list of positive whole numbers"),
    ("unknown model", "benchmarks:\n  - model: convv\n", "unknown model 'convv' (did you mean 'conv'?)"),
    ("unknown metric", "defaults: {metrics: [latncy]}\nbenchmarks:\n  - model: conv\n", "unknown metric 'latncy' (did you mean 'latency'?)"),
    ("unknown device", "defaults: {device: gpu}\nbenchmarks:\n  - model: conv\n", "key 'device' must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    ("unknown executor", "executor: dask\nbenchmarks:\n  - model: conv\n", "unknown executor 'dask'"),
    ("duplicate names",
     ("benchmarks:\n  - model: conv\n    args: {in_channels: 3, out_channels: 4, kernel_size: 1}\n"
      "  - model: conv\n    args: {in_channels: 3, out_channels: 4, kernel_size: 1}\n"),
     "duplicate name, also used by benchmark #1"),
    ("shape the model cannot take",
     "benchmarks:\n  - model: conv\n    args: {in_channels: 8, out_channels: 4, kernel_size: 3}\n    input_shape: [3, 16, 16]\n",
     "cannot run with these 'args' and 'input_shape' [3, 16, 16]"),
    ("bad timeout", "defaults: {timeout: -5}\nbenchmarks:\n  - model: conv\n", "key 'timeout' must be a number of seconds above 0"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD_SUITES], ids=[i for i, _, _ in BAD_SUITES])
def test_bad_suites_exit_2_with_the_file_and_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(text)
    assert main(["run", str(suite), "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"benchbench: error: {suite}") and expected in err, err
    assert "Traceback" not in err and not (tmp_path / "res").exists()


def test_bad_command_lines_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, tiny_suite(metrics=["params"]))
    empty = tmp_path / "empty.json"
    empty.write_text("\n")
    cases = [
        (["run"], "needs a SUITE.yaml"),
        (["run", str(suite), "--batch-size", "0"], "argument --batch-size: must be a positive whole number, got 0"),
        (["run", str(suite), "--timeout", "0"], "argument --timeout: must be a number of seconds above 0"),
        (["run", str(suite), "--rounds", "two"], "argument --rounds: expected a whole number, got 'two'"),
        (["run", str(suite), "--device", "gpu"], "argument --device: must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        (["run", str(suite), "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["compare", str(suite), str(suite), "--alpha", "2"], "argument --alpha: must be between 0 and 0.5"),
        (["run", str(suite), "--executor", "subproces"], "unknown executor 'subproces' (did you mean 'subprocess'?)"),
        (["run", str(suite), "--device", "cuda:7"], "cuda:7"),
        (["run", "--resume", str(tmp_path / "none.json")], "not found"),
        (["run", "--resume", str(suite)], "not a readable JSON run file"),
        (["compare", str(empty), str(empty)], f"run file {str(empty)!r} is empty: a run that was killed before it wrote"),
        (["report", str(empty)], "is empty"),
        (["run", str(suite), "--metrics", ""], "--metrics names no metric; e.g. --metrics params,flops"),
        (["report"], "benchbench report needs at least one run file"),
        (["report", "--html", str(tmp_path / "run.json")], "the report's file name must end in .html (did the shell"),
        (["history", "--history", str(tmp_path)], f"history {str(tmp_path)!r} is a folder; give the history file"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (argv, err)


def test_list_executors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "executors"]) == 0
    out = capsys.readouterr().out
    assert "inline" in out and "subprocess" in out and "benchbench.executors" in out


def test_ray_executor_without_ray_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the ray extra were not installed
    suite = write_suite(tmp_path, tiny_suite(metrics=["params"]))
    assert main(["run", str(suite), "--executor", "ray", "--json", str(tmp_path / "r.json"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "the ray executor needs Ray: pip install 'torch-benchbench[ray]'" in err and "Traceback" not in err
