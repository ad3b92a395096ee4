"""Result types shared by every engine."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Histogram:
    """A TensorBoard v2 histogram of the finite values, plus what was left out.

    Attributes
    ----------
    edges : numpy.ndarray
        ``k + 1`` float64 bucket edges (TensorBoard's ``tf.linspace`` edges, last one = max).
    counts : numpy.ndarray
        ``k`` uint64 counts of finite values per bucket.
    min, max : float
        Smallest and largest finite value (0.0 when there is none).
    num : int
        Finite values counted.
    nan, posinf, neginf : int
        Values left out of the buckets.
    """

    edges: np.ndarray
    counts: np.ndarray
    min: float
    max: float
    num: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0

    @property
    def buckets(self) -> int:
        return int(self.counts.shape[0])

    @property
    def nonfinite(self) -> int:
        """NaN and infinite values left out of the buckets."""
        return self.nan + self.posinf + self.neginf

    def merge(self, *others: "Histogram") -> "Histogram":
        """This histogram plus others on the same buckets (shards of one tensor), exactly.

        Raises ``ValueError`` when the bucket counts or edges differ: histograms of different
        specs are never blended. See :func:`histgpu.merge` and :mod:`histgpu.sharded`."""
        from .sharded import merge

        return merge((self, *others))

    def to_tensor(self) -> np.ndarray:
        """The ``[k, 3]`` float64 array of ``[left, right, count]`` rows TensorBoard stores."""
        return np.stack(
            [self.edges[:-1], self.edges[1:], self.counts.astype(np.float64)], axis=1
        ).reshape(self.buckets, 3)


@dataclass(frozen=True)
class V1Histogram:
    """The content of TensorFlow's v1 ``HistogramProto`` before empty buckets are collapsed.

    ``limits`` are TensorFlow's default bucket limits and ``counts[i]`` the number of finite
    values ``v`` with ``limits[i-1] <= v < limits[i]``. ``sum`` and ``sum_squares`` are the
    exact sums rounded once. With no finite value, ``min``/``max`` are TensorFlow's initial
    ``DBL_MAX``/``-DBL_MAX``.
    """

    limits: np.ndarray
    counts: np.ndarray
    min: float
    max: float
    num: int
    sum: float
    sum_squares: float
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf
