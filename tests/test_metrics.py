"""The four built-in cost metrics: params, flops, latency, memory (CPU here; CUDA when present)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import benchbench
from benchbench import timing
from benchbench.context import MeasureContext
from benchbench.metrics import flops, latency, memory, params
from benchbench.registry import MetricEntry
from benchbench.spec import BenchmarkSpec
from benchbench_plugins import layers
from tests.helpers import TINY_LATENCY, tiny_suite


def context(model: nn.Module, inputs: torch.Tensor, *, mode: str = "eval", device: str = "cpu", **options: Any) -> MeasureContext:
    device_ = torch.device(device)
    model = model.to(device_).train(mode == "train")
    return MeasureContext(
        model=model,
        inputs=inputs.to(device_),
        device=device_,
        batch_size=inputs.shape[0],
        mode=mode,
        benchmark=BenchmarkSpec(name="t", model="t"),
        options=options,
    )


class Twice(nn.Module):
    """Allocates exactly its output: a known answer for the memory metric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class Sleepy(nn.Module):
    """Takes at least ``ms`` milliseconds per call, alternating with ``other_ms`` if given."""

    def __init__(self, ms: float, other_ms: float | None = None) -> None:
        super().__init__()
        self.times = [ms, other_ms if other_ms is not None else ms]
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.times[self.calls % 2] / 1e3)
        self.calls += 1
        return x


# --------------------------------------------------------------------------- params


def test_params_counts_shared_weights_once_and_separates_frozen_ones() -> None:
    shared = nn.Linear(4, 4)
    frozen = nn.Linear(4, 2)
    frozen.requires_grad_(False)
    model = nn.Sequential(shared, nn.ReLU(), shared, frozen, nn.BatchNorm1d(2))
    out = params.measure(context(model, torch.randn(3, 4)))
    assert out["params"] == 20 + 10 + 4  # BatchNorm's affine weights count, its running stats do not
    assert out["trainable_params"] == 20 + 4
    assert out["param_bytes"] == 4 * out["params"]


def test_params_of_the_seed_layer() -> None:
    conv = layers.StandardConv2d(3, 64, 7, stride=2, padding=3)
    assert params.measure(context(conv, torch.randn(1, 3, 16, 16)))["params"] == 9_472


# --------------------------------------------------------------------------- flops


def test_flops_are_per_sample_whatever_the_batch() -> None:
    conv = layers.StandardConv2d(4, 8, 3, padding=1)
    one = flops.count(conv, torch.randn(1, 4, 6, 6))[0]
    assert one == 4 * 8 * 9 * 36  # one multiply-add = 1 flop, bias not counted by fvcore
    ctx = context(conv, torch.randn(5, 4, 6, 6))
    assert flops.measure(ctx)["flops"] == one


def test_separable_over_standard_at_512_channels_is_1_over_512_plus_1_over_9() -> None:
    args = dict(in_channels=512, out_channels=512, kernel_size=3, padding=1)
    x = torch.randn(1, 512, 4, 4)
    standard = flops.count(layers.StandardConv2d(**args), x)[0]
    separable = flops.count(layers.DepthwiseSeparableConv2d(**args), x)[0]
    assert separable / standard == pytest.approx(1 / 512 + 1 / 9, rel=1e-12)


def test_unsupported_ops_are_listed_not_silently_zero() -> None:
    total, by_op, unsupported = flops.count(layers.PixelShuffleUpsample(4, 2, 2).eval(), torch.randn(1, 4, 8, 8))
    assert unsupported == {"pixel_shuffle": 1}
    assert total == by_op["conv"] == 4 * 8 * 9 * 64
    residual = flops.count(layers.Bottleneck(16, 16).eval(), torch.randn(1, 16, 8, 8))[2]
    assert residual.get("add") == 1


