"""Change points in a series over commits (benchbench.changepoints) and ``benchbench history --changes``.

Series are simulated with fixed seeds: the detector must find the steps that are there,
at the right run and with the right size, and no step in noise or in a few wild runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchbench.changepoints import find_steps, noise_level
from benchbench.cli import main
from benchbench.history import History
from benchbench.results import RunResult


def noisy(n: int, seed: int, noise: float = 0.02, level: float = 1.0) -> np.ndarray:
    return level * np.exp(np.random.default_rng(seed).normal(0, noise, n))


def test_an_exact_series_steps_at_every_change_however_small() -> None:
    steps = find_steps([1000] * 4 + [1001] * 3 + [900] + [900])
    assert [(s.index, s.before, s.after) for s in steps] == [(4, 1000, 1001), (7, 1001, 900)]
    assert find_steps([5] * 10) == [] and find_steps([7]) == [] and find_steps([]) == []
    assert [s.index for s in find_steps([1000] * 5 + [1001])] == [5]  # counts: one run makes a level


@pytest.mark.parametrize("n", [10, 30, 100, 300])
def test_noise_alone_has_no_step(n: int) -> None:
    assert sum(bool(find_steps(noisy(n, seed))) for seed in range(20)) <= 1


@pytest.mark.parametrize("seed", range(10))
def test_a_ten_percent_step_in_two_percent_noise_is_found_where_it_is(seed: int) -> None:
    series = noisy(40, seed)
    series[25:] *= 1.10
    [step] = find_steps(series)
    assert step.index == 25 and step.ratio == pytest.approx(1.10, abs=0.03)


def test_a_step_up_and_back_down_is_two_steps() -> None:
    series = noisy(60, 3)
    series[20:40] *= 1.25
    up, down = find_steps(series)
    assert (up.index, down.index) == (20, 40)
    assert up.ratio == pytest.approx(1.25, abs=0.04) and down.ratio == pytest.approx(1 / 1.25, abs=0.04)


@pytest.mark.parametrize("seed", range(10))
def test_wild_runs_apart_are_no_step(seed: int) -> None:
    series = noisy(50, seed)
    series[[5, 15, 30, 45]] *= 3.0  # runs on a busy machine, one at a time
    assert find_steps(series) == []


def test_min_change_and_series_with_zeros() -> None:
    series = noisy(40, 1, noise=0.001)
    series[20:] *= 1.02
    assert [s.index for s in find_steps(series)] == [20]
    assert find_steps(series, min_change=0.05) == []
    assert [(s.index, s.before, s.after) for s in find_steps([0.0] * 5 + [2.0] * 5)] == [(5, 0.0, 2.0)]  # not logged
    assert noise_level(np.log(noisy(2000, 0, noise=0.05))) == pytest.approx(0.05, rel=0.1)
    with pytest.raises(ValueError, match="NaN"):
        find_steps([1.0, float("nan"), 1.0])


# --------------------------------------------------------------------------- benchbench history --changes


def history(path: Path, values: dict[str, list[float]], field: str = "latency_ms") -> None:
    """A history of len(values) runs, one a commit (c00, c01...), a field per benchmark."""
    store = History(path)
    count = len(next(iter(values.values())))
    for i in range(count):
        records = [{"benchmark": name, "status": "ok", field: series[i]} for name, series in values.items()]
        store.append(RunResult(suite="s", records=records, environment={
            "time": f"2026-01-01T00:{i:02d}:00+00:00", "host": "h", "git": {"commit": f"c{i:02d}" + "0" * 38}}))


def test_history_changes_names_the_commit_and_the_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slowed = noisy(30, 4)
    slowed[18:] *= 1.10
    history(tmp_path / "h.sqlite", {"slowed": list(slowed), "steady": list(noisy(30, 5))})
    assert main(["history", "--history", str(tmp_path / "h.sqlite"), "--changes"]) == 0
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if line.startswith("slowed")]
    cells = row.split()
    assert cells[1] == "19" and cells[3] == "c180000000" and cells[-1].startswith("+")  # run 19 is commit c18
    assert float(cells[-1].rstrip("%")) == pytest.approx(10, abs=3)
    assert "no step in: steady" in out and "over 30 run(s)" in out
    assert main(["history", "--history", str(tmp_path / "h.sqlite"), "--changes", "--min-change", "20%"]) == 0
    assert "(no steps)" in capsys.readouterr().out
    assert main(["history", "--history", str(tmp_path / "h.sqlite"), "--changes", "--last", "10"]) == 0
    assert "over 10 run(s)" in capsys.readouterr().out
    assert main(["history", "--history", str(tmp_path / "h.sqlite"), "--changes", "--min-change", "lots"]) == 2
    assert main(["history", "--history", str(tmp_path / "h.sqlite")]) == 0  # the trend table: the last 20 runs
    assert len([line for line in capsys.readouterr().out.splitlines() if "+00:00" in line]) == 20
