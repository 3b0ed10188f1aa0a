"""The project checks itself: the first-party layers' costs against the committed baseline.

``results/baselines/ci-cpu.json`` is a full run of ``suites/ci.yaml``. Parameter counts
and FLOPs are deterministic, so on any machine a change to a first-party model that
alters its cost fails this test (update the baseline on purpose when a change is meant:
``benchbench run suites/ci.yaml --json results/baselines/ci-cpu.json --no-history``).
Timings depend on the machine and are compared in CI against the same runner's history
instead (see README, *Regression tracking in CI*).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.cli import main

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "results" / "baselines" / "ci-cpu.json"


def test_first_party_costs_match_the_committed_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "ci.json"
    assert main(["run", str(REPO / "suites" / "ci.yaml"), "--metrics", "params,flops", "--rounds", "1",
                 "--json", str(new), "--no-history", "-q"]) == 0
    code = main(["compare", str(BASELINE), str(new), "--metrics", "params,flops", "--strict"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no regressions" in out and out.count("unchanged") >= 7 * 3  # 7 benchmarks x params, trainable, flops


def test_the_check_catches_a_changed_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from benchbench_plugins import layers

    original = layers.StandardConv2d.__init__

    def without_bias(self, *args, **kwargs):  # as if someone changed the first-party conv layer
        original(self, *args, **{**kwargs, "bias": False})

    monkeypatch.setattr(layers.StandardConv2d, "__init__", without_bias)
    new = tmp_path / "ci.json"
    assert main(["run", str(REPO / "suites" / "ci.yaml"), "--metrics", "params,flops", "--rounds", "1", "--json", str(new),
                 "--no-history", "-q", "--only", "conv_3x3_c64"]) == 0
    capsys.readouterr()
    assert main(["compare", str(BASELINE), str(new), "--metrics", "params,flops", "--strict"]) == 1
    out = capsys.readouterr().out
    assert "improved" in out and "--strict: FAILED" in out and "conv_3x3_c64 params -64 (-0.173%)" in out
