"""``numpy.histogram``'s bins, counted by histgpu's engines (csrc/core/numpy_bins.hpp).

numpy decides a histogram's constants once (the outer edges, the ``linspace`` edges, the
divisor, the format each step is computed in, by its own type promotion rules); this module
takes them from numpy itself, on scalars and one-element arrays, and hands them to the core,
which counts every value by numpy's per-value rule on whichever engine holds the data. So
:func:`numpy_histogram` equals ``numpy.histogram`` bit for bit, and so do the PyTorch-layout
histograms of the writer (``numpy.histogram`` of the values as float64).
"""
from __future__ import annotations

import operator
import warnings
from typing import Any, Optional, Tuple

import numpy as np

from . import _cpu, _dtypes, _engine, _options
from . import _input as _in

__all__ = ["numpy_histogram", "ESTIMATORS"]

#: numpy's bin-width estimators (``numpy.histogram_bin_edges``).
ESTIMATORS = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")

# Float formats of the core (NpFloat in csrc/core/numpy_bins.hpp).
_FORMATS = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3, "float8_e4m3fn": 4, "float8_e5m2": 5}
_F64 = _FORMATS["float64"]
_EXACT_INT = 2**53  # integers up to this magnitude are exact in float64


def _fmt(dtype: Any) -> int:
    """The core's format code for computing in `dtype` (integers compare exactly as float64)."""
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        return _F64
    code = _FORMATS.get(dt.name)
    if code is None:
        raise TypeError(f"histgpu: numpy computes these bins in {dt}, a format histgpu does not emulate")
    return code


def _unsigned_subtract(a: Any, b: Any) -> Any:
    """``a - b`` in numpy's way for histogram ranges: signed integers subtract into their unsigned
    type (the difference of an int8 range may not fit int8); anything else as numpy subtracts."""
    dt = np.result_type(a, b)
    if dt.kind == "i":
        unsigned = np.dtype(f"u{dt.itemsize}")
        return np.subtract(np.asarray(a, dtype=dt), np.asarray(b, dtype=dt), casting="unsafe", dtype=unsigned)
    return np.subtract(a, b, dtype=dt)


def _as_double(value: Any, dtype: Any) -> float:
    """`value` converted to `dtype` the way numpy casts a scalar operand, as a float."""
    with np.errstate(all="ignore"):
        return float(np.asarray(value).astype(dtype))


def semantic_dtype(view: Any) -> np.dtype:
    """The dtype numpy.histogram would see for this data (bool is converted to uint8, as numpy does)."""
    dt = _dtypes.numpy_dtype(_dtypes.BY_CODE[view.code].name)
    return np.dtype(np.uint8) if dt == np.bool_ else dt


def data_range(stats: Any, dtype: np.dtype, exact: Any = None) -> Tuple[Any, Any]:
    """``(a.min(), a.max())`` as numpy scalars of `dtype`, from a RangeStats: NaN when any value is
    NaN, an infinity when one is present, as numpy's reductions give them. `exact()` gives the
    true extremes of 64-bit integers beyond 2**53 (the engines see them rounded to float64)."""
    if stats.nan:
        return np.float64("nan"), np.float64("nan")
    lo = -np.inf if stats.neginf else stats.min
    hi = np.inf if stats.posinf else stats.max
    if dtype.kind in "iu":
        if exact is not None and max(abs(lo), abs(hi)) >= _EXACT_INT:
            return exact()
        return dtype.type(int(lo)), dtype.type(int(hi))
    return np.asarray(lo).astype(dtype)[()], np.asarray(hi).astype(dtype)[()]


