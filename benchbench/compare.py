"""``benchbench compare``: did a change make anything slower, bigger or hungrier?

Compares two run files benchmark by benchmark and field by field. How each field is
judged comes from the run file itself (``compare``, written from the metrics'
registrations), so comparing needs neither the plugins nor torch; the statistics are in
:mod:`benchbench.stats`.

Thresholds, most specific first: ``--threshold BENCH:FIELD=x%`` (or ``BENCH:METRIC``),
``--threshold FIELD=x%`` (or ``METRIC=x%``), the suite's ``thresholds:`` (kept in each
record), the field's own default when its metric declares one (``threshold`` in its
``compare`` spec: 1% for instruction counts), ``--threshold x%`` (a default for the timed
and single-valued fields: params and FLOPs stay exact unless named), and finally the
built-in defaults: 0% for deterministic fields (params, FLOPs), 5% for the others.

Two runs are compared like with like. A field is judged only when the settings it
depends on are equal in both records, else it is ``not comparable``: a deterministic
field (params, FLOPs) depends on the model, its args and the input shape only, so it
is compared across machines, thread counts and devices; a measured one (latency,
memory) on every setting (:data:`benchbench.results.MODEL_SETTINGS` and
:data:`~benchbench.results.RUN_SETTINGS`); a metric may list the record fields its values
depend on instead (``settings``: instruction counts name the CPU and the software too).
Timings from different machines (another CPU or GPU), from a busy CPU, or with fewer
than 3 rounds a side are never called regressions or improvements (``uncertain``; see
:mod:`benchbench.stats`). A compare that judged nothing at all fails: a CI gate must not
pass by comparing nothing. A benchmark that failed in the new run fails the compare (exit
1, as a failed benchmark fails a run), also when it failed in the base; one that failed in
the base and runs now is ``fixed``, which is no regression.

Two run files that ``benchbench ab`` wrote in one job (its base and its new side, marked
with one pairing id: :data:`PAIRING_KEY` in their environment) are compared **paired**:
round i of the new side against round i of the base, measured next to it
(:func:`benchbench.stats.compare_pairs`), whoever compares them, ``ab`` itself or a later
``benchbench compare BASE.json NEW.json``. Their rounds shared the machine pair by pair, so
the busy-CPU and fewest-rounds rules of unpaired timings do not apply; too few pairs to
reach alpha is ``too few samples``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from benchbench import formatting, stats
from benchbench.checks import parse_threshold, shown
from benchbench.errors import ExitCode, UsageError, did_you_mean
from benchbench.results import MODEL_SETTINGS, RUN_SETTINGS, STATUS_FAILED, STATUS_OK, Record, RunResult, is_number

DEFAULT_THRESHOLD = 0.05
EXACT_THRESHOLD = 0.0
FAILED, FIXED, MISSING, ADDED = "failed", "fixed", "missing in new", "new"
NOT_COMPARABLE = "not comparable"
REGRESSIONS = (stats.REGRESSED, FAILED)
PAIRING_KEY = "ab_pairing"
"""The environment key of a run file that is one side of a paired measurement (``benchbench
ab``): ``{"id": ..., "side": "base" | "new", ...}``; two files with one id are paired."""
JUDGED = (stats.REGRESSED, stats.IMPROVED, stats.UNCHANGED, stats.UNCERTAIN, stats.TOO_FEW)


@dataclass
class Thresholds:
    """Thresholds given on the command line; see the module docstring for the order."""

    default: float | None = None
    by_key: dict[str, float] = field(default_factory=dict)
    """``FIELD`` or ``METRIC`` -> fraction."""
    by_benchmark: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(BENCH, FIELD or METRIC)`` -> fraction."""

    @classmethod
    def parse(cls, items: Iterable[str], option: str = "--threshold") -> Thresholds:
        """``["5%", "latency=3%", "standard_3x3:latency_ms=10%"]`` -> Thresholds; ``option``
        names the command-line option in messages."""
        out = cls()
        for item in items:
            key, _, value = item.rpartition("=")
            number, problem = parse_threshold(value)
            if problem or number is None:
                raise UsageError(f"{option} {shown(item)}: {problem}; e.g. {option} latency=5%")
            if not key:
                out.default = number
            elif ":" in key:
                bench, _, name = key.rpartition(":")  # a benchmark's name may hold "::" (a pytest node id); a field's never does
                out.by_benchmark[(bench, name)] = number
            else:
                out.by_key[key] = number
        return out

    def keys(self) -> set[str]:
        return set(self.by_key) | {name for _, name in self.by_benchmark}

    def resolve(self, benchmark: str, name: str, metric: str | None, record: Record, exact: bool,
                declared: float | None = None, *, budget: bool = False) -> float:
        """The threshold of one field; ``declared``: the field's own default (its metric's ``compare`` spec);
        ``budget``: the suite's value for the field bounds the value itself (:func:`budget_of`), not its change."""
        for key in (name, metric):
            if key and (benchmark, key) in self.by_benchmark:
                return self.by_benchmark[(benchmark, key)]
        for key in (name, metric):
            if key and key in self.by_key:
                return self.by_key[key]
        suite = record.get("thresholds") or {}
        if name in suite and is_number(suite[name]) and not budget:
            return float(suite[name])
        if declared is not None:  # a field with its own default (instructions: 1%) keeps it unless named
            return declared
        if self.default is not None and not exact:  # a blanket default never relaxes params or FLOPs
            return self.default
        return EXACT_THRESHOLD if exact else DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Row:
    benchmark: str
    field: str
    base: Any
    new: Any
    verdict: stats.Verdict
    threshold: float | None = None
    samples: tuple[int, int] | None = None
    """(base, new) sample counts for timed fields."""


