"""GPU inputs for the CUDA engine: zero-copy views of device arrays, streams, batches, async.

Device arrays are read where they are, through whichever description they offer:

* PyTorch CUDA tensors: ``data_ptr()``/``stride()``/``dtype`` (bfloat16 and float8 included);
* CuPy arrays and anything else with ``__cuda_array_interface__`` (v2/v3, its ``stream`` key);
* JAX (and any other) GPU arrays through DLPack: ``__dlpack__(stream=...)``;
* TensorFlow GPU tensors through ``tf.experimental.dlpack.to_dlpack``.

The layout is normalised exactly like host arrays (``histgpu._input.layout``). Work is
enqueued on the producer's stream (PyTorch's / CuPy's current stream, the interface's
``stream``, or the one passed as ``stream=``); only the O(k) result is copied back, into pinned
memory, and only that copy is waited for.
"""
from __future__ import annotations

import ctypes
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _device, _input, _options
from ._result import Histogram

# ------------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------------

# torch dtype name -> histgpu dtype code (csrc/core/types.hpp)
_TORCH_CODES = {
    "bool": 0, "int8": 1, "uint8": 2, "int16": 3, "uint16": 4, "int32": 5, "uint32": 6,
    "int64": 7, "uint64": 8, "float16": 9, "bfloat16": 10, "float32": 11, "float64": 12,
    "float8_e4m3fn": 13, "float8_e5m2": 14,
}
_TORCH_ITEMSIZE = {0: 1, 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 8, 8: 8, 9: 2, 10: 2, 11: 4, 12: 8, 13: 1, 14: 1}

# DLPack (code, bits) -> histgpu dtype code. Codes: kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4,
# kDLBool 6, kDLFloat8_e4m3fn 10, kDLFloat8_e5m2 12 (dlpack.h >= 1.1).
_DLPACK_CODES = {
    (0, 8): 1, (0, 16): 3, (0, 32): 5, (0, 64): 7,
    (1, 8): 2, (1, 16): 4, (1, 32): 6, (1, 64): 8,
    (2, 16): 9, (2, 32): 11, (2, 64): 12,
    (4, 16): 10,
    (6, 8): 0, (1, 1): 0,
    (10, 8): 13, (12, 8): 14,
}

_TORCH_BY_DTYPE: dict = {}


def _torch_code(dtype) -> int:
    code = _TORCH_BY_DTYPE.get(dtype)
    if code is None:
        name = str(dtype).replace("torch.", "")
        code = _TORCH_CODES.get(name)
        if code is None:
            raise _unsupported(f"torch.{name}")
        _TORCH_BY_DTYPE[dtype] = code
    return code


_KDL_CPU, _KDL_CUDA, _KDL_CUDA_HOST, _KDL_CUDA_MANAGED = 1, 2, 3, 13


def _unsupported(what: str) -> TypeError:
    return TypeError(
        f"histgpu cannot histogram device data of dtype {what}; supported dtypes: "
        f"{', '.join(_input.SUPPORTED_DTYPES)}"
    )


# ------------------------------------------------------------------------------------------------
# DLPack capsules, read with ctypes (no compiled code needed, so it is testable anywhere)
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


@dataclass
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


