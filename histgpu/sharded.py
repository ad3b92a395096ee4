"""Histograms of a tensor split into shards (processes, devices, hosts), merged exactly.

v2 takes two collective rounds of a few int64 each (the range, then the counts); v1 takes one.
Only O(k) integers travel, never the data, and the result equals ``histgpu.compute`` /
``compute_v1`` of the whole tensor bit for bit. The recipes for torch.distributed, JAX and MPI
are in docs/sharded.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

import numpy as np

from . import _cpu, _engine, _options
from ._result import Histogram, V1Histogram, from_order_key, merge, order_key

__all__ = [
    "RangeInfo",
    "V1Partial",
    "local_range",
    "merge_ranges",
    "local_counts",
    "local_histogram",
    "histogram_from_counts",
    "merge",
    "local_v1",
    "merge_v1",
]

_I64_MAX = int(np.iinfo(np.int64).max)  # MIN's neutral element: what an empty shard sends
_DBL_MAX = float(np.finfo(np.float64).max)
_N_STATS = 4  # num, nan, posinf, neginf
# Order keys of finite float64 values lie strictly inside these bounds; a key outside them
# (or a float, or an int32-narrowed key) did not come from to_collective().
_FINITE_KEY_MIN = order_key(-_DBL_MAX)
_FINITE_KEY_MAX = order_key(_DBL_MAX)


def _collective_mins(num: int, vmin: float, vmax: float) -> np.ndarray:
    """``[key(min), -key(max)]`` (reduce with MIN); MIN's neutral element when ``num == 0``."""
    if num == 0:
        return np.array([_I64_MAX, _I64_MAX], dtype=np.int64)
    # Finite values' keys lie strictly inside int64's range, so the negation cannot overflow.
    return np.array([order_key(vmin), -order_key(vmax)], dtype=np.int64)


def _range_from_mins(num: int, mins: Any) -> Tuple[float, float]:
    arr = np.asarray(mins)
    if arr.dtype != np.int64:
        raise ValueError(
            f"mins must be the int64 [2] array of to_collective(), MIN-reduced; got dtype {arr.dtype} "
            "(a float array, or int64 narrowed to int32 — JAX does that unless jax_enable_x64 is on)"
        )
    arr = arr.reshape(-1)
    if arr.shape != (2,):
        raise ValueError(f"expected 2 MIN-reduced int64 values, got shape {arr.shape}")
    if num == 0:
        return 0.0, 0.0
    lo, neg_hi = int(arr[0]), int(arr[1])
    if lo == _I64_MAX or neg_hi == _I64_MAX:
        raise ValueError("values were counted but no shard sent a range: were the arrays reduced with MIN?")
    if not (_FINITE_KEY_MIN <= lo <= _FINITE_KEY_MAX and _FINITE_KEY_MIN <= -neg_hi <= _FINITE_KEY_MAX):
        raise ValueError("mins do not hold order keys of finite values: pass to_collective()'s int64 arrays, MIN-reduced")
    vmin, vmax = from_order_key(lo), from_order_key(-neg_hi)
    if order_key(vmin) > order_key(vmax):
        raise ValueError("the reduced range has min > max: were the mins reduced with MIN (not SUM or MAX)?")
    return vmin, vmax


def _as_counts(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers (int64), got dtype {arr.dtype}; never sum counts as floats")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{what} holds negative counts")
    if arr.size and int(arr.max()) > _I64_MAX:
        raise ValueError(f"{what} holds a count above 2**63 - 1: a sum overflowed")
    return arr.astype(np.int64, copy=False).reshape(-1)


# ----------------------------------------------------------------------------- v2: range


