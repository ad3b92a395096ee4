"""Many host tensors at once, for the integrations (the writer, ``histgpu.summary``, Keras).

A model's parameters are hundreds or thousands of tensors, most of them far too small for the
CPU engine to split one over its threads (it splits a tensor only from 2**18 values per
thread). Counted one call after another they keep one core busy, and each call pays Python's
overhead. Here a batch is one C++ call (``CpuEngine.v1_many`` / ``v2_many``): the GIL is released
once, tensors of 2**20 values or more are split over every thread one after another, and the
rest are handed out whole, largest first, to the threads, each counting with a one-thread
engine (csrc/cpu/engine.cpp: across_tensors).

The results are the engines' raw results (``V2Result``, ``V1Result``), in input order, with no
non-finite policy applied: the callers build their protos straight from them (histgpu.proto,
core/summary_bytes.cpp) and apply the policy once per batch.

:data:`PROFILE`, when set to a dict, collects seconds per phase (``histgpu.writer``,
``histgpu.summary`` and ``histgpu.keras`` add their own): the training benchmark's profile.
"""
from __future__ import annotations

import functools
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _dtypes, _engine, _options
from . import _input as _in
from . import _input_device as _dev

__all__ = ["PROFILE", "phase", "host_views", "Results", "v2_results", "v1_results", "apply_policy"]

#: ``None`` (off), or a dict that phase names accumulate seconds in.
PROFILE: Optional[Dict[str, float]] = None

class phase:
    """``with phase("compute"): ...`` adds the block's seconds to ``PROFILE["compute"]`` when on."""

    __slots__ = ("name", "t0")

    def __init__(self, name: str):
        self.name = name
        self.t0 = 0.0

    def __enter__(self) -> "phase":
        if PROFILE is not None:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        prof = PROFILE
        if prof is not None and self.t0:
            prof[self.name] = prof.get(self.name, 0.0) + time.perf_counter() - self.t0


def _eager_tensor_type() -> Any:
    """TensorFlow's eager tensor class where TensorFlow is imported already, else None."""
    return getattr(sys.modules.get("tensorflow.python.framework.ops"), "EagerTensor", None)


def _fast_view(owner: Any, ptr: int, code: int, size: int, itemsize: int) -> _in.HostView:
    """:class:`histgpu._input.HostView` of contiguous memory: what ``classify`` gives, its
    frozen dataclass filled without ``__init__`` (which costs as much as counting 448 values)."""
    view = object.__new__(_in.HostView)
    view.__dict__.update(owner=owner, ptr=ptr, code=code, shape=(size,), strides=(itemsize,), multiplicity=1,
                         size=size)
    return view


@functools.lru_cache(maxsize=4)
def _torch_fast_path(torch: Any) -> Tuple[Tuple[type, ...], Dict[Any, Tuple[int, int]]]:
    """(the plain tensor types, torch dtype -> (engine code, item size)) of the `torch` module.

    Only ``torch.Tensor`` and ``Parameter`` themselves: subclasses (DTensor, wrappers) may
    keep their values elsewhere and go through :func:`histgpu._input.host_array`."""
    codes = {}
    for d in _dtypes.TABLE:
        t = getattr(torch, d.name, None)
        if isinstance(t, torch.dtype):
            codes[t] = (d.code, d.itemsize)
    return (torch.Tensor, torch.nn.Parameter), codes


@functools.lru_cache(maxsize=4)
def _tensorflow_dtypes(tf: Any) -> frozenset:
    """The TensorFlow dtypes histgpu reads (a dtype's ``.name`` costs more than the read)."""
    return frozenset(getattr(tf, d.name) for d in _dtypes.TABLE if isinstance(getattr(tf, d.name, None), tf.DType))


