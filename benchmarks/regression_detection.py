"""Does ``benchbench compare`` (two runs) or ``benchbench ab`` (one job, in turns) catch real slowdowns without crying wolf?

For each of ``--repeats`` iterations and each condition it measures a layer as it is and
as changed, and judges the change with the default statistics (alpha 0.01, threshold 5%,
``--threshold`` to change it). The new side's *code* is slower or faster, not its args
(``benchmarks/scaled_work.py`` reads the amount of work from ``$BENCHBENCH_SCALED_WORK``:
20 is the baseline, 21 is 5% slower, 22 10% slower, 18 10% faster), so the two sides are
comparable, as after a real change. Two modes (``--mode``, both by default):

* ``two-run``: a baseline run and a new run, compared the way CI compares with a stored
  baseline: two separate runs at two moments of the machine (``--rounds`` rounds each,
  in this process);
* ``ab``: ``benchbench ab`` itself, as a user runs it, in a git repository made for the
  purpose in a temporary folder: a base commit whose ``work_level.py`` sets the work to
  20, and a commit per condition that sets it to 21, 22, 18, or to 20 again (A/A: a
  commit that changes nothing the layer does). ``--pairs`` pairs of rounds (``benchbench ab
  --rounds``), each round a fork of its side's round server, or with ``--fresh-processes``
  a fresh process.

    python benchmarks/regression_detection.py [--mode two-run|ab|both] [--repeats 20]
                                              [--rounds 5] [--pairs 20] [--threads N]
                                              [--fresh-processes] [--pairs-per-server N]
                                              [--load none|steady|bursty] [--hogs N]
                                              [--conditions aa,slow10,...] [--threshold 0.05[,0.02]]
                                              [--log FILE] [--tabulate LOG] [--json FILE]

``--load steady`` keeps ``--hogs`` CPU-bound processes (default: one per core) running
for the whole benchmark; ``--load bursty`` starts and stops them at random every 5-30 s,
so the load changes between and within runs, as on a shared workstation or CI runner.

Goals of the two-run mode (issue "Trust"): quiet, A/A flags no regression in >= 19 of 20
and a 10% slowdown is flagged in >= 19 of 20; loaded, A/A flags a regression in at most 1
of 20 and a 10% slowdown is flagged or "uncertain", never "unchanged"; a 10% speedup is
never a regression. Goals of the A/B mode (issue 21), on the 2-core machine: A/A flagged
at most 1 of 20 in every condition; a 10% slowdown caught at least 19 of 20 quiet and at
least 15 of 20 under bursty load; a 5% slowdown caught at least 15 of 20 quiet. Prints a
table of verdict counts per mode and whether each goal was met (exit 0 when all were).
``--log FILE`` writes each compare as it finishes, and Ctrl-C or a kill tables the compares
made so far; ``--tabulate FILE`` tables a log again (for example of a killed measurement).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import TextIO

import yaml

import benchbench
from benchbench.commands.ab import DEFAULT_PAIRS, DEFAULT_PAIRS_PER_SERVER
from benchbench.compare import Thresholds, compare_runs
from benchbench.manager import PluginManager
from benchbench.results import RunResult

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scaled_work import WORK_ENV  # noqa: E402

CONDITIONS = {"A/A (unchanged)": 20, "5% slower": 21, "10% slower": 22, "10% faster": 18}
SHORT = {"aa": "A/A (unchanged)", "slow5": "5% slower", "slow10": "10% slower", "fast10": "10% faster"}


def suite(rounds: int, threads: int | None) -> dict:
    """One layer with the rounds and latency budget of suites/ci.yaml."""
    ci = yaml.safe_load((HERE.parent / "suites" / "ci.yaml").read_text())
    defaults = {"device": "cpu", "batch_size": 8, "metrics": ["latency"], "metric_options": ci["defaults"]["metric_options"]}
    if threads:
        defaults["threads"] = threads
    return {"name": "detection", "rounds": rounds, "defaults": defaults,
            "benchmarks": [{"name": "layer", "model": "scaled_work", "args": {"work": 20}}]}


class Load:
    """CPU-bound processes beside the benchmark: always on (steady) or switched at random (bursty)."""

    def __init__(self, kind: str, hogs: int) -> None:
        self.kind = kind
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stop = threading.Event()
        if kind == "none":
            return
        code = "while True: pass"
        self.processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(hogs)]
        if kind == "bursty":
            threading.Thread(target=self._switch, daemon=True).start()

    def _switch(self) -> None:
        rng = random.Random(0)
        running = True
        while not self.stop.wait(rng.uniform(5, 30)):
            running = not running
            for process in self.processes:
                os.kill(process.pid, signal.SIGCONT if running else signal.SIGSTOP)

    def close(self) -> None:
        self.stop.set()
        for process in self.processes:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.wait()


class TwoRuns:
    """The two-run mode: a baseline run and a new run of the layer, in this process, compared."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.manager = PluginManager([str(HERE / "scaled_work.py")], autoload=False)
        self.manager.pm.unregister(name="benchbench.progress")
        self.data = suite(args.rounds, args.threads)
        self.thresholds = args.thresholds

    def run(self, work: int) -> RunResult:
        os.environ[WORK_ENV] = str(work)
        return benchbench.run_suite(self.data, manager=self.manager)

    def compare(self, condition: str) -> dict[float, tuple[str, float | None]]:
        return judge(self.run(20), self.run(CONDITIONS[condition]), self.thresholds)

    def close(self) -> None:
        os.environ.pop(WORK_ENV, None)


