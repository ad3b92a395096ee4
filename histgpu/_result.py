"""Result types shared by every engine, and their exact merging.

Minima and maxima are merged as selections of order keys (:func:`order_key`: -0.0 < +0.0), so
that merged results never depend on the order of their parts (docs/semantics.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

_FLIP = 0x7FFFFFFFFFFFFFFF


def order_key(x: float) -> int:
    """An int64 whose integer order is the order of float64 ``x``, with -0.0 < +0.0.

    MIN/MAX over keys are exact selections on every backend (no float comparison rules,
    no sign-of-zero ambiguity), which is what makes merged ranges bit-identical.
    """
    bits = int(np.float64(x).view(np.int64))
    return bits if bits >= 0 else bits ^ _FLIP


def from_order_key(key: int) -> float:
    """Inverse of :func:`order_key`."""
    key = int(key)
    bits = key if key >= 0 else key ^ _FLIP
    return float(np.int64(bits).view(np.float64))


def select_min(values: Iterable[float]) -> float:
    """The smallest of `values` as a selection (-0.0 < +0.0)."""
    return from_order_key(min(order_key(v) for v in values))


def select_max(values: Iterable[float]) -> float:
    """The largest of `values` as a selection (-0.0 < +0.0)."""
    return from_order_key(max(order_key(v) for v in values))


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

    @property
    def nonfinite(self) -> int:
        """NaN and infinite values left out of the buckets."""
        return self.nan + self.posinf + self.neginf


def histogram_of(fields: Sequence[Any]) -> Histogram:
    """A :class:`Histogram` of its eight fields in order (an engine's tuple), equal to
    ``Histogram(*fields)``; built without the frozen dataclass's ``__init__``, which costs
    more than the rest of a call on a small tensor."""
    h = object.__new__(Histogram)
    d = h.__dict__
    d["edges"], d["counts"], d["min"], d["max"], d["num"], d["nan"], d["posinf"], d["neginf"] = fields
    return h


def histogram_from(result: Any) -> Histogram:
    """A :class:`Histogram` from an engine's ``V2Result``."""
    s = result.stats
    return Histogram(result.edges, result.counts, float(s.min), float(s.max), int(s.num), int(s.nan),
                     int(s.posinf), int(s.neginf))


def v1_histogram_from(result: Any, limits: np.ndarray) -> V1Histogram:
    """A :class:`V1Histogram` from an engine's ``V1Result`` over `limits`."""
    s = result.stats
    return V1Histogram(limits, result.counts, float(s.min), float(s.max), int(s.num), float(result.sum),
                       float(result.sum_squares), int(s.nan), int(s.posinf), int(s.neginf))


def _check_consistent(h: Histogram, i: int) -> None:
    """A histogram whose parts cannot belong together is refused, never merged."""
    counts = np.asarray(h.counts)
    edges = np.asarray(h.edges)
    if counts.ndim != 1 or edges.ndim != 1 or edges.shape[0] != counts.shape[0] + 1:
        raise ValueError(
            f"histogram {i} has {edges.shape} edges for {counts.shape} counts: a histogram of k buckets has "
            "k + 1 edges"
        )
    if counts.size and (counts.dtype.kind not in "iu" or int(counts.min()) < 0):
        raise ValueError(f"histogram {i} holds counts that are not non-negative integers")
    total = int(counts.sum(dtype=np.uint64)) if counts.size else 0
    if counts.size and total != int(h.num):
        raise ValueError(f"histogram {i} has num={h.num} but its counts add up to {total}")
    if min(int(h.num), int(h.nan), int(h.posinf), int(h.neginf)) < 0:
        raise ValueError(f"histogram {i} holds negative value counts")


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Merge histograms of disjoint shards that were bucketed on the same edges.

    Counts and value counts add, ``min``/``max`` are selected (-0.0 < +0.0). Histograms of
    shards from :func:`histgpu.local_histogram` with one merged range merge into exactly
    ``histgpu.compute`` of the whole tensor; merging is associative, so partial merges
    (trees) are fine. A histogram without finite values contributes only its non-finite
    counts.

    Raises
    ------
    ValueError
        If the histograms have different bucket counts or edges (they were bucketed
        differently and cannot be added: count every shard against one merged range with
        :mod:`histgpu.sharded`), or if one is inconsistent in itself (``k + 1`` edges for ``k``
        counts, ``num == sum(counts)``).
    """
    hs = list(histograms)
    if not hs:
        raise ValueError("merge() needs at least one histogram")
    for i, h in enumerate(hs):
        if not isinstance(h, Histogram):
            raise TypeError(f"merge() takes histgpu.Histogram objects, not {type(h).__name__}")
        _check_consistent(h, i)
    k = hs[0].buckets
    if any(h.buckets != k for h in hs):
        raise ValueError(f"cannot merge histograms with different bucket counts: {sorted({h.buckets for h in hs})}")
    filled = [h for h in hs if h.num > 0]
    edges = (filled or hs)[0].edges
    bits = np.ascontiguousarray(edges, dtype=np.float64).view(np.int64)
    for h in filled[1:]:
        if not np.array_equal(np.ascontiguousarray(h.edges, dtype=np.float64).view(np.int64), bits):
            raise ValueError(
                "cannot merge histograms with different bucket edges (they were bucketed against "
                "different ranges); count every shard against one merged range: "
                "local_range -> merge_ranges -> local_histogram -> merge"
            )
    counts = np.zeros(k, dtype=np.uint64)
    for h in filled:
        counts += np.asarray(h.counts, dtype=np.uint64)
    num = sum(h.num for h in hs)
    vmin = select_min(h.min for h in filled) if filled else 0.0
    vmax = select_max(h.max for h in filled) if filled else 0.0
    return Histogram(
        np.array(edges, dtype=np.float64), counts, vmin, vmax, num,
        sum(h.nan for h in hs), sum(h.posinf for h in hs), sum(h.neginf for h in hs),
    )
