"""``benchbench ab``: base and new in turns in one job, each side with its own code, judged pair by pair.

The statistic is tested on synthetic samples (no timing in a unit test); the command end
to end on a tiny git repository whose commits change a count (deterministic) or add a
2 ms sleep to the forward pass (a change no load can hide).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchbench import stats
from benchbench.compare import PAIRING_KEY, compare_runs, render
from benchbench.interleave import measure_pairs, pool, schedule
from benchbench.results import RunResult
from tests.toyrepo import ToyRepo

# --------------------------------------------------------------------------- the paired statistic


def drifting_pairs(ratio: float, pairs: int, seed: int, drift: float = 0.3, noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Round medians of base and new where the machine's speed changes from pair to pair by
    ``drift`` (log scale, far beyond any threshold) and both rounds of a pair share it."""
    rng = np.random.default_rng(seed)
    machine = np.exp(rng.normal(0, drift, pairs))
    base = machine * np.exp(rng.normal(0, noise, pairs))
    new = ratio * machine * np.exp(rng.normal(0, noise, pairs))
    return base, new


@pytest.mark.parametrize("seed", range(5))
def test_pairing_cancels_drift_that_hides_a_slowdown_from_unpaired_samples(seed: int) -> None:
    base, new = drifting_pairs(1.10, 10, seed)
    paired = stats.compare_pairs(base, new, 0.05)
    unpaired = stats.compare_samples([[x] for x in base], [[x] for x in new], 0.05)
    assert paired.verdict == stats.REGRESSED and paired.ratio == pytest.approx(1.10, rel=0.02)
    assert paired.ci_low > 1 and paired.p_value < 0.01
    assert unpaired.verdict != stats.REGRESSED  # the same numbers, unpaired: the drift drowns the change


@pytest.mark.parametrize("seed", range(5))
def test_an_unchanged_pair_of_sides_is_unchanged_however_the_machine_drifts(seed: int) -> None:
    base, new = drifting_pairs(1.0, 10, seed)
    assert stats.compare_pairs(base, new, 0.05).verdict == stats.UNCHANGED


def test_improved_too_few_and_uncertain() -> None:
    base, new = drifting_pairs(0.85, 10, 0)
    assert stats.compare_pairs(base, new, 0.05).verdict == stats.IMPROVED
    few = stats.compare_pairs(*drifting_pairs(1.5, 6, 0), 0.05)
    assert few.verdict == stats.TOO_FEW and "6 pair(s) cannot reach significance 0.01" in few.note
    assert "measure 7 pairs" in few.note and stats.min_pairs(0.01) == 7 and stats.min_pairs(0.05) == 5
    noisy = stats.compare_pairs(*drifting_pairs(1.10, 8, 3, noise=0.2), 0.05)
    assert noisy.verdict == stats.UNCERTAIN  # beyond the threshold, but the pairs disagree too much to tell


def test_a_pair_spoilt_by_a_burst_of_load_does_not_decide() -> None:
    base, new = drifting_pairs(1.0, 10, 1)
    new[4] *= 3.0  # one round of the new side caught a burst
    verdict = stats.compare_pairs(base, new, 0.05)
    assert verdict.verdict == stats.UNCHANGED and verdict.ratio == pytest.approx(1.0, abs=0.02)


def test_signed_rank_distribution_is_exact() -> None:
    assert stats.signed_rank_distribution(3) * 8 == pytest.approx([1, 1, 1, 2, 1, 1, 1])  # subsets of {1,2,3} by sum
    for n in (1, 7, 20):
        distribution = stats.signed_rank_distribution(n)
        assert distribution.sum() == pytest.approx(1) and distribution[0] == pytest.approx(2.0 ** -n)


@pytest.mark.parametrize("seed", range(3))
def test_the_interval_and_the_exact_test_agree(seed: int) -> None:
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(7, 16))
        log_ratios = rng.normal(0.3, 1, n)
        low, _ = stats._walsh_interval(stats._walsh_averages(log_ratios), n, 0.01)
        assert (low > 0) == (wilcoxon(log_ratios, alternative="greater", method="exact").pvalue < 0.01)


# --------------------------------------------------------------------------- paired run files


