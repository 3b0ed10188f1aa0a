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

  Two more conditions keep a busy machine from crying wolf. Rounds of one run share a
  few seconds of the machine, while load comes and goes over tens of seconds, so
  nothing *within* a run can see that the two runs met different machines:

  4. each side has at least ``MIN_ROUNDS`` (3) rounds, unless the caller is strict;
     with fewer, a change beyond the threshold is ``uncertain``, never a regression;
  5. neither run was measured on a busy CPU (the caller passes what it knows, see
     :func:`busy_cpu`): then every timing verdict is ``uncertain``, never "unchanged"
     with a confidence it does not have.

Verdicts: ``regressed``, ``improved``, ``unchanged`` (the estimated change is within the
threshold), ``uncertain`` (the estimate is beyond the threshold but the test or the
interval does not back it, or the machine was busy: noise too high to tell), ``too few
samples``.

**Paired** timings (:func:`compare_pairs`, for ``benchbench ab``, which measures base and
new in one job, round after round, A B B A ...) are judged on the pairs instead: each
round of the new side against the base's round beside it, as the log of the ratio of the
two rounds' medians. Whatever slowed the machine during a pair (another job, the host's
mood, the process's memory layout) slows both of its rounds and cancels in the ratio;
what is left is the change of the code plus the noise between two neighbouring rounds,
and the statistic sees exactly that noise, pair by pair, where the raw-sample test above
sees only the noise within rounds. The test is Wilcoxon's signed-rank test on the
log-ratios (one-sided, exact for small counts), the estimate its Hodges-Lehmann partner
(the median of the Walsh averages: a pair or two caught by a burst of load cannot move
it), and the interval the exact distribution-free one from the same Walsh averages. The
three agree by construction, and none needs a busy-CPU rule: load common to a pair
cancels, and load that hit one round of a pair is one outlying pair among many. With n
pairs the smallest one-sided p-value is 2^-n, so alpha 0.01 needs 7 pairs at least.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

REGRESSED, IMPROVED, UNCHANGED, UNCERTAIN, TOO_FEW = "regressed", "improved", "unchanged", "uncertain", "too few samples"
DEFAULT_ALPHA = 0.01
BOOTSTRAP_RESAMPLES = 2000
MIN_ROUNDS = 3
"""Rounds per side below which a timing change cannot be a regression (unless strict)."""
BUSY_CONTENTION = 0.2
"""A timed round in which other work took more than this share of the CPU its threads
asked for ran on a busy machine (see :func:`busy_cpu`)."""


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


def compare_values(base: float, new: float, threshold: float, *, higher_is_better: bool = False,
                   factor: bool = False) -> Verdict:
    """A deterministic field (or a single value): the ratio against the threshold, nothing else.

    ``factor``: the threshold is a factor both ways (an error that may vary by orders of
    magnitude: 1.0 is "2x worse" and "2x better"), where by default a 100% threshold could
    never call anything better."""
    if base == new:
        return Verdict(UNCHANGED, 1.0 if base else None)
    if base == 0:
        return Verdict(REGRESSED if (new > 0) != higher_is_better else IMPROVED, None, note=f"was 0, now {new:g}")
    ratio = new / base
    worse = ratio < 1 - threshold if higher_is_better else ratio > 1 + threshold
    lower = 1 / (1 + threshold) if factor else 1 - threshold
    better = ratio > 1 + threshold if higher_is_better else ratio < lower
    return Verdict(REGRESSED if worse else IMPROVED if better else UNCHANGED, ratio)


