"""``benchbench ab``: measure a base commit and a new one in turns, in one job, and judge them pair by pair.

Two runs made minutes apart meet two moods of a shared machine, which no statistic on
either run can see: on the 2-core development machine an unchanged layer was flagged 2
times in 20 and a 10% slowdown missed up to 7 times in 20. ``ab`` checks out the base
commit in a temporary git worktree (and ``--new`` too when given; by default the new
side is the working tree, uncommitted changes included), then runs rounds of the suite,
each a process of its side (a fork of the side's round server: :mod:`benchbench.sides`),
in turns: base new, new base, base new, ... (:mod:`benchbench.interleave`). Round i of
both sides makes pair i, and timings are judged on the pairs' ratios
(:func:`benchbench.stats.compare_pairs`), in which whatever the machine did to both rounds
of a pair cancels. Counts (params, FLOPs,
instruction counts) are measured once per side, in the same job, and compared exactly as
``benchbench compare`` does.

Both sides' run files are written (``--out``, or ``--base-json`` / ``--new-json``): they
are ordinary run files, and ``benchbench compare BASE NEW`` judges them paired again. The
table, the exit codes (0 nothing regressed, 1 a regression or a failed benchmark, 2 bad
input, 3 a crash, 130 interrupted) and the job summary (``$GITHUB_STEP_SUMMARY``) are
``compare``'s. The worktrees are removed at the end, on Ctrl-C and SIGTERM too, and the
next run removes those of a run that was killed.

``--rounds`` counts pairs and defaults to 40, not to the suite's ``rounds``: the verdict
rests on the pairs, and a one-sided signed-rank test needs 7 pairs to reach alpha 0.01 at
all (2^-7 < 0.01). A round's median moves by several percent from round to round (the
host, where memory landed), so the pairs need numbers: on the quiet 2-core machine
(``benchmarks/regression_detection.py``, 20 compares each) a 10% slowdown of a small layer
was ``regressed`` 16 times in 20 with 20 pairs, and 20 in 20 with 40, while an unchanged
layer stayed ``unchanged`` 20 in 20. Forty pairs of a one-layer suite take about 34 s there,
and 55 s with the round servers started anew every 5 pairs (the default, see
:data:`DEFAULT_PAIRS_PER_SERVER`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchbench import checks
from benchbench.commands.common import add_plugin_arguments, check_format, step_summary
from benchbench.commands.compare import _alpha as alpha_level
from benchbench.commands.compare import report
from benchbench.errors import ExitCode
from benchbench.outputs import DEFAULT_FOLDER

if TYPE_CHECKING:
    from benchbench.results import RunResult
    from benchbench.sides import RunOptions

DEFAULT_PAIRS = 40

DEFAULT_PAIRS_PER_SERVER = 5
"""Each side's round server is started anew every this many pairs. A fork inherits its
server's heap and hash seed, and a step that is mostly Python runs a percent or two faster or
slower in all the forks of one server than of another: on the 2-core machine, A/A compares
of a 10 us ``Linear(16, 16)`` with one server per side for the whole job varied by 1.6%
(standard deviation of the ratio over 8 compares of 40 pairs), 4 of 8 with p < 0.01 (one
at 1.042x); with a new server every 5 pairs by 0.7%, none below 0.01, for a quarter more
time (121 s a compare against 98 s; ``benchmarks/ab_server_bias.py``)."""


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    ab = commands.add_parser(
        "ab", parents=parents, help="measure a base commit and the new code in turns, in one job, and compare them",
        description="Check out --base (and --new; by default the working tree) in temporary git worktrees, run the "
        "suite's rounds in turns (base new, new base, ...), each round in a fresh process importing its side's code, "
        "and compare the two sides: timings pair by pair, so that what the machine did to both rounds of a pair "
        "cancels; counts exactly. Exit 0 when nothing regressed, 1 when something did, 2 for bad input.",
    )
    ab.add_argument("suite", metavar="SUITE.yaml", help="suite file; one inside the repository is read from each side's checkout")
    ab.add_argument("--base", required=True, metavar="REF", help="the base commit: a branch, tag, hash or HEAD~N")
    ab.add_argument("--new", metavar="REF", help="the new commit (default: the working tree, uncommitted changes included)")
    add_pairs_arguments(ab, f"pairs of rounds (default {DEFAULT_PAIRS}; alpha 0.01 needs at least 7); a suite of "
                        "counts only is measured once per side")
    add_comparison_arguments(ab)
    output = ab.add_argument_group("output")
    output.add_argument("--out", default=DEFAULT_FOLDER, metavar="DIR",
                        help=f"folder for the two run files, <suite>-base-<time>.json and <suite>-new-<time>.json "
                        f"(default: {DEFAULT_FOLDER}/)")
    output.add_argument("--base-json", metavar="FILE", help="write the base side's run file here")
    output.add_argument("--new-json", metavar="FILE", help="write the new side's run file here")
    output.add_argument("--format", default="simple", metavar="FMT",
                        help="the comparison's format: simple (default), github/markdown, grid..., csv or json")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_run_arguments(ab)
    return ab


def add_pairs_arguments(parser: argparse.ArgumentParser, rounds_help: str) -> None:
    """``--rounds`` (pairs), ``--fresh-processes`` and ``--pairs-per-server``: how the two sides are
    measured in turns (``ab`` and ``bisect``)."""
    parser.add_argument("--rounds", type=checks.argparse_type(checks.pairs, int), default=DEFAULT_PAIRS, metavar="N",
                        help=rounds_help)
    parser.add_argument("--fresh-processes", action="store_true",
                        help="start each round as a fresh python process (about 3 s each) instead of a fork of its "
                        "side's round server, which imports python and torch once")
    parser.add_argument("--pairs-per-server", type=checks.argparse_type(checks.non_negative_int, int),
                        default=DEFAULT_PAIRS_PER_SERVER, metavar="N",
                        help=f"start each side's round server anew every N pairs (default {DEFAULT_PAIRS_PER_SERVER}; "
                        "0: once), so that what a fork inherits from it is drawn again")


def add_comparison_arguments(parser: argparse.ArgumentParser) -> None:
    """``--threshold`` and ``--alpha``, as ``benchbench compare`` takes them (``ab`` and ``bisect``)."""
    group = parser.add_argument_group("comparison")
    group.add_argument("--threshold", action="append", default=[], metavar="[BENCH:]FIELD=X%",
                       help="allowed change, as in benchbench compare: 5%%, latency=3%%, conv:latency_ms=10%%; repeatable")
    group.add_argument("--alpha", type=alpha_level, default=None, metavar="P", help="significance level for timings (default 0.01)")
    group.add_argument("--strict", action="store_true", help="exit 1 on any change, improvements too (as benchbench compare)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchbench run`` options passed on to every round of every side (``ab`` and ``bisect``);
    options that plugins add to ``run`` are passed on as given."""
    group = parser.add_argument_group("run options (passed on to each side's benchbench run)")
    group.add_argument("--device", type=checks.argparse_type(checks.device), help="override every benchmark's device")
    group.add_argument("--batch-size", type=checks.argparse_type(checks.positive_int, int), metavar="N",
                       help="override every benchmark's batch size")
    group.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this benchmark; repeatable")
    group.add_argument("--timeout", type=checks.argparse_type(checks.timeout, float), metavar="S",
                       help="seconds each benchmark may take")
    group.add_argument("--metrics", metavar="M1,M2", help="override every benchmark's metrics, e.g. params,flops,latency")
    group.add_argument("--executor", metavar="NAME", help="where benchmarks run inside each side's process")
    group.add_argument("--isolate", dest="executor", action="store_const", const="subprocess",
                       help="each benchmark in its own process (--executor subprocess)")
    add_plugin_arguments(parser)


