"""Classifying user data, once: a zero-copy view of host memory or of GPU memory.

:func:`classify` is the only place that looks at what kind of object ``data`` is. Everything
downstream (device choice in histgpu._engine, the GPU batches, the writer) reads the view it
returns. Both kinds describe memory as (pointer, dtype code, shape, byte strides,
multiplicity): the order of elements never matters to a histogram, so dimensions are
reordered, flipped and merged freely, and a dimension of stride 0 repeats elements and becomes a
multiplicity instead of a loop.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _cpu, _dtypes
from . import _input_device as _dev


@dataclass(frozen=True)
class HostView:
    """Host memory an engine can read; `owner` keeps it alive while an engine reads it."""

    owner: Any
    ptr: int
    code: int
    shape: Tuple[int, ...]
    strides: Tuple[int, ...]  # bytes, positive, innermost last
    multiplicity: int
    size: int  # elements the view stands for, multiplicity included

    on_device = False

    def engine_view(self) -> "_cpu.View":
        """The compiled engines' description of this memory."""
        return _cpu.View(self.ptr, self.code, list(self.shape), list(self.strides), self.multiplicity)


@dataclass(frozen=True)
class DeviceView(HostView):
    """GPU memory: a HostView's fields plus where and on which stream it is produced."""

    device: int = -1  # -1: unknown (the CUDA engine asks the driver)
    stream: int = 0  # cudaStream_t the producer orders its work on (0: the legacy default)
    source: Any = None  # the user's object (for a host copy, where one is asked for)

    on_device = True


View = Union[HostView, DeviceView]