@dataclass(frozen=True)
class RangeInfo:
    """The finite range and value counts of a shard, or of the whole tensor once merged.

    Attributes
    ----------
    min, max : float
        Smallest and largest finite value (0.0 when ``num == 0``).
    num : int
        Finite values.
    nan, posinf, neginf : int
        Non-finite values (left out of every histogram, counted).
    """

    min: float
    max: float
    num: int
    nan: int = 0
    posinf: int = 0
    neginf: int = 0

    def to_collective(self) -> Tuple[np.ndarray, np.ndarray]:
        """This range as two int64 arrays for a collective library.

        Returns
        -------
        mins : numpy.ndarray
            int64 ``[2]``: all-reduce with **MIN**.
        sums : numpy.ndarray
            int64 ``[4]`` (``num, nan, posinf, neginf``): all-reduce with **SUM**.
        """
        sums = np.array([self.num, self.nan, self.posinf, self.neginf], dtype=np.int64)
        return _collective_mins(self.num, self.min, self.max), sums

    @classmethod
    def from_collective(cls, mins: Any, sums: Any) -> "RangeInfo":
        """The merged range from MIN-reduced ``mins`` and SUM-reduced ``sums``."""
        sums = _as_counts(sums, "sums")
        if sums.shape != (_N_STATS,):
            raise ValueError(f"expected {_N_STATS} SUM-reduced counts, got shape {sums.shape}")
        num, nan, posinf, neginf = (int(v) for v in sums)
        vmin, vmax = _range_from_mins(num, mins)
        return cls(vmin, vmax, num, nan, posinf, neginf)

    def to_row(self) -> np.ndarray:
        """``concat(to_collective())``: one int64 ``[6]`` row, for all-gather based merging."""
        return np.concatenate(self.to_collective())

    @classmethod
    def from_rows(cls, rows: Any) -> "RangeInfo":
        """Merge gathered :meth:`to_row` rows (shape ``[shards, 6]``)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, 2 + _N_STATS)
        if rows.shape[0] == 0:
            return cls(0.0, 0.0, 0)
        return cls.from_collective(rows[:, :2].min(axis=0), rows[:, 2:].sum(axis=0))

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf


def local_range(data: Any, *, num_threads: Optional[int] = None, device: Optional[str] = None) -> RangeInfo:
    """Phase 1: the finite range and value counts of one shard (one read of the data).

    Parameters
    ----------
    data : array_like
        The shard, anything :func:`histgpu.compute` accepts (an empty shard is fine).
    num_threads, device
        As in :func:`histgpu.compute`.
    """
    engine, view = _engine.place(data, device, _options.num_threads(num_threads))
    return _range_info(engine.range(view.engine_view()))


def _range_info(s: Any) -> RangeInfo:
    """A RangeInfo from an engine's RangeStats (0.0 for min/max of a shard without values)."""
    num = int(s.num)
    return RangeInfo(float(s.min) if num else 0.0, float(s.max) if num else 0.0, num, int(s.nan), int(s.posinf),
                     int(s.neginf))


def merge_ranges(ranges: Iterable[RangeInfo]) -> RangeInfo:
    """Merge shard ranges (for libraries that gather instead of reducing)."""
    return RangeInfo.from_rows([r.to_row() for r in ranges])


# ---------------------------------------------------------------------------- v2: counts


def _in_range(
    data: Any,
    spec: RangeInfo,
    k: int,
    num_threads: Optional[int],
    device: Optional[str],
    local: Optional[RangeInfo] = None,
) -> Tuple[np.ndarray, np.ndarray, RangeInfo]:
    """The engine's counts of one shard against the shared range, and the shard's own range.

    The engine refuses a shard outside the shared range (it would be clamped into the end
    buckets silently), and with ``local`` checks in its one read that ``local`` describes the
    shard: two reads of the data in all, as for a single tensor."""
    if not isinstance(spec, RangeInfo):
        raise TypeError(f"spec must be a histgpu.RangeInfo (the merged range), not {type(spec).__name__}")
    if local is not None and not isinstance(local, RangeInfo):
        raise TypeError(f"local must be this shard's histgpu.RangeInfo from local_range, not {type(local).__name__}")
    known = None if local is None else _cpu.RangeStats(local.min, local.max, local.num, local.nan, local.posinf, local.neginf)
    engine, view = _engine.place(data, device, _options.num_threads(num_threads))
    r = engine.v2_shard(view.engine_view(), k, float(spec.min), float(spec.max), int(spec.num), known)
    return r.edges, r.counts, _range_info(r.stats)


