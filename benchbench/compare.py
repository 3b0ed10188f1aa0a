"""``benchbench compare``: did a change make anything slower, bigger or hungrier?

Compares two run files benchmark by benchmark and field by field. How each field is
judged comes from the run file itself (``compare``, written from the metrics'
registrations), so comparing needs neither the plugins nor torch; the statistics are in
:mod:`benchbench.stats`.

Thresholds, most specific first: ``--threshold BENCH:FIELD=x%`` (or ``BENCH:METRIC``),
``--threshold FIELD=x%`` (or ``METRIC=x%``), the suite's ``thresholds:`` (kept in each
record), ``--threshold x%`` (a default for everything), and finally the built-in
defaults: 0% for deterministic fields (params, FLOPs), 5% for the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from benchbench import formatting, stats
from benchbench.errors import UsageError, did_you_mean
from benchbench.results import STATUS_FAILED, STATUS_OK, Record, RunResult
from benchbench.suite import parse_threshold

DEFAULT_THRESHOLD = 0.05
EXACT_THRESHOLD = 0.0
FAILED, FIXED, MISSING, ADDED = "failed", "fixed", "missing in new", "new"
REGRESSIONS = (stats.REGRESSED, FAILED)


@dataclass
class Thresholds:
    """Thresholds given on the command line; see the module docstring for the order."""

    default: float | None = None
    by_key: dict[str, float] = field(default_factory=dict)
    """``FIELD`` or ``METRIC`` -> fraction."""
    by_benchmark: dict[tuple[str, str], float] = field(default_factory=dict)
    """``(BENCH, FIELD or METRIC)`` -> fraction."""

    @classmethod
    def parse(cls, items: Iterable[str]) -> Thresholds:
        """``["5%", "latency=3%", "standard_3x3:latency_ms=10%"]`` -> Thresholds."""
        out = cls()
        for item in items:
            key, _, value = item.rpartition("=")
            number, problem = parse_threshold(value)
            if problem:
                raise UsageError(f"--threshold {item!r}: {problem}; e.g. --threshold latency=5%")
            if not key:
                out.default = number
            elif ":" in key:
                bench, _, name = key.partition(":")
                out.by_benchmark[(bench, name)] = number
            else:
                out.by_key[key] = number
        return out

    def keys(self) -> set[str]:
        return set(self.by_key) | {name for _, name in self.by_benchmark}

    def resolve(self, benchmark: str, name: str, metric: str | None, record: Record, exact: bool) -> float:
        for key in (name, metric):
            if key and (benchmark, key) in self.by_benchmark:
                return self.by_benchmark[(benchmark, key)]
        for key in (name, metric):
            if key and key in self.by_key:
                return self.by_key[key]
        suite = record.get("thresholds") or {}
        if name in suite:
            return float(suite[name])
        if self.default is not None:
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

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict.verdict in REGRESSIONS]

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def compare_runs(
    base: RunResult,
    new: RunResult,
    *,
    thresholds: Thresholds | None = None,
    alpha: float = stats.DEFAULT_ALPHA,
    only_fields: Iterable[str] | None = None,
    allow_other_suite: bool = False,
) -> Comparison:
    """Judge every benchmark and compared field of ``new`` against ``base``."""
    thresholds = thresholds or Thresholds()
    if base.suite != new.suite and not allow_other_suite:
        raise UsageError(
            f"the run files are of different suites: {base.suite!r} and {new.suite!r}; compare runs of one "
            "suite (or pass --allow-other-suite when the benchmark names mean the same)"
        )
    specs = {**base.compare, **new.compare}
    wanted = _select_fields(specs, only_fields)
    unknown = thresholds.keys() - set(specs) - {s.get("metric") for s in specs.values()}
    if unknown:
        name = sorted(unknown)[0]
        raise UsageError(f"--threshold: {name!r} is no compared field or metric{did_you_mean(name, specs)}; "
                         f"compared fields: {', '.join(sorted(specs)) or 'none'}")
    base_records = {r["benchmark"]: r for r in base.records}
    new_records = {r["benchmark"]: r for r in new.records}
    rows: list[Row] = []
    notes: list[str] = []
    for name in [*new_records, *[n for n in base_records if n not in new_records]]:
        old, cur = base_records.get(name), new_records.get(name)
        if old is None or cur is None:
            rows.append(Row(name, "-", old and old.get("status"), cur and cur.get("status"),
                            stats.Verdict(ADDED if old is None else MISSING, None)))
            continue
        if cur["status"] != STATUS_OK or old["status"] != STATUS_OK:
            verdict = _status_verdict(old["status"], cur["status"])
            rows.append(Row(name, "status", old["status"], cur["status"], stats.Verdict(verdict, None, note=cur.get("error"))))
            continue
        for field_name in wanted:
            spec = specs[field_name]
            if old.get(field_name) is None or cur.get(field_name) is None:
                continue
            exact = bool(spec.get("exact"))
            threshold = thresholds.resolve(name, field_name, spec.get("metric"), cur, exact)
            if spec.get("samples"):
                base_rounds, new_rounds = _rounds(old, spec), _rounds(cur, spec)
                verdict = stats.compare_samples(base_rounds, new_rounds, threshold, alpha=alpha)
                counts = (sum(map(len, base_rounds)), sum(map(len, new_rounds)))
                rows.append(Row(name, field_name, old[field_name], cur[field_name], verdict, threshold, counts))
            else:
                verdict = stats.compare_values(
                    float(old[field_name]), float(cur[field_name]), threshold,
                    higher_is_better=bool(spec.get("higher_is_better")),
                )
                rows.append(Row(name, field_name, old[field_name], cur[field_name], verdict, threshold))
    if any(r.verdict.verdict == stats.TOO_FEW for r in rows):
        notes.append(f"too few samples: some timed fields cannot reach significance {alpha:g}; "
                     "raise min_runs or rounds in the suite")
    base_env, new_env = base.environment, new.environment
    for key in ("host", "cpu", "torch"):
        if base_env.get(key) != new_env.get(key):
            notes.append(f"the runs differ in {key}: {base_env.get(key)!r} vs {new_env.get(key)!r}; timings may not be comparable")
    return Comparison(base, new, rows, alpha, notes)


def _select_fields(specs: dict[str, dict[str, Any]], only: Iterable[str] | None) -> list[str]:
    if not only:
        return list(specs)
    chosen = []
    for name in only:
        matches = [f for f, s in specs.items() if f == name or s.get("metric") == name]
        if not matches:
            raise UsageError(f"--metrics: {name!r} is no compared field or metric{did_you_mean(name, specs)}; "
                             f"compared fields: {', '.join(sorted(specs)) or 'none'}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _rounds(record: Record, spec: dict[str, Any]) -> list[list[float]]:
    rounds = record.get(spec.get("rounds") or "")
    if isinstance(rounds, list) and rounds and all(isinstance(r, list) for r in rounds):
        return rounds
    samples = record.get(spec["samples"])
    return [samples] if isinstance(samples, list) else []


def _status_verdict(old: str, new: str) -> str:
    if new == STATUS_FAILED and old != STATUS_FAILED:
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
            row.benchmark, row.field, _value(row.field, row.base), _value(row.field, row.new),
            formatting.ratio(v.ratio), ci, "-" if v.p_value is None else f"{v.p_value:.2g}",
            "-" if row.threshold is None else f"{row.threshold * 100:.3g}%",
            verdict,
        ])
    title = (f"compare suite {comparison.new.suite}: base {_describe(comparison.base)} -> new {_describe(comparison.new)}")
    body = tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True) if rows else "(nothing to compare)"
    lines = [title, "", body, ""]
    regressions = comparison.regressions
    if regressions:
        lines.append(f"{len(regressions)} regression(s): " + "; ".join(_summary(r) for r in regressions))
    else:
        lines.append("no regressions")
    too_few = [r for r in comparison.rows if r.verdict.verdict == stats.TOO_FEW]
    lines += [f"{r.benchmark} {r.field}: {r.verdict.note}" for r in too_few if r.verdict.note]
    lines += comparison.notes
    lines.append(
        f"timed fields: one-sided Mann-Whitney U on the raw samples at alpha {comparison.alpha:g}, Hodges-Lehmann "
        f"ratio, {100 * (1 - 2 * comparison.alpha):g}% CI from a bootstrap over rounds; deterministic fields: exact."
    )
    return "\n".join(lines)


def _value(field_name: str, value: Any) -> str:
    if isinstance(value, float):
        return formatting.ms(value) if field_name.endswith("_ms") else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return formatting.nbytes(value) if field_name.endswith("_bytes") else f"{value:,}"
    return "-" if value is None else str(value)


def _summary(row: Row) -> str:
    v = row.verdict
    if v.verdict == FAILED:
        return f"{row.benchmark} failed ({v.note})"
    change = f" {v.ratio - 1:+.1%}" if v.ratio is not None else ""
    return f"{row.benchmark} {row.field}{change}"


def _describe(run: RunResult) -> str:
    git = run.environment.get("git") or {}
    commit = (git.get("commit") or "")[:10]
    when = run.environment.get("time") or "?"
    return f"{when}" + (f" @ {commit}" if commit else "") + ("" if run.complete else " (incomplete)")
