"""The ``numerics`` metric: each execution mode's error against a float64 eager reference,
its budget (``thresholds:``), its compare rule, and the check before the run that the model's
output can be compared at all (benchbench/metrics/numerics.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import benchbench
from benchbench import stats
from benchbench.cli import main
from benchbench.compare import compare_runs
from benchbench.errors import ExitCode
from benchbench.metrics import numerics
from benchbench.results import RunResult
from tests.helpers import TINY_LATENCY, PluginFiles

MODELS = """
    import torch
    import benchbench

    from torch._dynamo import list_backends, register_backend

    def faulty_compiler(graph, example_inputs):
        \"\"\"A torch.compile backend that adds 0.1 to every floating output: a compiler fault in miniature.\"\"\"

        def run(*args):
            out = graph(*args)
            shift = lambda t: t + 0.1 if isinstance(t, torch.Tensor) and t.is_floating_point() else t
            return type(out)(shift(t) for t in out) if isinstance(out, (list, tuple)) else shift(out)

        return run

    if "faulty_compiler" not in list_backends(exclude_tags=()):  # loaded once per test that uses it
        register_backend(faulty_compiler, name="faulty_compiler")

    class Labels(torch.nn.Module):
        \"\"\"A classifier that returns class indices: nothing to compare with a float64 reference.\"\"\"

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.linear(x).argmax(dim=1)

    @benchbench.hookimpl
    def benchbench_register_models(register):
        register("labels", Labels, input_shape=(8,))