def compare_samples(
    base_rounds: Sequence[Sequence[float]],
    new_rounds: Sequence[Sequence[float]],
    threshold: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    min_rounds: int = MIN_ROUNDS,
    busy: str | None = None,
) -> Verdict:
    """Timed samples (lower is better), grouped by round; see the module docstring.

    ``busy`` says why the machine cannot be trusted for these two runs (:func:`busy_cpu`);
    ``min_rounds`` is the fewest rounds per side that may decide a regression (1: strict).
    """
    from scipy.stats import mannwhitneyu

    base_groups = [np.asarray(r, dtype=float) for r in base_rounds if len(r)]
    new_groups = [np.asarray(r, dtype=float) for r in new_rounds if len(r)]
    if not base_groups or not new_groups:
        return Verdict(TOO_FEW, None, note="no samples on one side")
    base, new = np.concatenate(base_groups), np.concatenate(new_groups)
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
    low, high = _bootstrap_ratio_ci(base_groups, new_groups, alpha, seed)
    significant = p_value < alpha and (low > 1 if slower else high < 1)
    rounds = min(len(base_groups), len(new_groups))
    if busy:
        return Verdict(UNCERTAIN, ratio, low, high, p_value, note=busy)
    if abs(ratio - 1) <= threshold:
        verdict, note = UNCHANGED, None  # whatever the test says, the change is within what the user accepts
    elif significant and rounds >= min_rounds:
        verdict, note = (REGRESSED if slower else IMPROVED), None
    elif significant:
        verdict = UNCERTAIN
        note = (f"{rounds} round(s) on a side: too few to tell a slower model from a busier moment of the machine; "
                f"use rounds: {MIN_ROUNDS} or more (or --strict)")
    else:
        verdict, note = UNCERTAIN, None  # a change beyond the threshold, but the noise hides whether it is real
    return Verdict(verdict, ratio, low, high, p_value, note=note)