def side_run(round_medians: list[float], side: str | None, pairing: str = "p1") -> RunResult:
    """A run file as ``ab`` writes one: latency rounds of 5 samples around each median."""
    rounds = [[m * f for f in (0.99, 0.995, 1.0, 1.005, 1.01)] for m in round_medians]
    samples = [x for r in rounds for x in r]
    record = {"benchmark": "layer", "model": "conv", "args": {}, "input_shape": [4], "status": "ok", "device": "cpu",
              "batch_size": 1, "latency_ms": float(np.median(samples)), "latency_samples_ms": samples,
              "latency_rounds_ms": rounds, "latency_round_cpu_contention": [0.0] * len(rounds)}
    environment = {"time": "2026-01-01T00:00:00", "host": "h", "cpu": "c"}
    if side is not None:
        environment[PAIRING_KEY] = {"id": pairing, "side": side}
    return RunResult(suite="s", records=[record], environment=environment, compare={"latency_ms": {
        "metric": "latency", "samples": "latency_samples_ms", "rounds": "latency_rounds_ms",
        "contention": "latency_round_cpu_contention"}})


def test_compare_judges_the_two_files_of_one_ab_pair_by_pair(tmp_path: Path) -> None:
    from benchbench.cli import main

    base_medians, new_medians = (list(x) for x in drifting_pairs(1.10, 10, 2))
    paired = compare_runs(side_run(base_medians, "base"), side_run(new_medians, "new"))
    assert paired.paired and paired.rows[0].verdict.verdict == stats.REGRESSED
    assert "Wilcoxon signed-rank" in render(paired)
    for other in (side_run(new_medians, None), side_run(new_medians, "new", pairing="another job"),
                  side_run(new_medians, "base")):
        unpaired = compare_runs(side_run(base_medians, "base"), other)
        assert not unpaired.paired and unpaired.rows[0].verdict.verdict != stats.REGRESSED
    side_run(base_medians, "base").write_json(tmp_path / "base.json")
    side_run(new_medians, "new").write_json(tmp_path / "new.json")
    assert main(["compare", str(tmp_path / "base.json"), str(tmp_path / "new.json")]) == 1  # the same verdict later


def test_schedule_alternates_which_side_goes_first() -> None:
    assert schedule(4) == ["base", "new", "new", "base", "base", "new", "new", "base"]
    # with servers started anew every 2 pairs, the first round after each restart alternates too
    assert schedule(6, 2)[::4] == ["base", "new", "base"] and schedule(6, 5) == schedule(6)


class FakeSide:
    """A side whose rounds are recorded in ``events`` (no process): what measure_pairs asks of a side."""

    def __init__(self, name: str, events: list[tuple[str, ...]], interrupt: tuple[str, int] | None = None) -> None:
        self.name, self.events, self.interrupt = name, events, interrupt
        self.ref, self.commit, self.dirty = name, "c" * 40, False

    def rounds(self, folder: Path, *, fresh_processes: bool = False) -> Any:
        side = self

        class Rounds:
            def __init__(self) -> None:
                self.side = side

            def restart(self) -> None:
                side.events.append(("restart", side.name))
                if side.interrupt == ("restart", sum(e[0] == "restart" for e in side.events)):
                    raise KeyboardInterrupt

            def wait_ready(self) -> None:
                side.events.append(("ready", side.name))

            def run_round(self, suite: str, arguments: list[str], out: Path, log: Path) -> RunResult:
                if side.interrupt == ("round", sum(e[0] == "round" for e in side.events) + 1):
                    raise KeyboardInterrupt
                side.events.append(("round", side.name))
                return side_run([1.0], None)

        @contextlib.contextmanager
        def block() -> Iterator[Rounds]:
            yield Rounds()
            if side.interrupt == ("close", 0):
                raise KeyboardInterrupt

        return block()


class NoOptions:
    def arguments(self, side: Any, metrics: str | None = None, only: list[str] | None = None) -> list[str]:
        return []


def pairs_measured(pairs: int, per_server: int, *, fresh: bool = False, interrupt: tuple[str, int] | None = None,
                   tmp_path: Path) -> tuple[Any, list[tuple[str, ...]]]:
    events: list[tuple[str, ...]] = []
    measured = measure_pairs(FakeSide("base", events, interrupt), FakeSide("new", events, interrupt), "s.yaml",
                             NoOptions(), pairs, tmp_path, fresh_processes=fresh, pairs_per_server=per_server,
                             keep_on_interrupt=True)
    return measured, events