FAMILIES = [
    (layers.StandardConv2d(8, 16, 3, padding=1), (8, 12, 12)),
    (layers.DepthwiseSeparableConv2d(8, 16, 3, padding=1), (8, 12, 12)),
    (layers.DilatedConv2d(8, 16, 3, dilation=2), (8, 12, 12)),
    (layers.Bottleneck(16, 16, mid_channels=4), (16, 8, 8)),
    (layers.Bottleneck(8, 16, stride=2), (8, 8, 8)),
    (layers.InvertedResidual(8, 8, expansion=6), (8, 8, 8)),
    (layers.TransposedConv2d(8, 4, 4, stride=2, padding=1), (8, 6, 6)),
    (layers.PixelShuffleUpsample(8, 2, 4), (8, 6, 6)),
]


@pytest.mark.parametrize(("model", "shape"), FAMILIES, ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else "")
def test_fvcore_agrees_with_torch_flop_counter(model: nn.Module, shape: tuple[int, ...]) -> None:
    """FlopCounterMode counts 2 per multiply-add and only matmul-like ops (no BatchNorm)."""
    model.eval()
    x = torch.randn(1, *shape)
    _, by_op, _ = flops.count(model, x)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    torch_convs = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
    assert torch_convs == counter.get_total_flops() > 0
    assert 2 * by_op["conv"] == torch_convs
    fields = flops.measure(context(model, torch.randn(2, *shape)))  # the metric's cross-check: the same numbers
    assert fields["flops_core"] == fields["flops_dispatch"] == by_op["conv"] == fields["flops_by_category"]["conv"]
    assert fields["flops"] == sum(by_op.values()) and fields["flops_uncounted"] is None


# --------------------------------------------------------------------------- latency


def test_latency_of_a_step_with_a_known_duration() -> None:
    ctx = context(Sleepy(5.0), torch.zeros(4, 1), **{**latency.OPTIONS, "min_run_time_s": 0.1, "min_runs": 5})
    out = latency.measure(ctx)
    assert 5.0 <= out["latency_ms"] < 25.0  # sleep never returns early; a loaded machine adds
    assert out["latency_runs"] == len(out["latency_samples_ms"]) >= 5
    assert out["latency_block_size"] in (1, 2)  # 10 ms blocks of >= 5 ms steps
    assert out["throughput"] == pytest.approx(4 / (out["latency_ms"] / 1e3))
    assert out["latency_timer"].startswith(f"cpu: time.perf_counter_ns over blocks of {out['latency_block_size']} ")