def layout(ptr: int, shape: Sequence[int], strides: Sequence[int], itemsize: int) -> Tuple[int, Tuple[int, ...], Tuple[int, ...], int]:
    """(ptr, shape, strides, multiplicity) of a non-empty strided array, normalised.

    Extent-1 dimensions are dropped, stride-0 dimensions become a multiplicity, negative
    strides are walked forwards from the lowest address, and dimensions are sorted by stride
    (innermost = smallest) and merged where they tile memory contiguously. Strides in bytes.
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


def _view(cls: type, owner: Any, ptr: int, code: int, shape: Sequence[int], strides: Sequence[int], itemsize: int,
          **extra: Any) -> View:
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if size == 0:
        return cls(owner, 0, code, (0,), (itemsize,), 1, 0, **extra)
    ptr, shp, st, mult = layout(ptr, shape, strides, itemsize)
    return cls(owner, ptr, code, shp, st, mult, size, **extra)


# ------------------------------------------------------------------------------------------------
# host data
# ------------------------------------------------------------------------------------------------


def _torch_host_array(tensor: Any) -> np.ndarray:
    """A CPU torch tensor as numpy, in place: gradients are ignored (a histogram only reads the
    values) and bfloat16/FP8, which numpy cannot name, are viewed through ml_dtypes."""
    import sys

    torch = sys.modules["torch"]
    t = tensor.detach()
    name = str(t.dtype).replace("torch.", "")
    info = _dtypes.BY_NAME.get(name)
    if info is not None and name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        same_width = {1: torch.uint8, 2: torch.int16}[info.itemsize]
        return t.view(same_width).numpy().view(_dtypes.numpy_dtype(name))
    return t.numpy()


def _tensorflow_host_array(tensor: Any) -> np.ndarray:
    """A TensorFlow tensor or variable in host memory, its dtype checked before TensorFlow is
    asked to export it (exporting a string tensor aborts the process inside TensorFlow).

    Read in place: an eager tensor's ``__array__`` is a view of its buffer. A variable's would
    be a copy (``.numpy()``), so a variable is read as the tensor its ``value()`` gives, which
    shares the variable's buffer (TensorFlow copies on a later write while it is shared).
    """
    dtype = getattr(tensor, "dtype", None)
    name = getattr(dtype, "name", None)
    if name is not None and name not in _dtypes.BY_NAME:
        raise _dtypes.unsupported(f"tf.{name}")
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(tensor, tf.Variable):
        tensor = tensor.value()
    return np.asarray(tensor.__array__()) if hasattr(tensor, "__array__") else np.asarray(tensor)


def _keras_tensorflow_variable(data: Any) -> Any:
    """The ``tf.Variable`` behind a Keras variable of the TensorFlow backend, else None."""
    if not _dev._module(data).startswith("keras"):
        return None
    value = getattr(data, "value", None)
    return value if _dev.is_tensorflow(value) else None


def host_array(data: Any) -> np.ndarray:
    """A numpy array over `data`, without copying where it already lives in host memory."""
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, (str, bytes)):
        raise TypeError(f"histgpu cannot histogram a {type(data).__name__}; pass numbers")
    if _dev.is_torch(data) and hasattr(data, "detach"):
        if getattr(data, "is_cuda", False):
            return _torch_host_array(data.detach().cpu())
        return _torch_host_array(data)
    if _dev.is_tensorflow(data):
        return _tensorflow_host_array(data)
    variable = _keras_tensorflow_variable(data)
    if variable is not None:  # its __array__ would copy through .numpy()
        return _tensorflow_host_array(variable)
    if _dev.is_cupy(data):
        return data.get()
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
        return np.asarray(data)
    except ValueError as exc:  # numpy's message for ragged nested sequences
        raise ValueError(
            f"histgpu needs rectangular numeric data; got a ragged or inhomogeneous sequence ({exc})"
        ) from None


def _native_distinct(arr: np.ndarray) -> np.ndarray:
    """Byte-swapped data in native byte order: a converted copy of its distinct elements only
    (a broadcast view of a few elements stays a few elements, whatever its shape), with the
    repetition kept as a zero stride."""
    repeated = [e > 1 and s == 0 for e, s in zip(arr.shape, arr.strides)]
    distinct = arr[tuple(slice(0, 1) if r else slice(None) for r in repeated)]
    native = distinct.astype(arr.dtype.newbyteorder("="))
    mult = int(np.prod([e for e, r in zip(arr.shape, repeated) if r], dtype=np.int64))
    return np.broadcast_to(native.reshape(-1), (mult, native.size)) if mult > 1 else native


def host_view(data: Any) -> HostView:
    """Validate host `data` and describe it as a zero-copy view with positive, merged strides."""
    arr = host_array(data)
    if arr.dtype.kind == "O":
        raise TypeError(
            "histgpu got an object array (mixed types, ragged lists or Python objects); "
            "pass a rectangular array of numbers"
        )
    code = _dtypes.numpy_code(arr.dtype)
    if not arr.dtype.isnative:
        arr = _native_distinct(arr)
    ptr = int(arr.__array_interface__["data"][0]) if arr.size else 0
    return _view(HostView, arr, ptr, code, arr.shape, arr.strides, arr.dtype.itemsize)  # type: ignore[return-value]


def device_view(data: Any, stream: Any = None) -> DeviceView:
    """Describe GPU-resident `data` without copying it (`stream` overrides the producer's)."""
    d = _dev.describe(data, stream)
    return _view(DeviceView, d.owner, d.ptr, d.code, d.shape, d.strides, d.itemsize,  # type: ignore[return-value]
                 device=d.device, stream=d.stream, source=data)


def plain_array_code(data: Any) -> Optional[int]:
    """The engine's dtype code when `data` is a plain numpy array (not a subclass) of a
    native-order dtype the engines read, else None.

    Such arrays skip :func:`classify`: histgpu._api hands them to the CPU engine as they are,
    and their layout is normalised in C++ exactly as :func:`layout` does it.
    """
    if type(data) is np.ndarray:
        return _dtypes.NUMPY_CODES.get(data.dtype)
    return None


def classify(data: Any, *, stream: Any = None) -> View:
    """The view of `data`: a :class:`DeviceView` for arrays in GPU memory, else a :class:`HostView`.

    A view passed in is returned as it is, so that callers may classify once and hand the
    view on. `stream` (for GPU data) overrides the producer's stream.
    """
    if isinstance(data, HostView):
        return data
    if _dev.is_device_array(data):
        return device_view(data, stream)
    return host_view(data)


def on_host(view: View) -> HostView:
    """`view` itself for host memory; for GPU memory, a host copy made by its framework."""
    if not view.on_device:
        return view  # type: ignore[return-value]
    return host_view(view.source)  # type: ignore[attr-defined]



def to_device(view: View) -> DeviceView:
    """A GPU copy of host data, for ``device="cuda"`` with host input (needs CuPy or PyTorch)."""
    if view.on_device:
        return view  # type: ignore[return-value]
    arr = np.ascontiguousarray(host_array(view.owner))
    try:
        import cupy

        return device_view(cupy.asarray(arr))
    except ImportError:
        pass
    try:
        import torch

        if arr.dtype.kind in "biuf" and arr.dtype.name in _dtypes.BY_NAME:
            return device_view(torch.from_numpy(arr).cuda())
    except ImportError:
        pass
    raise RuntimeError(
        "histgpu: device='cuda' was asked for with data in host memory; pass a GPU array "
        "(CuPy, PyTorch, JAX) or install CuPy or PyTorch so that histgpu can upload it"
    )
