"""Two sides measured in turns, A B B A A B ..., and each side's rounds pooled into one run file.

``benchbench ab`` (and ``bisect`` for timings) measure a base and a new side in one job:
round i of each side makes pair i, and the pairs alternate which side goes first (A B, B A,
A B, ...), so that a machine that speeds up or slows down steadily through the job favours
neither side (the ABBA design of crossover trials). Each round is a process of its own: a
fork of its side's round server (:mod:`benchbench.roundserver`), or with
``--fresh-processes`` a fresh ``python -m benchbench run`` (:mod:`benchbench.sides`).

The first pair runs everything the suite (or ``--metrics``) asks for, deterministic counts
too (params, FLOPs, instruction counts: once per side, in the same job). Later pairs run
only the metrics whose fields are timed (their ``compare`` spec has ``samples``: latency),
and only the benchmarks that have such a field and still run on both sides. A suite of
counts only is measured once per side.

Each side's rounds become one ordinary run file (:func:`pool`): the first round's, with
every timed field's samples, rounds and per-round contention pooled from all its rounds,
in the order they ran, and the field's value the median of the pooled samples. The other
fields stay the first round's (throughput, say), as a note in the file says. The file's
environment carries the pairing (:data:`benchbench.compare.PAIRING_KEY`), by which
``benchbench compare`` knows to judge the two files pair by pair.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchbench.compare import PAIRING_KEY, rounds_of
from benchbench.results import STATUS_FAILED, STATUS_OK, Record, RunResult
from benchbench.sides import RunOptions, Side

BASE, NEW = "base", "new"


def order(pair: int, pairs_per_server: int = 0) -> tuple[str, str]:
    """Which side goes first in pair ``pair`` (0-based): the base in even pairs, the new side in
    odd ones. Where the round servers start anew every ``pairs_per_server`` pairs, an even
    number, every other block of pairs swaps them, so that the first round after a restart is
    not always the base's (with an odd number it alternates by itself)."""
    swap = (pair // pairs_per_server) % 2 if pairs_per_server and pairs_per_server % 2 == 0 else 0
    return (BASE, NEW) if (pair + swap) % 2 == 0 else (NEW, BASE)


def schedule(pairs: int, pairs_per_server: int = 0) -> list[str]:
    """The sides in the order their rounds run: base new, new base, base new, ... (see :func:`order`)."""
    return [name for pair in range(pairs) for name in order(pair, pairs_per_server)]


@dataclass
class Measured:
    """What :func:`measure_pairs` returns: each side's pooled run, and how many pairs ran."""

    base: RunResult
    new: RunResult
    pairs: int
    interrupted: bool = False
    """Ctrl-C (or SIGTERM) ended the measurement early; ``pairs`` pairs had finished."""


def measure_pairs(base: Side, new: Side, suite: str, options: RunOptions, pairs: int, folder: Path,
                  say: Callable[[str], None] = lambda text: None, *, fresh_processes: bool = False,
                  pairs_per_server: int = 0, keep_on_interrupt: bool = False) -> Measured:
    """Measure up to ``pairs`` pairs of rounds of ``suite`` (see the module docstring); the
    rounds' files go to ``folder``; ``say`` gets a line of progress per round. Each round is a
    fork of its side's round server, or with ``fresh_processes`` a fresh process
    (:meth:`benchbench.sides.Side.rounds`). With ``keep_on_interrupt``, Ctrl-C (SIGTERM) after
    the first pair ends the measurement with the pairs that finished (``ab``, as ``run``
    saves what finished); a pair cut in half is dropped."""
    rounds: dict[str, list[RunResult]] = {BASE: [], NEW: []}
    started = time.monotonic()
    interrupted = False
    per_server = 0 if fresh_processes else pairs_per_server
    try:
        with contextlib.ExitStack() as stack:  # inside the try: a Ctrl-C while the servers stop keeps the pairs too
            if not fresh_processes:
                say("starting each side's python and torch (each round is a fork of it)")
            runners = {name: stack.enter_context(side.rounds(folder, fresh_processes=fresh_processes))
                       for name, side in ((BASE, base), (NEW, new))}
            for pair in range(pairs):
                later = _later_rounds(rounds[BASE], rounds[NEW]) if pair else None
                if pair and later is None:
                    break  # nothing timed (a suite of counts), or every timed benchmark failed on a side
                if pair and per_server and pair % per_server == 0:
                    say(f"starting each side's round server anew (every {per_server} pairs)")
                    for runner in runners.values():  # both at once
                        runner.restart()
                for runner in runners.values():  # both started servers imported before any round is timed
                    runner.wait_ready()
                for name in order(pair, per_server):
                    runner = runners[name]
                    arguments = (options.arguments(runner.side, metrics=later[0], only=later[1]) if later
                                 else options.arguments(runner.side))
                    say(f"round {len(rounds[BASE]) + len(rounds[NEW]) + 1} of at most {2 * pairs}: {name} "
                        f"(pair {pair + 1}); {time.monotonic() - started:.0f} s so far")
                    stem = folder / f"{name}-{pair + 1}"
                    rounds[name].append(runner.run_round(suite, arguments, stem.with_suffix(".json"),
                                                         stem.with_suffix(".log")))
    except KeyboardInterrupt:
        if not keep_on_interrupt or not (rounds[BASE] and rounds[NEW]):
            raise
        interrupted = True
    measured = min(len(rounds[BASE]), len(rounds[NEW]))  # a pair cut in half is dropped
    pairing: dict[str, Any] = {"id": uuid.uuid4().hex, "pairs": measured, "order": schedule(measured, per_server)}
    if interrupted:
        pairing["interrupted"] = {"planned": pairs}
    how = ("a fresh process" if fresh_processes else "a fork of its round server"
           + (f" (a new server every {per_server} pairs)" if per_server and measured > per_server else ""))
    return Measured(pool(rounds[BASE][:measured], base, {**pairing, "side": BASE}, new, how),
                    pool(rounds[NEW][:measured], new, {**pairing, "side": NEW}, base, how), measured,
                    interrupted)


def _later_rounds(base_runs: list[RunResult], new_runs: list[RunResult]) -> tuple[str | None, list[str]] | None:
    """The ``--metrics`` and ``--only`` of the next pair: the metrics of the timed fields (None:
    a field names no metric, so all of them), and the benchmarks that have such a field and ran
    (ok) in every round of both sides so far; None when nothing is left to time."""
    timed = {f: s for f, s in {**base_runs[0].compare, **new_runs[0].compare}.items() if s.get("samples")}
    runs = [*base_runs, *new_runs]
    wanted = [record["benchmark"] for record in base_runs[0].records
              if any(record.get(f) is not None for f in timed)
              and all((_record(run, record["benchmark"]) or {}).get("status") == STATUS_OK for run in runs)]
    if not wanted:
        return None
    metrics = ",".join(sorted({s["metric"] for s in timed.values()})) if all(s.get("metric") for s in timed.values()) else None
    return metrics, wanted


def _record(run: RunResult, name: str) -> Record | None:
    return next((r for r in run.records if r.get("benchmark") == name), None)


def pool(runs: list[RunResult], side: Side, pairing: dict[str, Any], other: Side,
         how: str = "a fork of its round server") -> RunResult:
    """One run file from a side's rounds (see the module docstring); ``runs[0]`` measured
    everything; ``how`` says what process each round ran in, for the file's note."""
    first = runs[0]
    specs = first.compare
    timed = {f: s for f, s in specs.items() if s.get("samples")}
    records = []
    for record in first.records:
        merged = dict(record)
        later = [_record(run, record["benchmark"]) for run in runs[1:]]
        pooled = [record, *[r for r in later if r is not None]]
        if record.get("status") == STATUS_OK and len(pooled) > 1:
            failed = next(((i, r) for i, r in enumerate(later, start=2) if r is not None and r.get("status") != STATUS_OK), None)
            if failed is not None:
                index, bad = failed
                merged.update(status=STATUS_FAILED, error=f"round {index}: {bad.get('error') or bad.get('status')}")
            else:
                for name, spec in timed.items():
                    if record.get(name) is not None:
                        merged.update(_pooled_field(pooled, name, spec))
                merged["rounds"] = len(pooled)
                merged["wall_time_s"] = sum(r.get("wall_time_s") or 0 for r in pooled)
        records.append(merged)
    environment = dict(first.environment)
    environment[PAIRING_KEY] = {**pairing, "ref": side.ref or "the working tree", "commit": side.commit,
                                "dirty": side.dirty, "other": {"ref": other.ref or "the working tree", "commit": other.commit}}
    notes = [*first.notes, (
        f"benchbench ab, {pairing['side']} side: {len(runs)} round(s), each in "
        f"{how}, in turns with the "
        f"{'new' if pairing['side'] == BASE else 'base'} side's ({' '.join(pairing['order'])}); "
        + (f"the timed fields ({', '.join(timed)}) pool every round's samples; other fields are the first round's"
           if timed and len(runs) > 1 else "one round: counts are measured once")
        + (f"; interrupted after {len(runs)} of {pairing['interrupted']['planned']} pair(s)"
           if pairing.get("interrupted") else "")
    )]
    complete = all(run.complete for run in runs) and not pairing.get("interrupted")  # compare must not pass it
    return replace(first, records=records, environment=environment, notes=notes, complete=complete,
                   options={**first.options, "rounds": len(runs)})


def _pooled_field(records: list[Record], name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A timed field over several rounds: its rounds, samples and contention in order, its value their median."""
    rounds = [samples for record in records for samples in rounds_of(record, spec)]
    pooled = [x for samples in rounds for x in samples]
    fields: dict[str, Any] = {spec["samples"]: pooled, name: float(np.median(pooled)) if pooled else None}
    if spec.get("rounds"):
        fields[spec["rounds"]] = rounds
    if spec.get("contention"):
        fields[spec["contention"]] = [value for record in records for value in _listed(record.get(spec["contention"]))]
    return fields


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