@dataclass
class Comparison:
    base: RunResult
    new: RunResult
    rows: list[Row]
    alpha: float
    notes: list[str] = field(default_factory=list)
    strict: bool = False
    paired: bool = False
    """Timed fields were judged pair by pair (the two runs are the sides of one ``benchbench ab``)."""

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict.verdict in REGRESSIONS]

    @property
    def changes(self) -> list[Row]:
        """What ``--strict`` fails on: every row that is not a field judged unchanged."""
        return [r for r in self.rows if r.verdict.verdict != stats.UNCHANGED]

    @property
    def judged_nothing(self) -> bool:
        """Benchmarks were there to compare, yet none could be judged (all not comparable,
        missing, new, or failing on both sides); a fixed one (failed before, runs now) counts
        as judged. Two runs with no benchmark in common judge nothing."""
        return bool(self.rows) and not any(r.verdict.verdict in (*JUDGED, FIXED) for r in self.rows)

    @property
    def missing(self) -> list[Row]:
        """Benchmarks and fields of the baseline that the new run lacks: not compared."""
        return [r for r in self.rows if r.verdict.verdict == MISSING]

    @property
    def exit_code(self) -> ExitCode:
        """1 when something regressed, when the new run did not finish (a killed CI run must not
        pass), when nothing could be judged, or (strict) when anything changed."""
        failing = self.regressions or not self.new.complete or self.judged_nothing or (self.strict and self.changes)
        return ExitCode.FAILED if failing else ExitCode.OK


def compare_runs(
    base: RunResult,
    new: RunResult,
    *,
    thresholds: Thresholds | None = None,
    alpha: float = stats.DEFAULT_ALPHA,
    only_fields: Iterable[str] | None = None,
    allow_other_suite: bool = False,
    strict: bool = False,
    paired: bool | None = None,
) -> Comparison:
    """Judge every benchmark and compared field of ``new`` against ``base``.

    ``strict``: any change fails (``Comparison.exit_code``), improvements too, and timing
    verdicts may rest on fewer than 3 rounds a side. ``paired``: judge timed fields pair by
    pair (None: when the two runs are the sides of one ``benchbench ab``, :func:`paired_runs`).
    """
    thresholds = thresholds or Thresholds()
    specs = {**base.compare, **new.compare}
    _check_inputs(base, new, specs, thresholds, allow_other_suite)
    paired = paired_runs(base, new) if paired is None else paired
    judge = _Judge(base, new, specs, thresholds, alpha, strict, _machine_differs(base, new), paired)
    base_records = {r["benchmark"]: r for r in base.records}
    new_records = {r["benchmark"]: r for r in new.records}
    wanted = _select_fields(specs, only_fields)
    rows = [
        row
        for name in [*new_records, *[n for n in base_records if n not in new_records]]
        for row in judge.benchmark(name, base_records.get(name), new_records.get(name), wanted)
    ]
    return Comparison(base, new, rows, alpha, _notes(judge, rows, base_records, new_records), strict, paired)


