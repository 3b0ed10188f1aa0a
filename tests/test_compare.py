"""Regression tracking: the statistics (on synthetic samples: no timing here), compare, history."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchbench import stats
from benchbench.cli import main
from benchbench.compare import Thresholds, compare_runs, render
from benchbench.errors import UsageError
from benchbench.history import History
from benchbench.results import RunResult

COMPARE = {
    "params": {"metric": "params", "exact": True},
    "flops": {"metric": "flops", "exact": True},
    "latency_ms": {"metric": "latency", "samples": "latency_samples_ms", "rounds": "latency_rounds_ms"},
    "peak_memory_bytes": {"metric": "memory"},
}


def rounds(median: float, *, n: int = 30, count: int = 3, noise: float = 0.02, seed: int = 0) -> list[list[float]]:
    """Log-normal timing samples around ``median``, grouped in rounds with a little round-to-round drift."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        drift = rng.normal(0, noise / 2)
        out.append(list(median * np.exp(drift + rng.normal(0, noise, size=n))))
    return out


def record(name: str, latency: list[list[float]] | None = None, **fields: Any) -> dict[str, Any]:
    latency = latency if latency is not None else rounds(10.0)
    flat = [x for r in latency for x in r]
    base = {"benchmark": name, "status": "ok", "params": 100, "flops": 1000, "peak_memory_bytes": 4096,
            "latency_ms": float(np.median(flat)), "latency_samples_ms": flat, "latency_rounds_ms": latency, "thresholds": {}}
    return {**base, **fields}


def run(*records: dict[str, Any], suite: str = "s", time: str = "2026-01-01T00:00:00+00:00", commit: str | None = None) -> RunResult:
    env = {"time": time, "host": "h", "cpu": "c", "torch": "t", "git": {"commit": commit, "branch": "main", "dirty": False} if commit else None}
    return RunResult(suite=suite, records=list(records), environment=env, compare=dict(COMPARE), suite_text="benchmarks: []")


def verdicts(comparison) -> dict[tuple[str, str], str]:
    return {(r.benchmark, r.field): r.verdict.verdict for r in comparison.rows}


# --------------------------------------------------------------------------- statistics


def test_deterministic_values() -> None:
    assert stats.compare_values(100, 100, 0).verdict == stats.UNCHANGED
    assert stats.compare_values(100, 101, 0).verdict == stats.REGRESSED
    assert stats.compare_values(100, 101, 0.05).verdict == stats.UNCHANGED
    assert stats.compare_values(100, 90, 0).verdict == stats.IMPROVED
    assert stats.compare_values(0.9, 0.8, 0.01, higher_is_better=True).verdict == stats.REGRESSED
    assert stats.compare_values(0, 5, 0).verdict == stats.REGRESSED


@pytest.mark.parametrize("seed", range(5))
def test_same_distribution_is_unchanged(seed: int) -> None:
    v = stats.compare_samples(rounds(10.0, seed=seed), rounds(10.0, seed=seed + 100), 0.05)
    assert v.verdict == stats.UNCHANGED and v.ratio == pytest.approx(1.0, abs=0.03)
    assert v.ci_low < 1.0 < v.ci_high


@pytest.mark.parametrize("seed", range(5))
def test_ten_percent_slower_is_a_regression_and_faster_an_improvement(seed: int) -> None:
    base = rounds(10.0, seed=seed)
    slower = stats.compare_samples(base, rounds(11.0, seed=seed + 100), 0.05)
    assert slower.verdict == stats.REGRESSED and slower.ratio == pytest.approx(1.10, abs=0.03)
    assert slower.ci_low > 1 and slower.p_value < 0.01
    faster = stats.compare_samples(base, rounds(9.0, seed=seed + 100), 0.05)
    assert faster.verdict == stats.IMPROVED and faster.ci_high < 1


def test_a_significant_change_within_the_threshold_is_unchanged() -> None:
    v = stats.compare_samples(rounds(10.0, noise=0.005), rounds(10.3, noise=0.005, seed=1), 0.05)
    assert v.p_value < 1e-6 and v.verdict == stats.UNCHANGED


def test_one_noisy_round_cannot_decide_a_regression() -> None:
    base = rounds(10.0)
    new = rounds(10.0, seed=7)
    new[1] = [x * 10 for x in new[1]]  # another job hogged the machine during round 2
    v = stats.compare_samples(base, new, 0.05)
    assert v.verdict != stats.REGRESSED