class ABJob:
    """The A/B mode: ``benchbench ab`` in a git repository of the layer, one commit per condition.

    The layer's model is ``benchmarks/scaled_work.py`` (outside the repository: the same file
    for both sides); the amount of work is the side's own ``work_level.py``, a plugin module
    of the repository that sets ``$BENCHBENCH_SCALED_WORK`` when it is imported (before any
    model is built), so each commit's code does as much work as the condition says.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="regression-detection-ab-"))
        self.args = args
        data = suite(args.rounds, args.threads)
        data.pop("rounds")
        (self.folder / "suite.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        self._git("init", "-q", "-b", "base")
        self._git("config", "user.email", "detection@example.com")
        self._git("config", "user.name", "regression_detection.py")
        self._level(20, "the layer at its baseline work")
        for short, condition in SHORT.items():
            if condition in args.conditions:
                self._git("checkout", "-q", "-b", short, "base")
                self._level(CONDITIONS[condition], condition, note=short == "aa")
        self._git("checkout", "-q", "base")

    def _git(self, *args: str) -> None:
        subprocess.run(["git", *args], cwd=self.folder, check=True, capture_output=True)

    def _level(self, work: int, message: str, note: bool = False) -> None:
        comment = "# the same work as the base: an A/A commit\n" if note else ""
        (self.folder / "work_level.py").write_text(textwrap.dedent(f"""\
            \"\"\"How much work the scaled_work layer does at this commit (regression_detection.py's A/B mode).\"\"\"
            import os
            {comment}
            os.environ["{WORK_ENV}"] = "{work}"
            """))
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "-m", message)

    def command(self, short: str) -> list[str]:
        """The ``benchbench ab`` command line of one compare (run in the repository's folder)."""
        return [sys.executable, "-m", "benchbench", "ab", "suite.yaml", "--base", "base", "--new", short,
                "-p", str(HERE / "scaled_work.py"), "-p", "work_level", "--rounds", str(self.args.pairs),
                "--threshold", f"latency={self.args.thresholds[0]}", "--format", "json", "-q",
                "--base-json", "base.json", "--new-json", "new.json",
                "--pairs-per-server", str(self.args.pairs_per_server),
                *(["--fresh-processes"] if self.args.fresh_processes else [])]

    def compare(self, condition: str) -> dict[float, tuple[str, float | None]]:
        """``benchbench ab`` at the first threshold; its two run files judged again at the others."""
        short = next(k for k, v in SHORT.items() if v == condition)
        env = {**os.environ, "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
        env.pop(WORK_ENV, None)
        done = run_ab(self.command(short), self.folder, env)
        if done.returncode not in (0, 1):
            raise SystemExit(f"benchbench ab exited {done.returncode}: {done.stderr.strip()}")
        row = next(r for r in json.loads(done.stdout)["rows"] if r["field"] == "latency_ms")
        judged = judge(RunResult.read_json(self.folder / "base.json"), RunResult.read_json(self.folder / "new.json"),
                       self.args.thresholds)
        assert judged[self.args.thresholds[0]][0] == row["verdict"], (judged, row)  # as ab itself judged
        return judged

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def run_ab(command: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a ``benchbench ab`` command to its end. On Ctrl-C or SIGTERM here it is stopped as a
    user stops it, with SIGTERM (it stops its round servers and removes its worktree), and
    waited for; ``subprocess.run`` would kill it, leaving both behind. It runs in a session of
    its own, so that a terminal's Ctrl-C reaches this script only."""
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate()
    except KeyboardInterrupt:
        process.terminate()
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


SETTINGS = ("conditions", "thresholds", "repeats", "rounds", "pairs", "pairs_per_server", "fresh_processes", "threads",
            "load", "hogs")
"""What a ``--log`` file records of how it was measured (``--tabulate`` tables it with them)."""

MODES: dict[str, type[TwoRuns] | type[ABJob]] = {"two-run": TwoRuns, "ab": ABJob}


def judge(base: RunResult, new: RunResult, thresholds: list[float]) -> dict[float, tuple[str, float | None]]:
    """The latency verdict and ratio of ``new`` against ``base`` at each threshold (the
    statistic does not depend on it: only whether the estimate is beyond it)."""
    judged = {}
    for threshold in thresholds:
        rows = compare_runs(base, new, thresholds=Thresholds.parse([f"latency={threshold}"]), allow_other_suite=True).rows
        row = next(r for r in rows if r.field == "latency_ms")
        judged[threshold] = (row.verdict.verdict, row.verdict.ratio)
    return judged


def measure(args: argparse.Namespace, mode: str, log: TextIO | None) -> list[dict]:
    """Every condition ``--repeats`` times in one mode: one record per compare, each written to
    ``log`` as it finishes (a killed measurement keeps what it did). Ctrl-C or SIGTERM stops
    it; the records so far are returned, and tabled as they are."""
    records: list[dict] = []
    started = time.perf_counter()
    judging = None
    try:
        judging = MODES[mode](args)
        for i in range(args.repeats):
            for condition in args.conditions:
                judged = judging.compare(condition)
                record = {"mode": mode, "iteration": i + 1, "condition": condition,
                          "judged": {str(t): list(v) for t, v in judged.items()},
                          "seconds": round(time.perf_counter() - started, 1)}
                records.append(record)
                if log:
                    print(json.dumps(record), file=log, flush=True)
            print(f"{mode}: iteration {i + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{mode}: interrupted; tabling the {len(records)} compare(s) that finished", file=sys.stderr)
    finally:
        if judging is not None:
            judging.close()
    return records


def summarize(records: list[dict], mode: str, args: argparse.Namespace) -> dict:
    """The verdict counts, goals and median ratios of one mode's records (see ``measure``)."""
    mine = [r for r in records if r["mode"] == mode]
    verdicts = {t: {c: collections.Counter[str]() for c in args.conditions} for t in args.thresholds}
    ratios: dict[str, list[float]] = {c: [] for c in args.conditions}
    for record in mine:
        for threshold in args.thresholds:
            verdicts[threshold][record["condition"]][record["judged"][str(threshold)][0]] += 1
        ratio = record["judged"][str(args.thresholds[0])][1]
        if ratio is not None:
            ratios[record["condition"]].append(ratio)
    counts = {c: sum(1 for r in mine if r["condition"] == c) for c in args.conditions}
    return {"thresholds": {t: {"verdicts": {c: dict(v) for c, v in by.items()},
                               "goals": goals(mode, {c: dict(v) for c, v in by.items()}, counts, args.load)}
                           for t, by in verdicts.items()},
            "compares": counts,
            "median_ratio": {c: sorted(r)[len(r) // 2] if r else None for c, r in ratios.items()},
            "seconds": max((r["seconds"] for r in mine), default=0.0)}


def goals(mode: str, seen: dict[str, dict[str, int]], counts: dict[str, int], load: str) -> dict[str, bool]:
    """Which goals this mode met (see the module docstring); only those the conditions measured,
    as shares of the compares made (``counts``), and none of fewer than 20 compares (``--repeats``,
    an interrupted measurement): the goals are of 20."""
    if min(counts.values(), default=0) < 20:
        return {}

    def flagged(condition: str) -> float:
        return seen[condition].get("regressed", 0) / counts[condition]

    met: dict[str, bool] = {}
    if "A/A (unchanged)" in seen:
        met["A/A false alarms <= 1 in 20"] = flagged("A/A (unchanged)") <= 1 / 20
    if "10% faster" in seen:
        met["10% speedup never a regression"] = flagged("10% faster") == 0
    if mode == "two-run":
        if "10% slower" in seen and load == "none":
            met["10% slowdown caught >= 19 in 20"] = flagged("10% slower") >= 0.95
        elif "10% slower" in seen:
            met["10% slowdown never 'unchanged'"] = seen["10% slower"].get("unchanged", 0) == 0
        return met
    if "10% slower" in seen and load == "none":
        met["10% slowdown caught >= 19 in 20"] = flagged("10% slower") >= 0.95
    elif "10% slower" in seen and load == "bursty":
        met["10% slowdown caught >= 15 in 20"] = flagged("10% slower") >= 0.75
    if "5% slower" in seen and load == "none":
        met["5% slowdown caught >= 15 in 20"] = flagged("5% slower") >= 0.75
    return met


def table(mode: str, result: dict, threshold: float, args: argparse.Namespace) -> list[str]:
    counts = result["compares"]
    n = max(counts.values(), default=0)
    how = (f"{args.rounds} rounds per run, two runs per compare" if mode == "two-run"
           else f"benchbench ab, {args.pairs} pairs of rounds, each round "
           + ("a fresh process" if args.fresh_processes else "a fork of its side's round server"
              + (f" (a new one every {args.pairs_per_server} pairs)" if args.pairs_per_server else " (one per compare)")))
    lines = [f"{mode}: {n} compares per condition; {how}; threads {args.threads or 'default'}; load {args.load}"
             + (f" ({args.hogs} CPU-bound processes)" if args.load != "none" else "")
             + f"; alpha 0.01, threshold {threshold:.0%}; {result['seconds']:.0f} s",
             f"{'condition':18} {'regressed':>9} {'median ratio':>13}  verdicts"]
    judged = result["thresholds"][threshold]
    for condition in args.conditions:
        seen = judged["verdicts"][condition]
        median = result["median_ratio"][condition]
        text = ", ".join(f"{v} {c}" for v, c in sorted(seen.items(), key=lambda kv: -kv[1]))
        lines.append(f"{condition:18} {seen.get('regressed', 0):>4} of {counts[condition]:<3} {median or float('nan'):>12.3f}x  {text}")
    met = judged["goals"]
    lines.append("goals: " + ("; ".join(f"{goal}: {'met' if ok else 'MISSED'}" for goal, ok in met.items())
                              or ("not judged: fewer than 20 compares" if n < 20 else "none measured")))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("two-run", "ab", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="two-run mode: rounds per run (suites/ci.yaml: 5)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS,
                        help=f"ab mode: pairs of rounds per compare (default {DEFAULT_PAIRS}, benchbench ab's)")
    parser.add_argument("--fresh-processes", action="store_true",
                        help="ab mode: each round a fresh python process (benchbench ab --fresh-processes)")
    parser.add_argument("--pairs-per-server", type=int, default=DEFAULT_PAIRS_PER_SERVER,
                        help=f"ab mode: a new round server every N pairs (default {DEFAULT_PAIRS_PER_SERVER}, "
                        "benchbench ab's; 0: one per compare, as before commit 1d60437)")
    parser.add_argument("--threshold", default="0.05", metavar="X[,Y...]",
                        help="allowed slowdown for latency (default 0.05); with several, each compare is judged at each "
                        "(ab runs with the first)")
    parser.add_argument("--threads", type=int, default=None, help="threads: of the benchmark (default: torch's)")
    parser.add_argument("--load", choices=("none", "steady", "bursty"), default="none")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="CPU-bound processes for --load")
    parser.add_argument("--json", metavar="FILE", help="also write the counts here")
    parser.add_argument("--log", metavar="FILE", help="write the settings and then each compare's verdicts here, a "
                        "JSON line each, as they come (the file is replaced)")
    parser.add_argument("--tabulate", metavar="LOG", help="measure nothing: table the compares of a --log file, with "
                        "the settings it was measured with")
    parser.add_argument("--conditions", default=",".join(SHORT), help=f"which conditions, of {','.join(SHORT)}")
    args = parser.parse_args()
    unknown = [c for c in args.conditions.split(",") if c not in SHORT]
    if unknown:
        parser.error(f"--conditions: unknown {unknown[0]!r}; choose from {', '.join(SHORT)}")
    args.conditions = [SHORT[c] for c in args.conditions.split(",")]
    try:
        args.thresholds = [float(t) for t in args.threshold.split(",")]
    except ValueError:
        parser.error(f"--threshold: expected numbers such as 0.05 or 0.05,0.02, got {args.threshold!r}")
    modes = ["two-run", "ab"] if args.mode == "both" else [args.mode]
    if args.log and not args.tabulate and not _replaceable_log(Path(args.log)):
        parser.error(f"--log {args.log}: the file exists and is not a log of this script; name a new file")
    if args.tabulate:
        try:
            lines = [json.loads(line) for line in Path(args.tabulate).read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            parser.error(f"--tabulate {args.tabulate}: not a --log file of this script ({exc})")
        for line in lines:  # what the log was measured with, not this command line's defaults
            vars(args).update(line.get("settings", {}))
        records = [r for r in lines if "mode" in r and r["condition"] in args.conditions]
    else:
        records = run_modes(args, modes)
    interrupted = len(records) < len(modes) * args.repeats * len(args.conditions)
    modes = [m for m in modes if any(r["mode"] == m for r in records)]
    results = {mode: summarize(records, mode, args) for mode in modes}
    for mode in modes:
        for threshold in args.thresholds:
            print("\n".join(table(mode, results[mode], threshold, args)))
    if args.json:
        Path(args.json).write_text(json.dumps({"modes": results, "args": vars(args)}, indent=1))
    met = [ok for result in results.values() for judged in result["thresholds"].values() for ok in judged["goals"].values()]
    if interrupted and not args.tabulate:
        return 130
    return 0 if all(met) else 1


def _replaceable_log(path: Path) -> bool:
    """Whether ``--log`` may write ``path``: a new or empty file, or an earlier log (its first
    line holds the settings); never a file of the user's."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return True
    try:
        with path.open(encoding="utf-8") as log:
            return "settings" in json.loads(log.readline())
    except (OSError, ValueError, TypeError):
        return False


def run_modes(args: argparse.Namespace, modes: list[str]) -> list[dict]:
    """Each mode's records, one mode after the other under the same load (``--log``: as they come)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill tables what finished, as Ctrl-C does
    log = open(args.log, "w", encoding="utf-8") if args.log else None  # noqa: SIM115 - open for the whole run
    if log:
        print(json.dumps({"settings": {k: getattr(args, k) for k in SETTINGS}}), file=log, flush=True)
    records: list[dict] = []
    load = Load(args.load, args.hogs)
    try:
        for mode in modes:
            done = measure(args, mode, log)
            records += done
            if len(done) < args.repeats * len(args.conditions):
                break  # interrupted
    finally:
        load.close()
        if log:
            log.close()
    return records


if __name__ == "__main__":
    sys.exit(main())