def paired_runs(base: RunResult, new: RunResult) -> bool:
    """Whether ``base`` and ``new`` are the base and the new side of one paired measurement."""
    def mark(run: RunResult) -> dict[str, Any]:
        value = run.environment.get(PAIRING_KEY)
        return value if isinstance(value, dict) else {}

    old, cur = mark(base), mark(new)
    return bool(old.get("id")) and old.get("id") == cur.get("id") and (old.get("side"), cur.get("side")) == ("base", "new")


def _check_inputs(base: RunResult, new: RunResult, specs: dict[str, Any], thresholds: Thresholds, allow_other_suite: bool) -> None:
    """Bad input, before anything is judged: other suites, unknown threshold names, no 'compare' section."""
    if base.suite != new.suite and not allow_other_suite:
        raise UsageError(
            f"the run files are of different suites: {base.suite!r} and {new.suite!r}; compare runs of one "
            "suite (or pass --allow-other-suite when the benchmark names mean the same)"
        )
    unknown = thresholds.keys() - set(specs) - {s.get("metric") for s in specs.values()}
    if unknown:
        name = sorted(unknown)[0]
        raise UsageError(f"--threshold: {name!r} is no compared field or metric{did_you_mean(name, specs)}; "
                         f"compared fields: {', '.join(sorted(specs)) or 'none'}")
    if not specs:
        raise UsageError(
            "the run files say nothing about how to compare their fields (no 'compare' section): "
            "they were not written by `benchbench run`, or by a version before regression tracking"
        )
    names = {r["benchmark"] for r in [*base.records, *new.records]}
    unknown_benchmarks = {b for b, _ in thresholds.by_benchmark} - names
    if unknown_benchmarks:
        name = sorted(unknown_benchmarks)[0]
        raise UsageError(f"--threshold: no benchmark {name!r} in these runs{did_you_mean(name, names)}")