def test_too_few_samples_says_so() -> None:
    v = stats.compare_samples([[1.0, 1.1]], [[2.0, 2.1]], 0.05, alpha=0.01)
    assert v.verdict == stats.TOO_FEW and "cannot reach significance 0.01" in v.note
    assert stats.min_p_value(2, 2) == pytest.approx(1 / 6)
    assert stats.compare_samples([], [[1.0]], 0.05).verdict == stats.TOO_FEW


def test_hodges_lehmann_on_many_samples_stays_accurate() -> None:
    rng = np.random.default_rng(3)
    big = [list(rng.lognormal(np.log(10), 0.02, size=5000))]
    v = stats.compare_samples(big, [[x * 1.2 for x in big[0]]], 0.05)
    assert v.ratio == pytest.approx(1.2, rel=1e-3)


# --------------------------------------------------------------------------- compare


def test_compare_runs_verdicts_and_exit_code() -> None:
    base = run(record("a"), record("b"), record("gone"))
    new = run(record("a"), record("b", latency=rounds(12.0, seed=5), flops=1001), record("added"))
    comparison = compare_runs(base, new)
    v = verdicts(comparison)
    assert v[("a", "latency_ms")] == v[("a", "params")] == "unchanged"
    assert v[("b", "latency_ms")] == "regressed" and v[("b", "flops")] == "regressed"  # any FLOP change counts
    assert v[("gone", "-")] == "missing in new" and v[("added", "-")] == "new"
    assert comparison.exit_code == 1
    assert {(r.benchmark, r.field) for r in comparison.regressions} == {("b", "latency_ms"), ("b", "flops")}
    text = render(comparison)
    assert "2 regression(s): b flops +1 (+0.1%); b latency_ms +" in text and "REGRESSED" in text


def test_a_benchmark_that_now_fails_is_a_regression() -> None:
    comparison = compare_runs(run(record("a")), run(record("a", status="failed", error="boom")))
    [row] = comparison.rows
    assert row.verdict.verdict == "failed" and comparison.exit_code == 1
    fixed = compare_runs(run(record("a", status="failed", error="x")), run(record("a")))
    assert fixed.rows[0].verdict.verdict == "fixed" and fixed.exit_code == 0


def test_thresholds_most_specific_first() -> None:
    base = run(record("a"), record("b"))
    new = run(record("a", latency=rounds(11.0, seed=9)), record("b", latency=rounds(11.0, seed=9), thresholds={"latency_ms": 0.2}))
    v = verdicts(compare_runs(base, new))
    assert v[("a", "latency_ms")] == "regressed" and v[("b", "latency_ms")] == "unchanged"  # the suite allows b 20%
    v = verdicts(compare_runs(base, new, thresholds=Thresholds.parse(["latency=15%", "b:latency_ms=1%"])))
    assert v[("a", "latency_ms")] == "unchanged" and v[("b", "latency_ms")] == "regressed"
    v = verdicts(compare_runs(run(record("a")), run(record("a", params=101)), thresholds=Thresholds.parse(["5%"])))
    assert v[("a", "params")] == "regressed"  # a blanket default leaves params and FLOPs exact...
    v = verdicts(compare_runs(run(record("a")), run(record("a", params=101)), thresholds=Thresholds.parse(["params=0.05"])))
    assert v[("a", "params")] == "unchanged"  # ...naming them relaxes them (a fraction works as well as 5%)


def test_only_like_is_compared_with_like() -> None:
    base = run(record("a", batch_size=8), record("b", batch_size=8))
    new = run(record("a", batch_size=16, latency=rounds(20.0)), record("b", batch_size=8, latency=rounds(20.0)))
    comparison = compare_runs(base, new)
    v = verdicts(comparison)
    assert v[("a", "latency_ms, peak_memory_bytes")] == "not comparable" and ("a", "latency_ms") not in v
    assert v[("a", "params")] == v[("a", "flops")] == "unchanged"  # counts do not depend on the batch size
    assert v[("b", "latency_ms")] == "regressed"
    assert "batch_size 8 -> 16" in next(r.verdict.note for r in comparison.rows if r.verdict.verdict == "not comparable")
    elsewhere = run(record("b", latency=rounds(20.0)))
    elsewhere.environment["cpu"] = "another CPU"
    comparison = compare_runs(run(record("b")), elsewhere)
    row = next(r for r in comparison.rows if r.field == "latency_ms")
    assert row.verdict.verdict == "uncertain" and "other machines" in row.verdict.note and comparison.exit_code == 0
    assert any("different machines" in n for n in comparison.notes)


