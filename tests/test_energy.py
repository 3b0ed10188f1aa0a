"""The energy metric (issue 23, item 3): joules per step and per sample and mean watts from a hardware
counter (NVML on a GPU, RAPL on the CPU), idle power apart, compared as latency is; a machine
without a counter rejects the suite before it runs (exit 2)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

import benchbench
from benchbench import gpustate, rapl
from benchbench.cli import main
from benchbench.metrics import energy
from tests import fake_nvml
from tests.helpers import tiny_suite


def zone(root: Path, name: str, label: str, uj: int, max_range: int = 262143328850) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(label + "\n")
    (path / "energy_uj").write_text(f"{uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


@pytest.fixture
def powercap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A powercap tree of two packages, a core subzone and a psys zone (both left out)."""
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", 1_000_000, max_range=10_000_000)
    zone(root, "intel-rapl:0:0", "core", 5_000)
    zone(root, "intel-rapl:1", "package-1", 2_000_000)
    zone(root, "intel-rapl:2", "psys", 7_000)
    monkeypatch.setattr(rapl, "POWERCAP_ROOT", root)
    return root


def test_rapl_sums_the_packages_and_counts_wraparounds(powercap: Path) -> None:
    assert [z.name for z in rapl.packages()] == ["package-0", "package-1"]
    assert rapl.unavailable() is None
    counter = rapl.RaplCounter()
    assert counter.read_j() == 0.0
    (powercap / "intel-rapl:0" / "energy_uj").write_text("9500000\n")  # +8.5 J
    (powercap / "intel-rapl:1" / "energy_uj").write_text("2500000\n")  # +0.5 J
    assert counter.read_j() == pytest.approx(9.0)
    (powercap / "intel-rapl:0" / "energy_uj").write_text("500000\n")  # wrapped at 10 J: +1.000001 J
    assert counter.read_j() == pytest.approx(10.000001)
    assert "package-0, package-1" in counter.name and "other processes included" in counter.name


def test_no_rapl_zone_is_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rapl, "POWERCAP_ROOT", tmp_path / "nothing")
    reason = energy.available("cpu")
    assert reason is not None and "no RAPL energy counter" in reason and "virtual machines" in reason
    assert "leave 'energy' out of the metrics" in reason


def test_a_root_only_counter_is_a_reason_that_says_how(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: rapl.Zone) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rapl.Zone, "read_uj", denied)
    reason = energy.available("cpu")
    assert reason is not None and "root only" in reason and "chmod o+r" in reason


class VirtualTime:
    """A clock that moves only when the fake device works or sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_windows_between_updates_of_a_slow_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    # A GPU drawing 60 W idle and 300 W while it runs steps of 2 ms; NVML's counter updates every 100 ms.
    clock = VirtualTime()
    busy_until = {"t": -1.0}
    gpu = fake_nvml.FakeGpu(power_w=lambda t: 300.0 if t <= busy_until["t"] else 60.0, energy_period_s=0.1,
                            clock_source=clock)
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml.module([gpu]))
    gpustate.reset()
    found_gpu = gpustate.open_gpu(0)
    assert isinstance(found_gpu, gpustate.Gpu)

    def step() -> None:
        clock.now += 0.002
        busy_until["t"] = clock.now - gpu.born

    counter = energy.NvmlCounter(found_gpu)
    found = energy.measure_windows(step, lambda: None, counter, windows=3, window_s=1.0, warmup_s=0.2, idle_s=1.0,
                                   clock=clock, sleep=clock.sleep)
    gpustate.reset()
    assert found.idle_w == pytest.approx(60.0, rel=0.01)
    assert len(found.joules_per_step) == 3
    for joules, watts, steps, seconds in zip(found.joules_per_step, found.watts, found.steps, found.seconds):
        assert joules == pytest.approx(0.6, rel=0.02)  # 300 W x 2 ms, within two chunks of a window
        assert watts == pytest.approx(300.0, rel=0.02)
        assert seconds >= 1.0 and steps >= 500
    assert found.period_s() == pytest.approx(0.1, abs=0.011)


def test_a_counter_that_never_changes_fails_the_benchmark_with_words(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = VirtualTime()

    class Stuck:
        name, resolution = "a stuck counter", ""

        def read_j(self) -> float:
            return 1.0

    with pytest.raises(RuntimeError, match=r"a stuck counter.*did not change"):
        energy.measure_windows(lambda: clock.sleep(0.001), lambda: None, Stuck(), windows=1, window_s=1.0,
                               warmup_s=0.0, idle_s=0.0, clock=clock, sleep=clock.sleep)


@pytest.fixture
def live_rapl(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RAPL counters that count 40 W per package as time passes (updated every millisecond)."""
    born = time.perf_counter()
    monkeypatch.setattr(rapl.Zone, "read_uj", lambda self: int((time.perf_counter() - born) * 1000) * 40_000)