@dataclass(frozen=True)
class _Judge:
    """What judging one benchmark needs: both runs, how each field is compared, and the rules."""

    base: RunResult
    new: RunResult
    specs: dict[str, dict[str, Any]]
    thresholds: Thresholds
    alpha: float
    strict: bool
    other_machine: str | None
    paired: bool = False

    def benchmark(self, name: str, old: Record | None, cur: Record | None, wanted: list[str]) -> list[Row]:
        """The rows of one benchmark: present on one side only, a status change, or one row per field."""
        if old is None or cur is None:
            return [Row(name, "-", old and old.get("status"), cur and cur.get("status"),
                        stats.Verdict(ADDED if old is None else MISSING, None))]
        if cur["status"] != STATUS_OK or old["status"] != STATUS_OK:
            verdict = _status_verdict(old["status"], cur["status"])
            note = cur.get("error") if cur["status"] == STATUS_FAILED else None
            if verdict == FAILED and old["status"] == STATUS_FAILED:
                note = f"failed in the base too: {note or 'no error recorded'}"
            return [Row(name, "status", old["status"], cur["status"], stats.Verdict(verdict, None, note=note))]
        rows: list[Row] = []
        skipped: dict[str, list[str]] = {}
        for field_name in wanted:
            spec = self.specs[field_name]
            if old.get(field_name) is None:
                continue  # not measured in the baseline (or measured for the first time now)
            if cur.get(field_name) is None:
                rows.append(Row(name, field_name, old[field_name], None, stats.Verdict(MISSING, None)))
                continue
            differences = _differences(old, cur, _settings_of(spec))
            if differences:
                skipped.setdefault(differences, []).append(field_name)
            else:
                rows.append(self.field(name, field_name, spec, old, cur))
        rows += [Row(name, ", ".join(fields), "-", "-", stats.Verdict(NOT_COMPARABLE, None, note=differences))
                 for differences, fields in skipped.items()]
        return rows

    def field(self, name: str, field_name: str, spec: dict[str, Any], old: Record, cur: Record) -> Row:
        """One field of one benchmark: statistics for timed samples, the ratio for the rest."""
        _check_value(self.base, old, field_name, spec)
        _check_value(self.new, cur, field_name, spec)
        threshold = self.thresholds.resolve(name, field_name, spec.get("metric"), cur, bool(spec.get("exact")),
                                            _declared(spec), budget=bool(spec.get("budget")))
        if not spec.get("samples"):
            verdict = stats.compare_values(float(old[field_name]), float(cur[field_name]), threshold,
                                           higher_is_better=bool(spec.get("higher_is_better")), factor=bool(spec.get("budget")))
            limit = budget_of(cur, field_name, spec)
            if limit is not None and not float(cur[field_name]) <= limit and verdict.verdict != stats.REGRESSED:
                verdict = stats.Verdict(stats.REGRESSED, verdict.ratio, note=f"over its budget {limit:g}")
            return Row(name, field_name, old[field_name], cur[field_name], verdict, threshold)
        base_rounds, new_rounds = rounds_of(old, spec), rounds_of(cur, spec)
        counts = (sum(map(len, base_rounds)), sum(map(len, new_rounds)))
        if self.paired:
            verdict = stats.compare_pairs(*_round_medians(base_rounds, new_rounds), threshold, alpha=self.alpha)
            return Row(name, field_name, old[field_name], cur[field_name], verdict, threshold, counts)
        busy = ("; ".join(filter(None, (_busy("base", old, spec), _busy("new", cur, spec))))
                or (f"measured on other machines ({self.other_machine})" if self.other_machine else None))
        verdict = stats.compare_samples(base_rounds, new_rounds, threshold, alpha=self.alpha, busy=busy,
                                        min_rounds=1 if self.strict else stats.MIN_ROUNDS)
        return Row(name, field_name, old[field_name], cur[field_name], verdict, threshold, counts)


