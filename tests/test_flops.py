"""FLOP counting (benchbench/flopcount.py, the flops metric): attention counted, the dispatch
cross-check, models fvcore cannot trace, work hidden in uncounted operators, --explain flops."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import benchbench
from benchbench import flopcount
from benchbench.cli import main
from benchbench.context import MeasureContext
from benchbench.metrics import flops
from benchbench.results import RunResult
from benchbench.spec import BenchmarkSpec
from tests.helpers import PluginFiles, tiny_suite


def measure(model: nn.Module, inputs: torch.Tensor, *, mode: str = "eval") -> tuple[dict[str, Any], list[str]]:
    """The flops metric's fields and warnings for ``model`` on a batch ``inputs``."""
    ctx = MeasureContext(model=model.train(mode == "train"), inputs=inputs, device=torch.device("cpu"),
                         batch_size=inputs.shape[0], mode=mode, benchmark=BenchmarkSpec(name="t", model="t"))
    return flops.measure(ctx), ctx.warnings


def small_vit(**overrides: Any) -> nn.Module:
    """torchvision's VisionTransformer (nn.MultiheadAttention inside), small: 32x32, patches of 8, 17 tokens."""
    from torchvision.models.vision_transformer import VisionTransformer

    config = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10)
    return VisionTransformer(**{**config, **overrides})


def vit_core_macs(tokens: int, dim: int, mlp: int, layers: int, patch_macs: int, head_macs: int) -> int:
    """Multiply-adds of a ViT by hand: q, k, v, output projections and the MLP per token, attention's two products."""
    per_layer = tokens * (4 * dim * dim + 2 * dim * mlp) + 2 * tokens * tokens * dim
    return layers * per_layer + patch_macs + head_macs


SMALL_VIT_CORE = vit_core_macs(17, 32, 64, 2, patch_macs=16 * 32 * 3 * 8 * 8, head_macs=32 * 10)


# --------------------------------------------------------------------------- attention


def test_vision_transformer_attention_is_counted_by_both_counters() -> None:
    """The inference fast path would fuse projections and products into one op fvcore cannot count."""
    fast_path = getattr(getattr(torch.backends, "mha", None), "get_fastpath_enabled", lambda: None)
    before = fast_path()
    fields, warnings = measure(small_vit(), torch.randn(3, 3, 32, 32))
    assert fields["flops_core"] == fields["flops_dispatch"] == SMALL_VIT_CORE
    assert fields["flops_by_category"]["attention"] == 2 * 2 * 17 * 17 * 32
    assert fields["flops"] == SMALL_VIT_CORE + fields["flops_by_category"]["norm"]  # LayerNorm: fvcore's convention
    assert not any("attention" in op for op in fields["flops_unsupported"])
    assert fields["flops_uncounted"] is None and fields["flops_source"] == "fvcore" and warnings == []
    assert fast_path() == before  # the switch is put back


def test_the_fused_attention_operator_has_a_formula_in_both_counters() -> None:
    """``torch._native_multi_head_attention`` (what the fast path calls) counts as its composite path does."""

    class Fused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = self.mha
            return torch._native_multi_head_attention(x, x, x, 32, 4, m.in_proj_weight, m.in_proj_bias,
                                                      m.out_proj.weight, m.out_proj.bias, need_weights=False)[0]

    fields, warnings = measure(Fused().eval(), torch.randn(2, 10, 32))
    expected = 10 * 4 * 32 * 32 + 2 * 10 * 10 * 32  # q, k, v, out projections; q kᵀ and attention x v
    assert fields["flops_core"] == fields["flops_dispatch"] == fields["flops_by_category"]["attention"] == expected
    assert fields["flops_uncounted"] is None and warnings == []


TIMM_STYLE = '''
import torch
import torch.nn.functional as F
from torch import nn

import benchbench


class Attention(nn.Module):
    """timm's ViT attention: one qkv linear, F.scaled_dot_product_attention, one projection."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class TinyViT(nn.Module):
    def __init__(self, dim=48, depth=3, heads=3, tokens=20):
        super().__init__()
        self.blocks = nn.ModuleList(Attention(dim, heads) for _ in range(depth))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
                                  for _ in range(depth))

    def forward(self, x):
        for attention, mlp in zip(self.blocks, self.mlps):
            x = x + attention(x)
            x = x + mlp(x)
        return x


@benchbench.hookimpl
def benchbench_register_models(register):
    register("tiny_timm_vit", TinyViT, input_shape=(20, 48))
'''