def test_summary_statistics() -> None:
    stats = timing.summarize([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (stats.median, stats.iqr, stats.mean, stats.runs) == (3.0, 2.0, 3.0, 5)
    with pytest.raises(ValueError):
        timing.summarize([])


def test_fast_steps_are_timed_in_calibrated_blocks() -> None:
    ctx = context(nn.Identity(), torch.zeros(1), **{**latency.OPTIONS, "min_run_time_s": 0.05, "min_block_s": 0.005})
    out = latency.measure(ctx)
    block = out["latency_block_size"]
    assert block > 10
    assert out["latency_ms"] * block >= 0.005 * 1e3 * 0.5  # a block lasts about min_block_s


def test_noisy_samples_raise_one_warning_about_the_worst_round() -> None:
    options = {**latency.OPTIONS, "min_run_time_s": 0.05, "min_runs": 12, "min_block_s": 0.0}
    ctx = context(Sleepy(1.0, other_ms=4.0), torch.zeros(1), **options)
    noisy = {**latency.measure(ctx), "batch_size": 1}
    assert noisy["latency_iqr_ms"] > 1.0
    noisy["latency_cpu_contention"] = 0.0  # whatever the machine did meanwhile: only the noise is tested here
    [warning] = latency.merge_rounds([noisy])["warnings"]
    assert "latency is noisy" in warning and "> 10%" in warning and "round" not in warning
    steady = {**noisy, "latency_samples_ms": [1.0] * 12}
    [warning] = latency.merge_rounds([steady, noisy, steady, noisy, steady])["warnings"]  # one, not one per round
    assert "(round 2 of 5, the worst)" in warning


def test_a_busy_cpu_while_timing_is_measured_and_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchbench import environment

    monkeypatch.setattr(latency, "available_cores", lambda: 2)
    assert latency.contention(0.0, 2) == 0 and latency.contention(1.0, 1) == 0  # a free core for the one thread
    assert latency.contention(1.0, 2) == 0.5 and latency.contention(2.0, 2) == 1.0
    assert latency.contention(None, 2) is None
    busy = {"latency_samples_ms": [1.0] * 12, "batch_size": 1, "threads": 2, "latency_cpu_contention": 0.5,
            "latency_other_cores": 1.0}
    calm = {**busy, "latency_cpu_contention": 0.0, "latency_other_cores": 0.0}
    merged = latency.merge_rounds([calm, busy, calm])
    [warning] = merged["warnings"]
    assert "busy CPU while timing: other work kept 1.0 of 2 core(s) busy, taking 50%" in warning and "round 2 of 3" in warning
    assert merged["latency_round_cpu_contention"] == [0.0, 0.5, 0.0]
    assert environment.available_cores() >= 1
    ctx = context(nn.Identity(), torch.zeros(1), **{**latency.OPTIONS, "min_run_time_s": 0.2})
    out = latency.measure(ctx)
    assert out["latency_cpu_contention"] is None or 0 <= out["latency_cpu_contention"] <= 1


def test_time_budget_caps_the_runs_and_says_so() -> None:
    options = {**latency.OPTIONS, "warmup_s": 0.0, "min_runs": 50, "max_run_time_s": 0.02, "min_block_s": 0.0}
    ctx = context(Sleepy(5.0), torch.zeros(1), **options)
    out = latency.measure(ctx)
    assert out["latency_runs"] < 50
    assert any("max_run_time_s" in w for w in ctx.warnings)


def test_train_mode_times_forward_and_backward() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    ctx = context(model, torch.randn(8, 64), mode="train", **{**latency.OPTIONS, "min_run_time_s": 0.02})
    out = latency.measure(ctx)
    assert out["latency_ms"] > 0
    assert all(p.grad is None for p in model.parameters())  # gradients are not left behind


@pytest.mark.parametrize(
    ("iteration_ms", "expected"),
    [
        (0.005, (10_000, 10_000)),  # tiny kernel: both capped by max_runs, not 40k warm-up steps
        (1.0, (200, 1000)),  # 0.2 s of warm-up, 1 s of timed steps
        (200.0, (1, 10)),  # slow step: min_runs wins over min_run_time_s
        (10_000.0, (1, 6)),  # very slow step: max_run_time_s (60 s) caps the timed steps
    ],
)
def test_cuda_run_planning(iteration_ms: float, expected: tuple[int, int]) -> None:
    budget = {k: latency.OPTIONS[k] for k in ("warmup_s", "min_run_time_s", "min_runs", "max_runs", "max_run_time_s")}
    assert timing.plan_cuda_runs(iteration_ms, **budget) == expected


# --------------------------------------------------------------------------- memory


def test_cpu_memory_counts_what_one_step_allocates() -> None:
    out = memory.measure(context(Twice(), torch.randn(10, 1000)))
    assert 40_000 <= out["peak_memory_bytes"] < 40_000 + 1024  # the output; the input was there before
    assert out["memory_method"].startswith("cpu: torch.profiler memory events")


def test_cpu_memory_peak_is_the_high_water_mark_not_the_end_state() -> None:
    class Temporaries(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            first = x.repeat(10, 1)  # 40 kB, freed before the second is made
            total = first.sum()
            del first
            second = x.repeat(10, 1)  # another 40 kB
            return total + second.sum()

    peak = memory.measure(context(Temporaries(), torch.randn(1, 1000)))["peak_memory_bytes"]
    assert 40_000 <= peak < 60_000  # one temporary at a time, not the 80 kB sum of both


def test_train_mode_needs_more_memory_than_eval() -> None:
    def model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))

    x = torch.randn(32, 256)
    eval_bytes = memory.measure(context(model(), x))["peak_memory_bytes"]
    train_bytes = memory.measure(context(model(), x, mode="train"))["peak_memory_bytes"]
    assert train_bytes > eval_bytes > 0


# --------------------------------------------------------------------------- registration


def test_metrics_are_plugins_with_ratio_fields_and_options() -> None:
    from benchbench.manager import PluginManager

    metrics = PluginManager(autoload=False).registry.table(MetricEntry)
    assert metrics["params"].ratio_fields == ("params",)
    assert metrics["flops"].ratio_fields == ("flops",)
    assert metrics["latency"].ratio_fields == ("latency_ms",)
    assert metrics["memory"].ratio_fields == ("peak_memory_bytes",)
    assert set(metrics["latency"].options) >= set(TINY_LATENCY) | {"flush_l2", "noise_threshold"}


def test_metric_option_values_are_type_checked() -> None:
    from benchbench.errors import SuiteError

    data = tiny_suite()
    data["defaults"]["metric_options"] = {"latency": {"min_runs": "many", "flush_l2": 1, "min_run_time_s": 2}}
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite(data)
    assert error.value.problems == [  # once, under defaults, not once per benchmark
        "defaults: key 'metric_options.latency.min_runs' must be like its default 10 (int), got 'many'",
        "defaults: key 'metric_options.latency.flush_l2' must be like its default True (bool), got 1",
    ]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"min_runs": None}, "min_runs' must be like its default 10 (int), got None"),
        ({"min_block_s": float("nan")}, "min_block_s' must be like its default 0.01 (float), got nan"),
        ({"max_runs": 0}, "max_runs must be at least 1, got 0"),
        ({"warmup_s": -1}, "warmup_s must not be negative, got -1"),
        ({"noise_threshold": 0}, "noise_threshold must be above 0"),
        ({"min_runs": 20, "max_runs": 5}, "max_runs (5) is below min_runs (20)"),
    ],
)
def test_latency_option_ranges(options: dict[str, Any], expected: str) -> None:
    from benchbench.errors import SuiteError

    data = tiny_suite()
    data["benchmarks"][1]["metric_options"] = {"latency": options}
    with pytest.raises(SuiteError) as error:
        benchbench.run_suite(data)
    [problem] = error.value.problems
    assert problem.startswith("benchmark 'sep' (#2): key 'metric_options.latency") and expected in problem