def _notes(judge: _Judge, rows: list[Row], base_records: dict[str, Record], new_records: dict[str, Record]) -> list[str]:
    """What the reader of the verdicts should know about the comparison as a whole."""
    base, new, specs = judge.base, judge.new, judge.specs
    notes: list[str] = []
    if any(r.verdict.verdict == stats.TOO_FEW for r in rows):
        notes.append(f"too few samples: some timed fields cannot reach significance {judge.alpha:g}; "
                     + (f"measure {stats.min_pairs(judge.alpha)} pairs or more (benchbench ab --rounds N)" if judge.paired
                        else "raise min_runs or rounds in the suite"))
    if judge.other_machine:
        notes.append(f"the runs come from different machines ({judge.other_machine}): timing verdicts are at most 'uncertain'")
    few = sorted({(len(rounds_of(base_records[r.benchmark], specs[r.field])), len(rounds_of(new_records[r.benchmark], specs[r.field])))
                  for r in rows if r.samples})
    if judge.paired:
        busy = sorted({r.benchmark for r in rows if r.samples and (_busy("base", base_records[r.benchmark], specs[r.field])
                                                                  or _busy("new", new_records[r.benchmark], specs[r.field]))})
        if busy:
            notes.append(f"busy CPU in some rounds ({_listed(busy)}): paired verdicts stand, since load common to a pair "
                         "cancels in its ratio, and load that hit one round of a pair is one outlying pair among many")
    elif any(min(pair) < stats.MIN_ROUNDS for pair in few):
        counts = ", ".join(f"{b} vs {n}" for b, n in few)
        notes.append(f"rounds per side (base vs new): {counts}; with fewer than {stats.MIN_ROUNDS} the samples share few "
                     "moments of the machine, and a timing change is at most 'uncertain' (suites/ci.yaml uses rounds: 5)")
    if not new.complete:
        pairing = new.environment.get(PAIRING_KEY) or {}
        notes.append(f"the new side of a benchbench ab interrupted after {pairing['pairs']} of "
                     f"{pairing['interrupted']['planned']} pair(s) is INCOMPLETE: compare fails on it; run benchbench ab "
                     "again" if pairing.get("interrupted")
                     else "the new run is INCOMPLETE (interrupted or killed): compare fails until it is finished "
                     "(benchbench run --resume)")
    missing_benchmarks = [r.benchmark for r in rows if r.verdict.verdict == MISSING and r.field == "-"]
    missing_fields = sorted({r.field for r in rows if r.verdict.verdict == MISSING and r.field != "-"})
    if missing_benchmarks or missing_fields:
        lacks = [f"{len(missing_benchmarks)} benchmark(s) of the baseline ({_listed(missing_benchmarks)})"] if missing_benchmarks else []
        lacks += [f"field(s) {_listed(missing_fields)} of other benchmarks"] if missing_fields else []
        notes.append(f"the new run lacks {' and '.join(lacks)}: not compared, which alone does not fail a compare "
                     "(--strict fails on it; --metrics FIELDS compares only the fields you name)")
    fixed = [r.benchmark for r in rows if r.verdict.verdict == FIXED]
    if fixed:
        notes.append(f"fixed: {_listed(fixed)} failed in the base and ran in the new run: not a regression, and "
                     "nothing to compare their fields with until the next run")
    if rows and not any(r.verdict.verdict in (*JUDGED, FIXED) for r in rows):
        notes.append("NOTHING WAS COMPARED: no field of any benchmark could be judged (see the verdicts above); "
                     "a compare that judges nothing fails")
    if base.environment.get("torch") != new.environment.get("torch"):
        notes.append(f"the runs used different torch versions: {base.environment.get('torch')} vs {new.environment.get('torch')}")
    return notes


