"""Is a new measurement really worse than the baseline? Verdicts for ``benchbench compare``.

Two kinds of fields:

* **Deterministic** (params, FLOPs): the same model gives the same number, so any change
  is a changed model and is reported exactly; it is a regression when it grows by more
  than the threshold (0% by default).
* **Timed** (latency): samples from a noisy machine. A regression needs three things at
  once, so that neither noise nor a statistically significant but tiny shift raises an
  alarm (the asv / Google-benchmark pattern):

  1. a one-sided Mann-Whitney U test on the raw samples says "new is slower" at the
     significance level ``alpha``;
  2. the estimated slowdown (Hodges-Lehmann: the median of all pairwise log-ratios, so a
     handful of outliers cannot move it) exceeds the threshold;
  3. the confidence interval of the ratio lies above 1. The interval comes from a
     *hierarchical* bootstrap that resamples whole rounds, then samples within them:
     samples of one round share that moment's machine state, so one noisy round widens
     the interval instead of deciding the verdict.

  When the data cannot reach ``alpha`` at all (too few samples: the smallest one-sided
  p-value of the exact test is 1 / C(n + m, n)), the verdict says so.

Verdicts: ``regressed``, ``improved``, ``unchanged`` (the estimated change is within the
threshold), ``uncertain`` (the estimate is beyond the threshold but the test or the
interval does not back it: noise too high to tell), ``too few samples``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REGRESSED, IMPROVED, UNCHANGED, UNCERTAIN, TOO_FEW = "regressed", "improved", "unchanged", "uncertain", "too few samples"
DEFAULT_ALPHA = 0.01
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Verdict:
    verdict: str
    ratio: float | None
    """new / base (for timed fields: the Hodges-Lehmann estimate)."""
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    """One-sided p-value in the direction of the change (slower if ratio > 1)."""
    note: str | None = None


def compare_values(base: float, new: float, threshold: float, *, higher_is_better: bool = False) -> Verdict:
    """A deterministic field (or a single value): the ratio against the threshold, nothing else."""
    if base == new:
        return Verdict(UNCHANGED, 1.0 if base else None)
    if base == 0:
        return Verdict(REGRESSED if (new > 0) != higher_is_better else IMPROVED, None, note=f"was 0, now {new:g}")
    ratio = new / base
    worse = ratio < 1 - threshold if higher_is_better else ratio > 1 + threshold
    better = ratio > 1 + threshold if higher_is_better else ratio < 1 - threshold
    return Verdict(REGRESSED if worse else IMPROVED if better else UNCHANGED, ratio)


def min_p_value(n: int, m: int) -> float:
    """The smallest one-sided p-value the exact Mann-Whitney test can give for sizes n and m."""
    return math.exp(math.lgamma(n + 1) + math.lgamma(m + 1) - math.lgamma(n + m + 1))  # 1 / C(n+m, n), no overflow


def compare_samples(
    base_rounds: Sequence[Sequence[float]],
    new_rounds: Sequence[Sequence[float]],
    threshold: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
) -> Verdict:
    """Timed samples (lower is better), grouped by round; see the module docstring."""
    from scipy.stats import mannwhitneyu

    base = np.concatenate([np.asarray(r, dtype=float) for r in base_rounds if len(r)]) if base_rounds else np.array([])
    new = np.concatenate([np.asarray(r, dtype=float) for r in new_rounds if len(r)]) if new_rounds else np.array([])
    if base.size == 0 or new.size == 0:
        return Verdict(TOO_FEW, None, note="no samples on one side")
    if (base <= 0).any() or (new <= 0).any():
        return Verdict(TOO_FEW, None, note="samples must be positive times")
    ratio = float(np.exp(_hodges_lehmann(np.log(new), np.log(base))))
    if min_p_value(base.size, new.size) > alpha:
        return Verdict(
            TOO_FEW, ratio,
            note=f"{base.size} vs {new.size} samples cannot reach significance {alpha:g} "
            f"(smallest possible p = {min_p_value(base.size, new.size):.3g}); measure more runs or rounds",
        )
    slower = ratio >= 1
    p_value = float(mannwhitneyu(new, base, alternative="greater" if slower else "less").pvalue)
    low, high = _bootstrap_ratio_ci(base_rounds, new_rounds, alpha, seed)
    significant = p_value < alpha and (low > 1 if slower else high < 1)
    if abs(ratio - 1) <= threshold:
        verdict = UNCHANGED  # whatever the test says, the change is within what the user accepts
    elif significant:
        verdict = REGRESSED if slower else IMPROVED
    else:
        verdict = UNCERTAIN  # a change beyond the threshold, but the noise hides whether it is real
    return Verdict(verdict, ratio, low, high, p_value)


def _hodges_lehmann(x: np.ndarray, y: np.ndarray, max_side: int = 1000) -> float:
    """Median of all pairwise differences x_i - y_j.

    Above ``max_side`` samples a side is replaced by that many evenly spaced quantiles,
    which keeps the estimate (to well under 0.1%) and bounds the work to a million pairs.
    """
    grid = np.linspace(0, 1, max_side)
    x = np.quantile(x, grid) if x.size > max_side else x
    y = np.quantile(y, grid) if y.size > max_side else y
    return float(np.median(np.subtract.outer(x, y)))


def _bootstrap_ratio_ci(
    base_rounds: Sequence[Sequence[float]], new_rounds: Sequence[Sequence[float]], alpha: float, seed: int
) -> tuple[float, float]:
    """Two-sided (1 - 2*alpha) percentile interval of median(new) / median(base).

    Rounds are resampled first, then samples within each chosen round (a hierarchical
    bootstrap), so that the spread between rounds shows in the interval.
    """
    rng = np.random.default_rng(seed)

    def medians(rounds: Sequence[Sequence[float]]) -> np.ndarray:
        groups = [np.asarray(r, dtype=float) for r in rounds if len(r)]
        out = np.empty(BOOTSTRAP_RESAMPLES)
        for b in range(BOOTSTRAP_RESAMPLES):
            chosen = rng.integers(0, len(groups), size=len(groups)) if len(groups) > 1 else [0]
            pooled = np.concatenate([rng.choice(groups[i], size=groups[i].size) for i in chosen])
            out[b] = np.median(pooled)
        return out

    ratios = medians(new_rounds) / medians(base_rounds)
    low, high = np.percentile(ratios, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)
