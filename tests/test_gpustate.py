"""The GPU's state while timing (issue 23, item 2): NVML sampled during each CUDA round, throttled
steps flagged, counted and left out of the statistics; no NVML is a stated reason, never a crash.

No GPU is needed: NVML is a fake module playing back a trace (tests/fake_nvml.py), and the
throttle filter is a pure function run on traces written as NVML reports them."""

from __future__ import annotations

import sys
import time

import pytest

from benchbench import gpustate, timing
from benchbench.gpustate import Sample, Trace
from benchbench.metrics import latency
from tests import fake_nvml


@pytest.fixture(autouse=True)
def fresh_nvml() -> object:
    gpustate.reset()
    yield
    gpustate.reset()


def use(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", module)


def test_no_binding_is_a_reason_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, None)  # import pynvml raises ImportError
    reason = gpustate.open_gpu(0)
    assert isinstance(reason, str) and "nvidia-ml-py" in reason and 'torch-benchbench[gpu]' in reason


def test_no_driver_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, fake_nvml.module(init_error=fake_nvml.NVMLError_LibraryNotFound("NVML Shared Library Not Found")))
    reason = gpustate.open_gpu(0)
    assert isinstance(reason, str) and "NVML could not start" in reason and "Library Not Found" in reason
    assert gpustate.open_gpu(0) == reason  # remembered: nvmlInit is not retried for every benchmark


def test_a_gpu_nvml_does_not_know_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, fake_nvml.module([fake_nvml.FakeGpu()]))
    reason = gpustate.open_gpu(3)
    assert isinstance(reason, str) and "does not find CUDA device 3" in reason


def test_the_gpu_is_found_by_uuid_first(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_nvml.module([fake_nvml.FakeGpu(name="first"), fake_nvml.FakeGpu(name="second")])
    use(monkeypatch, fake)
    gpu = gpustate.open_gpu(0, "1")  # CUDA_VISIBLE_DEVICES=1: torch's device 0 is NVML's 1
    assert isinstance(gpu, gpustate.Gpu) and gpu.name == "second" and gpu.default_sm_clock_mhz == 1980.0
    assert fake.calls.get("nvmlDeviceGetHandleByIndex") is None


def test_the_sampler_records_clock_temperature_and_power(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, fake_nvml.module([fake_nvml.FakeGpu(clock=lambda t: 1980.0 - 100 * (t > 0.05))]))
    gpu = gpustate.open_gpu(0)
    assert isinstance(gpu, gpustate.Gpu)
    with gpustate.Sampler(gpu, interval=0.005) as sampler:
        time.sleep(0.15)
    samples = sampler.trace.samples
    assert len(samples) >= 5 and sampler.error is None
    assert [s.t_s for s in samples] == sorted(s.t_s for s in samples)
    assert samples[0].sm_clock_mhz == 1980.0 and samples[-1].sm_clock_mhz == 1880.0
    assert {s.temperature_c for s in samples} == {45.0} and {s.power_w for s in samples} == {300.0}
    columns = sampler.trace.as_fields(samples[0].t_s)
    assert columns["t_s"][0] == 0.0 and len(columns["power_w"]) == len(samples)
    assert Trace.from_fields(columns, samples[0].t_s).samples[-1].sm_clock_mhz == 1880.0


def test_an_nvml_error_mid_round_ends_the_trace_not_the_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    def clock(t: float) -> float:
        if t > 0.03:
            raise fake_nvml.NVMLError("GPU is lost")
        return 1980.0

    use(monkeypatch, fake_nvml.module([fake_nvml.FakeGpu(clock=clock)]))
    gpu = gpustate.open_gpu(0)
    assert isinstance(gpu, gpustate.Gpu)
    with gpustate.Sampler(gpu, interval=0.005) as sampler:
        time.sleep(0.1)
    assert sampler.error is not None and "GPU is lost" in sampler.error and sampler.trace.samples


def test_unsupported_readings_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, fake_nvml.module([fake_nvml.FakeGpu(default_clock=None, temperature=None, energy=False)]))
    gpu = gpustate.open_gpu(0)
    assert isinstance(gpu, gpustate.Gpu)
    assert gpu.default_sm_clock_mhz is None and gpustate.clock_limit(gpu) is None
    assert gpu.sample().temperature_c is None
    assert "no total-energy counter" in (gpu.energy_counter() or "")


# A round as NVML reports it every 20 ms: 1980 MHz, a thermal dip to 1410 MHz from 0.50 s to
# 0.60 s (at 83 C), and back. Steps of 0.4 ms start every 1 ms (half a millisecond in).
DIP = Trace([Sample(i * 0.02, 1410.0 if 0.5 <= i * 0.02 <= 0.6 else 1980.0, 83.0 if 0.5 <= i * 0.02 <= 0.6 else 70.0, 690.0)
             for i in range(51)])
STARTS = [i * 0.001 + 0.0005 for i in range(1000)]
DURATIONS = [0.4] * 1000


def test_steps_bracketed_by_a_low_clock_are_throttled() -> None:
    mask = gpustate.throttled_steps(STARTS, DURATIONS, DIP, limit_mhz=0.9 * 1980)
    throttled = [i for i, hot in enumerate(mask) if hot]
    # The last 1980 MHz reading before the dip is at 0.48 s, the first after it at 0.62 s: each step
    # that starts or ends between them has a low reading bracketing it.
    assert throttled == list(range(480, 620))
    assert gpustate.step_clocks(STARTS[:1], DURATIONS[:1], DIP) == [1980.0]
    assert gpustate.step_clocks(STARTS[:1], DURATIONS[:1], Trace()) == [None]  # nothing sampled: not judged