def test_round_servers_restart_together_every_n_pairs_and_never_for_fresh_processes(tmp_path: Path) -> None:
    measured, events = pairs_measured(10, 4, tmp_path=tmp_path)
    rounds_before_restart = [sum(e[0] == "round" for e in events[:i]) for i, e in enumerate(events) if e == ("restart", "base")]
    assert rounds_before_restart == [8, 16]  # before pairs 5 and 9, never before the first
    for i, event in enumerate(events):
        if event == ("restart", "base"):  # both restarted, then both ready, before the next round
            assert set(events[i:i + 4]) == {("restart", "base"), ("restart", "new"), ("ready", "base"), ("ready", "new")}
    assert [e[1] for e in events if e[0] == "round"] == schedule(10, 4) and measured.pairs == 10
    assert "(a new server every 4 pairs)" in measured.base.notes[-1]
    for per_server, fresh in ((0, False), (5, True), (10, False)):
        measured, events = pairs_measured(10, per_server, fresh=fresh, tmp_path=tmp_path)
        assert not any(e[0] == "restart" for e in events) and measured.pairs == 10
        assert "a new server" not in measured.base.notes[-1]


@pytest.mark.parametrize(("interrupt", "kept"), [(("round", 6), 2), (("round", 1), None), (("restart", 1), 4),
                                                  (("close", 0), 5)], ids=["mid-pair", "first-round", "restart", "closing"])
def test_an_interrupt_keeps_the_whole_pairs_measured(tmp_path: Path, interrupt: tuple[str, int], kept: int | None) -> None:
    if kept is None:  # nothing to keep: the interrupt goes on
        with pytest.raises(KeyboardInterrupt):
            pairs_measured(5, 4, interrupt=interrupt, tmp_path=tmp_path)
        return
    measured, _ = pairs_measured(5, 4, interrupt=interrupt, tmp_path=tmp_path)
    assert measured.pairs == kept and measured.interrupted
    assert measured.base.environment[PAIRING_KEY]["interrupted"] == {"planned": 5}
    assert measured.base.records[0]["rounds"] == measured.new.records[0]["rounds"] == kept


def test_pooled_side_keeps_its_rounds_in_order_and_fails_with_a_failed_round(tmp_path: Path) -> None:
    from benchbench.gitrepo import Repository
    from benchbench.sides import Side

    side = Side("base", Repository(tmp_path), tmp_path, "a" * 40, ref="main")
    rounds = [side_run([m], None) for m in (1.0, 2.0, 3.0)]
    pooled = pool(rounds, side, {"id": "x", "side": "base", "order": schedule(3), "pairs": 3}, side)
    [record] = pooled.records
    assert [float(np.median(r)) for r in record["latency_rounds_ms"]] == pytest.approx([1.0, 2.0, 3.0])
    assert record["latency_ms"] == pytest.approx(2.0) and record["rounds"] == 3
    assert len(record["latency_round_cpu_contention"]) == 3 and pooled.environment[PAIRING_KEY]["commit"] == "a" * 40
    rounds[2].records[0].update(status="failed", error="out of memory")
    assert pool(rounds, side, {"id": "x", "side": "base", "order": [], "pairs": 3}, side).records[0]["error"] == \
        "round 3: out of memory"


# --------------------------------------------------------------------------- the command, end to end


@pytest.fixture
def repo(tmp_path: Path) -> ToyRepo:
    return ToyRepo(tmp_path / "plugin")


def run_files(repo: ToyRepo) -> tuple[dict, dict]:
    return (json.loads((repo.path / "base.json").read_text()), json.loads((repo.path / "new.json").read_text()))


