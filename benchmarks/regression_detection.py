"""Does ``benchbench compare`` catch real slowdowns without crying wolf on this machine?

For each of ``--repeats`` iterations it measures a baseline run of a layer and, each
against a fresh baseline, runs of the same layer unchanged (A/A), 5% and 10% slower, and
10% faster (``benchmarks/scaled_work.py``: the same convolution applied 20, 21, 22 or
18 times), with the rounds and latency budget of ``suites/ci.yaml``, and compares them
with the default statistics (alpha 0.01, threshold 5%). It prints, per condition, how
often a regression was flagged and the verdicts seen.

    python benchmarks/regression_detection.py [--repeats 20] [--rounds 3]

Goals (issue "Regression tracking in CI"): A/A flags no regression in >= 19 of 20;
a 10% slowdown is flagged in >= 19 of 20; a 10% speedup is never called a regression.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import yaml

import benchbench
from benchbench.compare import compare_runs
from benchbench.plugins import PluginManager

HERE = Path(__file__).resolve().parent
CONDITIONS = {"A/A (unchanged)": 20, "5% slower": 21, "10% slower": 22, "10% faster": 18}


def suite(work: int, rounds: int) -> dict:
    ci = yaml.safe_load((HERE.parent / "suites" / "ci.yaml").read_text())
    return {
        "name": "detection",
        "rounds": rounds,
        "defaults": {"device": "cpu", "batch_size": 8, "metrics": ["latency"],
                     "metric_options": ci["defaults"]["metric_options"]},
        "benchmarks": [{"name": "layer", "model": "scaled_work", "args": {"work": work}}],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    manager = PluginManager([str(HERE / "scaled_work.py")], autoload=False)
    manager.pm.unregister(name="benchbench.progress")
    flagged: collections.Counter[str] = collections.Counter()
    verdicts: dict[str, collections.Counter[str]] = {c: collections.Counter() for c in CONDITIONS}
    ratios: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    started = time.perf_counter()
    for i in range(args.repeats):
        for condition, work in CONDITIONS.items():
            base = benchbench.run_suite(suite(20, args.rounds), manager=manager)
            new = benchbench.run_suite(suite(work, args.rounds), manager=manager)
            [row] = compare_runs(base, new).rows
            verdicts[condition][row.verdict.verdict] += 1
            ratios[condition].append(row.verdict.ratio)
            flagged[condition] += row.verdict.verdict == "regressed"
        print(f"iteration {i + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    print(f"{args.repeats} compares per condition, {args.rounds} rounds per run, alpha 0.01, threshold 5%")
    print(f"{'condition':18} {'flagged as regression':>22} {'median ratio':>13}  verdicts")
    for condition in CONDITIONS:
        median = sorted(ratios[condition])[len(ratios[condition]) // 2]
        seen = ", ".join(f"{v} {n}" for v, n in verdicts[condition].most_common())
        print(f"{condition:18} {flagged[condition]:>12} of {args.repeats:<7} {median:>12.3f}x  {seen}")
    aa_ok = args.repeats - flagged["A/A (unchanged)"] >= 0.95 * args.repeats
    slow_ok = flagged["10% slower"] >= 0.95 * args.repeats
    fast_ok = flagged["10% faster"] == 0
    print(f"goals: A/A {'met' if aa_ok else 'MISSED'}; 10% slowdown {'met' if slow_ok else 'MISSED'}; "
          f"10% speedup {'met' if fast_ok else 'MISSED'}")
    return 0 if aa_ok and slow_ok and fast_ok else 1


if __name__ == "__main__":
    sys.exit(main())
