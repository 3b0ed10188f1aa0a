"""Does ``benchbench compare`` catch real slowdowns without crying wolf, quiet or loaded?

For each of ``--repeats`` iterations and each condition it runs a baseline of a layer and
a new run, and compares them with the default statistics (alpha 0.01, threshold 5%), the
way CI does: two separate runs at two moments of the machine. The new run's *code* is
slower or faster, not its args (``benchmarks/scaled_work.py`` reads the amount of work
from ``$BENCHBENCH_SCALED_WORK``: 20 is the baseline, 21 is 5% slower, 22 10% slower, 18
10% faster), so compare sees two comparable runs, as after a real change.

    python benchmarks/regression_detection.py [--repeats 20] [--rounds 5] [--threads N]
                                              [--load none|steady|bursty] [--hogs N]
                                              [--conditions aa,slow10,...]

``--load steady`` keeps ``--hogs`` CPU-bound processes (default: one per core) running
for the whole benchmark; ``--load bursty`` starts and stops them at random every 5-30 s,
so the load changes between and within runs, as on a shared workstation or CI runner.

Goals (issue "Trust"): quiet, A/A flags no regression in >= 19 of 20 and a 10% slowdown
is flagged in >= 19 of 20; loaded, A/A flags a regression in at most 1 of 20 and a 10%
slowdown is flagged or "uncertain", never "unchanged"; a 10% speedup is never a regression.
Prints a table of verdict counts and whether each goal was met (exit 0 when all were).
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
import threading
import time
from pathlib import Path

import yaml

import benchbench
from benchbench.compare import compare_runs
from benchbench.manager import PluginManager

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


def measure(args: argparse.Namespace) -> dict:
    manager = PluginManager([str(HERE / "scaled_work.py")], autoload=False)
    manager.pm.unregister(name="benchbench.progress")
    data = suite(args.rounds, args.threads)
    conditions = {c: CONDITIONS[c] for c in args.conditions}
    verdicts: dict[str, collections.Counter[str]] = {c: collections.Counter() for c in conditions}
    ratios: dict[str, list[float]] = {c: [] for c in conditions}
    started = time.perf_counter()

    def run(work: int) -> benchbench.results.RunResult:
        os.environ[WORK_ENV] = str(work)
        return benchbench.run_suite(data, manager=manager)

    for i in range(args.repeats):
        for condition, work in conditions.items():
            base, new = run(20), run(work)
            row = next(r for r in compare_runs(base, new).rows if r.field == "latency_ms")
            verdicts[condition][row.verdict.verdict] += 1
            if row.verdict.ratio is not None:
                ratios[condition].append(row.verdict.ratio)
        print(f"iteration {i + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return {"verdicts": {c: dict(v) for c, v in verdicts.items()},
            "median_ratio": {c: sorted(r)[len(r) // 2] if r else None for c, r in ratios.items()},
            "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per run (suites/ci.yaml: 5)")
    parser.add_argument("--threads", type=int, default=None, help="threads: of the benchmark (default: torch's)")
    parser.add_argument("--load", choices=("none", "steady", "bursty"), default="none")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="CPU-bound processes for --load")
    parser.add_argument("--json", metavar="FILE", help="also write the counts here")
    parser.add_argument("--conditions", default=",".join(SHORT), help=f"which conditions, of {','.join(SHORT)}")
    args = parser.parse_args()
    unknown = [c for c in args.conditions.split(",") if c not in SHORT]
    if unknown:
        parser.error(f"--conditions: unknown {unknown[0]!r}; choose from {', '.join(SHORT)}")
    args.conditions = [SHORT[c] for c in args.conditions.split(",")]
    load = Load(args.load, args.hogs)
    try:
        result = measure(args)
    finally:
        load.close()
    n = args.repeats
    print(f"{n} compares per condition; {args.rounds} rounds per run; threads {args.threads or 'default'}; "
          f"load {args.load}" + (f" ({args.hogs} CPU-bound processes)" if args.load != "none" else "")
          + f"; alpha 0.01, threshold 5%; {result['seconds']:.0f} s")
    print(f"{'condition':18} {'regressed':>9} {'median ratio':>13}  verdicts")
    for condition in args.conditions:
        seen = result["verdicts"][condition]
        median = result["median_ratio"][condition]
        text = ", ".join(f"{v} {c}" for v, c in sorted(seen.items(), key=lambda kv: -kv[1]))
        print(f"{condition:18} {seen.get('regressed', 0):>4} of {n:<3} {median or float('nan'):>12.3f}x  {text}")
    seen = result["verdicts"]
    goals = {}
    if "A/A (unchanged)" in seen:
        goals["A/A false alarms <= 1 in 20"] = seen["A/A (unchanged)"].get("regressed", 0) <= n / 20
    if "10% faster" in seen:
        goals["10% speedup never a regression"] = seen["10% faster"].get("regressed", 0) == 0
    if "10% slower" in seen and args.load == "none":
        goals["10% slowdown caught >= 19 in 20"] = seen["10% slower"].get("regressed", 0) >= 0.95 * n
    elif "10% slower" in seen:
        goals["10% slowdown never 'unchanged'"] = seen["10% slower"].get("unchanged", 0) == 0
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'MISSED'}" for goal, ok in goals.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "args": vars(args), "goals": goals}, indent=1))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