def read_dlpack_capsule(capsule: Any) -> DLPackInfo:
    """Decode a legacy ``"dltensor"`` capsule (``__dlpack__()`` without ``max_version``)."""
    addr = _capsule_get_pointer(capsule, b"dltensor")
    managed = _DLManagedTensor.from_address(addr)
    t = managed.dl_tensor
    dt = t.dtype
    if dt.lanes != 1:
        raise _unsupported(f"DLPack vector type (code {dt.code}, {dt.bits} bits x {dt.lanes})")
    code = _DLPACK_CODES.get((int(dt.code), int(dt.bits)))
    if code is None:
        raise _unsupported(f"DLPack (code {dt.code}, {dt.bits} bits)")
    itemsize = max(1, int(dt.bits) // 8)
    ndim = int(t.ndim)
    shape = tuple(int(t.shape[i]) for i in range(ndim))
    if t.strides:
        strides = tuple(int(t.strides[i]) * itemsize for i in range(ndim))
    else:  # compact row-major
        strides_list = []
        acc = itemsize
        for extent in reversed(shape):
            strides_list.append(acc)
            acc *= max(extent, 1)
        strides = tuple(reversed(strides_list))
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
    if isinstance(stream, (int, np.integer)):
        return int(stream)
    for attr in ("cuda_stream", "ptr", "handle"):
        h = getattr(stream, attr, None)
        if isinstance(h, (int, np.integer)):
            return int(h)
    raise TypeError(f"histgpu: cannot use {type(stream).__name__} as a CUDA stream")


def _is_torch(data: Any) -> bool:
    return type(data).__module__.startswith("torch") and hasattr(data, "data_ptr")


def _is_cupy(data: Any) -> bool:
    return type(data).__module__.startswith("cupy") and hasattr(data, "data") and hasattr(data, "device")


def _is_tensorflow_gpu(data: Any) -> bool:
    if not type(data).__module__.startswith("tensorflow"):
        return False
    return "GPU" in str(getattr(data, "device", "") or "").upper()


def producer_stream(data: Any) -> Optional[int]:
    """The stream on which the producer of `data` orders its work, where it says (else None)."""
    if _is_torch(data):
        import torch

        return int(torch.cuda.current_stream(data.device).cuda_stream)
    if _is_cupy(data):
        import cupy

        with data.device:
            return int(cupy.cuda.get_current_stream().ptr)
    cai = getattr(data, "__cuda_array_interface__", None)
    if isinstance(cai, dict) and cai.get("stream") is not None:
        return int(cai["stream"])
    return None


# ------------------------------------------------------------------------------------------------
# device views
# ------------------------------------------------------------------------------------------------


@dataclass
class DeviceView:
    """A normalised strided view of device memory; `owner` keeps the memory alive."""

    owner: Any
    ptr: int
    code: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]
    multiplicity: int
    size: int
    device: int
    stream: int

    def engine_args(self) -> tuple:
        return (self.ptr, self.code, list(self.shape), list(self.strides), self.multiplicity)


def _finish(owner, ptr, code, shape, strides, itemsize, device, stream) -> DeviceView:
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if size == 0:
        return DeviceView(owner, 0, code, (0,), (itemsize,), 1, 0, device, stream)
    ptr, shape, strides, mult = _input.layout(ptr, shape, strides, itemsize)
    return DeviceView(owner, ptr, code, shape, strides, mult, size, device, stream)


def device_view(data: Any, stream: Any = None) -> DeviceView:
    """Describe GPU-resident `data` for the CUDA engine without copying it.

    `stream` overrides the producer's stream (int handle, torch/cupy stream object)."""
    explicit = None if stream is None else stream_handle(stream)
    if _is_torch(data):
        if not data.is_cuda:
            raise ValueError("histgpu: this PyTorch tensor is not on a CUDA device")
        code = _torch_code(data.dtype)
        itemsize = _TORCH_ITEMSIZE[code]
        s = explicit if explicit is not None else producer_stream(data)
        dev = int(data.device.index or 0)
        if data.is_contiguous():  # the common case, without the general layout walk
            n = int(data.numel())
            if n == 0:
                return DeviceView(data, 0, code, (0,), (itemsize,), 1, 0, dev, s)
            return DeviceView(data, int(data.data_ptr()), code, (n,), (itemsize,), 1, n, dev, s)
        strides = tuple(int(x) * itemsize for x in data.stride())
        return _finish(data, int(data.data_ptr()), code, tuple(data.shape), strides, itemsize, dev, s)
    if _is_cupy(data):
        code = _input.dtype_code(np.dtype(data.dtype))
        s = explicit if explicit is not None else producer_stream(data)
        return _finish(data, int(data.data.ptr), code, tuple(data.shape), tuple(data.strides),
                       data.dtype.itemsize, int(data.device.id), s)
    cai = getattr(data, "__cuda_array_interface__", None)
    if isinstance(cai, dict):
        dt = np.dtype(cai["typestr"])
        code = _input.dtype_code(dt)
        shape = tuple(int(x) for x in cai["shape"])
        if cai.get("strides") is None:
            strides_list, acc = [], dt.itemsize
            for extent in reversed(shape):
                strides_list.append(acc)
                acc *= max(extent, 1)
            strides = tuple(reversed(strides_list))
        else:
            strides = tuple(int(x) for x in cai["strides"])
        ptr = int(cai["data"][0] or 0)
        s = explicit if explicit is not None else (int(cai["stream"]) if cai.get("stream") is not None else 0)
        return _finish(data, ptr, code, shape, strides, dt.itemsize, -1, s)
    if _is_tensorflow_gpu(data):
        import tensorflow as tf  # only reached for TensorFlow tensors

        info = read_dlpack_capsule(tf.experimental.dlpack.to_dlpack(data))
        s = explicit if explicit is not None else 0
        return _finish(info, info.ptr, info.code, info.shape, info.strides, info.itemsize, info.device_id, s)
    if hasattr(data, "__dlpack__") and hasattr(data, "__dlpack_device__"):
        dev_type, dev_id = (int(x) for x in data.__dlpack_device__())
        if dev_type not in (_KDL_CUDA, _KDL_CUDA_MANAGED):
            raise ValueError(f"histgpu: DLPack device type {dev_type} is not a CUDA device")
        s = explicit if explicit is not None else 0
        # DLPack: the producer makes the data ready on the consumer's stream (0 is not allowed
        # there; 1 is the legacy default stream, the one handle 0 stands for here).
        capsule = data.__dlpack__(stream=s if s not in (0, None) else 1)
        info = read_dlpack_capsule(capsule)
        return _finish((data, info), info.ptr, info.code, info.shape, info.strides, info.itemsize, dev_id, s)
    raise TypeError(f"histgpu: {type(data).__name__} is not a GPU array it can read")