def run_options(args: argparse.Namespace, extra: list[str]) -> RunOptions:
    """The run options of the command line (``extra``: options plugins add, checked by each side's run)."""
    from benchbench.sides import RunOptions

    return RunOptions(device=args.device, batch_size=args.batch_size, only=tuple(args.only), timeout=args.timeout,
                      executor=args.executor, metrics=args.metrics, plugins=tuple(args.plugins),
                      plugins_dir=args.plugins_dir, extra=tuple(extra))


def progress(quiet: bool) -> Any:
    """A function that prints a line of progress on stderr (nothing with ``-q``)."""
    return (lambda text: None) if quiet else (lambda text: print(f"benchbench: {text}", file=sys.stderr, flush=True))


def main(args: argparse.Namespace, extra: list[str]) -> ExitCode:
    from benchbench import stats
    from benchbench.compare import Thresholds, compare_runs
    from benchbench.gitrepo import Repository
    from benchbench.interleave import measure_pairs
    from benchbench.scratch import Scratch
    from benchbench.sides import Side

    check_format(args.format, "compare", data=True)
    thresholds = Thresholds.parse(args.threshold)
    options = run_options(args, extra)
    outputs = _check_outputs(args)
    alpha = stats.DEFAULT_ALPHA if args.alpha is None else args.alpha
    warn_few_pairs(args.rounds, alpha)
    say = progress(args.quiet)
    repository = Repository.find()
    base_commit = repository.resolve(args.base, "--base")
    new_commit = repository.resolve(args.new if args.new else "HEAD", "--new")
    paths = None
    try:
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(Scratch("benchbench-ab-"))
            base = Side("base", repository, stack.enter_context(repository.worktree(base_commit)), base_commit,
                        ref=args.base)
            if args.new is None:
                new = Side("new", repository, repository.root, new_commit, dirty=repository.dirty())
            else:
                new = Side("new", repository, stack.enter_context(repository.worktree(new_commit)), new_commit,
                           ref=args.new)
            for side in (base, new):
                side.check_exists(args.suite, "the suite")
            say(f"ab: base {base.describe()}; new {new.describe()}; up to {args.rounds} pair(s) of rounds, each round "
                "a process of its side")
            measured = measure_pairs(base, new, args.suite, options, args.rounds, folder, say,
                                     fresh_processes=args.fresh_processes, pairs_per_server=args.pairs_per_server,
                                     keep_on_interrupt=True)
            paths = _write(measured.base, measured.new, outputs, args.out)  # before the worktrees go
    except KeyboardInterrupt:
        if paths is None:
            raise
        measured.interrupted = True  # a second Ctrl-C while the worktrees went: what was written stands
    comparison = compare_runs(measured.base, measured.new, thresholds=thresholds, strict=args.strict,
                              alpha=alpha,
                              allow_other_suite=True)  # two versions of one suite file: a renamed suite is still it
    said = [f"benchbench: run files: base {paths[0]}, new {paths[1]}"]
    if not measured.interrupted:
        return report(comparison, args.format, said)
    stopped = f"interrupted after {measured.pairs} of {args.rounds} pair(s)"
    said.append(f"benchbench: {stopped}: the verdicts above rest on them, and the run files hold them")
    report(comparison, args.format, said)
    step_summary(f"**benchbench ab {stopped}**: the table above rests on them.")
    return ExitCode.INTERRUPTED