def outer_edges(size: int, rng: Any, data_min: Any) -> Tuple[Any, Any]:
    """numpy's ``_get_outer_edges``: the range given, else (0, 1) for no data, else the data's
    own range (`data_min()`), widened by 0.5 each way when it is a single value."""
    if rng is not None:
        first, last = rng
        if first > last:
            raise ValueError("max must be larger than min in range parameter.")
        if not (np.isfinite(first) and np.isfinite(last)):
            raise ValueError(f"supplied range of [{first}, {last}] is not finite")
    elif size == 0:
        first, last = 0, 1
    else:
        first, last = data_min()
        if not (np.isfinite(first) and np.isfinite(last)):
            raise ValueError(f"autodetected range of [{first}, {last}] is not finite")
    if first == last:
        first = first - 0.5
        last = last + 0.5
    return first, last


def uniform_bins(dtype: np.dtype, first: Any, last: Any, n: int) -> Tuple[Any, np.ndarray]:
    """The core's rule for `n` equal-width bins over [first, last] of data of `dtype`, and numpy's edges."""
    sample = np.empty(0, dtype)
    bin_type = np.result_type(first, last, sample)
    if bin_type.kind in "iub":
        bin_type = np.result_type(bin_type, float)
    with np.errstate(all="ignore"):
        edges = np.linspace(first, last, n + 1, endpoint=True, dtype=bin_type)
    if np.any(edges[:-1] >= edges[1:]):
        raise ValueError(f"Too many bins for data range. Cannot create {n} finite-sized bins.")
    # The format of each step of numpy's index computation, from numpy's own promotion rules.
    with np.errstate(all="ignore"):
        d = _unsigned_subtract(np.zeros(1, bin_type), first)
        denom = _unsigned_subtract(last, first)
        q = np.zeros(1, d.dtype) / denom
        f = np.zeros(1, q.dtype) * n
    # numpy compares the values with the range in its own promotion of data and bound; the
    # values are exact in it, so only the bound's rounding matters.
    keep_lo = float(first) if np.result_type(sample, first).kind in "iub" else _as_double(first, np.result_type(sample, first))
    keep_hi = float(last) if np.result_type(sample, last).kind in "iub" else _as_double(last, np.result_type(sample, last))
    spec = _cpu.NumpyBins(
        uniform=True, edges=edges.astype(np.float64), edge_prec=_fmt(bin_type), keep_lo=keep_lo, keep_hi=keep_hi,
        keep_prec=_F64, sub_first=_as_double(first, d.dtype), sub_prec=_fmt(d.dtype), denom=_as_double(denom, q.dtype),
        div_prec=_fmt(q.dtype), n_mul=_as_double(n, f.dtype), mul_prec=_fmt(f.dtype),
    )
    return spec, edges


def explicit_bins(dtype: np.dtype, bins: Any) -> Tuple[Optional[Any], np.ndarray]:
    """The core's rule for explicit edges (numpy's searchsorted, in the promotion of data and
    edges), and numpy's ``bin_edges`` (the edges given, as ``np.asarray``). None for < 2 edges."""
    edges = np.asarray(bins)
    if edges.dtype.kind not in "iuf" and edges.dtype.name not in _FORMATS:
        raise TypeError(f"bin edges must be real numbers, got dtype {edges.dtype}")
    if np.any(edges[:-1] > edges[1:]):
        raise ValueError("`bins` must increase monotonically, when an array")
    if edges.dtype.kind == "f" and np.isnan(edges.astype(np.float64)).any():
        raise ValueError("`bins` holds NaN: bin edges must be numbers (numpy's result would be meaningless)")
    if edges.size < 2:
        return None, edges
    common = np.promote_types(dtype, edges.dtype)
    with np.errstate(all="ignore"):
        compared = edges.astype(common).astype(np.float64)
    return _cpu.NumpyBins(uniform=False, edges=compared, edge_prec=_fmt(common)), edges


def check_int_bins(bins: Any) -> int:
    """numpy's checks of an integer bin count."""
    try:
        n = operator.index(bins)
    except TypeError as e:
        raise TypeError("`bins` must be an integer, a string, or an array") from e
    if n < 1:
        raise ValueError("`bins` must be positive, when an integer")
    if n > _options.MAX_BUCKETS:
        raise ValueError(f"bins={n} is above histgpu's limit of {_options.MAX_BUCKETS} bins")
    return n