def _upload(data: Any) -> Any:
    """A GPU copy of host data, for device='cuda' with host input (needs CuPy or PyTorch)."""
    arr = _input.as_host_array(data)
    try:
        import cupy

        return cupy.asarray(np.ascontiguousarray(arr))
    except ImportError:
        pass
    try:
        import torch

        if arr.dtype.kind in "biuf" and arr.dtype.name in _TORCH_CODES:
            return torch.from_numpy(np.ascontiguousarray(arr)).cuda()
    except ImportError:
        pass
    raise RuntimeError(
        "histgpu: device='cuda' was asked for with data in host memory; pass a GPU array "
        "(CuPy, PyTorch, JAX) or install CuPy or PyTorch so that histgpu can upload it"
    )


def _cuda():
    mod = _device.cuda_module()
    if mod is None:  # _device.choose() has said so already; kept for direct callers
        raise RuntimeError("histgpu was built without its CUDA engine")
    return mod


def as_device_view(data: Any, stream: Any = None) -> DeviceView:
    if not _device.is_device_array(data):
        data = _upload(data)
    return device_view(data, stream)


def call(name: str, data: Any, *extra: Any, stream: Any = None):
    """Runs engine function `name` of histgpu._cuda on `data` (the cuda branch of the API)."""
    view = as_device_view(data, stream)
    fn = getattr(_cuda(), name)
    return fn(*view.engine_args(), *extra, view.stream or 0, view.device)


# ------------------------------------------------------------------------------------------------
# many tensors, and asynchronous results
# ------------------------------------------------------------------------------------------------


def _histogram_from(tup) -> Histogram:
    edges, counts, stats = tup
    vmin, vmax, num, nan, posinf, neginf = stats
    return Histogram(edges, counts, float(vmin), float(vmax), int(num), int(nan), int(posinf), int(neginf))


class Pending:
    """v2 histograms being computed on a GPU stream; nothing here blocks until `result()`.

    The kernels and one copy of the O(k) results into pinned host memory were enqueued on the
    producer's stream; `done()` polls the completion event. The inputs are kept alive until
    the results are in."""

    def __init__(self, handle: Any, owners: list, single: bool):
        self._handle = handle
        self._owners = owners
        self._single = single
        self._results: Optional[List[Histogram]] = None

    def done(self) -> bool:
        if self._results is not None:
            return True
        return bool(self._handle.done())

    def wait(self) -> None:
        if self._results is None:
            self._handle.wait()

    def results(self) -> List[Histogram]:
        """Every histogram of the batch (waits for the copy to land)."""
        if self._results is None:
            self._results = [_histogram_from(t) for t in self._handle.results()]
            self._owners = []
            self._handle = None
        return self._results

    def result(self) -> Union[Histogram, List[Histogram]]:
        """The histogram (or, for enqueue_histograms, the list of them)."""
        r = self.results()
        return r[0] if self._single else r


def _bucket_list(buckets: Union[None, int, Sequence[Optional[int]]], n: int) -> List[int]:
    if buckets is None or isinstance(buckets, (int, np.integer)) and not isinstance(buckets, bool):
        return [_options.bucket_count(buckets)] * n
    ks = [_options.bucket_count(b) for b in buckets]
    if len(ks) != n:
        raise ValueError(f"histgpu: {len(ks)} bucket counts for {n} tensors")
    return ks