def ab(repo: ToyRepo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return repo.benchbench("ab", "suite.yaml", "-p", "toyblocks", "--base-json", "base.json", "--new-json", "new.json",
                           *args, **env)


@pytest.mark.slow
def test_ab_flags_a_changed_count_passes_an_unchanged_commit_and_cleans_up(repo: ToyRepo) -> None:
    repo.set("HIDDEN", 16)
    repo.commit("wider")
    done = ab(repo, "--base", "HEAD~1", "--new", "HEAD")
    assert done.returncode == 1, done.stderr
    assert "REGRESSED" in done.stdout and "toy params +72 (+94.7%)" in done.stderr
    base, new = run_files(repo)
    assert (base["records"][0]["params"], new["records"][0]["params"]) == (76, 148)  # each side's own code
    assert base["environment"]["git"]["commit"] == repo.git("rev-parse", "HEAD~1")
    assert base["environment"][PAIRING_KEY]["pairs"] == 1  # counts only: once per side
    repo.write("README.md", "docs only\n")
    repo.commit("docs")
    done = ab(repo, "--base", "HEAD~1")
    assert done.returncode == 0, done.stderr
    assert "no regressions" in done.stdout
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


@pytest.mark.slow
def test_the_working_tree_is_the_new_side_by_default(repo: ToyRepo) -> None:
    repo.set("HIDDEN", 4)  # not committed
    summary = repo.path.parent / "summary.md"
    done = ab(repo, "--base", "HEAD", GITHUB_STEP_SUMMARY=str(summary))
    assert done.returncode == 0, done.stderr  # fewer params: an improvement
    assert "| toy" in summary.read_text() and "improved" in summary.read_text()  # the job summary, as compare writes it
    base, new = run_files(repo)
    assert (base["records"][0]["params"], new["records"][0]["params"]) == (76, 40)
    assert new["environment"][PAIRING_KEY]["dirty"] is True and "uncommitted changes" in done.stderr
    done = ab(repo, "--base", "HEAD", "--new", "HEAD")  # a commit, not the working tree
    assert run_files(repo)[1]["records"][0]["params"] == 76, done.stderr


def test_the_base_imports_its_own_package_even_with_the_new_one_on_the_path(repo: ToyRepo) -> None:
    # A package under another name than its folder (as this repository maps plugins/ to benchbench_plugins),
    # and the new side's copy first on PYTHONPATH, as an editable install of the working tree would offer it.
    repo.write("pyproject.toml", '[project]\nname = "toys"\nversion = "0"\n\n[tool.setuptools.package-dir]\ntoyplug = "plug_src"\n')
    repo.write("plug_src/__init__.py", "")
    repo.write("plug_src/blocks.py", (repo.path / "toyblocks.py").read_text())
    repo.commit("as a package")
    repo.set("HIDDEN", 16)
    (repo.path / "plug_src/blocks.py").write_text((repo.path / "toyblocks.py").read_text())
    repo.commit("wider")
    elsewhere = repo.path.parent / "installed"
    (elsewhere / "toyplug").mkdir(parents=True)
    (elsewhere / "toyplug" / "__init__.py").write_text("")
    (elsewhere / "toyplug" / "blocks.py").write_text((repo.path / "toyblocks.py").read_text().replace("HIDDEN = 16", "HIDDEN = 2"))
    done = repo.benchbench("ab", "suite.yaml", "--base", "HEAD~1", "-p", "toyplug.blocks", "--base-json", "base.json",
                           "--new-json", "new.json", PYTHONPATH=str(elsewhere))
    assert done.returncode == 1, done.stderr
    base, new = run_files(repo)
    assert (base["records"][0]["params"], new["records"][0]["params"]) == (76, 148)


def test_plugins_dir_and_suite_come_from_each_side(repo: ToyRepo) -> None:
    (repo.path / "blocks").mkdir()
    (repo.path / "toyblocks.py").rename(repo.path / "blocks" / "toyblocks.py")
    repo.commit("plugins in a folder")
    repo.module = "blocks/toyblocks.py"
    repo.set("HIDDEN", 16)
    repo.write("suite.yaml", (repo.path / "suite.yaml").read_text() + "  - name: toy_again\n    model: toy\n")
    done = repo.benchbench("ab", "suite.yaml", "--base", "HEAD", "--plugins-dir", "blocks", "--base-json", "base.json",
                           "--new-json", "new.json")
    assert done.returncode == 1, done.stderr
    base, new = run_files(repo)
    assert [r["benchmark"] for r in base["records"]] == ["toy"]  # the base's own suite
    assert [r["params"] for r in new["records"]] == [148, 148]
    assert base["records"][0]["params"] == 76
    assert "toy_again" in done.stdout and "new" in done.stdout


@pytest.mark.slow
def test_a_latency_change_is_caught_pair_by_pair(repo: ToyRepo) -> None:
    repo.set("SLEEP_S", 0.002)  # 2 ms a step against a few microseconds: no load on the machine hides it
    done = ab(repo, "--base", "HEAD", "--metrics", "params,latency", "--rounds", "5", "--alpha", "0.05")
    assert done.returncode == 1, done.stderr
    assert "Wilcoxon signed-rank" in done.stdout and "toy latency_ms +" in done.stderr
    base, new = run_files(repo)
    for run in (base, new):
        record = run["records"][0]
        assert record["rounds"] == 5 and len(record["latency_rounds_ms"]) == 5
        assert run["environment"][PAIRING_KEY]["order"] == schedule(5)
    assert new["records"][0]["latency_ms"] > 2 > base["records"][0]["latency_ms"]
    assert "round 8 of at most 10: base (pair 4)" in done.stderr  # A B, B A, A B, B A, A B
    assert "round 9 of at most 10: base (pair 5)" in done.stderr


# --------------------------------------------------------------------------- rounds: forks of a round server

PIDS_PLUGIN = (
    "import os\n\nimport benchbench\n\n\n@benchbench.hookimpl\ndef benchbench_run_start(suite, benchmarks, rounds):\n"
    "    with open(os.environ['PIDS_FILE'], 'a') as f:\n"
    "        f.write(f'{os.getpid()} {os.getppid()} {open(\"suite.yaml\").read().count(\"toy\")}\\n')\n"
    "    with open(os.environ['PIDS_FILE'] + '.parent', 'ab') as f:\n"
    "        f.write(open(f'/proc/{os.getppid()}/cmdline', 'rb').read() + b'\\n')\n"
)


@pytest.mark.parametrize("fresh", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["forks", "fresh-processes"])
def test_each_round_is_a_process_of_its_own_forked_from_one_server_per_side(repo: ToyRepo, fresh: bool) -> None:
    repo.write("pids.py", PIDS_PLUGIN)
    repo.commit("a plugin that notes each round's process")
    pids = repo.path.parent / "pids.txt"
    done = ab(repo, "--base", "HEAD", "-p", "pids.py", "--metrics", "params,latency", "--rounds", "3", "--alpha", "0.2",
              "--threshold", "latency=1000%", *(["--fresh-processes"] if fresh else []), PIDS_FILE=str(pids))
    assert done.returncode == 0, done.stderr
    rounds = [line.split() for line in pids.read_text().splitlines()]
    assert len(rounds) == 6 and len({pid for pid, _, _ in rounds}) == 6  # every round a process of its own
    parents = [parent for _, parent, _ in rounds]
    if fresh:
        assert len(set(parents)) == 1  # all started by the ab process itself
    else:
        # base new, new base, base new: the first two rounds are the two servers' forks, and every later round a
        # fork of its side's server
        servers = {"base": parents[0], "new": parents[1]}
        assert servers["base"] != servers["new"]
        assert parents == [servers[side] for side in schedule(3)]
        for line in Path(f"{pids}.parent").read_bytes().splitlines():  # what ps shows: which file, not its source
            assert b"roundserver.py" in line and b"benchbench round server" in line and len(line) < 300, line
    base, new = run_files(repo)
    note = "a fresh process" if fresh else "a fork of its round server"
    assert any(note in line for line in base["notes"]) and any(note in line for line in new["notes"])
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_each_side_starts_a_new_round_server_every_n_pairs(repo: ToyRepo) -> None:
    repo.write("pids.py", PIDS_PLUGIN)
    repo.commit("a plugin that notes each round's process")
    pids = repo.path.parent / "pids.txt"
    done = ab(repo, "--base", "HEAD", "-p", "pids.py", "--metrics", "params,latency", "--rounds", "4", "--alpha", "0.2",
              "--threshold", "latency=1000%", "--pairs-per-server", "2", PIDS_FILE=str(pids))
    assert done.returncode == 0, done.stderr
    parents = [line.split()[1] for line in pids.read_text().splitlines()]
    sides = schedule(4, 2)  # base new, new base; then new base, base new (the first round after a restart alternates)
    first = {side: {p for p, s in zip(parents[:4], sides[:4], strict=True) if s == side} for side in ("base", "new")}
    later = {side: {p for p, s in zip(parents[4:], sides[4:], strict=True) if s == side} for side in ("base", "new")}
    assert all(len(found) == 1 for found in (*first.values(), *later.values()))  # one server per side per 2 pairs
    assert len(set(parents)) == 4  # two servers for each side
    assert done.stderr.count("starting each side's round server anew (every 2 pairs)") == 1
    assert any("a new server every 2 pairs" in line for line in run_files(repo)[0]["notes"])


def test_what_a_side_prints_at_start_up_does_not_upset_its_round_server(repo: ToyRepo) -> None:
    # The side's folder is on its import path, so python imports its sitecustomize.py at start-up, before the
    # server takes its output for its replies.
    repo.write("sitecustomize.py", "print('hello from the side', flush=True)\nprint('{\"code\": 0}', flush=True)\n")
    repo.commit("a sitecustomize that prints")
    repo.set("HIDDEN", 16)
    done = ab(repo, "--base", "HEAD")
    assert done.returncode == 1, done.stderr
    assert [r["records"][0]["params"] for r in run_files(repo)] == [76, 148]


def test_threads_started_by_the_preload_are_a_warning() -> None:
    from benchbench import roundserver

    assert roundserver._threads_started(2, 2) is None  # torch's own thread: nothing to say
    warning = roundserver._threads_started(2, 4)
    assert warning is not None and warning.startswith("2 thread(s) started") and "--fresh-processes" in warning
    assert roundserver._native_threads() == len(os.listdir("/proc/self/task"))


def test_a_round_server_that_cannot_start_is_exit_3_with_its_words(repo: ToyRepo) -> None:
    repo.write("benchbench.py", "raise ImportError('a benchbench.py of the side shadows benchbench')\n")
    repo.commit("a module that shadows benchbench")
    (repo.path / "benchbench.py").unlink()  # gone from the working tree, where the ab command itself starts
    done = ab(repo, "--base", "HEAD")
    assert done.returncode == 3, done.stderr
    assert "round server exited 1" in done.stderr and "shadows benchbench" in done.stderr
    assert "Traceback" not in done.stderr.split("round server")[0]
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_a_side_that_crashes_is_exit_3_with_its_words(repo: ToyRepo) -> None:
    repo.write("crash.py", "import benchbench\n\n\n@benchbench.hookimpl\ndef benchbench_run_start(suite, benchmarks, rounds):\n"
                           "    raise RuntimeError('a hook that breaks')\n")
    repo.commit("a plugin with a broken hook")
    done = ab(repo, "--base", "HEAD", "-p", "crash.py")
    assert done.returncode == 3, done.stderr
    assert "the base side (HEAD = " in done.stderr and "a hook that breaks" in done.stderr and "exited 3" in done.stderr
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_a_plugin_that_fails_in_the_base_only_is_named_by_its_path_in_the_repository(repo: ToyRepo) -> None:
    repo.write("plug.py", "raise ImportError('broken in this commit')\n")
    repo.commit("a plugin that cannot be imported")
    repo.write("plug.py", "")  # mended in the working tree
    done = ab(repo, "--base", "HEAD", "-p", "plug.py")
    assert done.returncode == 2, done.stderr
    assert "the base side (HEAD = " in done.stderr and "plugin 'plug.py' given with -p failed to import" in done.stderr
    assert "benchbench-worktree-" not in done.stderr  # the side's worktree, removed by the time anyone reads it


def test_bad_input_is_exit_2_with_the_reason(repo: ToyRepo, tmp_path: Path) -> None:
    done = ab(repo, "--base", "mian")
    assert done.returncode == 2 and "--base 'mian': no such commit" in done.stderr and "did you mean 'main'" in done.stderr
    assert "Traceback" not in done.stderr
    outside = tmp_path / "outside"
    outside.mkdir()
    done = repo.benchbench("ab", str(repo.path / "suite.yaml"), "--base", "HEAD", cwd=outside)
    assert done.returncode == 2 and "is not in one" in done.stderr
    repo.write("newfolder/suite.yaml", (repo.path / "suite.yaml").read_text())  # a folder only the working tree has
    done = repo.benchbench("ab", "suite.yaml", "--base", "HEAD", cwd=repo.path / "newfolder")
    assert done.returncode == 2 and "the folder 'newfolder' does not exist in the base side" in done.stderr
    repo.write("other.yaml", (repo.path / "suite.yaml").read_text())
    done = repo.benchbench("ab", "other.yaml", "--base", "HEAD", "-p", "toyblocks")
    assert done.returncode == 2 and "the suite 'other.yaml' does not exist in the base side" in done.stderr
    repo.write("suite.yaml", (repo.path / "suite.yaml").read_text().replace("batch_size: 2", "batch_size: 2\n  no_such_key: 1"))
    repo.commit("a broken suite")
    done = ab(repo, "--base", "HEAD")
    assert done.returncode == 2 and "the base side" in done.stderr and "no_such_key" in done.stderr
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_the_worktree_of_a_killed_run_is_removed_by_the_next_one(repo: ToyRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import tempfile

    from benchbench.gitrepo import Repository

    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from benchbench.gitrepo import Repository\n"
        "with Repository(Path(sys.argv[1])).worktree('HEAD') as path:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(repo.path)], env=repo.environment(), check=False)
    assert killed.returncode == -signal.SIGKILL
    assert len(repo.worktrees()) == 2 and len(repo.leftovers()) == 1  # left behind
    monkeypatch.setattr(tempfile, "tempdir", str(repo.tmp))
    with Repository(repo.path).worktree(repo.git("rev-parse", "HEAD")) as path:
        assert (path / "suite.yaml").is_file() and len(repo.worktrees()) == 2  # the stale one is gone, this one is here
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_sigterm_stops_the_sides_and_removes_the_worktree(repo: ToyRepo) -> None:
    repo.set("SLEEP_S", 0.002)
    process = repo.popen("ab", "suite.yaml", "--base", "HEAD", "-p", "toyblocks", "--metrics", "latency", "--rounds", "50")
    deadline = time.monotonic() + 120
    while len(repo.worktrees()) < 2 or not _processes_in(repo.tmp):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in _processes_in(repo.path.parent)}
    assert not left  # no side's process left running


def test_an_interrupted_ab_keeps_the_pairs_that_finished(repo: ToyRepo) -> None:
    repo.set("SLEEP_S", 0.002)
    summary = repo.path.parent / "summary.md"
    process = repo.popen("ab", "suite.yaml", "--base", "HEAD", "-p", "toyblocks", "--metrics", "latency", "--rounds", "50",
                         "--base-json", "base.json", "--new-json", "new.json", GITHUB_STEP_SUMMARY=str(summary))
    assert process.stderr is not None
    said = []
    for line in process.stderr:  # progress: a line per round
        said.append(line)
        if "round 7 of at most 100" in line:  # three pairs finished
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=120)
    err = "".join(said) + err
    assert process.returncode == 130, err
    assert "interrupted after 3 of 50 pair(s)" in err and "latency_ms" in out  # the verdict of what finished
    assert "| toy" in summary.read_text() and "interrupted after 3 of 50 pair(s)" in summary.read_text()
    for run in run_files(repo):
        assert run["environment"][PAIRING_KEY]["pairs"] == 3 and run["environment"][PAIRING_KEY]["interrupted"] == {"planned": 50}
        assert run["records"][0]["rounds"] == 3 and "; interrupted after 3 of 50 pair(s)" in run["notes"][-1]
        assert run["complete"] is False  # so that a later compare on them does not pass
    done = repo.benchbench("compare", "base.json", "new.json")
    assert done.returncode == 1 and "interrupted after 3 of 50 pair(s) is INCOMPLETE" in done.stdout + done.stderr
    done = repo.benchbench("run", "--resume", "new.json")
    assert done.returncode == 2 and "one side of a benchbench ab job" in done.stderr
    assert repo.worktrees() == [f"worktree {repo.path}"] and repo.leftovers() == []


def test_too_few_pairs_for_a_timing_verdict_is_said_before_any_work(repo: ToyRepo) -> None:
    done = ab(repo, "--base", "mian", "--rounds", "3")
    assert "warning: --rounds 3: fewer than 7 pairs cannot show a timing change at alpha 0.01" in done.stderr
    assert done.returncode == 2  # and the bad --base is still refused
    done = ab(repo, "--base", "HEAD", "--rounds", "0")
    assert done.returncode == 2 and "must be a whole number of pairs from 1 to 1000, got 0" in done.stderr
    assert "suites/ci.yaml" not in done.stderr  # run's words about rounds, not ab's about pairs
    assert "warning" not in ab(repo, "--base", "mian", "--rounds", "5", "--alpha", "0.05").stderr  # 5 pairs can reach 0.05


def _processes_in(folder: Path) -> list[int]:
    """The processes whose current folder is inside ``folder`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if (cwd == folder or folder in cwd.parents) and int(entry.name) != os.getpid():  # not pytest itself
                found.append(int(entry.name))
    return found


def test_help_does_not_import_torch() -> None:
    import sys

    code = "import sys; from benchbench.cli import main\ntry:\n main(['ab', '--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False).stdout.strip().endswith("False")