def test_a_transformer_from_a_plugin_counts_scaled_dot_product_attention(plugins: PluginFiles) -> None:
    plugins.write("timmish", TIMM_STYLE)
    suite = {"name": "t", "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["params", "flops"]},
             "benchmarks": [{"model": "tiny_timm_vit"}]}
    [record] = benchbench.run_suite(suite, plugins=[str(plugins.path / "timmish.py")], quiet=True).records
    assert record["status"] == "ok", record["error"]
    tokens, dim, depth = 20, 48, 3
    expected = vit_core_macs(tokens, dim, 4 * dim, depth, patch_macs=0, head_macs=0)
    assert record["flops_core"] == record["flops_dispatch"] == record["flops"] == expected
    assert record["flops_by_category"]["attention"] == depth * 2 * tokens * tokens * dim
    assert record["flops_uncounted"] is None and record["warnings"] == []


# --------------------------------------------------------------------------- the cross-check


class TensordotHead(nn.Module):
    """A linear layer written as ``torch.tensordot``: fvcore has no formula for it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(8 * 6 * 6, 512))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensordot(self.conv(x).flatten(1), self.weight, dims=([1], [0]))


class MatmulFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # pragma: no cover - counting runs forward only
        raise NotImplementedError


class CustomFunctionHead(TensordotHead):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return MatmulFunction.apply(self.conv(x).flatten(1), self.weight)


@pytest.mark.parametrize(("model", "hidden"), [(TensordotHead(), "tensordot"), (CustomFunctionHead(), "MatmulFunction")],
                         ids=["tensordot", "autograd_function"])
def test_matmuls_inside_an_uncounted_op_fail_loudly(model: nn.Module, hidden: str) -> None:
    """``flops`` stays fvcore's (too low), but a field and a warning say so and name the operator."""
    fields, warnings = measure(model, torch.randn(2, 4, 6, 6))
    conv, head = 4 * 8 * 9 * 36, 8 * 6 * 6 * 512
    assert fields["flops"] == fields["flops_core"] == conv  # the matmul is not in fvcore's count
    assert fields["flops_dispatch"] == conv + head  # the dispatcher sees the mm inside
    assert hidden in fields["flops_uncounted"] and f"({conv / (conv + head) - 1:+.1%})" in fields["flops_uncounted"]
    [warning] = warnings
    assert warning.startswith("flops is too low: fvcore 10.4k vs FlopCounterMode 158k") and hidden in warning


def test_an_uncounted_matmul_op_is_named_even_when_no_counter_sees_inside() -> None:
    fields = {"conv": 100}
    uncounted = flops._uncounted(flopcount.Count(100, fields, {"lstm": 2, "add": 3}), flopcount.Count(100, {"convolution": 100}))
    assert uncounted == "fvcore does not count lstm×2 (operators that do matrix products)"
    assert flops._uncounted(flopcount.Count(100, fields, {"add": 3, "max_pool2d": 1}), None) is None


def test_a_model_fvcore_cannot_trace_gets_the_dispatch_count() -> None:
    class Result:
        def __init__(self, logits: torch.Tensor) -> None:
            self.logits = logits

    class ObjectOutput(nn.Module):  # jit tracing accepts tensors, tuples, lists and dicts only
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> Result:
            return Result(self.fc(x))

    fields, warnings = measure(ObjectOutput(), torch.randn(3, 16))
    assert fields["flops"] == fields["flops_core"] == fields["flops_dispatch"] == 16 * 4
    assert fields["flops_source"] == "dispatch" and fields["flops_unsupported"] is None
    [warning] = warnings
    assert warning.startswith("flops: fvcore could not trace the model (RuntimeError: Only tuples, lists and Variables")
    assert "flops is FlopCounterMode's count instead" in warning


