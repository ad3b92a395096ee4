"""The v1 ``HistogramProto`` (TensorFlow's C++ histogram), built from histgpu's counts.

``tf.compat.v1.summary.histogram``, PyTorch's ``add_histogram`` and tensorboardX all write
a ``HistogramProto``: TensorFlow's fixed default bucket limits (``histogram.cc``), with runs
of empty buckets collapsed by ``Histogram::EncodeToProto(preserve_zero_buckets=false)``.
This module turns :func:`histgpu.compute_v1`'s full, uncollapsed counts into that proto.

No TensorFlow import: the proto class comes from the ``tensorboard`` package.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, List, Optional, Tuple

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
    "nonfinite_summaries",
    "NONFINITE_SUFFIXES",
    "varint",
    "field_bytes",
    "histogram_proto_bytes",
    "value_bytes",
    "summary_bytes",
    "event_bytes",
    "histogram_metadata_bytes",
    "v2_tensor_bytes",
    "v2_tables",
    "framed_v2_values",
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


def nonfinite_summaries(tag: str, nan: int, posinf: int, neginf: int) -> List[bytes]:
    """The ``<tag>/nonfinite/*`` scalars as three serialized ``Summary`` protos of one value each
    (what three ``tf.summary.write`` calls write); none when every count is zero."""
    summary = summary_pb2.Summary()
    if not add_nonfinite_values(summary, tag, nan, posinf, neginf):
        return []
    return [summary_pb2.Summary(value=[v]).SerializeToString() for v in summary.value]


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


# ------------------------------------------------------- serialized protos, built as bytes
#
# A logging step of a large model is thousands of summary values. Building each as a proto
# object and serializing it costs more than counting small tensors, so the batched paths
# (SummaryWriter.add_histograms, histgpu.summary.histograms) write the wire format directly:
# fields in field-number order, proto3 scalars left out when their bits are all zero, repeated
# doubles packed -- what protobuf's own serializers write, byte for byte (tests/tensorboard/
# test_batched.py compares them on every shape of input). The constant parts (plugin metadata,
# tensor headers) are serialized once by protobuf itself.

_F64 = struct.Struct("<d")
_F64_ZERO = bytes(8)
# HistogramProto: min = 1, max = 2, num = 3, sum = 4, sum_squares = 5 (fixed64), then
# bucket_limit = 6, bucket = 7 (packed doubles).
_HISTO_KEYS = (b"\x09", b"\x11", b"\x19", b"\x21", b"\x29")


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of `n` (negative int64 values as their 64-bit two's complement)."""
    if n < 0:
        n += 1 << 64
    if n < 0x80:
        return _ONE_BYTE[n]
    if n < 0x4000:  # the lengths of a histogram's fields: no loop
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message, packed array): key, length, payload."""
    return key + varint(len(payload)) + payload


def histogram_proto_bytes(mn: float, mx: float, num: float, total: float, total_squares: float,
                          limits: bytes, counts: bytes) -> bytes:
    """A serialized ``HistogramProto``; `limits` and `counts` are little-endian float64 bytes."""
    parts = []
    for key, v in zip(_HISTO_KEYS, (mn, mx, num, total, total_squares)):
        b = _F64.pack(v)
        if b != _F64_ZERO:  # -0.0 is written, +0.0 is not (bit test, as protobuf does)
            parts.append(key + b)
    if limits:
        parts.append(field_bytes(b"\x32", limits))
    if counts:
        parts.append(field_bytes(b"\x3a", counts))
    return b"".join(parts)


def value_bytes(tag: bytes, *, histo: Optional[bytes] = None, tensor: Optional[bytes] = None,
                metadata: Optional[bytes] = None) -> bytes:
    """A serialized ``Summary.Value``: tag = 1, histo = 5, tensor = 8, metadata = 9 (`tag`: UTF-8)."""
    out = field_bytes(b"\x0a", tag) if tag else b""
    if histo is not None:
        out += field_bytes(b"\x2a", histo)
    if tensor is not None:
        out += field_bytes(b"\x42", tensor)
    if metadata is not None:
        out += field_bytes(b"\x4a", metadata)
    return out


def summary_bytes(values: Any) -> bytes:
    """A serialized ``Summary`` of serialized values (``Summary.value`` is field 1)."""
    return b"".join([b"\x0a" + varint(len(v)) + v for v in values])


def event_bytes(wall_time: float, step: Optional[int], summary: Any) -> bytes:
    """A serialized ``Event``: wall_time = 1, step = 2 (int64), summary = 5, as
    ``Event(wall_time=..., step=..., summary=...)`` serializes (a zero step or time is left out;
    the summary message is written even when empty, as a set message field is). `summary`: the
    serialized ``Summary``, or a list of its framed values (joined here, in one copy)."""
    parts = summary if isinstance(summary, list) else [summary]
    wall = _F64.pack(wall_time)
    head = b"\x09" + wall if wall != _F64_ZERO else b""
    if step:
        head += b"\x10" + varint(step)
    size = sum(len(p) for p in parts)
    return b"".join([head, b"\x2a", varint(size)] + parts)


@functools.lru_cache(maxsize=64)
def histogram_metadata_bytes(description: Optional[str] = None) -> bytes:
    """The histograms plugin's ``SummaryMetadata``, serialized (as ``tf.summary.histogram`` writes it)."""
    return _histogram_metadata.create_summary_metadata(display_name=None, description=description).SerializeToString()


@functools.lru_cache(maxsize=256)
def _v2_tensor_header(k: int) -> bytes:
    """dtype and shape of a ``[k, 3]`` DT_DOUBLE ``TensorProto`` (its fields 1 and 2)."""
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in (k, 3)])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape).SerializeToString()


def v2_tensor_bytes(k: int, content: bytes) -> bytes:
    """A serialized :func:`histogram_tensor_proto` of a ``[k, 3]`` table given as its raw bytes."""
    header = _v2_tensor_header(k)
    return header + field_bytes(b"\x22", content) if content else header  # tensor_content = 4


def framed_v2_values(tags: Any, k: int, tables: bytes, metadata: bytes) -> List[bytes]:
    """``Summary.value`` entries (framed) of ``histogram_v2_value(tag, table)`` for every tag,
    the tables of one `k` given one after another in `tables` (see :func:`v2_tables`)."""
    size = 24 * k
    header = _v2_tensor_header(k)
    if size:
        tensor_head = header + b"\x22" + varint(size)
    else:
        tensor_head = header
    tensor_len = len(tensor_head) + size
    middle = b"\x42" + varint(tensor_len) + tensor_head
    tail = b"\x4a" + varint(len(metadata)) + metadata
    fixed = len(middle) + size + len(tail)
    view = memoryview(tables)
    out = []
    for j, tag in enumerate(tags):
        lt = varint(len(tag))
        value_len = 1 + len(lt) + len(tag) + fixed
        out.append(b"".join((b"\x0a", varint(value_len), b"\x0a", lt, tag, middle, view[j * size:(j + 1) * size], tail)))
    return out


def v2_tables(results: Any) -> Optional[bytes]:
    """The ``[k, 3]`` tables of many v2 results of one `k`, as one blob of little-endian float64
    rows (``Histogram.to_tensor`` of each, one after another); None when `k` differs."""
    if not results:
        return b""
    k = int(results[0].k)
    if any(int(r.k) != k for r in results):
        return None
    n = len(results)
    table = np.empty((n, k, 3), dtype="<f8")
    if k:
        edges = np.stack([r.edges for r in results])  # [n, k + 1]
        table[:, :, 0] = edges[:, :-1]
        table[:, :, 1] = edges[:, 1:]
        table[:, :, 2] = np.stack([r.counts for r in results])
    return table.tobytes()
