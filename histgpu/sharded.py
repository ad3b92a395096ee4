"""Histograms of a tensor split into shards (processes, devices, hosts), merged exactly.

A v2 histogram needs the range of the *whole* tensor before anything can be counted, so a
sharded histogram takes two collective rounds, each moving a few numbers, never the data:

1. **range**: every shard computes :func:`local_range`; the ranges are merged (MIN of the
   minimum, MAX of the maximum, SUM of the counts) into the global :class:`RangeInfo`;
2. **counts**: every shard counts its values against that shared range with
   :func:`local_counts` (the bucket thresholds are derived from the global range exactly as
   for one tensor); the ``k`` counts are summed; :func:`histogram_from_counts` builds the
   :class:`histgpu.Histogram`.

The result equals ``histgpu.compute`` of the concatenated shards bit for bit, for any split.

The v1 ``HistogramProto`` needs one round: its bucket limits are fixed. :func:`local_v1`
gives a :class:`V1Partial` whose counts and exact-sum digits add up as int64 arrays;
:meth:`V1Partial.finish` rounds the exact sums once, so ``sum``/``sum_squares`` do not
depend on how the tensor was split either.

Every piece converts to plain int64 arrays for any collective library
(``to_collective``/``from_collective``): one array to reduce with MIN, one with SUM. Maxima
travel as negated order keys so that a single MIN reduction serves both ends of the range.

torch.distributed (tested as written in tests/distribute/torch_worker.py)::

    import numpy as np, torch, torch.distributed as dist
    import histgpu.sharded as hs

    def all_reduce(a, op):                                # numpy int64 in, numpy out
        t = torch.from_numpy(np.ascontiguousarray(a))
        dist.all_reduce(t, op=op)
        return t.numpy()

    lo, n = hs.local_range(shard).to_collective()         # phase 1: 2 + 4 int64 per rank
    g = hs.RangeInfo.from_collective(all_reduce(lo, dist.ReduceOp.MIN),
                                     all_reduce(n, dist.ReduceOp.SUM))
    c = hs.local_counts(shard, g, buckets=30)            # phase 2: k int64 per rank
    h = hs.histogram_from_counts(g, all_reduce(c, dist.ReduceOp.SUM))
    # h == histgpu.compute(np.concatenate(all_shards), 30) on every rank, bit for bit

    mins, sums = hs.local_v1(shard).to_collective()       # v1: one round, 2 + 1,843 int64
    v1 = hs.V1Partial.from_collective(all_reduce(mins, dist.ReduceOp.MIN),
                                      all_reduce(sums, dist.ReduceOp.SUM)).finish()

With the NCCL backend, move the int64 tensors to the GPU first (Gloo and MPI reduce host
tensors). JAX: ``jax.lax.pmin``/``psum`` on the same arrays, with ``jax_enable_x64`` on (JAX
silently narrows int64 to int32 otherwise). MPI: ``MPI.MIN``/``MPI.SUM``. Never reduce counts
as floats: past 2**24 (float32) or 2**53 (float64) they stop being exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

import numpy as np

from . import _api, _cpu, _device, _options
from ._result import Histogram, V1Histogram

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
_FLIP = 0x7FFFFFFFFFFFFFFF
_DBL_MAX = float(np.finfo(np.float64).max)
_N_STATS = 4  # num, nan, posinf, neginf


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


def _select_min(values: Iterable[float]) -> float:
    return from_order_key(min(order_key(v) for v in values))


def _select_max(values: Iterable[float]) -> float:
    return from_order_key(max(order_key(v) for v in values))


def _collective_mins(num: int, vmin: float, vmax: float) -> np.ndarray:
    """``[key(min), -key(max)]`` (reduce with MIN); MIN's neutral element when ``num == 0``."""
    if num == 0:
        return np.array([_I64_MAX, _I64_MAX], dtype=np.int64)
    # Finite values' keys lie strictly inside int64's range, so the negation cannot overflow.
    return np.array([order_key(vmin), -order_key(vmax)], dtype=np.int64)


def _range_from_mins(num: int, mins: Any) -> Tuple[float, float]:
    mins = np.asarray(mins, dtype=np.int64).reshape(-1)
    if mins.shape != (2,):
        raise ValueError(f"expected 2 MIN-reduced int64 values, got shape {mins.shape}")
    if num == 0:
        return 0.0, 0.0
    if int(mins[0]) == _I64_MAX or int(mins[1]) == _I64_MAX:
        raise ValueError("values were counted but no shard sent a range: were the arrays reduced with MIN?")
    return from_order_key(int(mins[0])), from_order_key(-int(mins[1]))


