"""The ``HistogramProto`` that ``torch.utils.tensorboard.SummaryWriter.add_histogram`` writes.

PyTorch casts the values to float64 and bins them with ``numpy.histogram`` (``bins="tensorflow"``
stands for TensorFlow's default limits without their ``±DBL_MAX`` ends), optionally sums
neighbouring bins down to ``max_bins``, and keeps every bin from the one before the first
non-empty bin to the last non-empty one, each written as ``(right edge, count)``. histgpu counts
those bins with its engines (csrc/core/numpy_bins.hpp), from the values in place; ``min``,
``max`` and ``num`` are exact, ``sum`` and ``sum_squares`` are the exact sums rounded once.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np
from tensorboard.compat.proto import summary_pb2

from . import _numpy_bins as _nb

__all__ = ["TorchBins", "parse_bins", "check_max_bins", "Totals", "torch_proto", "default_bins"]

_DBL_MAX = float(np.finfo(np.float64).max)


def _default_bins() -> np.ndarray:
    """PyTorch's ``SummaryWriter.default_bins``: 1e-12 growing by 1.1 below 1e20, mirrored, 0 between."""
    pos = []
    v = 1e-12
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    edges = np.array([-p for p in reversed(pos)] + [0.0] + pos, dtype=np.float64)
    edges.setflags(write=False)
    return edges


_DEFAULT_BINS = _default_bins()


def default_bins() -> np.ndarray:
    """The 1,549 edges PyTorch uses for ``bins="tensorflow"`` (TensorFlow's v1 limits without ±DBL_MAX)."""
    return _DEFAULT_BINS


@dataclass(frozen=True)
class TorchBins:
    """A checked ``bins`` argument: ``kind`` is "tensorflow", "estimator", "int" or "edges"."""

    kind: str
    n: int = 0
    name: str = ""
    edges: Optional[np.ndarray] = None  # numpy's bin_edges (np.asarray of the edges given)


def parse_bins(bins: Any) -> TorchBins:
    """Checks `bins` as ``numpy.histogram`` would (plus: bools are refused), for PyTorch's writer."""
    if isinstance(bins, str):
        if bins == "tensorflow":
            return TorchBins("tensorflow", n=_DEFAULT_BINS.size - 1, edges=_DEFAULT_BINS)
        if bins not in _nb.ESTIMATORS:
            raise ValueError(
                f"bins={bins!r} is neither 'tensorflow' nor one of numpy's estimators ({', '.join(_nb.ESTIMATORS)})"
            )
        return TorchBins("estimator", name=bins)
    if isinstance(bins, (bool, np.bool_)):
        raise TypeError(f"bins must be 'tensorflow', an estimator name, an int or bin edges, not a bool ({bins!r})")
    if hasattr(bins, "detach"):  # a torch tensor of edges (or a 0-d count)
        bins = bins.detach().cpu().numpy()
    if np.ndim(bins) == 0:
        return TorchBins("int", n=_nb.check_int_bins(bins))
    if np.ndim(bins) != 1:
        raise ValueError("`bins` must be 1d, when an array")
    edges = np.asarray(bins)
    if edges.size < 2:
        raise ValueError(f"bin edges must hold at least 2 values (one bin), got {edges.size}")
    _nb.explicit_bins(np.dtype(np.float64), edges)  # the checks: monotonic, no NaN, numbers
    return TorchBins("edges", n=edges.size - 1, edges=edges)


def check_max_bins(max_bins: Any) -> Optional[int]:
    """None or a positive int (PyTorch would divide by zero on 0)."""
    if max_bins is None:
        return None
    if isinstance(max_bins, (bool, np.bool_)) or not isinstance(max_bins, numbers.Integral):
        raise TypeError(f"max_bins must be a positive integer or None, not {type(max_bins).__name__} {max_bins!r}")
    if int(max_bins) < 1:
        raise ValueError(f"max_bins must be a positive integer or None, got {max_bins!r}")
    return int(max_bins)


@dataclass(frozen=True)
class Totals:
    """What the proto says besides its buckets: finite min/max/num and the exact sums."""

    min: float
    max: float
    num: int
    sum: float
    sum_squares: float


def float64_rule(bins: TorchBins, totals: Totals, estimate: Optional[Callable[[str], int]] = None) -> Tuple[Any, np.ndarray]:
    """(core rule, numpy's edges) of ``numpy.histogram(values.astype(float), bins)``."""
    f64 = np.dtype(np.float64)
    if bins.kind in ("tensorflow", "edges"):
        rule, edges = _nb.explicit_bins(f64, bins.edges)
        return rule, edges
    if bins.kind == "estimator":
        if estimate is None:
            raise ValueError(f"bins={bins.name!r} needs numpy's estimator over the whole tensor, which is not here")
        n = estimate(bins.name)
    else:
        n = bins.n
    first, last = _nb.outer_edges(totals.num, None, lambda: (np.float64(totals.min), np.float64(totals.max)))
    return _nb.uniform_bins(f64, first, last, n)


def tensorflow_counts(v1_counts: np.ndarray) -> Optional[np.ndarray]:
    """numpy's counts over PyTorch's default bins from TensorFlow's v1 bucket counts, where they
    say it all: default bin j is v1 bucket j + 2, but the last bin is closed on the right, so its
    right edge itself is counted there, and v1 puts it in its last bucket. None when that bucket
    holds anything (the caller then counts the default bins directly)."""
    v1 = np.asarray(v1_counts, dtype=np.int64)
    if v1[-1] != 0:
        return None
    return v1[2:-1].copy()


