"""The v1 ``HistogramProto`` (TensorFlow's C++ histogram), built from histgpu's counts.

``tf.compat.v1.summary.histogram``, PyTorch's ``add_histogram`` and tensorboardX all write
a ``HistogramProto``: TensorFlow's fixed default bucket limits (``histogram.cc``), with runs
of empty buckets collapsed by ``Histogram::EncodeToProto(preserve_zero_buckets=false)``.
This module turns :func:`histgpu.compute_v1`'s full, uncollapsed counts into that proto.

No TensorFlow import: the proto class comes from the ``tensorboard`` package.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as _histogram_metadata
from tensorboard.plugins.scalar import metadata as _scalar_metadata

import histgpu

__all__ = [
    "histogram_proto",
    "v1_to_proto",
    "collapse_empty_buckets",
    "histogram_tensor_proto",
    "histogram_v2_value",
    "add_nonfinite_values",
    "NONFINITE_SUFFIXES",
]

# Companion scalars that make non-finite values visible in TensorBoard: see histgpu.summary.
NONFINITE_SUFFIXES: Tuple[str, str, str] = ("nonfinite/nan", "nonfinite/posinf", "nonfinite/neginf")
_NONFINITE_WHAT = {"nonfinite/nan": "NaN", "nonfinite/posinf": "+Inf", "nonfinite/neginf": "-Inf"}

_DBL_MAX = float(np.finfo(np.float64).max)


def collapse_empty_buckets(limits: np.ndarray, counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Collapse runs of empty buckets the way TensorFlow's ``EncodeToProto`` does.

    TensorFlow walks the buckets in order; a non-empty bucket is emitted as
    ``(limit, count)``, and a maximal run of empty buckets is emitted once, as
    ``(limit of the run's last bucket, 0)``. So bucket ``i`` survives exactly when
    it is non-empty, or it is empty and is the last of its run (the next bucket is
    non-empty, or there is no next bucket).

    Parameters
    ----------
    limits : numpy.ndarray
        Right-hand bucket limits, strictly increasing, ``float64``.
    counts : numpy.ndarray
        Count of each bucket, same length as ``limits``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(limits, counts)`` after collapsing. Never empty: with no buckets at all
        TensorFlow emits the single bucket ``(DBL_MAX, 0)``, and so does this.
    """
    limits = np.asarray(limits, dtype=np.float64)
    counts = np.asarray(counts)
    if limits.shape != counts.shape or limits.ndim != 1:
        raise ValueError(f"limits and counts must be 1-D of equal length, got {limits.shape} and {counts.shape}")
    if limits.size == 0:
        return np.array([_DBL_MAX]), np.zeros(1, dtype=counts.dtype)
    nonzero = counts != 0
    keep = nonzero.copy()
    keep[:-1] |= nonzero[1:]  # an empty bucket just before a non-empty one ends its run
    keep[-1] = True  # the last bucket always ends whatever run it is in
    return limits[keep], counts[keep]


def v1_to_proto(hist: Any) -> summary_pb2.HistogramProto:
    """Encode a :class:`histgpu.V1Histogram` as a collapsed ``HistogramProto``.

    Parameters
    ----------
    hist : histgpu.V1Histogram
        Result of :func:`histgpu.compute_v1` (full limits and counts, ``min``, ``max``,
        ``num``, ``sum``, ``sum_squares``).

    Returns
    -------
    tensorboard.compat.proto.summary_pb2.HistogramProto
        The proto TensorFlow's ``HistogramSummary`` op would write for the same finite
        values (``sum`` and ``sum_squares`` are exact sums rounded once; TensorFlow's
        are sequential float64 sums and may differ in the last bits).
    """
    limits, counts = collapse_empty_buckets(hist.limits, hist.counts)
    proto = summary_pb2.HistogramProto(
        min=float(hist.min),
        max=float(hist.max),
        num=float(hist.num),
        sum=float(hist.sum),
        sum_squares=float(hist.sum_squares),
    )
    # Counts are exact integers; as doubles they stay exact below 2**53.
    proto.bucket_limit.extend(limits.tolist())
    proto.bucket.extend(counts.astype(np.float64).tolist())
    return proto