def local_counts(
    data: Any,
    spec: RangeInfo,
    buckets: Optional[int] = None,
    *,
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
    local: Optional[RangeInfo] = None,
) -> np.ndarray:
    """Phase 2: one shard's bucket counts against the merged range.

    Parameters
    ----------
    data : array_like
        The same shard that went into phase 1.
    spec : RangeInfo
        The range merged over **every** shard.
    buckets : int, optional
        ``k`` (default 30), the same on every shard.
    local : RangeInfo, optional
        This shard's own phase-1 result (:func:`local_range`). Given, the shard is read once
        here instead of twice; it must be the range of this very data.

    Returns
    -------
    numpy.ndarray
        int64 ``[k]``; sum them over the shards (exactly: as integers), then call
        :func:`histogram_from_counts`.

    Raises
    ------
    ValueError
        If the shard holds values outside ``spec`` (the range was not merged over it).
    """
    k = _options.bucket_count(buckets)
    _, counts, _ = _in_range(data, spec, k, num_threads, device, local)
    return counts.astype(np.int64)


def local_histogram(
    data: Any,
    spec: RangeInfo,
    buckets: Optional[int] = None,
    *,
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
    local: Optional[RangeInfo] = None,
) -> Histogram:
    """One shard as a :class:`histgpu.Histogram` on the shared buckets, ready for :func:`merge`.

    ``edges`` are those of the merged range; ``counts``, ``min``, ``max``, ``num`` and the
    non-finite counts are the shard's own. Parameters as in :func:`local_counts`.
    """
    k = _options.bucket_count(buckets)
    edges, counts, local = _in_range(data, spec, k, num_threads, device, local)
    return Histogram(edges, counts, local.min, local.max, local.num, local.nan, local.posinf, local.neginf)


def histogram_from_counts(
    spec: RangeInfo, counts: Any, *, nonfinite: str = "omit"
) -> Histogram:
    """The global :class:`histgpu.Histogram` from the merged range and the summed counts.

    Parameters
    ----------
    spec : RangeInfo
        The merged range of phase 1.
    counts : array_like of int
        Phase-2 counts summed over every shard; ``k = len(counts)``.
    nonfinite : {"omit", "raise"}
        As in :func:`histgpu.compute`, applied to the global non-finite counts.

    Raises
    ------
    ValueError
        If the counts do not add up to ``spec.num`` (a shard is missing or counted twice).
    """
    mode = _options.nonfinite_mode(nonfinite)
    if not isinstance(spec, RangeInfo):
        raise TypeError(f"spec must be a histgpu.RangeInfo (the merged range), not {type(spec).__name__}")
    counts = _as_counts(counts, "counts")
    k = _options.bucket_count(int(counts.shape[0]))
    total = sum(int(c) for c in counts)  # Python integers: a sum past 2**64 is seen, not wrapped
    if k and total != spec.num:
        raise ValueError(
            f"the summed counts hold {total} values but the merged range has {spec.num}: "
            "every shard must be counted once, against the same range"
        )
    _options.apply_nonfinite_policy(mode, spec.nan, spec.posinf, spec.neginf)
    return Histogram(
        _engine.v2_edges(spec.min, spec.max, spec.num, k), counts.astype(np.uint64), float(spec.min), float(spec.max),
        int(spec.num), int(spec.nan), int(spec.posinf), int(spec.neginf),
    )


# ------------------------------------------------------------------------------------ v1