def _torch_buckets(counts: np.ndarray, limits: np.ndarray, max_bins: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    """PyTorch's ``make_histogram`` after ``numpy.histogram``: down-sampling, then the support."""
    n = counts.size
    if max_bins is not None and n > max_bins:
        group = n // max_bins
        short = n % group
        if short:
            counts = np.concatenate([counts, np.zeros(group - short, counts.dtype)])
        counts = counts.reshape(-1, group).sum(axis=1)
        limits = np.concatenate([limits[:-1:group], limits[-1:]])
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        if counts.size == 1:  # PyTorch keeps its one (empty) bin
            return counts.copy(), limits[1:2]
        raise ValueError(
            "no value lies inside the bins (PyTorch's add_histogram raises ValueError here too); widen the bins"
        )
    start, end = int(nonzero[0]), int(nonzero[-1]) + 1
    # Only right edges are written, so the bin before the first non-empty one (or an empty bin
    # made up at the left end) carries the leftmost edge.
    if start > 0:
        kept = counts[start - 1:end]
    else:
        kept = np.concatenate([np.zeros(1, counts.dtype), counts[:end]])
    return kept, limits[start:end + 1]


def empty_proto() -> summary_pb2.HistogramProto:
    """No finite value: TensorFlow's empty histogram (one bucket (DBL_MAX, 0), min DBL_MAX)."""
    return summary_pb2.HistogramProto(min=_DBL_MAX, max=-_DBL_MAX, num=0.0, sum=0.0, sum_squares=0.0,
                                      bucket_limit=[_DBL_MAX], bucket=[0.0])


def torch_proto(
    bins: TorchBins,
    max_bins: Optional[int],
    totals: Totals,
    v1_counts: Optional[np.ndarray],
    count: Callable[[Any], np.ndarray],
    estimate: Optional[Callable[[str], int]] = None,
) -> summary_pb2.HistogramProto:
    """PyTorch's proto of values with these totals.

    `count(rule)` gives numpy's counts of the values (int64, summed over shards where there are
    shards); `v1_counts` are TensorFlow's v1 bucket counts of the same values where known (they
    give ``bins="tensorflow"`` without another read); `estimate(name)` gives the bin count of a
    numpy estimator.
    """
    if totals.num == 0:
        return empty_proto()
    counts: Optional[np.ndarray] = (tensorflow_counts(v1_counts) if bins.kind == "tensorflow" and v1_counts is not None
                                    else None)
    if counts is None:
        rule, limits = float64_rule(bins, totals, estimate)
        counts = np.asarray(count(rule), dtype=np.int64)
    else:
        assert bins.edges is not None  # bins='tensorflow' carries TensorFlow's limits
        limits = bins.edges
    kept, lims = _torch_buckets(counts, np.asarray(limits), max_bins)
    return summary_pb2.HistogramProto(
        min=float(totals.min), max=float(totals.max), num=float(totals.num), sum=float(totals.sum),
        sum_squares=float(totals.sum_squares), bucket_limit=lims.tolist(), bucket=kept.astype(np.float64).tolist(),
    )


def counting_stats(stats: Any) -> Any:
    """`stats` for counting finite values only: the infinities are moved to the NaN count, so the
    engines still skip every non-finite value but none is added to a bin (histgpu leaves them out
    of the histogram; docs/semantics.md §1.2)."""
    from . import _cpu

    return _cpu.RangeStats(stats.min, stats.max, stats.num, stats.nan + stats.posinf + stats.neginf, 0, 0)


def local_proto(values: Any, bins: TorchBins, max_bins: Optional[int], mode: str,
                num_threads: Optional[int] = None, device: Optional[str] = None
                ) -> Tuple[summary_pb2.HistogramProto, Tuple[int, int, int]]:
    """PyTorch's proto of `values` (finite values; non-finite ones left out, counted, and the
    policy `mode` applied) and the (nan, posinf, neginf) counts. One read of the data for
    ``bins="tensorflow"``, two otherwise."""
    from . import _engine, _options
    from . import _input as _in

    engine, view = _engine.place(values, device, _options.num_threads(num_threads))
    if view.size == 0:
        raise ValueError("the input has no element: an empty tensor has no histogram (PyTorch raises ValueError too)")
    ev = view.engine_view()
    raw = engine.v1(ev)
    s = raw.stats
    _options.apply_nonfinite_policy(mode, int(s.nan), int(s.posinf), int(s.neginf), stacklevel=4)
    totals = Totals(float(s.min), float(s.max), int(s.num), float(raw.sum), float(raw.sum_squares))

    def count(rule: Any) -> np.ndarray:
        return engine.numpy_counts(ev, rule, counting_stats(s))

    def estimate(name: str) -> int:
        host = np.asarray(_in.host_array(_in.on_host(view).owner), dtype=np.float64).reshape(-1)
        host = host[np.isfinite(host)]
        return len(np.histogram_bin_edges(host, name)) - 1

    proto = torch_proto(bins, max_bins, totals, raw.counts, count, estimate)
    return proto, (int(s.nan), int(s.posinf), int(s.neginf))