def test_damaged_run_files_are_bad_input() -> None:
    with pytest.raises(UsageError, match="field 'params' is 'many', not a number"):
        compare_runs(run(record("a")), run(record("a", params="many")))
    broken = record("a")
    broken["latency_rounds_ms"] = [["a", 1.0]]
    with pytest.raises(UsageError, match="samples of 'latency_ms'"):
        compare_runs(run(record("a")), run(broken))
    bare = run(record("a"))
    bare.compare = {}
    with pytest.raises(UsageError, match="no 'compare' section"):
        compare_runs(bare, bare)
    with pytest.raises(UsageError, match="--threshold: no benchmark 'nosuch'"):
        compare_runs(run(record("a")), run(record("a")), thresholds=Thresholds.parse(["nosuch:latency=5%"]))


def test_bad_compare_input() -> None:
    with pytest.raises(UsageError, match="different suites: 's' and 'other'"):
        compare_runs(run(record("a")), run(record("a"), suite="other"))
    with pytest.raises(UsageError, match="'latncy' is no compared field or metric"):
        compare_runs(run(record("a")), run(record("a")), thresholds=Thresholds.parse(["latncy=5%"]))
    with pytest.raises(UsageError, match="must be a percentage"):
        Thresholds.parse(["latency=fast"])
    with pytest.raises(UsageError, match="--metrics: 'flop' is no compared field or metric"):
        compare_runs(run(record("a")), run(record("a")), only_fields=["flop"])


def test_metrics_filter_by_metric_or_field() -> None:
    comparison = compare_runs(run(record("a")), run(record("a")), only_fields=["params", "flops"])
    assert {r.field for r in comparison.rows} == {"params", "flops"}
    comparison = compare_runs(run(record("a")), run(record("a")), only_fields=["latency"])
    assert {r.field for r in comparison.rows} == {"latency_ms"}


def test_markdown_table_is_valid(tmp_path: Path) -> None:
    text = render(compare_runs(run(record("a")), run(record("a"))), "github")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 4  # header, separator, four fields
    assert set(table[1]) <= set("|-: ")
    assert all(line.count("|") == table[0].count("|") for line in table)


# --------------------------------------------------------------------------- the command line


def write(run_result: RunResult, path: Path) -> Path:
    run_result.write_json(path)
    return path


def test_compare_command_exit_codes_and_job_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(run(record("a")), tmp_path / "base.json")
    same = write(run(record("a")), tmp_path / "same.json")
    slower = write(run(record("a", latency=rounds(12.0, seed=3))), tmp_path / "slower.json")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["compare", str(base), str(same)]) == 0
    captured = capsys.readouterr()
    assert "no regressions" in captured.out and "with itself" not in captured.err
    assert main(["compare", str(base), str(tmp_path / "." / "base.json")]) == 0  # a slip: the same file twice
    assert f"comparing {str(base)!r} with itself, which cannot show a change" in capsys.readouterr().err
    assert main(["compare", str(base), str(slower), "--format", "markdown"]) == 1
    captured = capsys.readouterr()
    assert "| a " in captured.out and "regression: a latency_ms" in captured.err
    assert summary.read_text().count("| benchmark") == 3  # the three compares, as markdown
    assert main(["compare", str(base)]) == 2
    assert main(["compare", str(base), str(tmp_path / "missing.json")]) == 2
    assert main(["compare", str(base), str(same), "--alpha", "2"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_history_store_trend_and_baselines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "two"], check=True)
    second = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.chdir(repo)

    store = History(tmp_path / "h.sqlite")
    store.append(run(record("a", params=100), time="2026-01-01T00:00:00+00:00", commit=first))
    store.append(run(record("a", params=200), time="2026-01-02T00:00:00+00:00", commit=second))
    assert [r["git_commit"] for r in store.runs("s")] == [first, second]
    assert [p["value"] for p in store.trend("s", "params", "a")] == [100, 200]
    assert store.baseline("s", "latest").records[0]["params"] == 200
    assert store.baseline("s", "latest", before="2026-01-02T00:00:00+00:00").records[0]["params"] == 100  # earlier runs only
    assert store.baseline("s", "HEAD~1").records[0]["params"] == 100
    assert store.baseline("s", "main").records[0]["params"] == 200
    with pytest.raises(UsageError, match="neither 'latest', an existing run file, nor a git ref"):
        store.baseline("s", "no-such-branch")
    with pytest.raises(UsageError, match="no complete earlier run of suite 'other'"):
        store.baseline("other", "latest")