def test_a_model_with_a_compiled_part_is_counted_by_the_dispatcher() -> None:
    model = nn.Sequential(torch.compile(nn.Linear(16, 8), backend="eager"), nn.ReLU())  # jit tracing refuses dynamo
    fields, warnings = measure(model, torch.randn(2, 16))
    assert fields["flops"] == 16 * 8 and fields["flops_source"] == "dispatch"
    assert "fvcore could not trace the model" in warnings[0]


def test_a_benchmark_under_compile_counts_the_model_as_written() -> None:
    """The suite's ``compile:`` wraps the model; fvcore traces the eager module inside, as without it."""
    conv = {"model": "conv", "args": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
            "input_shape": [4, 8, 8]}
    data = {"name": "t", "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["flops"]},
            "benchmarks": [{"name": "eager", **conv}, {"name": "compiled", **conv, "compile": {"backend": "eager"}}]}
    eager, compiled = benchbench.run_suite(data, quiet=True).records
    assert compiled["status"] == "ok", compiled["error"]
    assert compiled["flops"] == eager["flops"] == 4 * 4 * 9 * 64 and compiled["flops_source"] == "fvcore"
    assert not any("fvcore" in w for w in compiled["warnings"])


def test_the_dispatch_count_runs_on_meta_tensors_and_on_real_ones_when_values_matter() -> None:
    class Branchy(nn.Module):  # data-dependent control flow: meta tensors have no values to branch on
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) if x.sum().item() > 0 else self.b(x)

    model, x = Branchy(), torch.ones(1, 8)
    assert flopcount.dispatch_count(model, x, meta=True).total == 8 * 8 + 8 * 2  # counted on its own tensors
    vit = small_vit().eval()
    assert flopcount.dispatch_count(vit, torch.randn(1, 3, 32, 32), meta=True).total == SMALL_VIT_CORE
    assert not any(t.is_meta for t in [*vit.parameters(), *vit.buffers(), *model.parameters()])


def test_counting_a_train_mode_model_leaves_it_as_it_was() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fields, _ = measure(model, torch.randn(2, 3, 8, 8), mode="train")
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert fields["flops_core"] == fields["flops_dispatch"] == 3 * 4 * 9 * 36


def test_operators_fall_into_categories() -> None:
    assert [flopcount.category(op) for op in ("conv", "aten::_convolution", "convolution", "linear", "addmm", "bmm",
                                              "einsum", "scaled_dot_product_attention",
                                              "_scaled_dot_product_flash_attention_for_cpu", "_native_multi_head_attention",
                                              "batch_norm", "layer_norm", "adaptive_avg_pool2d", "upsample_bilinear2d")] == [
        "conv", "conv", "conv", "matmul", "matmul", "matmul", "matmul", "attention", "attention", "attention",
        "norm", "norm", "pool", "other"]
    assert flopcount.by_category({"conv": 5, "linear": 2, "batch_norm": 1}) == {
        "conv": 5, "matmul": 2, "attention": 0, "norm": 1, "pool": 0, "other": 0}


def test_formulas_of_attention() -> None:
    assert flopcount.attention_macs([2, 3, 10, 8], [2, 3, 12, 8], [2, 3, 12, 4]) == 2 * 3 * 10 * 12 * (8 + 4)
    e, length, source = 16, 5, 7
    assert flopcount.multi_head_attention_macs([2, length, e], [2, source, e], [2, source, e]) == 2 * (
        length * e * e + 2 * source * e * e + length * e * e + 2 * length * source * e)


def test_big_models_are_counted_on_the_meta_device() -> None:
    from torchvision.models import regnet_y_400mf

    model = flopcount.on_meta(regnet_y_400mf)  # its builder computes widths with torch: not under torch.device("meta")
    assert all(p.is_meta for p in model.parameters()) and not model.training
    count = flopcount.dispatch_count(model, torch.empty(1, 3, 224, 224, device="meta"))
    assert round(count.total / 1e9, 3) == 0.402  # torchvision's published _ops


# --------------------------------------------------------------------------- report --explain flops


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    plugin = PluginFiles(folder).write("timmish", TIMM_STYLE)
    data = tiny_suite(metrics=["params", "flops"])
    data["benchmarks"].append({"name": "vit", "model": "tiny_timm_vit"})
    data["benchmarks"].append({"name": "timed", "model": "conv", "args": {"in_channels": 2, "out_channels": 2, "kernel_size": 1},
                               "input_shape": [2, 4, 4], "metrics": ["params"]})
    path = folder / "tiny.json"
    benchbench.run_suite(data, plugins=[str(plugin)], quiet=True).write_json(path)
    return path


