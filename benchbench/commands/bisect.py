"""``benchbench bisect``: which commit between a good one and a bad one made a benchmark cross its threshold?

As TorchBench bisects its nightly regressions, and ``git bisect run`` any predicate: the
commits after ``--good`` up to ``--bad`` on the bad commit's first-parent line (a main
branch's history, a merge counting as one commit) are searched by halving. Each commit
is checked out in a temporary git worktree and measured with its own code
(:mod:`benchbench.sides`), then judged against the good commit as ``benchbench compare``
would, on the fields ``--metric`` names (a field, ``instructions``, or a metric's name):

* a **count** (params, FLOPs, instruction counts) is deterministic: each commit is measured
  once, and compared with the good commit's count against the field's threshold;
* a **timing** (``latency_ms``) is measured through ``benchbench ab``'s pairing, against the
  good commit checked out beside it (:mod:`benchbench.interleave`, ``--rounds`` pairs): a
  verdict per commit that holds on a shared machine, at the price of a job per step.

The bad commit is measured first: its verdict (``regressed``, or ``improved`` when the
search is for a speed-up) is what a commit must show to count as bad; a bad commit that
shows neither leaves nothing to search (exit 1). A commit whose benchmark fails, or whose
fields cannot be compared (its suite changed the model's args), is skipped, as ``git
bisect skip`` does: the answer is then "one of these commits". Each step is printed as
it is made; the table of every measured commit follows, and the first bad commit.

Exit codes: 0 the first bad commit is named; 1 the bad commit is not worse than the good
one (or could not be measured); 2 bad input (a ref that does not exist, a good commit
that is not an ancestor of the bad one, the same commit twice, an unknown field); 3 a crash;
130 interrupted (the worktrees are removed).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from benchbench.commands.ab import DEFAULT_PAIRS, add_comparison_arguments, add_pairs_arguments, add_run_arguments, progress, run_options
from benchbench.commands.common import check_format
from benchbench.errors import ExitCode, UsageError, did_you_mean

if TYPE_CHECKING:
    from benchbench.compare import Row, Thresholds
    from benchbench.gitrepo import Repository
    from benchbench.results import RunResult
    from benchbench.sides import RunOptions, Side

GOOD, BAD, SKIPPED = "good", "bad", "skipped"


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    bisect = commands.add_parser(
        "bisect", parents=parents, help="find the commit that made a benchmark cross its threshold",
        description="Search the commits after --good up to --bad (first-parent line) by halving, each measured in a "
        "temporary git worktree with its own code, for the first whose --metric crossed its threshold against the good "
        "commit: counts measured once per commit, timings paired with the good commit as in benchbench ab. Exit 0 when "
        "the commit is named, 1 when the bad commit is not worse than the good one, 2 for bad input.",
    )
    bisect.add_argument("suite", metavar="SUITE.yaml", help="suite file; one inside the repository is read from each commit's checkout")
    bisect.add_argument("--good", required=True, metavar="REF", help="a commit without the change (older)")
    bisect.add_argument("--bad", required=True, metavar="REF", help="a commit with the change (newer; its first-parent line is searched)")
    bisect.add_argument("--metric", required=True, metavar="FIELD",
                        help="what crossed its threshold: a compared field (instructions, flops, latency_ms) or a metric's name")
    add_pairs_arguments(bisect, f"for timings: pairs of rounds per commit (default {DEFAULT_PAIRS})")
    bisect.add_argument("--format", default="simple", metavar="FMT", help="the table's format: simple (default), github, grid...")
    bisect.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr (the steps are still in the table)")
    add_comparison_arguments(bisect)
    add_run_arguments(bisect)
    return bisect


@dataclass
class Step:
    """One measured commit: its place on the line, what was seen, and what it makes it."""

    index: int
    commit: str
    state: str
    """good, bad or skipped."""
    seen: str
    """The change that decided, in words (``toy instructions +1,234 (+3.2%): regressed``)."""


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench.compare import Thresholds
    from benchbench.gitrepo import Repository
    from benchbench.scratch import Scratch
    from benchbench.sides import Side

    check_format(args.format, "table")
    thresholds = Thresholds.parse(args.threshold)
    options = run_options(args, extra)
    say = progress(args.quiet)
    repository = Repository.find(command="benchbench bisect")
    good, bad = repository.resolve(args.good, "--good"), repository.resolve(args.bad, "--bad")
    commits = _line(repository, good, bad, args.good, args.bad)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(Scratch("benchbench-bisect-"))
        good_side = Side("good", repository, stack.enter_context(repository.worktree(good)), good, ref=args.good)
        good_side.check_exists(args.suite, "the suite")
        say(f"bisect: {len(commits)} commit(s) after {good_side.describe()} up to {args.bad} = {repository.describe(bad)}")
        judge = _Judge(repository, good_side, args, options, thresholds, folder, say)
        found = bisect(commits, judge.step, say)
    return _report(repository, good, found, args.metric, args.format)


def _line(repository: Repository, good: str, bad: str, good_ref: str, bad_ref: str) -> list[str]:
    """The commits to search, oldest first; clear errors when there are none to search."""
    if good == bad:
        raise UsageError(f"--good {good_ref} and --bad {bad_ref} are the same commit ({good[:10]}): no change between them to search")
    if not repository.is_ancestor(good, bad):
        swapped = " (swapped? the bad commit is an ancestor of the good one)" if repository.is_ancestor(bad, good) else ""
        raise UsageError(f"--good {good_ref} ({good[:10]}) is not an ancestor of --bad {bad_ref} ({bad[:10]}){swapped}: "
                         "bisect searches the commits between an older good commit and a newer bad one")
    return repository.first_parent_line(good, bad)


class _Judge:
    """Measures a commit and judges it against the good commit."""

    def __init__(self, repository: Repository, good: Side, args: argparse.Namespace, options: RunOptions,
                 thresholds: Thresholds, folder: Any, say: Callable[[str], None]) -> None:
        self.repository, self.good, self.args, self.thresholds, self.folder, self.say = (
            repository, good, args, thresholds, folder, say)
        say(f"measuring the good commit {good.describe()} once, to learn the fields")
        self.good_run = good.run_round(args.suite, options.arguments(good), folder / "good.json", folder / "good.log")
        self.fields, metrics, self.timed = _watched(self.good_run, args.metric)
        self.options = options if metrics is None else replace(options, metrics=metrics)
        self.direction: str | None = None  # what the bad commit showed: regressed or improved
        self.count = 0

    def step(self, index: int, commit: str) -> Step:
        """Measure ``commit`` (on the line at ``index``) and say whether it is good, bad or skipped."""
        from benchbench.sides import Side

        self.count += 1
        with self.repository.worktree(commit) as checkout:
            side = Side(commit[:10], self.repository, checkout, commit, ref=commit)
            side.check_exists(self.args.suite, "the suite")
            self.say(f"step {self.count}: measuring {self.repository.describe(commit)}")
            rows = self._rows(side)
        return self._judged(index, commit, rows)

    def _rows(self, side: Side) -> list[Row]:
        from benchbench import stats
        from benchbench.compare import compare_runs

        alpha = stats.DEFAULT_ALPHA if self.args.alpha is None else self.args.alpha
        if self.timed:
            from benchbench.interleave import measure_pairs

            folder = self.folder / f"step-{self.count}"
            folder.mkdir()
            measured = measure_pairs(self.good, side, self.args.suite, self.options, self.args.rounds, folder, self.say,
                                     fresh_processes=self.args.fresh_processes,
                                     pairs_per_server=self.args.pairs_per_server)
            base, new = measured.base, measured.new
        else:
            base = self.good_run
            new = side.run_round(self.args.suite, self.options.arguments(side), self.folder / f"step-{self.count}.json",
                                 self.folder / f"step-{self.count}.log")
        comparison = compare_runs(base, new, thresholds=self.thresholds, alpha=alpha, only_fields=self.fields,
                                  strict=self.args.strict, allow_other_suite=True)
        return comparison.rows

    def _judged(self, index: int, commit: str, rows: list[Row]) -> Step:
        from benchbench import stats
        from benchbench.compare import FAILED, describe_change

        changed = [r for r in rows if r.verdict.verdict in (stats.REGRESSED, stats.IMPROVED)]
        if self.direction is None:  # the bad commit, measured first: what it shows is what bad means
            if not changed:
                shown = "; ".join(describe_change(r) + f": {r.verdict.verdict}" for r in rows) or "nothing compared"
                raise _NothingToSearch(f"the bad commit {self.repository.describe(commit)} is not worse than the good one "
                                       f"on {self.args.metric} ({shown}): nothing to bisect at this threshold")
            self.direction = stats.REGRESSED if any(r.verdict.verdict == stats.REGRESSED for r in changed) else stats.IMPROVED
        decisive = [r for r in changed if r.verdict.verdict == self.direction]
        if decisive:
            worst = max(decisive, key=lambda r: abs((r.verdict.ratio or 1) - 1))
            return Step(index, commit, BAD, f"{describe_change(worst)}: {worst.verdict.verdict}")
        opposite = stats.IMPROVED if self.direction == stats.REGRESSED else stats.REGRESSED
        unsure = [r for r in rows if r.verdict.verdict not in (stats.UNCHANGED, opposite)]
        if unsure or not rows:  # failed, not comparable, uncertain: neither good nor bad, as git bisect skip
            row = unsure[0] if unsure else None
            why = "nothing compared" if row is None else (
                describe_change(row) if row.verdict.verdict == FAILED else f"{row.benchmark} {row.field}: {row.verdict.verdict}"
                + (f" ({row.verdict.note})" if row.verdict.note else ""))
            return Step(index, commit, SKIPPED, why)
        closest = max(rows, key=lambda r: abs((r.verdict.ratio or 1) - 1))
        return Step(index, commit, GOOD, f"{describe_change(closest)}: {closest.verdict.verdict}")


class _NothingToSearch(Exception):
    pass


@dataclass
class Found:
    """The outcome: the first bad commit (with the skipped ones that might be it instead), the steps."""

    steps: list[Step]
    first_bad: Step | None
    candidates: list[Step]
    """The first bad commit and the skipped commits just before it: one of them brought the change."""
    problem: str | None = None
    count: int = 0
    """The commits searched."""


def bisect(commits: list[str], measure: Callable[[int, str], Step], say: Callable[[str], None] = lambda text: None) -> Found:
    """Search ``commits`` (oldest first; the last is the bad commit, measured first) for the
    first bad one, halving the range between the last good and the first bad commit known.

    ``measure(index, commit)`` says what a commit is; a skipped commit is left out, and the
    nearest unmeasured commit to the middle measured instead. Pure logic: tested without git.
    """
    steps: list[Step] = []
    try:
        last = measure(len(commits) - 1, commits[-1])
    except _NothingToSearch as exc:
        return Found([], None, [], str(exc), len(commits))
    steps.append(last)
    say(f"  {last.commit[:10]}: {last.state} ({last.seen})")
    if last.state != BAD:
        return Found(steps, None, [], f"the bad commit {commits[-1][:10]} could not be measured: {last.seen}", len(commits))
    low, high = -1, len(commits) - 1  # the last commit known good (-1: the good commit itself), the first known bad
    skipped: set[int] = set()
    while True:
        untried = [i for i in range(low + 1, high) if i not in skipped]
        if not untried:
            break
        middle = (low + high) / 2
        index = min(untried, key=lambda i: (abs(i - middle), i))
        step = measure(index, commits[index])
        steps.append(step)
        if step.state == BAD:
            high = index
        elif step.state == GOOD:
            low = index
        else:
            skipped.add(index)
        left = len([i for i in range(low + 1, high) if i not in skipped])
        say(f"  {step.commit[:10]}: {step.state} ({step.seen}); {left} commit(s) left to search")
    by_index = {s.index: s for s in steps}
    candidates = [by_index[i] for i in range(low + 1, high) if i in skipped] + [by_index[high]]
    return Found(steps, by_index[high], candidates, count=len(commits))


def _watched(run: RunResult, name: str) -> tuple[list[str], str | None, bool]:
    """The compared fields ``--metric`` names (a field, or every field of a metric), the
    ``--metrics`` that measures them (None: keep the given ones), and whether they are timed."""
    fields = [f for f, spec in run.compare.items() if f == name or spec.get("metric") == name]
    if not fields:
        raise UsageError(f"--metric {name!r}: the good commit's run compares no such field or metric"
                         f"{did_you_mean(name, run.compare)}; compared fields: {', '.join(sorted(run.compare)) or 'none'}"
                         " (--metrics decides what is measured)")
    metrics = {run.compare[f].get("metric") for f in fields}
    metric = next(iter(metrics)) if len(metrics) == 1 and None not in metrics else None
    return fields, metric, any(run.compare[f].get("samples") for f in fields)


def _report(repository: Repository, good: str, found: Found, metric: str, fmt: str) -> ExitCode:
    from tabulate import tabulate

    from benchbench.outputs import emit
    from benchbench.reporters import TABLE_ALIASES

    if found.first_bad is None:
        print(f"benchbench: {found.problem}", file=sys.stderr)
        return ExitCode.FAILED
    rows = [[n, f"{s.index + 1} of {found.count}", repository.describe(s.commit), s.state, s.seen]
            for n, s in enumerate(found.steps, start=1)]
    table = tabulate(rows, headers=["step", "place", "commit", "state", f"{metric} against the good commit"],
                     tablefmt=TABLE_ALIASES.get(fmt, fmt), disable_numparse=True)
    lines = [f"bisect {metric}: good {repository.describe(good)}", "", table, ""]
    if len(found.candidates) == 1:
        lines.append(f"first bad commit: {repository.describe(found.first_bad.commit)} ({found.first_bad.seen})")
    else:
        lines.append(f"the first bad commit is one of {len(found.candidates)} (the others could not be measured): "
                     + "; ".join(repository.describe(s.commit) for s in found.candidates))
    emit("\n".join(lines))
    return ExitCode.OK
