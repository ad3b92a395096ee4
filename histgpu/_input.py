"""Turning user data into a zero-copy strided view the engines can read.

Everything an engine needs is (pointer, dtype code, shape, byte strides, multiplicity). The
order of elements never matters to a histogram, so dimensions are reordered, flipped and merged
freely; a dimension of stride 0 repeats elements and becomes a multiplicity instead of a loop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

try:  # ml_dtypes ships bfloat16 and the FP8 formats as numpy dtypes
    import ml_dtypes as _ml
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    _ml = None

# Codes shared with csrc/core/types.hpp (enum class DType).
_NUMPY_CODES = {
    np.dtype(np.bool_): 0,
    np.dtype(np.int8): 1,
    np.dtype(np.uint8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.uint16): 4,
    np.dtype(np.int32): 5,
    np.dtype(np.uint32): 6,
    np.dtype(np.int64): 7,
    np.dtype(np.uint64): 8,
    np.dtype(np.float16): 9,
    np.dtype(np.float32): 11,
    np.dtype(np.float64): 12,
}
if _ml is not None:
    _NUMPY_CODES[np.dtype(_ml.bfloat16)] = 10
    _NUMPY_CODES[np.dtype(_ml.float8_e4m3fn)] = 13
    _NUMPY_CODES[np.dtype(_ml.float8_e5m2)] = 14

SUPPORTED_DTYPES = tuple(sorted(d.name for d in _NUMPY_CODES))


@dataclass
class View:
    """A normalised strided view; `owner` keeps the memory alive while an engine reads it."""

    owner: Any
    ptr: int
    dtype: np.dtype
    code: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]
    multiplicity: int
    size: int  # elements the view stands for, multiplicity included

    def engine_args(self) -> tuple:
        return (self.ptr, self.code, list(self.shape), list(self.strides), self.multiplicity)


def dtype_code(dtype: np.dtype) -> int:
    """The engine's code for `dtype`, or a TypeError that says what is accepted."""
    code = _NUMPY_CODES.get(np.dtype(dtype).newbyteorder("="))
    if code is None:
        kind = {"c": "complex", "U": "string", "S": "bytes", "O": "object", "M": "datetime",
                "m": "timedelta", "V": "structured/void"}.get(np.dtype(dtype).kind, "this")
        raise TypeError(
            f"histgpu cannot histogram {kind} data (dtype {np.dtype(dtype)}); "
            f"supported dtypes: {', '.join(SUPPORTED_DTYPES)}"
        )
    return code


# PyTorch dtypes numpy has no name for, read through a same-width integer view.
_TORCH_ML_DTYPES = {"torch.bfloat16": ("int16", "bfloat16"),
                    "torch.float8_e4m3fn": ("uint8", "float8_e4m3fn"),
                    "torch.float8_e5m2": ("uint8", "float8_e5m2")}


def _torch_host_array(tensor: Any) -> np.ndarray:
    """A CPU torch tensor as numpy, in place: gradients are ignored (a histogram only reads the
    values) and bfloat16/FP8, which numpy cannot name, are viewed as ml_dtypes."""
    import sys

    torch = sys.modules["torch"]
    t = tensor.detach()
    special = _TORCH_ML_DTYPES.get(str(t.dtype))
    if special is not None and _ml is not None:
        as_int, ml_name = special
        return t.view(getattr(torch, as_int)).numpy().view(getattr(_ml, ml_name))
    return t.numpy()


def as_host_array(data: Any) -> np.ndarray:
    """A numpy array over `data` without copying where the data already lives in host memory."""
    if isinstance(data, np.ndarray):
        return data
    if type(data).__module__.startswith("torch") and hasattr(data, "detach"):
        return _torch_host_array(data)
    if isinstance(data, (str, bytes)):
        raise TypeError(f"histgpu cannot histogram a {type(data).__name__}; pass numbers")
    if hasattr(data, "__dlpack__") and hasattr(data, "__dlpack_device__"):
        try:
            device_type = int(data.__dlpack_device__()[0])
        except Exception:  # noqa: BLE001 - fall back to __array__ below
            device_type = None
        if device_type == 1:  # kDLCPU
            try:
                return np.from_dlpack(data)
            except (TypeError, BufferError, RuntimeError, ValueError):
                pass  # e.g. a dtype DLPack cannot describe: __array__ below still works
    if hasattr(data, "__array__") and not isinstance(data, (list, tuple)):
        # Called directly: numpy 2 would otherwise pass copy= and warn about older producers
        # (Keras variables, for one) whose __array__ does not take it.
        return np.asarray(data.__array__())
    try:
        arr = np.asarray(data)
    except ValueError as exc:  # numpy's message for ragged nested sequences
        raise ValueError(
            f"histgpu needs rectangular numeric data; got a ragged or inhomogeneous sequence ({exc})"
        ) from None
    return arr


def normalise(data: Any) -> View:
    """Validate `data` and describe it as a zero-copy view with positive, merged strides."""
    arr = as_host_array(data)
    if arr.dtype.kind == "O":
        raise TypeError(
            "histgpu got an object array (mixed types, ragged lists or Python objects); "
            "pass a rectangular array of numbers"
        )
    code = dtype_code(arr.dtype)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))  # byte-swapped data: one converted copy
    itemsize = arr.dtype.itemsize
    ptr = int(arr.__array_interface__["data"][0]) if arr.size else 0
    size = int(arr.size)
    if size == 0:
        return View(arr, 0, arr.dtype, code, (0,), (itemsize,), 1, 0)
    ptr, shape, strides, multiplicity = layout(ptr, arr.shape, arr.strides, itemsize)
    return View(arr, ptr, arr.dtype, code, shape, strides, multiplicity, size)


def layout(ptr: int, shape, strides, itemsize: int):
    """(ptr, shape, strides, multiplicity) of a non-empty strided array, normalised.

    Extent-1 dimensions are dropped, stride-0 dimensions become a multiplicity, negative
    strides are walked forwards from the lowest address, and dimensions are sorted by stride
    (innermost = smallest) and merged where they tile memory contiguously. Strides in bytes.
    Shared by host arrays (normalise) and device arrays (histgpu._cuda_backend).
    """
    dims = []
    multiplicity = 1
    for extent, stride in zip(shape, strides):
        extent = int(extent)
        stride = int(stride)
        if extent == 1:
            continue
        if stride == 0:
            multiplicity *= extent
            continue
        if stride < 0:  # walk it forwards from its lowest address instead
            ptr += (extent - 1) * stride
            stride = -stride
        dims.append((stride, extent))
    dims.sort(reverse=True)  # innermost = smallest stride
    merged: list = []
    for stride, extent in dims:
        if merged and merged[-1][0] == stride * extent:
            merged[-1] = (stride, merged[-1][1] * extent)
        else:
            merged.append((stride, extent))
    if not merged:
        merged = [(itemsize, 1)]
    return ptr, tuple(e for _, e in merged), tuple(s for s, _ in merged), multiplicity
