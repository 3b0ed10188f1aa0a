"""``benchbench bisect``: the first commit whose benchmark crossed its threshold, found by halving.

The search itself is tested without git (every position of the first bad commit, skipped
commits); the command end to end on a tiny repository of 9 commits whose count changes at
one of them, and on a timing through ``ab``'s pairing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchbench.commands.bisect import BAD, GOOD, SKIPPED, Step, _NothingToSearch, bisect
from tests.toyrepo import ToyRepo

# --------------------------------------------------------------------------- the search


def fake(states: list[str]) -> tuple[list[str], list[int], object]:
    """Commits c0..cN and a measure that reads their state from ``states``, recording what it measured."""
    commits = [f"c{i}" for i in range(len(states))]
    measured: list[int] = []

    def measure(index: int, commit: str) -> Step:
        measured.append(index)
        return Step(index, commit, states[index], states[index])

    return commits, measured, measure


@pytest.mark.parametrize("count", [1, 2, 3, 8, 9, 33])
def test_every_position_of_the_first_bad_commit_is_found_in_log2_steps(count: int) -> None:
    for first in range(count):
        commits, measured, measure = fake([GOOD] * first + [BAD] * (count - first))
        found = bisect(commits, measure)
        assert found.first_bad is not None and found.first_bad.index == first and len(found.candidates) == 1
        assert measured[0] == count - 1  # the bad commit first: what it shows is what bad means
        assert len(measured) <= 1 + math.ceil(math.log2(count)) + 1


def test_skipped_commits_are_stepped_around_and_named_when_they_might_be_it() -> None:
    commits, _, measure = fake([GOOD, GOOD, SKIPPED, GOOD, BAD, BAD, BAD, BAD])
    found = bisect(commits, measure)
    assert found.first_bad.index == 4 and [s.index for s in found.candidates] == [4]
    commits, _, measure = fake([GOOD, GOOD, GOOD, SKIPPED, BAD, BAD, BAD, BAD])
    found = bisect(commits, measure)
    assert [s.index for s in found.candidates] == [3, 4]  # c3 could not be measured: c3 or c4


def test_a_bad_commit_that_is_not_bad_leaves_nothing_to_search() -> None:
    def not_worse(index: int, commit: str) -> Step:
        raise _NothingToSearch("the bad commit is not worse")

    found = bisect(["a", "b"], not_worse)
    assert found.first_bad is None and found.problem == "the bad commit is not worse"


# --------------------------------------------------------------------------- the command, end to end


@pytest.fixture
def line(tmp_path: Path) -> ToyRepo:
    """c0 (the toy) .. c8; c5 makes the toy wider (more params and FLOPs)."""
    repo = ToyRepo(tmp_path / "plugin")
    repo.git("commit", "-q", "--amend", "-m", "c0")
    for i in range(1, 9):
        repo.write("notes.txt", f"change {i}\n")
        if i == 5:
            repo.set("HIDDEN", 16)
        repo.commit(f"c{i}")
    return repo


@pytest.mark.slow
def test_bisect_names_the_commit_that_changed_the_count(line: ToyRepo) -> None:
    done = line.benchbench("bisect", "suite.yaml", "--good", "HEAD~8", "--bad", "main", "--metric", "params", "-p", "toyblocks")
    assert done.returncode == 0, done.stderr
    c5 = line.git("rev-parse", "HEAD~3")
    assert f"first bad commit: {c5[:10]} c5 (toy params +72 (+94.7%): regressed)" in done.stdout
    assert "8 commit(s) after HEAD~8" in done.stderr and "step 1: measuring" in done.stderr
    steps = [row for row in done.stdout.splitlines() if row.split()[:1] and row.split()[0].isdigit()]
    assert len(steps) <= 5 and steps[0].split()[1:5] == ["8", "of", "8", line.git("rev-parse", "HEAD")[:10]]  # bad first
    assert line.worktrees() == [f"worktree {line.path}"] and line.leftovers() == []


@pytest.mark.slow
def test_a_commit_whose_benchmark_fails_is_skipped_and_named_as_a_candidate(tmp_path: Path) -> None:
    repo = ToyRepo(tmp_path / "plugin")
    for i in range(1, 4):
        repo.write("notes.txt", f"change {i}\n")
        repo.commit(f"c{i}")
    working = (repo.path / "toyblocks.py").read_text()
    repo.write("toyblocks.py", working.replace("return self.b(self.a(x))", "raise RuntimeError('broken here')"))
    repo.commit("c4 broken")
    repo.write("toyblocks.py", working)
    repo.set("HIDDEN", 16)
    repo.commit("c5 fixed and wider")
    repo.write("notes.txt", "after\n")
    repo.commit("c6")
    done = repo.benchbench("bisect", "suite.yaml", "--good", "HEAD~6", "--bad", "HEAD", "--metric", "params", "-p", "toyblocks")
    assert done.returncode == 0, done.stderr
    assert "skipped" in done.stdout and "broken here" in done.stdout
    last = done.stdout.splitlines()[-1]
    assert last.startswith("the first bad commit is one of 2") and "c4 broken" in last and "c5 fixed and wider" in last


def test_bad_input(line: ToyRepo) -> None:
    cases = {
        ("--good", "HEAD", "--bad", "main"): "are the same commit",
        ("--good", "HEAD", "--bad", "HEAD~3"): "is not an ancestor of --bad HEAD~3 (",
        ("--good", "nosuch", "--bad", "HEAD"): "--good 'nosuch': no such commit",
    }
    for refs, message in cases.items():
        done = line.benchbench("bisect", "suite.yaml", *refs, "--metric", "params", "-p", "toyblocks")
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "swapped?" in line.benchbench("bisect", "suite.yaml", "--good", "HEAD", "--bad", "HEAD~3", "--metric",
                                        "params").stderr
    done = line.benchbench("bisect", "suite.yaml", "--good", "HEAD~8", "--bad", "HEAD", "--metric", "parms", "-p", "toyblocks")
    assert done.returncode == 2 and "--metric 'parms'" in done.stderr and "did you mean 'params'" in done.stderr
    assert line.worktrees() == [f"worktree {line.path}"] and line.leftovers() == []


def test_a_good_commit_off_the_first_parent_line_is_refused(line: ToyRepo) -> None:
    line.git("checkout", "-q", "-b", "side", "HEAD~8")
    line.write("side.txt", "a side branch\n")
    side = line.commit("on a side branch")
    line.git("checkout", "-q", "main")
    line.git("merge", "-q", "--no-ff", "-m", "merge the side branch", "side")
    done = line.benchbench("bisect", "suite.yaml", "--good", side, "--bad", "main", "--metric", "params", "-p", "toyblocks")
    assert done.returncode == 2 and "not on its first-parent line" in done.stderr, done.stderr


def test_a_bad_commit_no_worse_than_the_good_one_is_exit_1(line: ToyRepo) -> None:
    done = line.benchbench("bisect", "suite.yaml", "--good", "HEAD~8", "--bad", "HEAD~4", "--metric", "params", "-p", "toyblocks")
    assert done.returncode == 1 and "is not worse than the good one on params" in done.stderr, done.stderr
    assert "toy params +0 (+0%): unchanged" in done.stderr


@pytest.mark.slow
def test_a_timing_is_bisected_through_the_pairing(tmp_path: Path) -> None:
    repo = ToyRepo(tmp_path / "plugin")
    repo.set("SLEEP_S", 0.002)
    slow = repo.commit("sleep in the forward pass")
    done = repo.benchbench("bisect", "suite.yaml", "--good", "HEAD~1", "--bad", "HEAD", "--metric", "latency_ms",
                           "--metrics", "latency", "--rounds", "5", "--alpha", "0.05", "-p", "toyblocks")
    assert done.returncode == 0, done.stderr
    assert f"first bad commit: {slow[:10]} sleep in the forward pass (toy latency_ms +" in done.stdout
    assert "round 10 of at most 10" in done.stderr  # the bad commit against the good one, 5 pairs
