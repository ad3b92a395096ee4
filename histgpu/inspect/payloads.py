"""Checked conversion of summary payloads (tensor protos, v1 histograms) into numbers.

An event file is input from anywhere, so nothing in a payload is trusted: a shape may
promise far more values than the proto stores (TensorBoard's ``make_ndarray`` would then
allocate the promised size), a histogram tensor may have the wrong shape or dtype, a v1
histogram may have as many limits as counts or not. Each function here either returns
well-formed data or raises :class:`MalformedPayload` saying what is wrong, so the reader
can skip that one event and keep the rest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .stats import Buckets

__all__ = ["MalformedPayload", "tensor_values", "v2_buckets", "v1_buckets", "scalar_value", "MAX_FILLED_ELEMENTS"]

# TensorFlow's tensor protos may store one value for a whole shape ("fill"). Expanding it
# allocates what the file does not hold, so it is done only up to this many elements
# (writers use it for scalars and small constants; histograms store every value).
MAX_FILLED_ELEMENTS = 1 << 16

# Numeric dtypes a histogram or scalar may be stored as (DataType enum names).
_NUMERIC = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16")
_VALUE_FIELDS = ("float_val", "double_val", "half_val", "int_val", "int64_val")


class MalformedPayload(ValueError):
    """A summary payload that is not what its plugin promises; the event is skipped."""


def _dtype_name(tensor_proto: Any) -> str:
    from tensorboard.compat.proto import types_pb2

    try:
        return types_pb2.DataType.Name(tensor_proto.dtype)
    except ValueError:
        return f"unknown dtype {tensor_proto.dtype}"


def tensor_values(tensor_proto: Any) -> np.ndarray:
    """The numeric array a ``TensorProto`` holds, checked against what it really stores.

    Raises
    ------
    MalformedPayload
        For a non-numeric dtype, an unknown (negative) dimension, or a shape whose
        element count does not match the stored values.
    """
    from tensorboard.util import tensor_util

    name = _dtype_name(tensor_proto)
    if name not in _NUMERIC:
        raise MalformedPayload(f"{name} tensor (a number tensor was expected)")
    dims = [d.size for d in tensor_proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise MalformedPayload(f"unknown dimension in shape {dims}")
    n = math.prod(dims)  # Python int: no overflow
    content = tensor_proto.tensor_content
    if content:
        itemsize = np.dtype(_numpy_dtype(tensor_proto)).itemsize
        if len(content) != n * itemsize:
            raise MalformedPayload(f"shape {dims} needs {n * itemsize} bytes, the tensor holds {len(content)}")
    else:
        stored = max(len(getattr(tensor_proto, f)) for f in _VALUE_FIELDS)
        if stored != n and not (stored == 1 and n <= MAX_FILLED_ELEMENTS):
            raise MalformedPayload(f"shape {dims} has {n} elements, the tensor holds {stored} value(s)")
    try:
        return np.asarray(tensor_util.make_ndarray(tensor_proto))
    except (TypeError, ValueError) as e:
        raise MalformedPayload(f"unreadable tensor: {e}") from None


def _numpy_dtype(tensor_proto: Any) -> Any:
    from tensorboard.compat.tensorflow_stub import dtypes

    return dtypes.as_dtype(tensor_proto.dtype).as_numpy_dtype


def _check_counts(counts: np.ndarray) -> None:
    if counts.size and not (np.all(np.isfinite(counts)) and np.all(counts >= 0)):
        raise MalformedPayload("bucket counts must be finite and >= 0")


def v2_buckets(tensor_proto: Any) -> Buckets:
    """A v2 histogram: a ``[k, 3]`` tensor of ``[left, right, count]`` rows.

    Edges may be NaN or infinite (``tf.summary.histogram`` writes that for non-finite
    data, and the statistics flag it); counts must be finite and non-negative.
    """
    arr = tensor_values(tensor_proto)
    if arr.size == 0:
        return Buckets.empty()
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise MalformedPayload(f"histogram tensor of shape {list(arr.shape)} (expected [k, 3])")
    b = Buckets.from_table(arr)
    _check_counts(b.counts)
    return b


def v1_buckets(histo: Any) -> Buckets:
    """A v1 ``HistogramProto`` (as TensorBoard's accumulator hands it over) as buckets."""
    limits = np.asarray(list(histo.bucket_limit), dtype=np.float64)
    counts = np.asarray(list(histo.bucket), dtype=np.float64)
    if limits.size != counts.size:
        raise MalformedPayload(f"v1 histogram with {limits.size} bucket limits and {counts.size} counts")
    _check_counts(counts)
    return Buckets.from_v1(histo.min, histo.max, limits, counts)


def scalar_value(tensor_proto: Any) -> float:
    """The single number of a scalar summary tensor."""
    arr = tensor_values(tensor_proto)
    if arr.size != 1:
        raise MalformedPayload(f"scalar tensor of shape {list(arr.shape)}")
    return float(arr.reshape(-1)[0])