def _torch_view(value: Any, torch: Any) -> Optional[_in.HostView]:
    """The view of a contiguous, strided CPU torch tensor, read through its own pointer (no
    ``detach().numpy()``: the tensor keeps its storage alive); None for anything else."""
    types, codes = _torch_fast_path(torch)
    if type(value) not in types or not value.is_cpu or value.layout is not torch.strided:
        return None
    code = codes.get(value.dtype)
    size = value.numel()
    if code is None or not size or not value.is_contiguous() or value.is_neg():
        return None
    return _fast_view(value, value.data_ptr(), code[0], size, code[1])


def host_views(values: Sequence[Any]) -> List[_in.HostView]:
    """Every value as a zero-copy host view (GPU data, where it is asked for here, is copied by
    its framework); the views keep their memory alive.

    Each is the view :func:`histgpu._input.classify` gives; for the arrays a model's parameters
    are (contiguous, native byte order) it is made here directly, without
    :func:`histgpu._input.layout`'s general walk over the strides (same fields, a fifth of the
    time: that walk cost more than counting a small tensor). Eager TensorFlow tensors in host
    memory go straight to their buffer, contiguous CPU torch tensors to their data pointer.
    """
    out: List[_in.HostView] = []
    codes = _dtypes.NUMPY_CODES
    eager = _eager_tensor_type()
    torch = sys.modules.get("torch")
    ndarray = np.ndarray
    for value in values:
        if type(value) is ndarray:
            arr = value
        elif torch is not None and (view := _torch_view(value, torch)) is not None:
            out.append(view)
            continue
        elif eager is not None and type(value) is eager and "GPU" not in value.device.upper():
            if value.dtype in _tensorflow_dtypes(sys.modules["tensorflow"]):
                arr = value._numpy()  # what its __array__ gives: a view of its buffer
            else:
                arr = _in._tensorflow_host_array(value)  # refuses what TF cannot export
        elif _dev.is_device_array(value):
            out.append(_in.on_host(_in.classify(value)))
            continue
        else:
            arr = _in.host_array(value)
        code = codes.get(arr.dtype) if type(arr) is np.ndarray else None  # None: byte-swapped, object, ...
        size = arr.size
        if code is not None and size and arr.flags.c_contiguous:
            out.append(_fast_view(arr, arr.__array_interface__["data"][0], code, size, arr.itemsize))
        else:
            out.append(_in.host_view(arr))
    return out


class Results(list):
    """Raw engine results in input order; ``nonfinite``: the batch's (nan, posinf, neginf)."""

    nonfinite = (0, 0, 0)


def _with_totals(results: List[Any]) -> Results:
    """`results` as :class:`Results`, their non-finite values added up."""
    out = Results(results)
    nan = posinf = neginf = 0
    for r in out:
        s = r.stats
        if s.nan or s.posinf or s.neginf:
            nan += s.nan
            posinf += s.posinf
            neginf += s.neginf
    if nan or posinf or neginf:
        out.nonfinite = (nan, posinf, neginf)
    return out


def v2_results(views: Sequence[_in.HostView], k: int, threads: Optional[int] = None) -> Results:
    """TensorBoard's v2 histogram of every view (raw ``V2Result``s, no policy applied), in one
    C++ call: the GIL is released once and the tensors are shared out over the threads."""
    with phase("compute"):
        engine = _engine.cpu_engine(_options.num_threads(threads))
        return _with_totals(engine.v2_many([v.engine_view() for v in views], [k] * len(views)))


def v1_results(views: Sequence[_in.HostView], threads: Optional[int] = None) -> Results:
    """TensorFlow's v1 counts, range and exact sums of every view (raw ``V1Result``s), in one C++ call."""
    with phase("compute"):
        engine = _engine.cpu_engine(_options.num_threads(threads))
        return _with_totals(engine.v1_many([v.engine_view() for v in views]))


def apply_policy(mode: str, results: Sequence[Any], stacklevel: int = 3) -> None:
    """The non-finite policy once for a whole batch (one warning, or ``ValueError``)."""
    totals = results if isinstance(results, Results) else _with_totals(list(results))
    nan, posinf, neginf = totals.nonfinite
    if nan or posinf or neginf:
        _options.apply_nonfinite_policy(mode, nan, posinf, neginf, stacklevel=stacklevel + 1)