def histogram_proto(
    data: Any,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
) -> summary_pb2.HistogramProto:
    """Histogram of ``data`` as TensorFlow's v1 ``HistogramProto``.

    Parameters
    ----------
    data : array_like
        Values of any shape and real dtype; cast to ``float64`` like TensorFlow does.
    nonfinite : {"omit", "raise"}, optional
        ``"omit"`` (default) leaves NaN and +-Inf out of the histogram and warns with
        :class:`histgpu.NonFiniteWarning`; ``"raise"`` raises ``ValueError`` instead, like
        TensorFlow's own op (which fails with ``InvalidArgument``). The proto has no field
        for non-finite counts; use :func:`histgpu.compute_v1` to get them.
    num_threads : int, optional
        CPU threads to use; the result does not depend on it.

    Returns
    -------
    tensorboard.compat.proto.summary_pb2.HistogramProto
        ``bucket_limit``, ``bucket``, ``min``, ``max`` and ``num`` equal the output of
        ``tf.raw_ops.HistogramSummary`` on the finite values; ``sum`` and ``sum_squares``
        are the exact sums of the values and of their squares, rounded once.

    Examples
    --------
    >>> from histgpu.proto import histogram_proto
    >>> p = histogram_proto([1.0, 2.0, 2.5])
    >>> p.num, p.min, p.max
    (3.0, 1.0, 2.5)
    """
    return v1_to_proto(histgpu.compute_v1(data, nonfinite=nonfinite, num_threads=num_threads))


# ------------------------------------------------------------------ TF-free summary pieces


def histogram_tensor_proto(table: np.ndarray) -> tensor_pb2.TensorProto:
    """The ``[k, 3]`` float64 bucket tensor as TensorFlow's summary writer encodes it.

    TensorFlow stores it as ``DT_DOUBLE`` with the raw little-endian bytes in
    ``tensor_content``; doing the same makes histgpu's events byte-identical.
    """
    table = np.ascontiguousarray(table, dtype="<f8")
    if table.ndim != 2 or table.shape[1] != 3:
        raise ValueError(f"a histogram tensor has shape [k, 3], got {table.shape}")
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in table.shape])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape, tensor_content=table.tobytes())


def histogram_v2_value(tag: str, table: np.ndarray, description: Optional[str] = None) -> summary_pb2.Summary.Value:
    """A ``Summary.Value`` exactly like ``tf.summary.histogram`` writes for ``table``."""
    md = _histogram_metadata.create_summary_metadata(display_name=None, description=description)
    return summary_pb2.Summary.Value(tag=tag, metadata=md, tensor=histogram_tensor_proto(table))


def nonfinite_metadata(tag: str, suffix: str) -> summary_pb2.SummaryMetadata:
    """Scalar-plugin metadata of the companion ``<tag>/<suffix>`` summary."""
    what = _NONFINITE_WHAT[suffix]
    return _scalar_metadata.create_summary_metadata(
        display_name=None,
        description=(
            f"Number of {what} values that histgpu left out of the histogram `{tag}`. "
            "Written only at steps where the data held NaN or infinite values."
        ),
    )


def scalar_tensor_proto(value: float) -> tensor_pb2.TensorProto:
    """A float32 scalar ``TensorProto``, as ``tf.summary.scalar`` writes it.

    float32 because TensorBoard's Rust data server (its default loader) ignores scalar
    summaries of any other dtype; counts are exact up to 2**24.
    """
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(),
        tensor_content=np.array(value, dtype="<f4").tobytes(),
    )


def add_nonfinite_values(summary: summary_pb2.Summary, tag: str, nan: int, posinf: int, neginf: int) -> bool:
    """Append the ``<tag>/nonfinite/*`` scalars to ``summary`` when any count is non-zero.

    Returns
    -------
    bool
        Whether anything was added.
    """
    counts = (int(nan), int(posinf), int(neginf))
    if not any(counts):
        return False
    for suffix, count in zip(NONFINITE_SUFFIXES, counts):
        summary.value.add(
            tag=f"{tag}/{suffix}", metadata=nonfinite_metadata(tag, suffix), tensor=scalar_tensor_proto(count)
        )
    return True