def busy_cpu(side: str, contention: Sequence[float | None] | None) -> str | None:
    """Why the rounds of one run were timed on a busy CPU, or None.

    ``contention`` holds each round's share of the CPU time the benchmark's threads asked
    for that other work took (``latency_round_cpu_contention``): above
    :data:`BUSY_CONTENTION`, the times measure that contention rather than the model.
    """
    known = [c for c in contention or [] if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if not known or max(known) <= BUSY_CONTENTION:
        return None
    return (f"busy CPU in the {side} run: other work took {max(known):.0%} of the CPU its threads asked for; "
            "timings then measure the contention")


def min_p_value(n: int, m: int) -> float:
    """The smallest one-sided p-value the exact Mann-Whitney test can give for sizes n and m."""
    return math.exp(math.lgamma(n + 1) + math.lgamma(m + 1) - math.lgamma(n + m + 1))  # 1 / C(n+m, n), no overflow


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
    base_rounds: Sequence[np.ndarray], new_rounds: Sequence[np.ndarray], alpha: float, seed: int
) -> tuple[float, float]:
    """Two-sided (1 - 2*alpha) percentile interval of median(new) / median(base).

    Rounds are resampled first, then samples within each chosen round (a hierarchical
    bootstrap), so that the spread between rounds shows in the interval.
    """
    rng = np.random.default_rng(seed)
    ratios = _bootstrap_medians(new_rounds, rng) / _bootstrap_medians(base_rounds, rng)
    low, high = np.percentile(ratios, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def _bootstrap_medians(groups: Sequence[np.ndarray], rng: np.random.Generator,
                       resamples: int = BOOTSTRAP_RESAMPLES, budget: int = 4_000_000) -> np.ndarray:
    """The pooled median of ``resamples`` hierarchical resamples, computed in arrays.

    Each resample picks len(groups) rounds with replacement, then as many samples from
    each picked round as it holds, with replacement. Rounds of different sizes are padded
    with NaN (sorted to the end) and each median is read at its own count; resamples are
    done in chunks that keep the arrays under ``budget`` elements.
    """
    sizes = np.array([g.size for g in groups])
    padded = np.full((len(groups), sizes.max()), np.nan)
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    width = len(groups) * int(sizes.max())
    out = np.empty(resamples)
    chunk = max(1, budget // width)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        chosen = rng.integers(0, len(groups), size=(b, len(groups)))
        counts = sizes[chosen]  # (b, rounds)
        picks = (rng.random((b, len(groups), padded.shape[1])) * counts[..., None]).astype(np.intp)
        values = padded[chosen[..., None], picks]
        values[np.arange(padded.shape[1]) >= counts[..., None]] = np.nan  # beyond a round's own size
        values = np.sort(values.reshape(b, width), axis=1)
        total = counts.sum(axis=1)
        rows = np.arange(b)
        out[start : start + b] = (values[rows, (total - 1) // 2] + values[rows, total // 2]) / 2
    return out


def compare_pairs(base: Sequence[float], new: Sequence[float], threshold: float, *,
                  alpha: float = DEFAULT_ALPHA) -> Verdict:
    """Paired timings (lower is better): ``base[i]`` and ``new[i]`` were measured side by side
    (one pair of rounds); see the module docstring.

    The verdict follows the rules of :func:`compare_samples` (the change beyond the threshold,
    the test significant and the interval beyond 1), on the pairs' log-ratios.
    """
    from scipy.stats import wilcoxon

    old_values, new_values = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if old_values.shape != new_values.shape:
        raise ValueError(f"pairs need as many base values as new ones, got {old_values.size} and {new_values.size}")
    if old_values.size == 0:
        return Verdict(TOO_FEW, None, note="no pairs")
    if (old_values <= 0).any() or (new_values <= 0).any():
        return Verdict(TOO_FEW, None, note="samples must be positive times")
    log_ratios = np.log(new_values) - np.log(old_values)
    walsh = _walsh_averages(log_ratios)
    ratio = float(np.exp(np.median(walsh)))
    n = log_ratios.size
    if min_paired_p_value(n) > alpha:
        return Verdict(
            TOO_FEW, ratio,
            note=f"{n} pair(s) cannot reach significance {alpha:g} (smallest possible p = {min_paired_p_value(n):.3g}); "
            f"measure {min_pairs(alpha)} pairs or more",
        )
    if not log_ratios.any():
        return Verdict(UNCHANGED, 1.0, 1.0, 1.0, 1.0)
    slower = ratio >= 1
    p_value = float(wilcoxon(log_ratios, alternative="greater" if slower else "less").pvalue)
    low, high = (math.exp(x) for x in _walsh_interval(walsh, n, alpha))
    significant = p_value < alpha and (low > 1 if slower else high < 1)
    if abs(ratio - 1) <= threshold:
        verdict = UNCHANGED
    elif significant:
        verdict = REGRESSED if slower else IMPROVED
    else:
        verdict = UNCERTAIN
    return Verdict(verdict, ratio, low, high, p_value)


def min_paired_p_value(pairs: int) -> float:
    """The smallest one-sided p-value of the signed-rank test on ``pairs`` pairs: every pair
    pointing the same way, 2^-pairs."""
    return 2.0 ** -pairs


def min_pairs(alpha: float) -> int:
    """The fewest pairs whose signed-rank test can reach ``alpha`` (7 for 0.01, 5 for 0.05)."""
    return max(1, math.ceil(math.log2(1 / alpha) - 1e-12))


def _walsh_averages(values: np.ndarray) -> np.ndarray:
    """Every (x_i + x_j) / 2 with i <= j, sorted: the Hodges-Lehmann estimate is their median."""
    i, j = np.triu_indices(values.size)
    return np.sort((values[i] + values[j]) / 2)


def _walsh_interval(walsh: np.ndarray, n: int, alpha: float) -> tuple[float, float]:
    """The two-sided (1 - 2*alpha) distribution-free interval of the centre of a symmetric
    distribution from the sorted Walsh averages of ``n`` values: from the C-th smallest to
    the C-th largest, C the largest count with P(T+ < C) <= alpha under the null hypothesis
    (T+ the signed-rank statistic); it lies above 0 exactly when the exact one-sided test
    rejects at ``alpha``."""
    below = np.cumsum(signed_rank_distribution(n))  # P(T+ <= t)
    count = int(np.searchsorted(below, alpha, side="right"))  # how many t have P(T+ <= t) <= alpha: that is C
    if count == 0:
        return float(walsh[0]), float(walsh[-1])
    return float(walsh[count - 1]), float(walsh[walsh.size - count])


def signed_rank_distribution(n: int) -> np.ndarray:
    """P(T+ = t) for t = 0 .. n(n+1)/2 under the null hypothesis: the sum of the ranks 1..n
    that a fair coin marks positive. Built one rank at a time (each halves the mass and
    shifts a copy by its rank); exact, and cheap for the pair counts of a benchmark."""
    total = n * (n + 1) // 2
    probabilities = np.zeros(total + 1)
    probabilities[0] = 1.0
    for rank in range(1, n + 1):
        shifted = np.zeros_like(probabilities)
        shifted[rank:] = probabilities[:-rank]
        probabilities = (probabilities + shifted) / 2
    return probabilities