"""

CONV = {"model": "conv", "args": {"in_channels": 8, "out_channels": 16, "kernel_size": 3, "padding": 1},
        "input_shape": [8, 16, 16]}


def suite(*benchmarks: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    return {"name": "numerics", "benchmarks": list(benchmarks),
            "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["numerics"],
                         "metric_options": {"latency": dict(TINY_LATENCY)}, **defaults}}


@pytest.fixture
def models(plugins: PluginFiles) -> Path:
    plugins.write("numerics_models", MODELS)
    return plugins.path


# --------------------------------------------------------------------------- the arithmetic


def test_errors_are_the_relative_norm_the_largest_difference_and_the_cosine() -> None:
    reference = [torch.tensor([3.0, 4.0]), torch.tensor([[0.0]])]
    output = [torch.tensor([3.0, 4.5]), torch.tensor([[0.0]])]
    found = numerics.errors(output, reference)
    assert found["rel_error"] == pytest.approx(0.5 / 5.0)  # |(0, 0.5, 0)| / |(3, 4, 0)|
    assert found["max_abs_error"] == pytest.approx(0.5)
    assert found["cosine"] == pytest.approx((9 + 18) / (5 * math.hypot(3, 4.5)))
    assert numerics.errors(reference, reference) == {"rel_error": 0.0, "max_abs_error": 0.0, "cosine": pytest.approx(1.0),
                                                     "nonfinite": 0}
    overflow = numerics.errors([torch.tensor([math.inf, 1.0])], [torch.tensor([1e39, 1.0], dtype=torch.float64)])
    assert overflow["nonfinite"] == 1 and overflow["rel_error"] == math.inf
    with pytest.raises(ValueError, match="output shapes"):
        numerics.errors([torch.zeros(2)], [torch.zeros(3)])


def test_outputs_are_compared_tensor_by_tensor_in_order_and_integers_are_not_compared() -> None:
    a, b = torch.ones(2), torch.zeros(1)
    assert [t.shape for t in numerics.floating_tensors({"logits": a, "aux": (b, torch.arange(3))})] == [a.shape, b.shape]
    assert numerics.not_comparable((a, 3)) is None
    assert "holds no floating-point tensor" in numerics.not_comparable(torch.arange(3))


# --------------------------------------------------------------------------- measured


def test_each_mode_is_measured_against_float64_and_bfloat16_is_far_less_exact() -> None:
    run = benchbench.run_suite(suite(
        {"name": "fp32", **CONV},
        {"name": "bf16", **CONV, "autocast": "bfloat16"},
        {"name": "bf16_weights", **CONV, "dtype": "bfloat16"},
        {"name": "fp32_train", **CONV, "mode": "train"},
        {"name": "bf16_train", **CONV, "mode": "train", "autocast": "bfloat16"},
        metrics=["latency", "numerics"]), quiet=True)
    by = {r["benchmark"]: r for r in run.records}
    assert all(r["status"] == "ok" for r in run.records), [r.get("error") for r in run.records]
    fp32, bf16 = by["fp32"], by["bf16"]
    assert 0 < fp32["numerics_rel_error"] < 1e-5  # float32 rounding, not zero: the reference is really float64
    assert 1e-4 < bf16["numerics_rel_error"] < 5e-2  # bfloat16 keeps 8 bits of mantissa
    assert bf16["numerics_rel_error"] > 100 * fp32["numerics_rel_error"]
    assert 0 < by["bf16_weights"]["numerics_rel_error"] < 5e-2
    assert fp32["numerics_cosine"] == pytest.approx(1.0, abs=1e-9) and bf16["numerics_cosine"] < 1.0
    assert fp32["numerics_max_abs_error"] > 0 and fp32["numerics_deterministic"] is True
    assert fp32["numerics_reference_device"] == "cpu" and fp32["numerics_grad_rel_error"] is None
    train32, train16 = by["fp32_train"], by["bf16_train"]
    assert 0 < train32["numerics_grad_rel_error"] < 1e-5
    assert train16["numerics_grad_rel_error"] > 100 * train32["numerics_grad_rel_error"]
    assert set(numerics.FIELDS) <= set(run.fields)
    text = benchbench.reporters.render_table(run, {})
    assert "numerics_rel_error: |y - y_ref| / |y_ref|" in text  # the footnote comes with the metric
    # speed against error: a panel per model and mode, the output's error in eval, the gradients' in train
    figure = run.plot("speed_vs_error")
    panels = {ax.get_title(): ax.get_ylabel() for ax in figure.axes if ax.get_visible()}
    assert panels == {"conv (eval)": "rel_error vs float64", "conv (train)": "grad_rel_error vs float64"}
    figure.canvas.draw()  # tick labels get their text when drawn
    ticks = [t.get_text() for ax in figure.axes for t in ax.get_yticklabels()]
    assert any(t.replace("\u2212", "-").startswith("1e-0") for t in ticks) and not any("$" in t for t in ticks)  # not mathtext


def test_a_compiler_that_changes_the_answer_fails_its_budget_and_inductor_stays_close_to_eager(
        models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    data = suite({"name": "eager", **CONV}, {"name": "faulty", **CONV, "compile": {"backend": "faulty_compiler"}},
                 {"name": "compiled", **CONV, "compile": True}, thresholds={"numerics_rel_error": "1%"})
    path = tmp_path / "numerics.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run.json"
    code = main(["run", str(path), "--plugins-dir", str(models), "--json", str(out), "--no-history"])
    err = capsys.readouterr().err
    records = {r["benchmark"]: r for r in json.loads(out.read_text())["records"]}
    assert {name: r.get("error") for name, r in records.items() if r["status"] != "ok"}.keys() == {"faulty"}, err
    assert code == ExitCode.FAILED
    faulty = records["faulty"]
    assert faulty["numerics_rel_error"] > 0.01  # the fields are kept
    assert "numerics_rel_error" in faulty["error"] and "is over its budget 0.01" in faulty["error"]
    assert "over its budget 0.01" in err
    eager_error, compiled_error = records["eager"]["numerics_rel_error"], records["compiled"]["numerics_rel_error"]
    assert 0 < compiled_error < 1e-5 and compiled_error < 20 * eager_error


def test_a_model_whose_output_cannot_be_compared_is_refused_before_the_run(
        models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite({"name": "argmax", "model": "labels"}, {"name": "fine", **CONV})))
    assert main(["run", str(path), "--plugins-dir", str(models), "--no-history", "--json", str(tmp_path / "r.json")]) \
        == ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "benchmark 'argmax': metric 'numerics' cannot measure model 'labels'" in err
    assert "holds no floating-point tensor" in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()
    # without the dry run, the metric finds out when it runs, and fails that benchmark only
    run = benchbench.run_suite(suite({"name": "argmax", "model": "labels", "dry_run": False}, {"name": "fine", **CONV}),
                               plugins_dir=models, quiet=True)
    argmax, fine = run.records
    assert argmax["status"] == "failed" and "holds no floating-point tensor" in argmax["error"]
    assert fine["status"] == "ok"


def test_a_bad_reference_device_option_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite({"name": "x", **CONV}, metric_options={"numerics": {"reference_device": "gpu"}})))
    assert main(["run", str(path), "--no-history"]) == ExitCode.USAGE_ERROR
    assert "reference_device must be 'auto' or 'cpu', got 'gpu'" in capsys.readouterr().err


# --------------------------------------------------------------------------- compared


COMPARED = {f: {"metric": "numerics", **numerics.COMPARED}
            for f in ("numerics_rel_error", "numerics_max_abs_error", "numerics_grad_rel_error")}


def numerics_run(error: float, budget: float | None = None) -> RunResult:
    record = {"benchmark": "conv_bf16", "status": "ok", "numerics_rel_error": error, "numerics_max_abs_error": error * 10,
              "thresholds": {"numerics_rel_error": budget} if budget is not None else {}}
    return RunResult(suite="s", records=[record], environment={"time": "t", "host": "h", "cpu": "c", "torch": "t"},
                     compare=dict(COMPARED), suite_text="benchmarks: []")


def verdict(base: RunResult, new: RunResult, field: str = "numerics_rel_error") -> stats.Verdict:
    [row] = [r for r in compare_runs(base, new).rows if r.field == field]
    return row.verdict


def test_compare_flags_an_error_that_multiplies_and_one_that_crosses_its_budget() -> None:
    assert verdict(numerics_run(3e-3), numerics_run(4e-3)).verdict == stats.UNCHANGED  # another summation order
    assert verdict(numerics_run(3e-3), numerics_run(3e-2)).verdict == stats.REGRESSED  # 10x: a fault
    assert verdict(numerics_run(3e-3), numerics_run(3e-4)).verdict == stats.IMPROVED
    # the budget bounds the value, not its change: 1% is not read as "may grow by 1%"
    assert verdict(numerics_run(3e-3, budget=0.01), numerics_run(4e-3, budget=0.01)).verdict == stats.UNCHANGED
    crossed = verdict(numerics_run(6e-3, budget=0.01), numerics_run(1.1e-2, budget=0.01))
    assert crossed.verdict == stats.REGRESSED and crossed.note == "over its budget 0.01"
    # the field's own threshold applies where the suite sets a budget for another field
    assert verdict(numerics_run(3e-3), numerics_run(4e-2), "numerics_max_abs_error").verdict == stats.REGRESSED


def test_a_budget_must_bound_a_single_value_that_is_better_lower() -> None:
    from benchbench.errors import PluginError
    from benchbench.registry import MetricEntry

    with pytest.raises(PluginError, match="a budget bounds a single value that is better lower"):
        MetricEntry(name="score", plugin="p", measure=lambda ctx: {}, fields=("score",),
                    compare={"score": {"budget": True, "higher_is_better": True}})


def test_a_budget_whose_metric_does_not_run_is_not_checked_and_says_so() -> None:
    run = benchbench.run_suite(suite({"name": "x", **CONV}, metrics=["params"], thresholds={"numerics_rel_error": 1e-9}),
                               quiet=True)
    [record] = run.records
    assert record["status"] == "ok"
    assert ("the budget on numerics_rel_error (thresholds:) is not checked: the benchmark does not measure 'numerics'; "
            "add it to its metrics") in record["warnings"]
    measured = benchbench.run_suite(suite({"name": "x", **CONV}, thresholds={"numerics_rel_error": 1e-2}), quiet=True)
    assert not measured.records[0]["warnings"]