def test_explain_flops_breaks_each_count_down(run_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_file), "--explain", "flops"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("benchmark"))
    assert header.split() == ["benchmark", "flops", "core", "core_share", "conv", "matmul", "attention", "norm", "pool",
                              "other", "dispatch", "unsupported"]
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in ("std", "sep", "vit")}
    assert set(rows) == {"std", "sep", "vit"}  # 'timed' counted no FLOPs
    assert rows["std"][1:5] == ["36.9k", "36.9k", "100.0%", "36.9k"] and rows["std"][10] == "="
    assert rows["vit"][6] != "0" and rows["vit"][10] == "="  # attention counted, and the dispatcher agrees
    assert "core = conv + matmul" in out and "torchvision's published _ops" in out


def test_explain_flops_as_data_and_from_older_run_files(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_file), "--explain", "flops", "--format", "json"]) == 0
    rows = {r["benchmark"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["vit"]["core"] == rows["vit"]["dispatch"] and rows["vit"]["attention"] > 0
    assert main(["report", str(run_file), str(run_file), "--explain", "flops", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(table) == 6 and table[0]["run"].startswith("tiny") and int(table[0]["core"]) == 8 * 8 * 9 * 64
    run = RunResult.read_json(run_file)  # a run file from before the categories: from flops_by_operator
    for record in run.records:
        for key in ("flops_by_category", "flops_core", "flops_dispatch", "flops_source", "flops_uncounted"):
            record.pop(key, None)
    old = tmp_path / "old.json"
    run.write_json(old)
    assert main(["report", str(old), "--explain", "flops", "--format", "json"]) == 0
    rows = {r["benchmark"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["vit"]["attention"] > 0 and rows["vit"]["dispatch"] is None and rows["std"]["core"] == 8 * 8 * 9 * 64


def test_explain_bad_input(run_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_file), "--explain", "latency"]) == 2
    assert "--explain 'latency': only flops can be explained" in capsys.readouterr().err
    assert main(["report", str(run_file), "--explain", "flop"]) == 2
    assert "(did you mean 'flops'?)" in capsys.readouterr().err
    params_only = tmp_path / "params.json"
    benchbench.run_suite(tiny_suite(metrics=["params"]), quiet=True).write_json(params_only)
    assert main(["report", str(params_only), "--explain", "flops"]) == 2
    assert "has a FLOP count (run the suite with the flops metric" in capsys.readouterr().err


def test_html_report_has_the_flops_breakdown(run_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "report.html"
    assert main(["report", str(run_file), "--html", str(out)]) == 0
    page = out.read_text()
    assert "<h2>FLOPs by kind of operator</h2>" in page and "<th>attention</th>" in page


def test_flops_uncounted_is_a_column_only_when_something_is_missing(plugins: PluginFiles) -> None:
    plugins.write("hidden", '''
        import torch
        from torch import nn
        import benchbench


        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.weight = nn.Parameter(torch.randn(16, 8))

            def forward(self, x):
                return torch.tensordot(x, self.weight, dims=([1], [0]))


        @benchbench.hookimpl
        def benchbench_register_models(register):
            register("tensordot_head", Head, input_shape=(16,))
    ''')
    suite = {"name": "t", "defaults": {"device": "cpu", "batch_size": 2, "metrics": ["flops"]},
             "benchmarks": [{"model": "tensordot_head"}, {"model": "conv", "args": {"in_channels": 2, "out_channels": 2,
                                                                                  "kernel_size": 1}, "input_shape": [2, 4, 4]}]}
    run = benchbench.run_suite(suite, plugins=[str(plugins.path / "hidden.py")], quiet=True)
    hidden, fine = run.records
    assert "fvcore does not count tensordot" in hidden["flops_uncounted"] and fine["flops_uncounted"] is None
    from benchbench.reporters import table

    t = table(run, {})
    assert "flops_uncounted" in t.headers and any("flops is too low" in n for n in t.notes)
    assert not math.isnan(hidden["flops_dispatch"]) and hidden["flops_dispatch"] == 16 * 8
