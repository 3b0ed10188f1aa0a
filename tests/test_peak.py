"""``benchbench peak`` (benchbench/peak.py): the fastest of several kernels, the arithmetic limit,
and no peak cached from a busy CPU. Tiny kernels, no timing assertions: a busy or quiet CPU is
simulated through the reading the busy rule uses (``timing.OtherWork.cores_busy``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

import benchbench
from benchbench import allocator, environment, peak, timing
from benchbench.cli import main
from benchbench.environment import available_cores
from tests.helpers import tiny_suite

QUICK = {"copy_bytes": 1 << 20, "seconds": 0.02}


def cpu_reads(monkeypatch: pytest.MonkeyPatch, *, busy: bool) -> None:
    """Other work kept every core of this process busy (busy) or none of them (quiet)."""
    monkeypatch.setattr(timing.OtherWork, "cores_busy", lambda self: float(available_cores()) if busy else 0.0)


def claiming(kernel: peak.Kernel, factor: float) -> peak.Kernel:
    """The same step, claiming ``factor`` times its FLOPs: a kernel that is surely the fastest."""
    return peak.Kernel(f"{kernel.name} x{factor:g}", kernel.flops * factor, kernel.make)


def test_the_default_kernels_are_the_layers_the_suites_time() -> None:
    import torch

    names = [k.name for k in peak.default_kernels(cuda=False)]
    assert names[:3] == ["matmul 512x512", "matmul 1024x1024", "matmul 2048x2048"]
    for shape in ("3x3", "3x3 dilation 2", "1x1"):  # efficiency.yaml's standard, dilated and bottleneck layers
        assert f"conv {shape} 512ch 32x32 batch 8" in names and f"conv {shape} 512ch 32x32 batch 8 channels_last" in names
    dilated = peak.conv(4, 3, 8, 2, dilation=2, channels_last=True)
    assert dilated.flops == 2 * 2 * 4 * 4 * 9 * 8 * 8  # 2 FLOPs per multiply-add, as the direct method counts
    out = dilated.make(torch.device("cpu"), torch.float32)()
    assert out.shape == (2, 4, 8, 8) and out.is_contiguous(memory_format=torch.channels_last)  # "same" padding


def test_the_peak_is_the_fastest_of_several_kernels_and_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_reads(monkeypatch, busy=False)
    pinned = []
    monkeypatch.setattr(allocator, "pin_malloc_thresholds", lambda: pinned.append(True) or "pinned")
    kernels = [peak.matmul(32), claiming(peak.conv(4, 3, 8, 1), 1e6), peak.conv(4, 1, 8, 1)]
    entry = peak.measure("cpu", kernels=kernels, **QUICK)
    assert set(entry["kernels"]) == {"float32", "bfloat16"}
    for precision, rates in entry["kernels"].items():
        assert list(rates) == [k.name for k in kernels] and all(rate > 0 for rate in rates.values())
        assert entry["set_by"][precision] == "conv 3x3 4ch 8x8 batch 1 x1e+06"
        assert entry["flops_by_precision"][precision] == max(rates.values())
    assert entry["flops"] == entry["flops_by_precision"]["float32"] == peak.peak_for(entry, "float32")
    assert entry["busy"] is None and entry["cpu_contention"] == 0.0
    assert peak.load("cpu") == entry  # quiet: cached
    assert pinned  # timed in the allocator state of a run (benchbench/allocator.py)


def test_a_peak_measured_on_a_busy_cpu_is_not_cached(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A peak cached under load was too low, and made every later peak_fraction 3-5x."""
    cpu_reads(monkeypatch, busy=True)
    entry = peak.measure("cpu", kernels=[peak.matmul(32)], **QUICK)
    assert entry["busy"].startswith("busy CPU in the `benchbench peak` run: other work took 100% of the CPU")
    assert peak.load("cpu") is None and not peak.cache_path().exists()
    monkeypatch.setattr(peak, "measure", functools.partial(peak.measure, kernels=[peak.matmul(32)], **QUICK))
    assert main(["peak", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert "matmul 32x32" in out  # the figures are shown...
    assert "NOT cached: busy CPU" in err and "every peak_fraction measured against it would be too high" in err
    assert peak.load("cpu") is None  # ... but not kept
    cpu_reads(monkeypatch, busy=False)
    assert main(["peak", "--device", "cpu"]) == 0 and peak.load("cpu") is not None


def test_a_peak_cached_by_an_older_version_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 1 measured the matmul alone: its key (no version) must not find the new peak's place."""
    old_key = peak.device_key("cpu").split("|", 1)[1]
    assert peak.device_key("cpu").startswith(f"peak v{peak.CACHE_VERSION}|") and peak.CACHE_VERSION >= 2
    peak.cache_path().parent.mkdir(parents=True)
    peak.cache_path().write_text(json.dumps({old_key: {"matmul_flops": 97e9, "bandwidth_bytes_per_s": 1e10}}))
    assert peak.load("cpu") is None
    assert peak.peak_for({"matmul_flops": 97e9}, "float32") == 97e9  # run files from before still read


@pytest.mark.parametrize(("flags", "clock", "cores", "flops", "unit"), [
    ({"avx512f", "avx2", "fma"}, (2.6e9, "cpu MHz"), 2, 2 * 16 * 2 * 2 * 2.6e9, "16 float32 lanes (avx512f)"),
    ({"avx", "avx2", "fma"}, (3e9, "cpufreq"), 4, 4 * 8 * 2 * 2 * 3e9, "8 float32 lanes (fma)"),
    ({"fp", "asimd"}, (2e9, "cpufreq"), 1, 1 * 4 * 4 * 2 * 2e9, "4 float32 lanes (asimd)"),
    ({"sse2"}, (2e9, "cpufreq"), 1, None, None),  # no SIMD unit we know: no limit
    ({"avx512f"}, None, 1, None, None),  # no clock: no limit
])
def test_the_arithmetic_limit_from_what_the_processor_says(
    flags: set[str], clock: tuple[float, str] | None, cores: int, flops: float | None, unit: str | None
) -> None:
    limit = peak.arithmetic_limit(flags, clock, cores)
    if flops is None:
        assert limit is None
        return
    assert limit is not None and limit["flops"] == pytest.approx(flops)
    assert unit in limit["formula"] and limit["formula"].startswith(f"{cores} core(s) x ")
    assert limit["clock_source"] == clock[1]


def test_cpu_facts_are_read_from_cpuinfo_and_cpufreq(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cpuinfo, cpufreq = tmp_path / "cpuinfo", tmp_path / "cpuinfo_max_freq"
    block = "processor\t: {0}\nmodel name\t: Test CPU\ncpu MHz\t\t: {1}\nflags\t\t: fpu avx2 fma avx512f\n\n"
    cpuinfo.write_text(block.format(0, "2000.5") + block.format(1, "3100.0"))
    monkeypatch.setattr(environment, "CPUINFO", cpuinfo)
    monkeypatch.setattr(environment, "CPUFREQ_MAX", cpufreq)
    assert environment.cpu_model() == "Test CPU"
    assert environment.cpu_flags() == {"fpu", "avx2", "fma", "avx512f"}
    hz, where = environment.cpu_max_clock()
    assert hz == 3100e6 and "cpu MHz" in where  # the highest core's, where cpufreq says nothing
    cpufreq.write_text("3700000\n")  # kHz
    assert environment.cpu_max_clock() == (3.7e9, str(cpufreq))
    monkeypatch.setattr(environment, "CPUINFO", tmp_path / "missing")
    cpufreq.unlink()
    assert environment.cpu_flags() == set() and environment.cpu_max_clock() is None


def fake_entry(**changes: Any) -> dict[str, Any]:
    """A cached peak as `benchbench peak` stores it, with made-up figures."""
    entry = {
        "version": peak.CACHE_VERSION, "device": "cpu", "name": "Test CPU", "flops": 2e9,
        "flops_by_precision": {"float32": 2e9, "bfloat16": 3e9},
        "set_by": {"float32": "conv 3x3 512ch 32x32 batch 8", "bfloat16": "matmul 2048x2048"},
        "kernels": {"float32": {"matmul 2048x2048": 1e9, "conv 3x3 512ch 32x32 batch 8": 2e9},
                    "bfloat16": {"matmul 2048x2048": 3e9, "conv 3x3 512ch 32x32 batch 8": 2.5e9}},
        "arithmetic_limit": {"flops": 1.5e9, "formula": "2 core(s) x 16 float32 lanes (avx512f) x 2 FMA units x 2 x 0.01 GHz",
                             "clock_source": "cpu MHz in /proc/cpuinfo"},
        "bandwidth_bytes_per_s": 1e9, "copy_bytes": 1 << 20, "cpu_contention": 0.0, "busy": None,
        "time": "2026-01-01T00:00:00+00:00", "key": peak.device_key("cpu"), **changes,
    }
    peak._store(entry)
    return entry


def test_the_peak_command_shows_every_kernel_the_winner_and_the_limit(capsys: pytest.CaptureFixture[str]) -> None:
    fake_entry()
    assert main(["peak", "--device", "cpu"]) == 0  # from the cache
    out = capsys.readouterr().out
    assert "float32: 2.0, set by conv 3x3 512ch 32x32 batch 8 (others: matmul 2048x2048 1.0)" in out
    assert "bfloat16: 3.0, set by matmul 2048x2048 (others: conv 3x3 512ch 32x32 batch 8 2.5)" in out
    assert "float32 arithmetic limit: 1.5 = 2 core(s) x 16 float32 lanes" in out and "reaches 133% of it" in out
    assert "above the limit: conv 3x3 512ch 32x32 batch 8: fewer multiplications than the direct method counts" in out


def test_a_benchmark_above_the_peak_gets_a_warning_in_its_record_and_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    limit = {"flops": 2e3, "formula": "made up", "clock_source": "made up"}
    fake_entry(flops=1e3, flops_by_precision={"float32": 1e3}, arithmetic_limit=limit)  # any real layer beats 2 kFLOP/s
    run = benchbench.run_suite(tiny_suite(metrics=["flops", "latency"]), quiet=True)
    std = run.records[0]
    assert std["peak_fraction"] > 1
    warning = next(w for w in std["warnings"] if w.startswith("peak_fraction "))
    assert "above the measured float32 peak of cpu (1e-06 GFLOP/s, set by conv 3x3 512ch 32x32 batch 8" in warning
    assert "benchbench peak --refresh" in warning and "above the processor's arithmetic limit too" in warning
    assert sum(w.startswith("peak_fraction ") for w in std["warnings"]) == 1
    from benchbench.reporters import render_table

    text = render_table(run, {})
    assert "std: warning: peak_fraction " in text
    assert "the fastest of the kernels benchbench peak measured" in text  # the footnote says what the fraction is of


def test_resuming_a_run_does_not_repeat_the_warning(tmp_path: Path) -> None:
    limit = {"flops": 2e3, "formula": "made up", "clock_source": "made up"}
    fake_entry(flops=1e3, flops_by_precision={"float32": 1e3}, arithmetic_limit=limit)
    (tmp_path / "tiny.yaml").write_text(json.dumps(tiny_suite(metrics=["flops", "latency"])))
    assert main(["run", "tiny.yaml", "--json", "run.json", "-q"]) == 0
    data = json.loads((tmp_path / "run.json").read_text())
    data["complete"], data["records"] = False, data["records"][:1]  # as if stopped after the first benchmark
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert main(["run", "--resume", "run.json", "-q"]) == 0
    first = json.loads((tmp_path / "run.json").read_text())["records"][0]
    assert sum(w.startswith("peak_fraction ") for w in first["warnings"]) == 1