def test_history_and_baseline_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite"
    History(db).append(run(record("a"), time="2026-01-01T00:00:00+00:00"))
    History(db).append(run(record("a", latency=rounds(13.0, seed=4)), time="2026-01-02T00:00:00+00:00"))
    new = write(run(record("a", latency=rounds(13.0, seed=5)), time="2026-01-03T00:00:00+00:00"), tmp_path / "new.json")
    assert main(["compare", str(new), "--baseline", "latest", "--history", str(db)]) == 0  # vs the 13 ms run
    assert main(["compare", str(new), "--baseline", str(tmp_path / "new.json"), "--history", str(db)]) == 0
    capsys.readouterr()
    assert main(["history", "--history", str(db), "--metric", "latency_ms", "--format", "github"]) == 0
    out = capsys.readouterr().out
    assert "| run" in out and "(+29.0%)" in out  # about 10 ms -> 13 ms
    assert main(["history", "--history", str(db), "--metric", "latncy_ms"]) == 2
    assert "did you mean 'latency_ms'" in capsys.readouterr().err
    assert main(["history", "--history", str(tmp_path / "none.sqlite")]) == 2
    (tmp_path / "junk.sqlite").write_text("not a database")
    assert main(["history", "--history", str(tmp_path / "junk.sqlite")]) == 2


def test_run_appends_to_the_history_by_default(tmp_path: Path) -> None:
    import yaml

    from tests.helpers import tiny_suite

    suite = tmp_path / "tiny.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(metrics=["params", "flops"])))
    assert main(["run", str(suite), "--out", str(tmp_path / "res"), "-q"]) == 0
    assert main(["run", str(suite), "--out", str(tmp_path / "res"), "-q", "--no-history"]) == 0
    runs = History(tmp_path / "res" / "history.sqlite").runs()
    assert len(runs) == 1 and runs[0]["suite"] == "tiny" and runs[0]["complete"] == 1
    data = json.loads(next((tmp_path / "res").glob("tiny-*.json")).read_text())
    assert data["compare"]["flops"] == {"metric": "flops", "exact": True}