def _listed(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _settings_of(spec: dict[str, Any]) -> tuple[str, ...]:
    """The record settings a compared field depends on: a deterministic count only on the
    model (so it compares across machines, devices and thread counts), anything measured
    on how it was run too; or what the metric declares (``settings``: an instruction count
    also depends on the CPU and the software it was counted with)."""
    if isinstance(spec.get("settings"), list):
        return tuple(spec["settings"])
    return MODEL_SETTINGS if spec.get("exact") else (*MODEL_SETTINGS, *RUN_SETTINGS)


def budget_of(record: Record, field_name: str, spec: dict[str, Any]) -> float | None:
    """The suite's bound on a budgeted field's value (``budget`` in its metric's ``compare``:
    ``thresholds: {numerics_rel_error: 1e-2}``), or None: a new value over it is a regression
    whatever the change, as the benchmark itself failed for it."""
    value = (record.get("thresholds") or {}).get(field_name)
    return float(value) if spec.get("budget") and is_number(value) else None


def _declared(spec: dict[str, Any]) -> float | None:
    """The field's own default threshold (``threshold`` in its metric's ``compare`` spec), if a number."""
    value = spec.get("threshold")
    return float(value) if is_number(value) else None


def _differences(old: Record, cur: Record, settings: Iterable[str]) -> str:
    return "; ".join(f"{k} {shown(old.get(k))} -> {shown(cur.get(k))}" for k in settings if old.get(k) != cur.get(k))


def _busy(side: str, record: Record, spec: dict[str, Any]) -> str | None:
    """Why this side's timing was taken on a busy CPU (from the metric's per-round contention), or None."""
    key = spec.get("contention")
    return stats.busy_cpu(side, record.get(key)) if key else None


def _machine_differs(base: RunResult, new: RunResult) -> str | None:
    """Why timings of the two runs are not comparable (another CPU, GPU or host), or None."""
    a, b = base.environment, new.environment
    gpus = lambda env: [g.get("name") for g in env.get("gpus") or [] if isinstance(g, dict)]  # noqa: E731
    for what, left, right in (("cpu", a.get("cpu"), b.get("cpu")), ("gpus", gpus(a), gpus(b)), ("host", a.get("host"), b.get("host"))):
        if left != right:
            return f"{what} {left!r} vs {right!r}"
    return None


def _check_value(run: RunResult, record: Record, field_name: str, spec: dict[str, Any]) -> None:
    """A compared value must be a number (and samples lists of numbers): else bad input."""
    problem = None
    if not is_number(record.get(field_name)):
        problem = f"field {field_name!r} is {shown(record.get(field_name))}, not a number"
    elif spec.get("samples"):
        rounds = rounds_of(record, spec)
        if not rounds or not all(is_number(x) for r in rounds for x in r):
            problem = f"the samples of {field_name!r} ({spec['samples']}) are not lists of numbers"
    if problem:
        raise UsageError(f"run of suite {run.suite!r} ({run.environment.get('time', '?')}): benchmark "
                         f"{record['benchmark']!r}: {problem}; the run file was edited or damaged")


def _select_fields(specs: dict[str, dict[str, Any]], only: Iterable[str] | None) -> list[str]:
    if not only:
        return list(specs)
    chosen: list[str] = []
    for name in only:
        matches = [f for f, s in specs.items() if f == name or s.get("metric") == name]
        if not matches:
            raise UsageError(f"--metrics: {name!r} is no compared field or metric{did_you_mean(name, specs)}; "
                             f"compared fields: {', '.join(sorted(specs)) or 'none'}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def rounds_of(record: Record, spec: dict[str, Any]) -> list[list[float]]:
    """A timed field's samples, round by round (one round when the record keeps no rounds)."""
    rounds = record.get(spec.get("rounds") or "")
    if isinstance(rounds, list) and rounds and all(isinstance(r, list) for r in rounds):
        return rounds
    samples = record.get(spec["samples"])
    return [samples] if isinstance(samples, list) else []


def _round_medians(base_rounds: list[list[float]], new_rounds: list[list[float]]) -> tuple[list[float], list[float]]:
    """The median of each round, pair by pair: round i of each side is pair i (``benchbench ab``
    keeps both sides' rounds in the order it measured them). Unequal counts (a file edited by
    hand) pair the first rounds of both."""
    import numpy as np

    count = min(len(base_rounds), len(new_rounds))
    return ([float(np.median(r)) for r in base_rounds[:count] if len(r)],
            [float(np.median(r)) for r in new_rounds[:count] if len(r)])


def _status_verdict(old: str, new: str) -> str:
    """A benchmark that failed in the new run fails the compare, whatever the base did (the
    exit-code table: 1 = a benchmark failed); one that failed in the base only is ``fixed``."""
    if new == STATUS_FAILED:
        return FAILED
    if old == STATUS_FAILED and new == STATUS_OK:
        return FIXED
    return f"{old} / {new}"


# ----------------------------------------------------------------------------- output


def render(comparison: Comparison, tablefmt: str = "simple") -> str:
    """The comparison table, then a summary naming every regression."""
    headers = ["benchmark", "field", "base", "new", "ratio", "CI", "p", "threshold", "verdict"]
    rows = []
    for row in comparison.rows:
        v = row.verdict
        ci = f"{v.ci_low:.3f}-{v.ci_high:.3f}" if v.ci_low is not None and v.ci_high is not None else "-"
        verdict = v.verdict.upper() if v.verdict in REGRESSIONS else v.verdict
        if v.note and v.verdict not in (stats.TOO_FEW,):
            verdict += f" ({v.note})"
        rows.append([
            row.benchmark, row.field, formatting.format_value(row.field, row.base, exact=True),
            formatting.format_value(row.field, row.new, exact=True),
            formatting.ratio(v.ratio), ci, "-" if v.p_value is None else f"{v.p_value:.2g}",
            "-" if row.threshold is None else f"{row.threshold * 100:.3g}%",
            verdict,
        ])
    suites = (comparison.new.suite if comparison.base.suite == comparison.new.suite
              else f"{comparison.base.suite} -> {comparison.new.suite}")
    title = (f"compare suite {suites}: base {describe_run(comparison.base)} -> new {describe_run(comparison.new)}")
    body = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True) if rows else "(nothing to compare)"
    lines = [title, "", body, ""]
    regressions = comparison.regressions
    if regressions:
        lines.append(f"{len(regressions)} regression(s): " + "; ".join(describe_change(r) for r in regressions))
    elif not comparison.new.complete:
        lines.append("no regressions among what ran, but the new run is incomplete")
    elif comparison.judged_nothing:
        lines.append("no regressions found because nothing could be compared: FAILED")
    else:
        lines.append("no regressions")
    if comparison.strict and comparison.changes:
        lines.append(f"--strict: FAILED on {len(comparison.changes)} change(s), improvements included: "
                     + "; ".join(describe_change(r) for r in comparison.changes))
    too_few = [r for r in comparison.rows if r.verdict.verdict == stats.TOO_FEW]
    lines += [f"{r.benchmark} {r.field}: {r.verdict.note}" for r in too_few if r.verdict.note]
    lines += comparison.notes
    if comparison.paired:
        lines.append(
            f"timed fields: paired rounds (base and new measured in turns in one job): one-sided Wilcoxon signed-rank "
            f"test on the log-ratios of the rounds' medians at alpha {comparison.alpha:g}, Hodges-Lehmann ratio, "
            f"{100 * (1 - 2 * comparison.alpha):g}% CI from the Walsh averages; deterministic fields: exact."
        )
    else:
        lines.append(
            f"timed fields: one-sided Mann-Whitney U on the raw samples at alpha {comparison.alpha:g}, Hodges-Lehmann "
            f"ratio, {100 * (1 - 2 * comparison.alpha):g}% CI from a bootstrap (over rounds, then samples); "
            "deterministic fields: exact."
        )
    return "\n".join(lines)


def describe_change(row: Row) -> str:
    """``conv params +1 (+0.00108%)``, ``conv latency_ms +12.3%``, ``conv failed (why)``: one change in words.

    Exact counts show the absolute change too: a one-parameter change must not read "+0.0%".
    """
    v = row.verdict
    if v.verdict == FAILED:
        return f"{row.benchmark} failed ({v.note})"
    if v.verdict not in JUDGED:
        return f"{row.benchmark} {row.field}: {v.verdict}" + (f" ({v.note})" if v.note else "")
    if is_number(row.base) and is_number(row.new) and isinstance(row.base, int) and isinstance(row.new, int):
        delta = row.new - row.base
        relative = f" ({(row.new / row.base - 1) * 100:+.3g}%)" if row.base else ""
        return f"{row.benchmark} {row.field} {delta:+,}{relative}"
    change = f" {v.ratio - 1:+.1%}" if v.ratio is not None else f" ({v.verdict})"
    return f"{row.benchmark} {row.field}{change}"


def describe_run(run: RunResult) -> str:
    """``2026-11-30T09:47:58+00:00 @ 4aeb2e891e``: when and at which commit a run was made."""
    git = run.environment.get("git") or {}
    commit = (git.get("commit") or "")[:10]
    when = run.environment.get("time") or "?"
    return f"{when}" + (f" @ {commit}" if commit else "") + ("" if run.complete else " (incomplete)")


def render_data(comparison: Comparison, fmt: str) -> str:
    """The rows as CSV or JSON (machine-readable; ``regressed`` marks the failing ones)."""
    rows = [
        {
            "benchmark": r.benchmark, "field": r.field, "base": r.base, "new": r.new, "ratio": r.verdict.ratio,
            "ci_low": r.verdict.ci_low, "ci_high": r.verdict.ci_high, "p_value": r.verdict.p_value,
            "threshold": r.threshold, "verdict": r.verdict.verdict, "note": r.verdict.note,
            "regressed": r.verdict.verdict in REGRESSIONS,
        }
        for r in comparison.rows
    ]
    if fmt == "json":
        import json

        from benchbench.results import jsonable

        return json.dumps(jsonable({"suite": comparison.new.suite, "alpha": comparison.alpha, "paired": comparison.paired,
                                    "rows": rows, "notes": comparison.notes}), indent=1)
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["benchmark"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().rstrip("\r\n")