def warn_few_pairs(pairs: int, alpha: float) -> None:
    """Say before any work that ``pairs`` pairs cannot show a timing change at ``alpha``
    (a suite of counts only needs one pair, so this is a warning, not an error)."""
    from benchbench import stats

    needed = stats.min_pairs(alpha)
    if pairs < needed:
        print(f"benchbench: warning: --rounds {pairs}: fewer than {needed} pairs cannot show a timing change at alpha "
              f"{alpha:g}; timings will be judged 'too few samples' (counts are measured as usual); use --rounds "
              f"{needed} or more (default {DEFAULT_PAIRS})", file=sys.stderr)


def _check_outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """The two run files' paths when given (checked before any work), else None (named in --out at the end)."""
    from benchbench.outputs import check_distinct, check_folder, check_output

    check_distinct({"--base-json": args.base_json, "--new-json": args.new_json})
    given: list[Path | None] = []
    for option, path in (("--base-json", args.base_json), ("--new-json", args.new_json)):
        given.append(None if path is None else check_output(path, option=option, what="benchbench run file",
                                                            inputs=[args.suite], ours=_replaceable))
    if None in given:
        check_folder(args.out, f"run files into --out {args.out!r}")
    return given[0], given[1]


def _replaceable(path: Path) -> bool:
    """Whether an existing file may be replaced by a side's run file: an empty one, or a run file."""
    from benchbench.errors import UsageError
    from benchbench.results import RunResult

    if path.stat().st_size == 0:
        return True
    try:
        RunResult.read_json(path)
    except UsageError:
        return False
    return True


def _write(base: RunResult, new: RunResult, given: tuple[Path | None, Path | None], folder: str) -> tuple[Path, Path]:
    """Write both sides' run files: where given, else under new names in ``folder``."""
    from benchbench.outputs import claimed_run_file

    written = []
    for run, path, side in ((base, given[0], "base"), (new, given[1], "new")):
        if path is not None:
            written.append(run.write_json(path))
            continue
        with claimed_run_file(folder, f"{run.suite}-{side}") as claimed:
            written.append(run.write_json(claimed))
    return written[0], written[1]