def test_compare_as_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv
    import io

    base = write(run(record("a")), tmp_path / "base.json")
    slower = write(run(record("a", latency=rounds(12.0, seed=3))), tmp_path / "slower.json")
    assert main(["compare", str(base), str(slower), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    latency = next(r for r in data["rows"] if r["field"] == "latency_ms")
    assert latency["verdict"] == "regressed" and latency["regressed"] is True and latency["ci_low"] > 1
    assert main(["compare", str(base), str(slower), "--format", "csv"]) == 1
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["field"] for r in rows} == {"params", "flops", "latency_ms", "peak_memory_bytes"}


def test_an_incomplete_new_run_fails_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(run(record("a"), record("b")), tmp_path / "base.json")
    killed = run(record("a"))
    killed.complete = False
    new = write(killed, tmp_path / "new.json")
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "the new run is INCOMPLETE" in out and "missing in new" in out


def test_history_keeps_a_resumed_run_once_and_skips_empty_ones(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    first = run(record("a"), time="2026-01-01T00:00:00+00:00")
    first.complete = False
    store.append(first, tmp_path / "r.json")
    finished = run(record("a"), record("b"), time="2026-01-01T00:00:00+00:00")
    store.append(finished, tmp_path / "r.json")
    assert [(r["complete"], r["time"]) for r in store.runs()] == [(1, "2026-01-01T00:00:00+00:00")]
    assert store.append(run(time="2026-01-02T00:00:00+00:00")) is None and len(store.runs()) == 1


def test_counts_compare_across_machines_threads_and_devices_but_not_across_models() -> None:
    """A committed CPU baseline checks params and FLOPs on any machine: hosted CI runners included."""
    base = run(record("a", threads=2, device="cpu"), record("b", args={"in_channels": 8}))
    elsewhere = run(record("a", threads=16, device="cuda:0"), record("b", args={"in_channels": 16}))
    elsewhere.environment.update(cpu="another CPU", host="gpu-box")
    comparison = compare_runs(base, elsewhere, only_fields=["params", "flops"])
    v = verdicts(comparison)
    assert v[("a", "params")] == v[("a", "flops")] == "unchanged" and comparison.exit_code == 0
    assert v[("b", "params, flops")] == "not comparable"
    full = compare_runs(base, elsewhere)
    assert verdicts(full)[("a", "latency_ms, peak_memory_bytes")] == "not comparable"


def test_a_compare_that_judges_nothing_fails() -> None:
    base = run(record("a", threads=2), record("b", threads=2))
    new = run(record("a", threads=16), record("b", threads=16))
    comparison = compare_runs(base, new, only_fields=["latency"])
    assert comparison.judged_nothing and comparison.exit_code == 1
    assert "nothing could be compared: FAILED" in render(comparison)
    # No benchmark in common (renamed ones, another suite's file): nothing judged, whatever the rows say.
    disjoint = compare_runs(run(record("old_one")), run(record("new_one")))
    assert {r.verdict.verdict for r in disjoint.rows} == {"new", "missing in new"} and disjoint.exit_code == 1
    assert compare_runs(run(record("a")), run(record("a"), record("new_one"))).exit_code == 0  # one added: fine


def test_what_the_new_run_lacks_is_listed_and_said_and_fails_only_strict() -> None:
    base = run(record("a"), record("b"), record("c"))
    fewer = run(record("a", latency_ms=None, peak_memory_bytes=None), record("b"))
    comparison = compare_runs(base, fewer)
    v = verdicts(comparison)
    assert v[("c", "-")] == v[("a", "latency_ms")] == v[("a", "peak_memory_bytes")] == "missing in new"
    assert v[("a", "params")] == "unchanged" and comparison.exit_code == 0
    assert any("the new run lacks 1 benchmark(s) of the baseline (c) and field(s) latency_ms, peak_memory_bytes "
               "of other benchmarks" in note for note in comparison.notes)
    assert compare_runs(base, fewer, strict=True).exit_code == 1
    narrowed = compare_runs(base, fewer, only_fields=["params", "flops"])  # what both measured: only c is missing
    assert [(r.benchmark, r.field) for r in narrowed.missing] == [("c", "-")]


def test_fewer_than_three_rounds_never_fail_on_timing_unless_strict() -> None:
    base = run(record("a", latency=rounds(10.0, count=1, n=60)))
    slower = run(record("a", latency=rounds(12.0, count=1, n=60, seed=4)))
    row = next(r for r in compare_runs(base, slower).rows if r.field == "latency_ms")
    assert row.verdict.verdict == "uncertain" and "too few to tell" in row.verdict.note
    strict = compare_runs(base, slower, strict=True)
    assert next(r for r in strict.rows if r.field == "latency_ms").verdict.verdict == "regressed"
    assert strict.exit_code == 1


def test_a_busy_cpu_makes_timing_uncertain_never_a_verdict() -> None:
    spec = {**COMPARE["latency_ms"], "contention": "latency_round_cpu_contention"}
    quiet = run(record("a", latency_round_cpu_contention=[0.0, 0.02, 0.0]))
    busy = run(record("a", latency=rounds(13.0, seed=2), latency_round_cpu_contention=[0.0, 0.59, 0.01]))
    for r in (quiet, busy):
        r.compare["latency_ms"] = spec
    row = next(r for r in compare_runs(quiet, busy).rows if r.field == "latency_ms")
    assert row.verdict.verdict == "uncertain" and "busy CPU in the new run" in row.verdict.note and "59%" in row.verdict.note
    assert next(r for r in compare_runs(busy, busy).rows if r.field == "latency_ms").verdict.verdict == "uncertain"
    calm = run(record("a", latency=rounds(13.0, seed=2), latency_round_cpu_contention=[0.0, 0.05, None]))
    calm.compare["latency_ms"] = spec
    assert next(r for r in compare_runs(quiet, calm).rows if r.field == "latency_ms").verdict.verdict == "regressed"


def test_strict_says_why_it_fails_and_shows_absolute_count_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(run(record("a", params=36_928)), tmp_path / "base.json")
    new = write(run(record("a", params=36_929)), tmp_path / "new.json")
    assert main(["compare", str(base), str(new), "--metrics", "params", "--strict"]) == 1
    out = capsys.readouterr().out
    assert "a params +1 (+0.00271%)" in out and "--strict: FAILED on 1 change(s)" in out
    assert "no regressions\n" not in out.replace("no regressions\n--strict", "")  # never 'no regressions' alone


# --------------------------------------------------------------------------- failed benchmarks, refused run files


def test_a_benchmark_failed_in_the_new_run_fails_the_compare_even_if_it_failed_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 = "a benchmark failed": a failure in the new run is never "no regressions"."""
    both = compare_runs(run(record("a"), record("b", status="failed", error="old")),
                        run(record("a"), record("b", status="failed", error="CUDA out of memory")))
    row = next(r for r in both.rows if r.benchmark == "b")
    assert row.verdict.verdict == "failed" and row.verdict.note == "failed in the base too: CUDA out of memory"
    assert both.exit_code == 1 and "1 regression(s): b failed (failed in the base too: CUDA out of memory)" in render(both)
    base = write(run(record("a"), record("b", status="failed", error="old")), tmp_path / "base.json")
    new = write(run(record("a"), record("b", status="failed", error="still")), tmp_path / "new.json")
    assert main(["compare", str(base), str(new)]) == 1
    assert "no regressions" not in capsys.readouterr().out
    # failed in the base only: fixed, which is no regression, and the notes say so
    fixed = compare_runs(run(record("a"), record("b", status="failed", error="x")), run(record("a"), record("b")))
    assert verdicts(fixed)[("b", "status")] == "fixed" and fixed.exit_code == 0
    assert any(n.startswith("fixed: b failed in the base and ran in the new run: not a regression") for n in fixed.notes)


def damaged(tmp_path: Path, change: Any, name: str = "damaged.json") -> Path:
    """A valid run file, edited: ``change(data)`` edits its JSON structure in place."""
    path = write(run(record("a"), record("b")), tmp_path / name)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["records"].append(dict(d["records"][0])), "record #3: benchmark 'a' is recorded twice (also record #1)"),
        (lambda d: d["records"][0].update(params=-5), "record 'a': field 'params' is -5: below 0"),
        (lambda d: d["records"][0].update(latency_samples_ms=[1.0, -2.0]), "field 'latency_samples_ms' is [1.0, -2.0]: below 0"),
        (lambda d: d["records"][0].update(benchmark="a\ud800"), "at records[0].benchmark: the text 'a\\ud800' holds '\\ud800', a lone surrogate"),
        (lambda d: d["records"][1].update(params=10**400), "at records[1].params: the number 1000"),
        (lambda d: d.update(format=99, environment={"benchbench": "9.0"}),
         "written by a newer benchbench (version 9.0, run-file format 99); this is benchbench"),
        (lambda d: d.update(format="1"), "its 'format' is '1', not a whole number"),
        (lambda d: d.update(format=0), "run-file format 0 is none that benchbench ever wrote"),
    ],
    ids=["twice", "negative", "negative-sample", "surrogate", "10**400", "newer", "format-text", "format-0"],
)
def test_run_files_that_cannot_be_right_are_refused_by_compare_report_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: str
) -> None:
    good = write(run(record("a"), record("b")), tmp_path / "good.json")
    bad = damaged(tmp_path, change)
    with pytest.raises(UsageError) as error:
        RunResult.read_json(bad)
    assert expected in str(error.value) and str(bad) in str(error.value)
    for command in (["compare", str(good), str(bad)], ["compare", str(bad), str(good)], ["report", str(bad)],
                    ["run", "--resume", str(bad), "-q", "--no-history"]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert expected.split(":")[0] in err and "Traceback" not in err and "internal error" not in err, (command, err)


def test_a_newer_run_file_names_both_versions_and_an_older_one_is_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchbench import __version__, results

    newer = damaged(tmp_path, lambda d: d.update(format=results.RUN_FILE_FORMAT + 1, environment={"benchbench": "9.0"}))
    with pytest.raises(UsageError, match=rf"written by a newer benchbench \(version 9.0, run-file format "
                                         rf"{results.RUN_FILE_FORMAT + 1}\); this is benchbench {__version__}, which "
                                         rf"reads formats up to {results.RUN_FILE_FORMAT}: upgrade benchbench"):
        RunResult.read_json(newer)
    # The upgrade path, as a format 2 would use it: a format-1 file is read through UPGRADES[1].
    current = write(run(record("a")), tmp_path / "current.json")
    monkeypatch.setattr(results, "RUN_FILE_FORMAT", 2)
    monkeypatch.setitem(results.UPGRADES, 1, lambda d: {**d, "notes": [*d.get("notes", []), "upgraded from format 1"]})
    upgraded = RunResult.read_json(current)
    assert upgraded.notes == ["upgraded from format 1"] and json.loads(upgraded.to_json())["format"] == 2
    monkeypatch.delitem(results.UPGRADES, 1)
    with pytest.raises(UsageError, match="run-file format 1 is none that benchbench ever wrote"):
        RunResult.read_json(current)