def check_estimator(name: str) -> str:
    if name not in ESTIMATORS:
        raise ValueError(f"{name!r} is not a valid estimator for `bins`; numpy's estimators are {', '.join(ESTIMATORS)}")
    return name


def _exact_range(view: Any) -> Any:
    """The true min/max of 64-bit integer data (numpy's a.min()/a.max()), from a host copy."""
    arr = _in.host_array(_in.on_host(view).owner)
    return lambda: (arr.min(), arr.max())


def numpy_histogram(
    a: Any,
    bins: Any = 10,
    range: Optional[Tuple[float, float]] = None,  # noqa: A002 - numpy's name
    *,
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """``numpy.histogram(a, bins, range)``, counted by histgpu's engines: the same counts and edges.

    Parameters
    ----------
    a : array_like
        Anything :func:`histgpu.compute` reads: numpy arrays (any strides, read in place),
        PyTorch/TensorFlow/JAX/CuPy tensors (GPU tensors are counted on the GPU), lists.
        The dtype rules are numpy's for the same data (bool is counted as uint8, with numpy's
        ``RuntimeWarning``).
    bins : int, sequence of scalars or str
        Equal-width bins (an int), explicit monotonic edges, or one of numpy's estimators
        (:data:`ESTIMATORS`; the estimator's width is numpy's own, the counting histgpu's).
    range : (float, float), optional
        As in numpy: values outside it are not counted.

    Returns
    -------
    hist : numpy.ndarray
        ``intp`` counts.
    bin_edges : numpy.ndarray
        numpy's edges (for explicit edges, ``np.asarray(bins)`` itself).

    Notes
    -----
    Equal to numpy bit for bit, counts and edges, except for 64-bit integers beyond 2**53 in
    magnitude compared with a ``range`` bound or edge that is itself an integer: histgpu's
    engines read such integers rounded to float64 (numpy compares them exactly). NaN and
    infinities are handled as numpy handles them: not counted (infinities are counted where
    explicit edges reach them), and without ``range`` they make numpy, and so this, raise
    ``ValueError``. Edges holding NaN raise ``ValueError`` (numpy's result is meaningless there).
    """
    threads = _options.num_threads(num_threads)
    view = _in.classify(a)
    if _dtypes.BY_CODE[view.code].name == "bool":
        warnings.warn("Converting input from bool to <class 'numpy.uint8'> for compatibility.", RuntimeWarning,
                      stacklevel=2)
    dtype = semantic_dtype(view)
    engine, view = _engine.place(view, device, threads)
    ev = view.engine_view()
    stats = engine.range(ev)

    if isinstance(bins, str):
        check_estimator(bins)
        host = _in.host_array(_in.on_host(view).owner)
        if host.dtype == np.bool_:
            host = host.astype(np.uint8)
        n = len(np.histogram_bin_edges(host.reshape(-1), bins, range)) - 1
        spec = None
    elif np.ndim(bins) == 0:
        n = check_int_bins(bins)
        spec = None
    elif np.ndim(bins) == 1:
        spec, edges = explicit_bins(dtype, bins)
        if spec is None:
            return np.zeros(max(edges.size - 1, 0), np.intp), edges
        counts = engine.numpy_counts(ev, spec, stats)
        return counts.astype(np.intp), edges
    else:
        raise ValueError("`bins` must be 1d, when an array")

    exact = _exact_range(view) if dtype.kind in "iu" and dtype.itemsize == 8 else None
    first, last = outer_edges(view.size, range, lambda: data_range(stats, dtype, exact))
    spec, edges = uniform_bins(dtype, first, last, n)
    counts = engine.numpy_counts(ev, spec, stats)
    return counts.astype(np.intp), edges
