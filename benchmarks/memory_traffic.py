"""Does ``estimated_cycles`` see the memory traffic that ``instructions`` misses, and what does it cost?

The block of issue 21: a 3x3 convolution, batch norm and ReLU, 64 channels on 32x32, batch 8
(its output: 8 x 64 x 32 x 32 floats, 2 MiB). Two changes that add a full read and write of
that output and little arithmetic: ``.clone()`` of it and ``y + 0.0``. The change comes from
the environment variable ``BENCHBENCH_TRAFFIC_EXTRA`` (``clone``, ``plus0``; empty: none), so
that both runs have the same suite and args and ``benchbench compare`` compares them, as
after a real change to a model's code. This file is also the plugin that registers the
block (``-p benchmarks/memory_traffic.py``).

Runs, each a ``run_suite`` with its own callgrind process (as two CI jobs would be):

* ``--repeats`` (>= 2) runs of the unchanged block with ``instructions`` and
  ``estimated_cycles`` (one process with the cache simulation counts both): the A/A
  spread, (max - min) / min of each field, and the compares of each against the first;
* one run with each change, compared with the first unchanged run: the change of each
  field, and compare's verdict at its default threshold;
* one run with ``instructions`` alone (no cache simulation): how much slower counting is
  with the simulation (the counting seconds of a step and the process's start-up).

    python benchmarks/memory_traffic.py [--repeats 2] [--json FILE]

Goals (issue 21): ``estimated_cycles`` flags both changes (``regressed``), its A/A compares
flag nothing, and the changes are at least 10 times its A/A spread. Prints the tables and
whether each goal was met (exit 0 when all were).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import benchbench

EXTRA_ENV = "BENCHBENCH_TRAFFIC_EXTRA"
CHANGES = {"clone": ".clone() of the output", "plus0": "y + 0.0"}
FIELDS = ("instructions", "estimated_cycles", "cycles_l1_misses", "cycles_ll_misses")


class TrafficBlock(nn.Module):
    """conv 3x3 -> batch norm -> ReLU, then the change ``$BENCHBENCH_TRAFFIC_EXTRA`` (or ``extra``) asks for."""

    def __init__(self, channels: int = 64, extra: str = "") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.extra = os.environ.get(EXTRA_ENV, extra)
        if self.extra not in ("", *CHANGES):
            raise ValueError(f"{EXTRA_ENV}/extra must be one of {', '.join(CHANGES)} or empty, got {self.extra!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        if self.extra == "clone":
            y = y.clone()
        elif self.extra == "plus0":
            y = y + 0.0
        return y


@benchbench.hookimpl
def benchbench_register_models(register: Any) -> None:
    register("traffic_block", TrafficBlock, family="test", input_shape=lambda args: (args.get("channels", 64), 32, 32),
             description=f"conv-bn-relu with a 2 MiB output at batch 8; ${EXTRA_ENV}=clone|plus0 adds a copy of it")


def suite(metrics: list[str]) -> dict[str, Any]:
    return {"name": "memory_traffic", "defaults": {"device": "cpu", "batch_size": 8, "metrics": metrics},
            "benchmarks": [{"name": "block", "model": "traffic_block"}]}


def measured(extra: str, metrics: list[str]) -> Any:
    """One run of the block with ``$BENCHBENCH_TRAFFIC_EXTRA=extra``: its run and its one record."""
    from benchbench.manager import PluginManager

    os.environ[EXTRA_ENV] = extra
    try:
        manager = PluginManager([__file__], autoload=False)  # no entry points: a faster start under valgrind
        manager.pm.unregister(name="benchbench.progress")
        run = benchbench.run_suite(suite(metrics), manager=manager)
    finally:
        os.environ.pop(EXTRA_ENV, None)
    [record] = run.records
    if record["status"] != "ok":
        raise SystemExit(f"the block failed ({extra or 'unchanged'}): {record['error']}")
    return run, record


def main() -> int:
    from benchbench.compare import compare_runs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of the unchanged block (at least 2)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers here")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2 (the A/A spread needs two runs)")
    started = time.perf_counter()
    both = ["instructions", "estimated_cycles"]
    base_runs = []
    for i in range(args.repeats):
        base_runs.append(measured("", both))
        print(f"unchanged run {i + 1}/{args.repeats} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    changed = {}
    for extra in CHANGES:
        changed[extra] = measured(extra, both)
        print(f"{extra} run done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    _, plain = measured("", ["instructions"])
    print(f"instructions-only run done ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    base_run, base = base_runs[0]
    spread = {f: (max(r[f] for _, r in base_runs) - min(r[f] for _, r in base_runs)) / min(r[f] for _, r in base_runs)
              for f in FIELDS}
    aa_flagged = sum(bool(compare_runs(base_run, run, only_fields=both).changes) for run, _ in base_runs[1:])
    rows: dict[str, dict[str, Any]] = {}
    for extra, (run, record) in changed.items():
        verdicts = {r.field: r.verdict.verdict for r in compare_runs(base_run, run, only_fields=both).rows}
        rows[extra] = {f: {"change": record[f] / base[f] - 1, "verdict": verdicts.get(f)} for f in FIELDS}

    print(f"\nThe conv-bn-relu block, 64 channels, 32x32, batch 8 (a 2 MiB output); caches {base['cycles_cache']}")
    print(f"{len(base_runs)} unchanged runs and one per change, each with its own callgrind process; "
          f"{time.perf_counter() - started:.0f} s in all")
    print(f"{'':26}{'instructions':>24}{'estimated_cycles':>26}{'L1 misses':>13}{'LL misses':>13}")
    print(f"{'unchanged (count)':26}{base['instructions']:>24,}{base['estimated_cycles']:>26,}"
          f"{base['cycles_l1_misses']:>13,}{base['cycles_ll_misses']:>13,}")
    print(f"{'A/A spread':26}{spread['instructions']:>24.4%}{spread['estimated_cycles']:>26.4%}"
          f"{spread['cycles_l1_misses']:>13.4%}{spread['cycles_ll_misses']:>13.4%}")
    for extra, row in rows.items():
        cells = [f"{row[f]['change']:+.2%} {row[f]['verdict']}" for f in ("instructions", "estimated_cycles")]
        print(f"{CHANGES[extra]:26}{cells[0]:>24}{cells[1]:>26}"
              f"{row['cycles_l1_misses']['change']:>+13.1%}{row['cycles_ll_misses']['change']:>+13.1%}")
    print(f"thresholds: instructions {base_run.compare['instructions']['threshold']:.0%}, "
          f"estimated_cycles {base_run.compare['estimated_cycles']['threshold']:.0%}; "
          f"A/A compares flagging a change: {aa_flagged} of {len(base_runs) - 1}")
    cache_counting = [r["cycles_wall_s"] for _, r in base_runs]
    cache_startup = [r.get("instructions_startup_s") or r["cycles_startup_s"] for _, r in base_runs]  # whichever started it
    print(f"\n{'counting one step of the block':34}{'start-up (s)':>14}{'counting (s)':>14}")
    print(f"{'instructions alone':34}{plain['instructions_startup_s']:>14.1f}{plain['instructions_wall_s']:>14.1f}")
    print(f"{'with the cache simulation':34}{min(cache_startup):>14.1f}{min(cache_counting):>14.1f}  "
          f"(min of {len(base_runs)} runs; both metrics from one count)")
    print(f"the cache simulation's instruction count: {base['instructions']:,}; without it: {plain['instructions']:,} "
          f"({base['instructions'] / plain['instructions'] - 1:+.4%})")
    smallest = min(abs(row["estimated_cycles"]["change"]) for row in rows.values())
    goals = {
        "estimated_cycles flags both changes": all(row["estimated_cycles"]["verdict"] == "regressed"
                                                   for row in rows.values()),
        "no A/A compare flags a change": aa_flagged == 0,
        "changes >= 10x the A/A spread of estimated_cycles": smallest >= 10 * spread["estimated_cycles"],
    }
    print("goals: " + "; ".join(f"{goal}: {'met' if ok else 'MISSED'}" for goal, ok in goals.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "unchanged": [{f: r[f] for f in FIELDS} for _, r in base_runs], "spread": spread, "changes": rows,
            "aa_flagged": aa_flagged, "cache": base["cycles_cache"],
            "timing": {"plain_startup_s": plain["instructions_startup_s"], "plain_counting_s": plain["instructions_wall_s"],
                       "cache_startup_s": cache_startup, "cache_counting_s": cache_counting},
            "plain_instructions": plain["instructions"], "goals": goals, "args": vars(args)}, indent=1))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