@dataclass(frozen=True)
class V1Partial:
    """A shard's v1 histogram content before rounding: it merges exactly.

    Attributes
    ----------
    counts : numpy.ndarray
        int64 counts over :func:`histgpu.v1_limits` (1,551 buckets).
    min, max : float
        Finite range of the shard (0.0 when ``num == 0``).
    num, nan, posinf, neginf : int
        Value counts.
    sum_digits, sumsq_digits : numpy.ndarray
        int64 digits of the exact sum and sum of squares; digit-wise integer sums of up to
        2**31 shards stay exact.
    """

    counts: np.ndarray
    min: float
    max: float
    num: int
    nan: int
    posinf: int
    neginf: int
    sum_digits: np.ndarray
    sumsq_digits: np.ndarray

    def to_collective(self) -> Tuple[np.ndarray, np.ndarray]:
        """Two int64 arrays: ``mins`` ``[2]`` to all-reduce with **MIN**, ``sums`` to reduce with **SUM**.

        ``sums`` is ``[num, nan, posinf, neginf, counts (1,551), sum digits, sum-of-squares
        digits]``: about 1,843 int64 (15 KB) per histogram.
        """
        sums = np.concatenate([
            np.array([self.num, self.nan, self.posinf, self.neginf], dtype=np.int64),
            np.asarray(self.counts, dtype=np.int64),
            np.asarray(self.sum_digits, dtype=np.int64),
            np.asarray(self.sumsq_digits, dtype=np.int64),
        ])
        return _collective_mins(self.num, self.min, self.max), sums

    @classmethod
    def from_collective(cls, mins: Any, sums: Any) -> "V1Partial":
        """The merged partial from MIN-reduced ``mins`` and SUM-reduced ``sums``."""
        sums = np.asarray(sums)
        if sums.dtype.kind not in "iu":
            raise TypeError(f"sums must be int64, got dtype {sums.dtype}")
        sums = sums.astype(np.int64, copy=False).reshape(-1)
        nl, nd = _engine.v1_sizes()
        if sums.shape != (_N_STATS + nl + 2 * nd,):
            raise ValueError(f"expected {_N_STATS + nl + 2 * nd} SUM-reduced int64, got shape {sums.shape}")
        num, nan, posinf, neginf = (int(v) for v in sums[:_N_STATS])
        vmin, vmax = _range_from_mins(num, mins)
        body = sums[_N_STATS:]
        return cls(body[:nl].copy(), vmin, vmax, num, nan, posinf, neginf,
                   body[nl:nl + nd].copy(), body[nl + nd:].copy())

    def finish(self, *, nonfinite: str = "omit") -> V1Histogram:
        """The :class:`histgpu.V1Histogram` (exact sums rounded once), as ``compute_v1`` gives it."""
        mode = _options.nonfinite_mode(nonfinite)
        _options.apply_nonfinite_policy(mode, self.nan, self.posinf, self.neginf)
        empty = self.num == 0  # TensorFlow's Histogram starts from these
        return V1Histogram(
            _engine.v1_limits(),
            np.asarray(self.counts, dtype=np.int64).astype(np.uint64),
            _DBL_MAX if empty else float(self.min),
            -_DBL_MAX if empty else float(self.max),
            int(self.num),
            float(_cpu.round_digit_sums(np.ascontiguousarray(self.sum_digits, dtype=np.int64))),
            float(_cpu.round_digit_sums(np.ascontiguousarray(self.sumsq_digits, dtype=np.int64))),
            int(self.nan), int(self.posinf), int(self.neginf),
        )


def local_v1(data: Any, *, num_threads: Optional[int] = None, device: Optional[str] = None) -> V1Partial:
    """One shard's v1 content in one read: counts, range, value counts, exact-sum digits."""
    engine, view = _engine.place(data, device, _options.num_threads(num_threads))
    p = engine.v1_partial(view.engine_view())
    r = _range_info(p.stats)
    return V1Partial(
        np.asarray(p.counts).astype(np.int64), r.min, r.max, r.num, r.nan, r.posinf, r.neginf,
        np.asarray(p.sum_digits, dtype=np.int64), np.asarray(p.sumsq_digits, dtype=np.int64),
    )


def merge_v1(parts: Iterable[V1Partial]) -> V1Partial:
    """Merge shard partials exactly (then :meth:`V1Partial.finish`)."""
    parts = list(parts)
    if not parts:
        raise ValueError("merge_v1() needs at least one V1Partial")
    pieces = [p.to_collective() for p in parts]
    mins = np.stack([m for m, _ in pieces]).min(axis=0)
    sums = np.sum([s for _, s in pieces], axis=0, dtype=np.int64)
    return V1Partial.from_collective(mins, sums)