def energy_suite() -> dict[str, object]:
    data = tiny_suite(metrics=["energy"])
    data["defaults"]["metric_options"]["energy"] = {"windows": 3, "window_s": 0.05, "warmup_s": 0.0, "idle_s": 0.02}
    return data


def test_a_cpu_run_records_energy_and_compare_judges_it_as_latency(live_rapl: None, tmp_path: Path) -> None:
    runs = []
    for name in ("base", "new"):
        data = energy_suite()
        data["rounds"] = 2
        run = benchbench.run_suite(data, quiet=True)
        runs.append(run.write_json(tmp_path / f"{name}.json"))
    record = json.loads(runs[0].read_text())["records"][0]
    assert record["status"] == "ok", record.get("error")
    assert record["power_w"] == pytest.approx(80.0, rel=0.1)  # two packages of 40 W
    assert record["energy_idle_w"] is None or record["energy_idle_w"] == pytest.approx(80.0, rel=0.2)
    assert record["energy_j_per_sample"] == pytest.approx(record["energy_j_per_step"] / record["batch_size"])
    assert len(record["energy_rounds_j_per_sample"]) == 2 and len(record["energy_samples_j_per_sample"]) == 6
    assert "RAPL package energy (package-0, package-1)" in record["energy_counter"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["compare", str(runs[0]), str(runs[1]), "--format", "json"])
    rows = [r for r in json.loads(out.getvalue())["rows"] if r["field"] == "energy_j_per_sample"]
    assert code in (0, 1) and len(rows) == 2
    assert all(r["p_value"] is not None and r["ci_low"] is not None for r in rows)  # a rank test on samples, as latency


def test_no_counter_rejects_the_suite_before_it_runs_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(rapl, "POWERCAP_ROOT", tmp_path / "no-powercap")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(energy_suite()))
    code = main(["run", str(suite), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "energy" in err and "no RAPL energy counter" in err and "leave 'energy' out of the metrics" in err
    assert "Traceback" not in err and "std" in err


def test_options_are_checked() -> None:
    assert energy.check_options(dict(energy.OPTIONS)) == []
    problems = energy.check_options({**energy.OPTIONS, "windows": 0, "window_s": 0.0, "idle_s": -1.0})
    assert len(problems) == 3 and "every 0.1 s" in problems[1]


def test_joules_are_shown_with_their_unit() -> None:
    assert energy.joules(0.00123) == "1.23 mJ" and energy.joules(2.5) == "2.5 J" and energy.joules(None) == "-"


@pytest.mark.cuda
def test_energy_on_a_gpu_gives_joules_per_sample() -> None:
    gpustate.reset()
    if isinstance(gpustate.nvml(), str):
        reason = energy.available("cuda")
        assert reason is not None and "NVML" in reason
        return
    data = energy_suite()
    data["defaults"].update(device="cuda", batch_size=64)
    data["defaults"]["metric_options"]["energy"] = {"windows": 2, "window_s": 0.5, "warmup_s": 0.2, "idle_s": 0.5}
    record = benchbench.run_suite(data, quiet=True).records[0]
    assert record["status"] == "ok", record.get("error")
    assert record["energy_j_per_sample"] > 0 and record["power_w"] > 0 and record["energy_idle_w"] > 0
    assert 0 < record["energy_counter_period_s"] < 1.0
    assert "NVML total energy" in record["energy_counter"]
