"""Describing arrays in GPU memory without copying them: PyTorch, CuPy, the CUDA Array
Interface, DLPack producers (JAX, ...) and TensorFlow GPU tensors.

Nothing here needs the compiled CUDA engine, so it is testable on any machine.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from . import _dtypes

_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST, _KDL_CUDA_MANAGED = 1, 2, 3, 13
DEVICE_DLPACK_TYPES = (_KDL_CUDA, _KDL_CUDA_HOST, _KDL_CUDA_MANAGED)


# ------------------------------------------------------------------------------------------------
# what kind of object is it?
# ------------------------------------------------------------------------------------------------


def _module(data: Any) -> str:
    return type(data).__module__ or ""


def is_torch(data: Any) -> bool:
    return _module(data).startswith("torch") and hasattr(data, "data_ptr")


def is_cupy(data: Any) -> bool:
    return _module(data).startswith("cupy") and hasattr(data, "data") and hasattr(data, "device")


def is_tensorflow(data: Any) -> bool:
    return _module(data).startswith("tensorflow")


def is_tensorflow_gpu(data: Any) -> bool:
    return is_tensorflow(data) and "GPU" in str(getattr(data, "device", "") or "").upper()


def is_device_array(data: Any) -> bool:
    """True for arrays that live in GPU memory (CuPy, PyTorch CUDA, JAX/TF GPU via DLPack).

    TensorFlow GPU tensors count only where histgpu's CUDA engine can read them (a GPU is
    usable); otherwise TensorFlow copies them to the host when histgpu reads them.
    """
    if is_torch(data) and hasattr(data, "is_cuda"):
        # asked first: a CUDA tensor of a dtype the CUDA Array Interface cannot describe
        # (bfloat16, say) raises TypeError from __cuda_array_interface__
        return bool(data.is_cuda)
    try:
        if hasattr(data, "__cuda_array_interface__"):
            return True
    except Exception:  # noqa: BLE001 - the attribute exists but cannot describe this array
        return True
    if is_tensorflow(data):
        if not is_tensorflow_gpu(data):
            return False
        from . import _engine  # late: the engine module knows whether a GPU is usable

        return _engine.cuda_usable()
    dev = getattr(data, "__dlpack_device__", None)
    if dev is not None:
        try:
            return int(dev()[0]) in DEVICE_DLPACK_TYPES
        except Exception:  # noqa: BLE001 - not a usable DLPack producer
            return False
    return False


# ------------------------------------------------------------------------------------------------
# DLPack capsules, read with ctypes
# ------------------------------------------------------------------------------------------------


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", _DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


@dataclass(frozen=True)
class DLPackInfo:
    """What a DLPack capsule describes. The capsule itself must outlive every use of `ptr`;
    its producer frees the tensor when the (unconsumed) capsule is garbage collected."""

    capsule: Any
    ptr: int
    device_type: int
    device_id: int
    code: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]  # bytes
    itemsize: int


def compact_strides(shape: Tuple[int, ...], itemsize: int) -> Tuple[int, ...]:
    """Byte strides of a C-contiguous array of `shape`."""
    strides = []
    acc = itemsize
    for extent in reversed(shape):
        strides.append(acc)
        acc *= max(int(extent), 1)
    return tuple(reversed(strides))


def read_dlpack_capsule(capsule: Any) -> DLPackInfo:
    """Decode a legacy ``"dltensor"`` capsule (``__dlpack__()`` without ``max_version``)."""
    addr = _capsule_get_pointer(capsule, b"dltensor")
    t = _DLManagedTensor.from_address(addr).dl_tensor
    dt = t.dtype
    if dt.lanes != 1:
        raise _dtypes.unsupported(f"DLPack vector type (code {dt.code}, {dt.bits} bits x {dt.lanes})")
    code = _dtypes.DLPACK_CODES.get((int(dt.code), int(dt.bits)))
    if code is None:
        raise _dtypes.unsupported(f"DLPack (code {dt.code}, {dt.bits} bits)")
    itemsize = max(1, int(dt.bits) // 8)
    ndim = int(t.ndim)
    shape = tuple(int(t.shape[i]) for i in range(ndim))
    if t.strides:
        strides = tuple(int(t.strides[i]) * itemsize for i in range(ndim))
    else:
        strides = compact_strides(shape, itemsize)
    ptr = int(t.data or 0) + int(t.byte_offset)
    return DLPackInfo(capsule, ptr, int(t.device.device_type), int(t.device.device_id), code, shape, strides, itemsize)


# ------------------------------------------------------------------------------------------------
# streams
# ------------------------------------------------------------------------------------------------


def stream_handle(stream: Any) -> int:
    """An integer cudaStream_t from an int, a torch.cuda.Stream, a cupy Stream, or None (0).

    0 is the legacy default stream; 1 and 2 are cudaStreamLegacy and cudaStreamPerThread (the
    CUDA Array Interface's and DLPack's special values)."""
    if stream is None:
        return 0
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        return int(stream)
    for attr in ("cuda_stream", "ptr", "handle"):
        h = getattr(stream, attr, None)
        if isinstance(h, (int, np.integer)):
            return int(h)
    raise TypeError(f"histgpu: cannot use {type(stream).__name__} as a CUDA stream")


def producer_stream(data: Any) -> Optional[int]:
    """The stream on which the producer of `data` orders its work, where it says (else None)."""
    if is_torch(data):
        import torch

        return int(torch.cuda.current_stream(data.device).cuda_stream)
    if is_cupy(data):
        import cupy

        with data.device:
            return int(cupy.cuda.get_current_stream().ptr)
    cai = getattr(data, "__cuda_array_interface__", None)
    if isinstance(cai, dict) and cai.get("stream") is not None:
        return int(cai["stream"])
    return None


# ------------------------------------------------------------------------------------------------
# the description
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceArray:
    """Raw description of GPU memory (before its layout is normalised by histgpu._input)."""

    owner: Any  # keeps the memory alive
    ptr: int
    code: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]  # bytes
    itemsize: int
    device: int  # -1: unknown (the CUDA engine asks the driver)
    stream: int


def describe(data: Any, stream: Any = None) -> DeviceArray:
    """Describe GPU-resident `data` without copying it.

    `stream` overrides the producer's stream (int handle, torch/cupy stream object)."""
    explicit = None if stream is None else stream_handle(stream)
    if is_torch(data):
        if not data.is_cuda:
            raise ValueError("histgpu: this PyTorch tensor is not on a CUDA device")
        code = _dtypes.framework_code(data.dtype)
        itemsize = _dtypes.BY_CODE[code].itemsize
        s = explicit if explicit is not None else producer_stream(data)
        strides = tuple(int(x) * itemsize for x in data.stride())
        return DeviceArray(data, int(data.data_ptr()), code, tuple(int(x) for x in data.shape), strides, itemsize,
                           int(data.device.index or 0), s or 0)
    if is_cupy(data):
        code = _dtypes.numpy_code(np.dtype(data.dtype))
        s = explicit if explicit is not None else producer_stream(data)
        return DeviceArray(data, int(data.data.ptr), code, tuple(data.shape), tuple(data.strides),
                           data.dtype.itemsize, int(data.device.id), s or 0)
    cai = getattr(data, "__cuda_array_interface__", None)
    if isinstance(cai, dict):
        dt = np.dtype(cai["typestr"])
        if not dt.isnative:
            raise TypeError(f"histgpu: byte-swapped device arrays (typestr {cai['typestr']!r}) are not supported")
        code = _dtypes.numpy_code(dt)
        shape = tuple(int(x) for x in cai["shape"])
        strides = compact_strides(shape, dt.itemsize) if cai.get("strides") is None else tuple(int(x) for x in cai["strides"])
        s = explicit if explicit is not None else (int(cai["stream"]) if cai.get("stream") is not None else 0)
        return DeviceArray(data, int(cai["data"][0] or 0), code, shape, strides, dt.itemsize, -1, s)
    if is_tensorflow_gpu(data):
        import tensorflow as tf  # only reached for TensorFlow tensors

        info = read_dlpack_capsule(tf.experimental.dlpack.to_dlpack(data))
        return DeviceArray(info, info.ptr, info.code, info.shape, info.strides, info.itemsize, info.device_id,
                           explicit if explicit is not None else 0)
    if hasattr(data, "__dlpack__") and hasattr(data, "__dlpack_device__"):
        dev_type, dev_id = (int(x) for x in data.__dlpack_device__())
        if dev_type not in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            raise ValueError(f"histgpu: DLPack device type {dev_type} is not a CUDA device")
        s = explicit if explicit is not None else 0
        # DLPack: the producer makes the data ready on the consumer's stream (0 is not allowed
        # there; 1 is the legacy default stream, the one handle 0 stands for here).
        info = read_dlpack_capsule(data.__dlpack__(stream=s if s else 1))
        return DeviceArray((data, info), info.ptr, info.code, info.shape, info.strides, info.itemsize, dev_id, s)
    raise TypeError(f"histgpu: {type(data).__name__} is not a GPU array it can read")