def test_throttled_samples_are_counted_left_out_and_warned() -> None:
    samples = list(DURATIONS)
    for i in range(480, 620):
        samples[i] = 0.42  # a little slower while throttled (still within the brackets)
    filtered = gpustate.filter_throttled(samples, STARTS, DIP, 0.9 * 1980)
    assert len(filtered.throttled) == 140 and set(filtered.throttled) == {0.42}
    assert filtered.kept == [0.4] * 860
    assert filtered.warning is not None
    assert "140 of 1000 timed steps" in filtered.warning and "1410 MHz" in filtered.warning
    assert "83 C" in filtered.warning and "left out of the statistics" in filtered.warning


def test_a_cool_gpu_keeps_every_sample() -> None:
    cool = Trace([Sample(i * 0.02, 1980.0 if i % 2 else 1830.0, 60.0, 500.0) for i in range(51)])  # above 90%
    filtered = gpustate.filter_throttled([1.0] * 1000, STARTS, cool, 0.9 * 1980)
    assert filtered.kept == [1.0] * 1000 and filtered.throttled == [] and filtered.warning is None


def test_all_throttled_keeps_them_and_says_so() -> None:
    hot = Trace([Sample(i * 0.02, 1200.0, 90.0, 700.0) for i in range(51)])
    filtered = gpustate.filter_throttled([1.0] * 1000, STARTS, hot, 0.9 * 1980)
    assert filtered.kept == [1.0] * 1000 and len(filtered.throttled) == 1000
    assert "all kept" in (filtered.warning or "")


def test_a_round_records_its_trace_and_throttled_count(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, fake_nvml.module([fake_nvml.FakeGpu()]))
    gpu = gpustate.open_gpu(0)
    assert isinstance(gpu, gpustate.Gpu)
    sampler = gpustate.Sampler(gpu)
    sampler.trace = DIP
    result = timing.Timing(list(DURATIONS), 1, "cuda: ...", starts_s=STARTS)
    fields = latency.gpu_state_fields(result, gpu, sampler, 0.9)
    assert fields["latency_throttled_samples"] == 140 and len(fields["kept"]) == 860
    assert fields["latency_gpu_trace"]["sm_clock_mhz"][25] == 1410.0
    assert fields["latency_sm_clock_limit_mhz"] == pytest.approx(1782.0)
    assert fields["latency_gpu_state"].startswith("NVML, NVIDIA H200")
    merged = latency.merge_rounds([
        {"batch_size": 8, "latency_samples_ms": [1.0, 1.1], **{k: v for k, v in fields.items() if k.startswith("latency_g")},
         "latency_throttled_samples": 140},
        {"batch_size": 8, "latency_samples_ms": [1.0, 1.2], "latency_gpu_state": "...", "latency_gpu_trace": None,
         "latency_throttled_samples": 2},
    ])
    assert merged["latency_throttled_samples"] == 142 and len(merged["latency_round_gpu_traces"]) == 2


def test_without_nvml_a_round_says_why_and_records_no_trace() -> None:
    fields = latency.gpu_state_fields(timing.Timing([1.0], 1, "cuda"), "the NVML binding is not installed", None, 0.9)
    assert fields == {"latency_gpu_state": "not sampled: the NVML binding is not installed"}


def test_cpu_latency_records_no_gpu_state() -> None:
    import benchbench
    from tests.helpers import tiny_suite

    record = benchbench.run_suite(tiny_suite(metrics=["latency"]), quiet=True).records[0]
    assert record["status"] == "ok"
    assert not any(k.startswith(("latency_gpu", "latency_throttled")) for k in record)


@pytest.mark.cuda
def test_a_cuda_round_keeps_the_clock_trace_and_the_throttled_count() -> None:
    import benchbench
    from tests.helpers import tiny_suite

    record = benchbench.run_suite(tiny_suite(metrics=["latency"], device="cuda"), quiet=True).records[0]
    assert record["status"] == "ok", record.get("error")
    gpustate.reset()
    if isinstance(gpustate.nvml(), str):  # no binding or driver here: said, and nothing sampled
        assert record["latency_gpu_state"].startswith("not sampled: ") and "latency_gpu_trace" not in record
        return
    trace = record["latency_gpu_trace"]
    assert len(trace["t_s"]) >= 2 and all(c > 0 for c in trace["sm_clock_mhz"])
    assert record["latency_throttled_samples"] is None or record["latency_throttled_samples"] >= 0
    assert record["latency_gpu_state"].startswith("NVML, ")


@pytest.mark.cuda
def test_the_step_starts_follow_the_gpu_and_the_device_time_hides_launches() -> None:
    import torch

    device = torch.device("cuda")
    a = torch.randn(256, 256, device=device)

    def step() -> None:
        for _ in range(20):  # 20 tiny kernels: launch-bound
            a.add_(1e-6)

    result = timing.time_cuda(step, device, warmup_s=0.05, min_run_time_s=0.1, min_runs=20)
    starts = result.starts_s or []
    assert len(starts) == len(result.samples_ms) and starts == sorted(starts)
    assert starts[-1] - starts[0] >= sum(result.samples_ms[:-1]) / 1e3 * 0.99  # steps do not overlap
    assert 0 < timing.device_time_ms(step, device, launch_ms=timing.summarize(result.samples_ms).median) \
        <= timing.summarize(result.samples_ms).median * 1.05
    stopped = timing.time_cuda(step, device, warmup_s=0.05, min_run_time_s=100.0, max_run_time_s=20.0, min_runs=20,
                               target_uncertainty=0.05)
    assert stopped.uncertainty is not None and stopped.uncertainty <= 0.05  # long before min_run_time_s
