"""How long does a 10,000-benchmark params sweep take, end to end, and does each benchmark cost the same?

Writes a sweep suite into a temporary folder (3x3 ``conv`` layers of 16 input channels:
``args.out_channels`` 1..100 for each of 100 ``seed`` values, so that every tenth of the run
holds the same layers; metric ``params`` only, CPU, batch 1) and runs it there as a user
would, ``benchbench run sweep.yaml``: validation (the dry run of every model), every
benchmark, the table, the run file and the history. The progress lines on stderr are
timestamped as they arrive, which splits the time into

* start: from the command to the first benchmark's result (importing torch, the plugins,
  validating);
* run: the benchmarks, with the time per benchmark in each tenth of the run, which stays
  the same when saving costs the same for every benchmark (the run file was once
  rewritten whole after each one: 13 ms a benchmark at the start, 72 ms at the 1,500th);
* end: from the last benchmark to the exit (the run file written whole, the table, the history).

    python benchmarks/params_sweep.py                    # 10,000 benchmarks (the goal: under 5 minutes)
    python benchmarks/params_sweep.py --benchmarks 2000  # a quicker look
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PER_ROW = 100
"""Benchmarks per seed: out_channels runs 1..100."""


def suite(count: int) -> dict:
    rows = -(-count // PER_ROW)
    return {
        "name": "sweep",
        "description": f"{rows * PER_ROW} conv layers, params only",
        "defaults": {"device": "cpu", "batch_size": 1, "metrics": ["params"]},
        "benchmarks": [{
            "model": "conv",
            "args": {"in_channels": 16, "kernel_size": 3, "padding": 1},  # input: the conv's default, 16 x 32 x 32
            "sweep": {"seed": list(range(rows)), "args.out_channels": list(range(1, PER_ROW + 1))},
        }],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", type=int, default=10_000, help="how many (rounded up to a multiple of 100; at most 10,000)")
    args = parser.parse_args()
    data = suite(args.benchmarks)
    count = len(data["benchmarks"][0]["sweep"]["seed"]) * PER_ROW
    with tempfile.TemporaryDirectory(prefix="benchbench-params-sweep-") as folder:
        path = Path(folder, "sweep.yaml")
        path.write_text(yaml.safe_dump(data))
        command = [sys.executable, "-m", "benchbench", "run", path.name]
        print(f"{count} benchmarks: {' '.join(['benchbench', *command[3:]])} (in {folder})", flush=True)
        started = time.perf_counter()
        finished: list[float] = []  # when each benchmark's result line arrived, seconds after the start
        with open(Path(folder, "table.txt"), "w") as table:
            process = subprocess.Popen(command, cwd=folder, stdout=table, stderr=subprocess.PIPE, text=True)
            assert process.stderr is not None
            tail = []
            for line in process.stderr:
                if line.startswith("[") and (": ok" in line or ": failed" in line):
                    finished.append(time.perf_counter() - started)
                elif not line.startswith("["):
                    tail.append(line.rstrip())
            code = process.wait()
        total = time.perf_counter() - started
        if code != 0 or len(finished) != count:
            print(f"benchbench run exited {code} after {len(finished)} of {count} benchmarks:", *tail[-10:], sep="\n  ")
            return 1
        tenth = max(count // 10, 1)
        bounds = [finished[0], *(finished[i * tenth - 1] for i in range(1, 11))]
        tenths = [(b - a) / tenth for a, b in itertools.pairwise(bounds)]
        run_file = next(Path(folder, "results").glob("sweep-*.json"))
        print(f"total {total:.1f} s ({total / 60:.1f} min): start (imports, validation) {finished[0]:.1f} s, "
              f"run {finished[-1] - finished[0]:.1f} s, end (run file, table, history) {total - finished[-1]:.1f} s")
        print(f"per benchmark, by tenth of the run: {' '.join(f'{t * 1e3:.1f}' for t in tenths)} ms")
        print(f"run file {run_file.stat().st_size / 1e6:.1f} MB, table {Path(folder, 'table.txt').stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