def enqueue_histograms(tensors: Sequence[Any], buckets=None, *, stream: Any = None) -> Pending:
    """Enqueue v2 histograms of GPU tensors (all on one device) and return at once.

    A fixed number of kernel launches, whatever the number of tensors; the work is ordered on
    the producer's stream (or `stream`). ``Pending.result()`` gives the list of
    :class:`histgpu.Histogram`, bit-identical to :func:`histgpu.compute` of each tensor."""
    tensors = list(tensors)
    ks = _bucket_list(buckets, len(tensors))
    return _enqueue(_batch_views(tensors, stream), ks, single=False)


def enqueue_histogram(data: Any, buckets: Optional[int] = None, *, stream: Any = None) -> Pending:
    """Enqueue the v2 histogram of one GPU tensor; ``Pending.result()`` is a Histogram."""
    view = as_device_view(data, stream)
    return _enqueue([view], [_options.bucket_count(buckets)], single=True)


def _batch_views(tensors: Sequence[Any], stream: Any = None) -> List[DeviceView]:
    """Device views of many tensors; the producer's stream is looked up once per framework
    and device (PyTorch's and CuPy's current stream is the same for all their tensors)."""
    views = []
    known: dict = {}
    for t in tensors:
        s = stream
        if s is None and (_is_torch(t) or _is_cupy(t)):
            key = (type(t).__module__.split(".")[0], str(t.device))
            if key not in known:
                known[key] = producer_stream(t)
            s = known[key]
        views.append(as_device_view(t, s))
    return views


def _enqueue(views: List[DeviceView], ks: List[int], single: bool) -> Pending:
    devices = {v.device for v in views if v.size and v.device >= 0}
    if len(devices) > 1:
        raise ValueError("histgpu: one batch must live on one GPU; enqueue one batch per device")
    device = devices.pop() if devices else -1
    stream = next((v.stream for v in views if v.stream), 0)
    handle = _cuda().enqueue_v2_many([v.engine_args() for v in views], ks, stream, device)
    return Pending(handle, [v.owner for v in views], single)


def histogram_many(
    tensors: Sequence[Any],
    buckets=None,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
    stream: Any = None,
) -> List[Histogram]:
    """:func:`histgpu.compute` of many tensors at once (a model's weights, say).

    GPU tensors are counted per device in one batch: a fixed number of kernel launches and one
    wait, whatever their number. Host tensors go to the CPU engine. `buckets` is one count for
    all or one per tensor. Results are in input order and equal to ``compute`` of each tensor.
    """
    from ._api import compute  # late: _api imports this module

    tensors = list(tensors)
    ks = _bucket_list(buckets, len(tensors))
    mode = _options.nonfinite_mode(nonfinite)
    out: List[Optional[Histogram]] = [None] * len(tensors)
    by_device: dict = {}
    on_gpu = [i for i, t in enumerate(tensors) if _device.choose(t, device) == "cuda"]
    for i, view in zip(on_gpu, _batch_views([tensors[i] for i in on_gpu], stream)):
        by_device.setdefault(view.device, []).append((i, view))
    # GPU batches first, so that the CPU engine's share overlaps with them
    pending = [(items, _enqueue([v for _, v in items], [ks[i] for i, _ in items], single=False))
               for items in by_device.values()]
    gpu = set(on_gpu)
    for i, t in enumerate(tensors):
        if i not in gpu:
            with warnings.catch_warnings():  # one warning for the whole batch, below
                warnings.simplefilter("ignore", _options.NonFiniteWarning)
                out[i] = compute(t, ks[i], nonfinite="omit", num_threads=num_threads, device="cpu")
    for items, pend in pending:
        for (i, _), h in zip(items, pend.results()):
            out[i] = h
    nan = sum(h.nan for h in out)
    posinf = sum(h.posinf for h in out)
    neginf = sum(h.neginf for h in out)
    _options.apply_nonfinite_policy(mode, nan, posinf, neginf, stacklevel=2)
    return out  # type: ignore[return-value]


__all__ = [
    "DeviceView",
    "Pending",
    "call",
    "device_view",
    "enqueue_histogram",
    "enqueue_histograms",
    "histogram_many",
    "producer_stream",
    "read_dlpack_capsule",
    "stream_handle",
]
