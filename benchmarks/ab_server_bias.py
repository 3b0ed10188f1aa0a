"""Does a round server bias ``benchbench ab``? A/A compares of a step that is mostly Python.

Each round of ``benchbench ab`` is a fork of its side's round server, and a fork inherits
what the server drew when it started: where its Python objects lie, its hash seed. For a
step that is mostly Python (a 10 us ``Linear(16, 16)``) that draw moves every round of one
server by the same percent or two, and pairs that share a server are not independent: the
ratio of an A/A compare strays further than its own interval says, and its p-value is too
small. Restarting the servers every few pairs (``--pairs-per-server``) draws again.

For each ``--pairs-per-server`` value this makes ``--repeats`` A/A compares in a git
repository of one tiny layer (the working tree against ``HEAD``, the same code) and prints
each compare as it finishes, then per value: the mean and standard deviation of the ratio,
how many compares had p < 0.01 (about 1 in 100 if the pairs were independent), the
verdicts, and the seconds a compare took.

    python benchmarks/ab_server_bias.py [--pairs-per-server 0,5] [--repeats 8] [--pairs 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchbench.commands.ab import DEFAULT_PAIRS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from regression_detection import run_ab

PLUGIN = '''"""A layer whose step is mostly Python: torch's dispatch around a tiny matrix product."""
from torch import nn

import benchbench


@benchbench.hookimpl
def benchbench_register_models(register):
    register("tiny_linear", lambda: nn.Linear(16, 16), family="test", input_shape=(16,))
'''

SUITE = """name: server-bias
defaults:
  device: cpu
  batch_size: 8
  metrics: [latency]
  metric_options:
    latency: {warmup_s: 0.05, min_run_time_s: 0.15, min_runs: 10}
benchmarks:
  - {name: tiny_linear, model: tiny_linear}
"""


def repository(folder: Path) -> Path:
    """A git repository of the layer in ``folder``, one commit; its working tree is the same code (A/A)."""
    folder.mkdir()
    (folder / "tiny.py").write_text(PLUGIN)
    (folder / "suite.yaml").write_text(SUITE)
    for command in (["init", "-q"], ["add", "-A"],
                    ["-c", "user.name=ab_server_bias.py", "-c", "user.email=bias@example.com", "commit", "-qm", "layer"]):
        subprocess.run(["git", *command], cwd=folder, check=True, capture_output=True)
    return folder


def compare(folder: Path, out: Path, pairs: int, per_server: int) -> dict:
    """One A/A ``benchbench ab`` in the repository ``folder`` (run files to ``out``, outside it); its latency row."""
    started = time.perf_counter()
    done = run_ab([sys.executable, "-m", "benchbench", "ab", "suite.yaml", "--base", "HEAD", "-p", "tiny.py", "--rounds",
                   str(pairs), "--pairs-per-server", str(per_server), "--format", "json", "-q", "--out", str(out)],
                  folder, {**os.environ, "BENCHBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    if done.returncode not in (0, 1):
        raise SystemExit(f"benchbench ab exited {done.returncode}: {done.stderr.strip()}")
    row = next(r for r in json.loads(done.stdout)["rows"] if r["field"] == "latency_ms")
    return {"per_server": per_server, "ratio": row["ratio"], "ci": [row["ci_low"], row["ci_high"]], "p": row["p_value"],
            "verdict": row["verdict"], "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs-per-server", default="0,5", metavar="N[,M...]",
                        help="the values to compare (0: one server per side for the whole compare)")
    parser.add_argument("--repeats", type=int, default=8, help="A/A compares per value (default 8)")
    parser.add_argument("--pairs", type=int, default=DEFAULT_PAIRS, help=f"pairs per compare (default {DEFAULT_PAIRS})")
    args = parser.parse_args()
    values = [int(v) for v in args.pairs_per_server.split(",")]
    if args.pairs < 7:
        parser.error("--pairs: at least 7 (fewer cannot reach p < 0.01, and ab judges them 'too few samples')")
    scratch = Path(tempfile.mkdtemp(prefix="ab-server-bias-"))
    folder = repository(scratch / "repository")
    seen: dict[int, list[dict]] = {v: [] for v in values}
    try:
        for _ in range(args.repeats):
            for value in values:  # interleaved, so that an hour's mood hits every value alike
                record = compare(folder, scratch / "runs", args.pairs, value)
                seen[value].append(record)
                print(json.dumps(record), flush=True)
    except KeyboardInterrupt:
        print("interrupted: the compares so far", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nA/A of a 10 us Linear(16, 16), {args.pairs} pairs per compare")
    print(f"{'pairs per server':>16} {'compares':>8} {'mean ratio':>10} {'sd':>7} {'p < 0.01':>8} {'s each':>6}  verdicts")
    for value, made in seen.items():
        records = [r for r in made if r["ratio"] is not None and r["p"] is not None]  # a compare ab could judge
        if not records:
            continue
        ratios = [r["ratio"] for r in records]
        sd = statistics.stdev(ratios) if len(ratios) > 1 else float("nan")
        verdicts = ", ".join(f"{v} {sum(r['verdict'] == v for r in records)}" for v in sorted({r["verdict"] for r in records}))
        print(f"{value or 'one server':>16} {len(records):>8} {statistics.mean(ratios):>10.4f} {sd:>7.4f} "
              f"{sum(r['p'] < 0.01 for r in records):>8} {statistics.mean(r['seconds'] for r in records):>6.0f}  {verdicts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