def test_benchmark_metric_options_add_to_the_defaults_rather_than_replace_them() -> None:
    from benchbench.manager import PluginManager
    from benchbench.suite import load_suite

    data = tiny_suite()
    data["benchmarks"][1]["metric_options"] = {"latency": {"min_runs": 7}}
    sep = load_suite(data, PluginManager()).benchmarks[1]
    assert sep.metric_options["latency"] == {**TINY_LATENCY, "min_runs": 7}


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
def test_cuda_latency_uses_events_and_flushes_l2() -> None:
    ctx = context(layers.StandardConv2d(16, 16, 3, padding=1), torch.randn(4, 16, 32, 32), device="cuda",
                  **{**latency.OPTIONS, "min_run_time_s": 0.05})
    out = latency.measure(ctx)
    assert out["latency_ms"] > 0 and out["latency_block_size"] == 1
    assert out["latency_runs"] >= 10
    assert out["latency_timer"].startswith("cuda: CUDA events around each step, 256 MiB written")
    ctx.options = {**ctx.options, "flush_l2": False}
    assert "flush" not in latency.measure(ctx)["latency_timer"]


@pytest.mark.cuda
def test_cuda_memory_counts_what_one_step_allocates() -> None:
    out = memory.measure(context(Twice(), torch.randn(10, 1000), device="cuda"))
    assert 40_000 <= out["peak_memory_bytes"] < 40_000 + 2**20  # the caching allocator rounds up
    assert out["memory_method"].startswith("cuda: torch.cuda.max_memory_allocated")


@pytest.mark.cuda
def test_whole_suite_on_cuda() -> None:
    run = benchbench.run_suite(tiny_suite(device="cuda"))
    assert [r["status"] for r in run.records] == ["ok", "ok"], [r["error"] for r in run.records]
    assert all(r["device"].startswith("cuda") and r["peak_memory_bytes"] > 0 for r in run.records)
    assert run.environment["gpus"] and run.environment["gpus"][0]["compute_capability"]
