"""Where a series of measurements over commits steps up or down: change points for ``benchbench history --changes``.

Comparing each run with the one before it (``benchbench history``'s brackets) flags every
wobble of a noisy timing and misses a slowdown that crept in over three commits. A step
detector reads the whole series instead, as asv does: it fits the series with a piecewise
constant line, the fewest pieces that explain it, and reports where the line steps and by
how much. Here, as in asv (after Friedrich et al., 2008), that is a penalised segmentation
in the L1 norm:

    minimise  sum over pieces of sum |y_i - median(piece)|  +  penalty x (number of steps)

on the logarithm of the values (a step is a ratio, the same whether a layer takes 1 ms or
1 s), solved exactly by dynamic programming over where pieces end (O(n^2) medians kept in
two heaps: a second for a thousand runs). The L1 norm with medians makes one wild run (a
busy machine) cost its distance once rather than its square, so it does not pull a level
along; and a piece must hold :data:`MIN_RUNS` runs in a noisy series, whose median a
single wild run cannot be, so it cannot make a level of its own either: a new level needs
three runs to be told from an outlier. (Two wild runs in a row can: to the series they are
a short-lived level, which the table shows with its commits.)

The penalty is ``PENALTY x noise x ln(n)``, a Schwarz-like criterion (asv fits the same
role by a Bayesian information criterion over its penalty). ``noise`` is estimated from
the differences of neighbouring runs, robustly (1.4826 x their median absolute value /
sqrt 2 is the standard deviation of Gaussian noise, and the few differences that straddle
a step do not move a median), so the detector needs no threshold from the user and adapts
to each series: a timing's noise of a few percent, an instruction count's of a few
thousandths. A series with no noise at all (params, FLOPs: the same model gives the same
count) is **exact**: every change is a step, however small, and one run suffices for a level.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

PENALTY = 3.0
"""How many noise-widths times ln(n) a step must explain to be reported. Calibrated on
simulated series of Gaussian noise of 2% (100 series each): no false step in series of 30
to 300 runs (2 in 100 series of 10 runs); with 5% of the runs outliers at +50%, false steps
in 1 to 9 series in 100 (three outliers in a row make a level); a 10% step is found in 63
series in 100 with 3 runs after it, 95 with 5 (a penalty of 2 finds more and false-alarms
more: 19 in 100 with the outliers, at 300 runs; 4 finds fewer)."""
MIN_RUNS = 3
"""The fewest runs a level of a noisy series holds (an exact series: 1)."""
GAUSSIAN_MAD = 1.4826
"""The standard deviation of Gaussian noise over its median absolute deviation."""


@dataclass(frozen=True)
class Step:
    """A change point: the series' level changes from ``before`` to ``after`` at run ``index``
    (the first run at the new level)."""

    index: int
    before: float
    after: float

    @property
    def ratio(self) -> float | None:
        """after / before (None when the level was 0)."""
        return self.after / self.before if self.before else None


def find_steps(values: Sequence[float], *, penalty: float = PENALTY, min_change: float = 0.0) -> list[Step]:
    """The change points of ``values`` (oldest first), in order; steps smaller than the
    relative ``min_change`` (0.05: 5%) are left out."""
    data = np.asarray(values, dtype=float)
    if data.size < 2 or not np.isfinite(data).all():
        if data.size >= 2:
            raise ValueError("the series holds NaN or infinite values")
        return []
    logged = bool((data > 0).all())  # ratios where every value is positive; differences otherwise
    y = np.log(data) if logged else data
    noise = noise_level(y)
    exact = noise == 0.0
    scale = 1e-9 * max(1.0, float(np.abs(y).max())) if exact else noise  # an exact series: only a real change pays
    ends = _segments(y, penalty * scale * math.log(y.size + 1), 1 if exact else MIN_RUNS)
    levels = [float(np.median(data[start:end])) for start, end in zip([0, *ends[:-1]], ends)]
    steps = [Step(start, before, after) for start, before, after in zip(ends[:-1], levels, levels[1:])]
    return [s for s in steps if s.ratio is None or abs(s.ratio - 1) >= min_change]


def noise_level(y: np.ndarray) -> float:
    """The standard deviation of the noise around a piecewise constant series, from the median
    absolute difference of neighbours (robust to the few differences that span a step)."""
    if y.size < 2:
        return 0.0
    return float(GAUSSIAN_MAD * np.median(np.abs(np.diff(y))) / math.sqrt(2))


def _segments(y: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """The ends (exclusive) of the pieces of the optimal segmentation, the last being len(y)."""
    n = y.size
    best = np.full(n + 1, np.inf)
    best[0] = -penalty  # the first piece is no step
    previous = np.zeros(n + 1, dtype=int)
    for start in range(n):
        if not np.isfinite(best[start]):
            continue
        for end, cost in _costs_from(y, start):
            if end - start < min_size or (n - end < min_size and end != n):
                continue
            total = best[start] + cost + penalty
            if total < best[end]:
                best[end], previous[end] = total, start
    ends = [n]
    while ends[-1] > 0:
        ends.append(int(previous[ends[-1]]))
    return sorted(ends[:-1])


def _costs_from(y: np.ndarray, start: int) -> Iterator[tuple[int, float]]:
    """``(end, sum |y[start:end] - median|)`` for every end after ``start``, each in O(log n):
    the lower half in a max-heap, the upper half in a min-heap, with their sums."""
    low: list[float] = []  # negated: a max-heap
    high: list[float] = []
    low_sum = high_sum = 0.0
    for end in range(start + 1, y.size + 1):
        value = float(y[end - 1])
        if low and value > -low[0]:
            heapq.heappush(high, value)
            high_sum += value
        else:
            heapq.heappush(low, -value)
            low_sum += value
        if len(low) > len(high) + 1:  # keep len(low) - len(high) in {0, 1}: the median is -low[0]
            moved = -heapq.heappop(low)
            low_sum -= moved
            heapq.heappush(high, moved)
            high_sum += moved
        elif len(high) > len(low):
            moved = heapq.heappop(high)
            high_sum -= moved
            heapq.heappush(low, -moved)
            low_sum += moved
        median = -low[0]
        yield end, (high_sum - median * len(high)) + (median * len(low) - low_sum)
