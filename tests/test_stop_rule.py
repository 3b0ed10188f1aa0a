"""Sampling until the median is known well enough (issue 23, item 2): the median's uncertainty from
order statistics, the stopping rule replayed on recorded samples, and the rule in the CPU timer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchbench import timing
from benchbench.metrics import latency
from benchbench.timing import StopRule, median_uncertainty

RECORDED = json.loads((Path(__file__).parent / "data" / "cpu_conv_samples.json").read_text())["samples_ms"]
"""485 latency samples of a small conv timed on the 2-core development VM (real noise: a long right tail)."""


def test_the_interval_is_between_the_order_statistics_of_the_binomial() -> None:
    samples = [float(v) for v in range(1, 101)]  # median 50.5; 95%: ranks 40 and 61
    assert median_uncertainty(samples) == pytest.approx((61 - 40) / 2 / 50.5)
    assert median_uncertainty(list(reversed(samples))) == median_uncertainty(samples)  # order does not matter
    assert median_uncertainty([1.0] * 7) == math.inf  # too few for a 95% interval
    assert median_uncertainty([1.0] * 8) == 0.0
    assert median_uncertainty([0.0] * 10) == math.inf


def test_the_interval_covers_the_true_median_95_times_in_100() -> None:
    rng = np.random.default_rng(23)
    covered = 0
    for _ in range(2000):
        interval = timing.median_interval(list(rng.lognormal(0.0, 0.5, size=150)))  # skewed, as timings are
        assert interval is not None
        covered += interval[0] <= 1.0 <= interval[1]  # the true median is 1
    assert 0.93 <= covered / 2000 <= 0.99


def replay(rule: StopRule, samples: list[float], seconds_each: float) -> int:
    """How many of the recorded samples the rule takes, as the timers call it."""
    taken: list[float] = []
    while not rule.done(taken, len(taken) * seconds_each) and len(taken) < len(samples):
        taken.append(samples[len(taken)])
    return len(taken)


def test_on_recorded_samples_the_rule_stops_once_the_median_is_known_to_the_target() -> None:
    rule = StopRule(min_runs=10, min_run_time_s=1.0, max_run_time_s=60.0, max_runs=10_000, target=0.02)
    n = replay(rule, RECORDED, 0.003)
    assert 10 <= n < len(RECORDED)
    assert median_uncertainty(RECORDED[:n]) <= 0.02
    # Checked when the samples grew by a tenth: it stopped at most a tenth past the first n that was enough.
    first = next(k for k in range(6, n + 1) if median_uncertainty(RECORDED[:k]) <= 0.02)
    assert n <= math.ceil(first * 1.1) + 1
    assert rule.notes(RECORDED[:n]) == []


def test_without_a_target_the_rule_is_the_fixed_duration() -> None:
    rule = StopRule(min_runs=10, min_run_time_s=1.0, max_run_time_s=60.0, max_runs=10_000)
    assert replay(rule, RECORDED, 0.003) == 334  # ceil(1.0 / 0.003) samples fill min_run_time_s
    assert rule.describe() == ""


def test_a_target_out_of_reach_stops_at_the_time_cap_and_says_so() -> None:
    rule = StopRule(min_runs=10, min_run_time_s=1.0, max_run_time_s=0.9, max_runs=10_000, target=0.0001)
    n = replay(rule, RECORDED, 0.003)
    assert n == 300  # 0.9 s of 3 ms samples
    (note,) = rule.notes(RECORDED[:n])
    assert "not the +-0.01% asked" in note and "max_run_time_s 0.9" in note


def test_the_cpu_timer_stops_early_on_a_loose_target() -> None:
    calls = {"n": 0}

    def step() -> None:
        calls["n"] += 1
        sum(range(200))

    result = timing.time_cpu(step, warmup_s=0.0, min_run_time_s=1000.0, max_run_time_s=30.0, min_runs=12,
                             min_block_s=0.001, target_uncertainty=0.5)
    # min_run_time_s (1000 s) no longer applies: +-50% is reached within a few checks of min_runs
    assert 12 <= len(result.samples_ms) < 100
    assert result.uncertainty is not None and result.uncertainty <= 0.5
    assert "until the median was known to +-50.00%" in result.timer


def test_the_option_is_checked() -> None:
    options = dict(latency.OPTIONS)
    assert latency.check_options({**options, "target_uncertainty": 0.005}) == []
    (problem,) = latency.check_options({**options, "target_uncertainty": -0.1})
    assert "target_uncertainty must be from 0 (off)" in problem
    (problem,) = latency.check_options({**options, "throttle_share": 1.5})
    assert "throttle_share" in problem