def _as_counts(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers (int64), got dtype {arr.dtype}; never sum counts as floats")
    if arr.size and int(arr.min()) < 0:
        raise ValueError(f"{what} holds negative counts")
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
    threads = _options.num_threads(num_threads)
    vmin, vmax, num, nan, posinf, neginf = _api._engine_call("range_stats", data, device, threads)
    if num == 0:
        vmin = vmax = 0.0
    return RangeInfo(float(vmin), float(vmax), int(num), int(nan), int(posinf), int(neginf))


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
):
    """The engine's counts of one shard against the shared range, after checking they fit.

    With ``local`` (this shard's phase-1 range) the engine counts without reading the shard's
    range again: two reads of the data in all, as for a single tensor."""
    if not isinstance(spec, RangeInfo):
        raise TypeError(f"spec must be a histgpu.RangeInfo (the merged range), not {type(spec).__name__}")
    if local is not None and not isinstance(local, RangeInfo):
        raise TypeError(f"local must be this shard's histgpu.RangeInfo from local_range, not {type(local).__name__}")
    known = None if local is None else (local.min, local.max, local.num, local.nan, local.posinf, local.neginf)
    threads = _options.num_threads(num_threads)
    edges, counts, stats = _api._engine_call(
        "histogram_v2_in_range", data, device, threads, k, float(spec.min), float(spec.max), int(spec.num), known
    )
    vmin, vmax, num, nan, posinf, neginf = stats
    local = RangeInfo(float(vmin) if num else 0.0, float(vmax) if num else 0.0, int(num), int(nan), int(posinf), int(neginf))
    # A shard outside the shared range would be clamped into the end buckets silently.
    if local.num > spec.num or (
        local.num
        and (order_key(local.min) < order_key(spec.min) or order_key(local.max) > order_key(spec.max))
    ):
        raise ValueError(
            f"this shard (range [{local.min!r}, {local.max!r}], {local.num} values) lies outside the shared "
            f"range [{spec.min!r}, {spec.max!r}] of {spec.num} values: merge the ranges of every shard first"
        )
    return edges, counts, local


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


def _edges(spec: RangeInfo, k: int) -> np.ndarray:
    """The bucket edges of ``spec``, from the engine (so they are the single-tensor edges)."""
    empty = np.empty(0, dtype=np.float64)
    edges, _, _ = _api._engine_call(
        "histogram_v2_in_range", empty, "cpu", 1, k, float(spec.min), float(spec.max), int(spec.num), None
    )
    return edges


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
    counts = _as_counts(counts, "counts")
    k = _options.bucket_count(int(counts.shape[0]))
    total = int(counts.sum(dtype=np.uint64))
    if k and total != spec.num:
        raise ValueError(
            f"the summed counts hold {total} values but the merged range has {spec.num}: "
            "every shard must be counted once, against the same range"
        )
    _options.apply_nonfinite_policy(mode, spec.nan, spec.posinf, spec.neginf)
    return Histogram(
        _edges(spec, k), counts.astype(np.uint64), float(spec.min), float(spec.max),
        int(spec.num), int(spec.nan), int(spec.posinf), int(spec.neginf),
    )


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Merge histograms of disjoint shards that were bucketed on the same edges.

    Counts and value counts add, ``min``/``max`` are selected (-0.0 < +0.0). Histograms of
    shards from :func:`local_histogram` with one merged range merge into exactly
    ``histgpu.compute`` of the whole tensor; merging is associative, so partial merges
    (trees) are fine. A histogram without finite values contributes only its non-finite
    counts.

    Raises
    ------
    ValueError
        If the histograms have different bucket counts or edges: they were bucketed
        differently and cannot be added (e.g. two ``histgpu.compute`` results of shards with
        different ranges). Use the two-phase API instead.
    """
    hs = list(histograms)
    if not hs:
        raise ValueError("merge() needs at least one histogram")
    for h in hs:
        if not isinstance(h, Histogram):
            raise TypeError(f"merge() takes histgpu.Histogram objects, not {type(h).__name__}")
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
    vmin = _select_min(h.min for h in filled) if filled else 0.0
    vmax = _select_max(h.max for h in filled) if filled else 0.0
    return Histogram(
        np.array(edges, dtype=np.float64), counts, vmin, vmax, num,
        sum(h.nan for h in hs), sum(h.posinf for h in hs), sum(h.neginf for h in hs),
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
        nl, nd = _v1_sizes()
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
            _api.v1_limits(),
            np.asarray(self.counts, dtype=np.int64).astype(np.uint64),
            _DBL_MAX if empty else float(self.min),
            -_DBL_MAX if empty else float(self.max),
            int(self.num),
            float(_cpu.round_digit_sums(np.ascontiguousarray(self.sum_digits, dtype=np.int64))),
            float(_cpu.round_digit_sums(np.ascontiguousarray(self.sumsq_digits, dtype=np.int64))),
            int(self.nan), int(self.posinf), int(self.neginf),
        )


_V1_SIZES: Optional[Tuple[int, int]] = None


def _v1_sizes() -> Tuple[int, int]:
    """(v1 bucket count, exact-sum digit count), read once from the engine."""
    global _V1_SIZES
    if _V1_SIZES is None:
        part = _cpu.histogram_v1_partial(0, 12, [0], [8], 1, 1, _device.cpu_isa())
        _V1_SIZES = (len(part[0]), len(part[2]))
    return _V1_SIZES


def local_v1(data: Any, *, num_threads: Optional[int] = None, device: Optional[str] = None) -> V1Partial:
    """One shard's v1 content in one read: counts, range, value counts, exact-sum digits."""
    threads = _options.num_threads(num_threads)
    counts, stats, sd, ssd = _api._engine_call("histogram_v1_partial", data, device, threads)
    vmin, vmax, num, nan, posinf, neginf = stats
    if num == 0:
        vmin = vmax = 0.0
    return V1Partial(
        np.asarray(counts).astype(np.int64), float(vmin), float(vmax), int(num), int(nan), int(posinf),
        int(neginf), np.asarray(sd, dtype=np.int64), np.asarray(ssd, dtype=np.int64),
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
