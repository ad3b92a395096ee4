"""Summary statistics of one logged histogram: count, mean, std, quantiles.

A histogram on disk keeps only bucket counts, so most statistics are *estimates* that
assume values spread uniformly inside each bucket (the same assumption TensorBoard's
Distributions dashboard makes). Where the v1 ``HistogramProto`` carries ``sum`` and
``sum_squares`` (TensorFlow's v1 op, PyTorch, tensorboardX, histgpu), mean and standard
deviation are computed exactly from those instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "BASIS_POINTS",
    "Buckets",
    "StepStats",
    "bucket_moments",
    "quantiles",
    "fraction_within",
    "step_stats",
]

# The quantiles TensorBoard's Distributions dashboard draws (in basis points: 1/100 of a
# percent): min, -1.5 sigma, -1 sigma, -0.5 sigma, median, ... of a normal distribution.
BASIS_POINTS: tuple = (0, 668, 1587, 3085, 5000, 6915, 8413, 9332, 10000)


@dataclass(frozen=True)
class Buckets:
    """A histogram as ``[left, right, count]`` rows (TensorBoard's v2 layout), float64.

    Attributes
    ----------
    left, right : numpy.ndarray
        Bucket edges; ``left[i] <= right[i]``. Zero-width buckets hold values equal to
        their edge (TensorBoard writes those when all values are equal).
    counts : numpy.ndarray
        Values per bucket.
    """

    left: np.ndarray
    right: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_table(cls, table: np.ndarray) -> "Buckets":
        """From a ``[k, 3]`` v2 bucket tensor (``tf.summary.histogram``'s payload)."""
        t = np.asarray(table, dtype=np.float64).reshape(-1, 3)
        return cls(t[:, 0].copy(), t[:, 1].copy(), t[:, 2].copy())

    @classmethod
    def from_v1(cls, vmin: float, vmax: float, limits: "Sequence[float] | np.ndarray",
                counts: "Sequence[float] | np.ndarray") -> "Buckets":
        """From a v1 ``HistogramProto``'s fields.

        Mirrors TensorBoard's ``data_compat._migrate_histogram_value`` (in float64 rather
        than its float32): empty buckets at both ends are dropped, the first left edge is
        ``min`` and the last right edge ``max`` (the outer limits may be +-DBL_MAX).
        """
        c = np.asarray(counts, dtype=np.float64)
        lim = np.asarray(limits, dtype=np.float64)
        nz = np.flatnonzero(c > 0)
        if nz.size == 0 or lim.size != c.size:
            return cls.empty()
        start, end = int(nz[0]), int(nz[-1])
        inner = lim[start:end]
        left = np.concatenate([[vmin], inner])
        right = np.concatenate([inner, [vmax]])
        return cls(left, right, c[start : end + 1].copy())

    @classmethod
    def empty(cls) -> "Buckets":
        z = np.zeros(0, dtype=np.float64)
        return cls(z, z.copy(), z.copy())

    @property
    def total(self) -> float:
        return float(self.counts.sum()) if self.counts.size else 0.0

    def edges_finite(self) -> bool:
        """False when an edge is NaN/Inf: ``tf.summary.histogram`` writes that for non-finite data."""
        return bool(np.all(np.isfinite(self.left)) and np.all(np.isfinite(self.right)))

    def nonempty(self) -> "Buckets":
        keep = self.counts > 0
        return Buckets(self.left[keep], self.right[keep], self.counts[keep])


@dataclass
class StepStats:
    """Statistics of one histogram (one run, tag and step).

    Attributes
    ----------
    step, wall_time
        When it was logged.
    count : float
        Number of finite values in the histogram.
    mean, std : float
        Mean and (population) standard deviation; exact when ``exact`` is True, else
        estimated from the buckets. NaN when there is nothing to measure.
    min, max : float
        Smallest and largest finite value (bucket range for v2).
    quantiles : numpy.ndarray
        Values at :data:`BASIS_POINTS`, interpolated inside buckets.
    nonfinite : int
        NaN/+-Inf values known to be left out (histgpu's companion scalars).
    nonfinite_note : str
        Other evidence of non-finite data (e.g. NaN bucket edges), or ``""``.
    exact : bool
        Whether ``mean``/``std`` come from exact v1 ``sum``/``sum_squares``.
    """

    step: int
    wall_time: float
    count: float
    mean: float
    std: float
    min: float
    max: float
    quantiles: np.ndarray = field(repr=False)
    nonfinite: int = 0
    nonfinite_note: str = ""
    exact: bool = False

    @property
    def valid(self) -> bool:
        """True when the step has finite values to measure."""
        return self.count > 0 and math.isfinite(self.mean) and math.isfinite(self.std)

    @property
    def rms(self) -> float:
        """Root mean square, ``sqrt(mean**2 + std**2)``: the typical magnitude."""
        return math.hypot(self.mean, self.std)

    @property
    def max_abs(self) -> float:
        return max(abs(self.min), abs(self.max))

    @property
    def has_nonfinite(self) -> bool:
        return self.nonfinite > 0 or bool(self.nonfinite_note)

    def quantile(self, bp: int) -> float:
        """The quantile at basis point ``bp`` (one of :data:`BASIS_POINTS`)."""
        return float(self.quantiles[BASIS_POINTS.index(bp)])


def bucket_moments(b: Buckets) -> tuple:
    """``(count, mean, std)`` estimated from bucket counts.

    Each bucket's values are taken as uniform over ``[left, right]``: its mean is the
    midpoint and its variance ``width**2 / 12`` (added to the spread of the midpoints).
    """
    b = b.nonempty()
    n = b.total
    if n <= 0:
        return 0.0, math.nan, math.nan
    mid = 0.5 * (b.left + b.right)
    width = b.right - b.left
    mean = float(np.dot(b.counts, mid) / n)
    var = float(np.dot(b.counts, (mid - mean) ** 2 + width**2 / 12.0) / n)
    return n, mean, math.sqrt(max(var, 0.0))


def quantiles(b: Buckets, qs: "Sequence[float] | np.ndarray") -> np.ndarray:
    """Quantiles (``q`` in ``[0, 1]``) by linear interpolation inside buckets.

    ``q = 0`` gives the first left edge (the minimum) and ``q = 1`` the last right edge.
    """
    b = b.nonempty()
    q = np.asarray(qs, dtype=np.float64)
    if b.counts.size == 0:
        return np.full(q.shape, math.nan)
    cum = np.cumsum(b.counts)
    target = q * cum[-1]
    # First bucket whose cumulative count reaches the target; it is non-empty.
    idx = np.clip(np.searchsorted(cum, target, side="left"), 0, cum.size - 1)
    before = cum[idx] - b.counts[idx]
    frac = np.clip((target - before) / b.counts[idx], 0.0, 1.0)
    out = b.left[idx] + frac * (b.right[idx] - b.left[idx])
    out[q <= 0] = b.left[0]
    out[q >= 1] = b.right[-1]
    return out


def fraction_within(b: Buckets, lo: float, hi: float) -> float:
    """Estimated fraction of the values inside ``[lo, hi]`` (uniform inside each bucket)."""
    b = b.nonempty()
    n = b.total
    if n <= 0:
        return math.nan
    width = b.right - b.left
    overlap = np.clip(np.minimum(b.right, hi) - np.maximum(b.left, lo), 0.0, None)
    inside_point = ((b.left >= lo) & (b.left <= hi)).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(width > 0, overlap / np.where(width > 0, width, 1.0), inside_point)
    return float(np.dot(b.counts, share) / n)


def step_stats(
    step: int,
    wall_time: float,
    buckets: Buckets,
    *,
    v1: Optional[dict] = None,
    nonfinite: int = 0,
    nonfinite_note: str = "",
) -> StepStats:
    """Statistics of one histogram.

    Parameters
    ----------
    step, wall_time
        The event's step and time.
    buckets : Buckets
        The histogram (for v1, already migrated with :meth:`Buckets.from_v1`).
    v1 : dict, optional
        The v1 proto's ``min``, ``max``, ``num``, ``sum``, ``sum_squares``; when given and
        consistent, mean and std are exact.
    nonfinite, nonfinite_note
        Evidence of NaN/Inf values left out of the histogram.
    """
    qs = np.array(BASIS_POINTS, dtype=np.float64) / 10000.0
    if not buckets.edges_finite():
        # tf.summary.histogram turns the whole histogram into NaN (or nonsense edges
        # for Inf): nothing can be measured, but the step is evidence of bad values.
        note = nonfinite_note or "non-finite bucket edges (the data held NaN or Inf)"
        nan = math.nan
        return StepStats(step, wall_time, 0.0, nan, nan, nan, nan, np.full(qs.shape, nan), nonfinite, note)
    n, mean, std = bucket_moments(buckets)
    q = quantiles(buckets, qs)
    ne = buckets.nonempty()
    lo = float(ne.left[0]) if ne.counts.size else math.nan
    hi = float(ne.right[-1]) if ne.counts.size else math.nan
    exact = False
    if v1 is not None:
        lo, hi = float(v1["min"]), float(v1["max"])
        for key in ("min", "max", "sum", "sum_squares"):
            if not math.isfinite(float(v1[key])) and not nonfinite_note:
                nonfinite_note = f"non-finite `{key}` in the v1 histogram"
        num = float(v1["num"])
        if num > 0:
            n = num
            m = float(v1["sum"]) / num
            var = float(v1["sum_squares"]) / num - m * m
            # Rounding can make var slightly negative; treat sums that overflowed, or
            # that disagree wildly with the buckets, as unusable and keep the estimate.
            if math.isfinite(m) and math.isfinite(var) and var > -1e-9 * max(m * m, 1e-300):
                mean, std, exact = m, math.sqrt(max(var, 0.0)), True
    return StepStats(step, wall_time, float(n), mean, std, lo, hi, q, int(nonfinite), nonfinite_note, exact)
