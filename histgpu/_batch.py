"""Many host tensors at once, for the integrations (the writer, ``histgpu.summary``, Keras).

A model's parameters are hundreds or thousands of tensors, most of them far too small for the
CPU engine to split one over its threads (it splits a tensor only from 2**18 values per
thread). Counted one after another they keep one core busy. Here the tensors are shared out
over the cores instead: a few worker threads (and the caller) each take the largest tensor not
yet taken and count it with a one-thread engine, which releases the GIL while it reads. A
tensor too large to share the work fairly is counted first, by an engine using every thread.

The results are the engines' raw results (``V2Result``, ``V1Result``), in input order, with no
non-finite policy applied: the callers build their protos straight from them (histgpu.proto)
and apply the policy once per batch.

:data:`PROFILE`, when set to a dict, collects seconds per phase (``histgpu.writer``,
``histgpu.summary`` and ``histgpu.keras`` add their own): the training benchmark's profile.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _dtypes, _engine, _options
from . import _input as _in
from . import _input_device as _dev

__all__ = ["PROFILE", "phase", "host_views", "Results", "v2_results", "v1_results", "apply_policy"]

#: ``None`` (off), or a dict that phase names accumulate seconds in.
PROFILE: Optional[Dict[str, float]] = None

# Below this many values in all, the batch is counted on the caller's thread alone.
_PARALLEL_MIN_VALUES = 1 << 17

_pool: Optional[ThreadPoolExecutor] = None
_pool_key: Any = None
_pool_lock = threading.Lock()


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


def _workers(n: int) -> ThreadPoolExecutor:
    """A pool of `n` threads, made anew in a forked child (whose copy has no threads)."""
    global _pool, _pool_key
    key = (os.getpid(), n)
    with _pool_lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="histgpu-batch")
            _pool_key = key
        return _pool


def _eager_tensor_type() -> Any:
    """TensorFlow's eager tensor class where TensorFlow is imported already, else None."""
    return getattr(sys.modules.get("tensorflow.python.framework.ops"), "EagerTensor", None)


def _fast_view(arr: Any, code: int, size: int) -> _in.HostView:
    """:class:`histgpu._input.HostView` of a contiguous array: what ``classify`` gives, its
    frozen dataclass filled without ``__init__`` (which costs as much as counting 448 values)."""
    view = object.__new__(_in.HostView)
    view.__dict__.update(owner=arr, ptr=arr.__array_interface__["data"][0], code=code, shape=(size,),
                         strides=(arr.itemsize,), multiplicity=1, size=size)
    return view


def host_views(values: Sequence[Any]) -> List[_in.HostView]:
    """Every value as a zero-copy host view (GPU data, where it is asked for here, is copied by
    its framework); the views keep their memory alive.

    Each is the view :func:`histgpu._input.classify` gives; for the arrays a model's parameters
    are (contiguous, native byte order) it is made here directly, without
    :func:`histgpu._input.layout`'s general walk over the strides (same fields, a fifth of the
    time: that walk cost more than counting a small tensor). Eager TensorFlow tensors in host
    memory go straight to their buffer.
    """
    out: List[_in.HostView] = []
    codes = _dtypes.NUMPY_CODES
    eager = _eager_tensor_type()
    ndarray = np.ndarray
    for value in values:
        if type(value) is ndarray:
            arr = value
        elif eager is not None and type(value) is eager and "GPU" not in value.device.upper():
            arr = _in._tensorflow_host_array(value)  # in place; refuses what TF cannot export
        elif _dev.is_device_array(value):
            out.append(_in.on_host(_in.classify(value)))
            continue
        else:
            arr = _in.host_array(value)
        code = codes.get(arr.dtype) if type(arr) is np.ndarray else None  # None: byte-swapped, object, ...
        size = arr.size
        if code is not None and size and arr.flags.c_contiguous:
            out.append(_fast_view(arr, code, size))
        else:
            out.append(_in.host_view(arr))
    return out


def _run(views: Sequence[_in.HostView], count: Callable[[Any, Any], Any], threads: int) -> List[Any]:
    """``count(engine, view.engine_view())`` of every view, shared out over `threads` cores."""
    out: List[Any] = [None] * len(views)
    sizes = [v.size for v in views]
    total = sum(sizes)
    if threads <= 1 or len(views) <= 1 or total < _PARALLEL_MIN_VALUES:
        engine = _engine.engine_for("cpu", None, threads)  # type: ignore[arg-type]
        for i, v in enumerate(views):
            out[i] = count(engine, v.engine_view())
        return out
    order = sorted(range(len(views)), key=sizes.__getitem__, reverse=True)
    # Tensors bigger than a fair share of what is left: one at a time, on every thread.
    head = 0
    left = total
    if sizes[order[0]] * threads > left:
        engine = _engine.engine_for("cpu", None, threads)  # type: ignore[arg-type]
        while head < len(order) and sizes[order[head]] * threads > left:
            i = order[head]
            out[i] = count(engine, views[i].engine_view())
            left -= sizes[i]
            head += 1
    rest = order[head:]
    if not rest:
        return out
    queue: Iterator[int] = iter(rest)  # next() on a list iterator is atomic under the GIL

    def work() -> None:
        engine = _engine.engine_for("cpu", None, 1)  # type: ignore[arg-type]
        for i in queue:
            out[i] = count(engine, views[i].engine_view())

    helpers = min(threads, len(rest)) - 1
    futures = [_workers(threads - 1).submit(work) for _ in range(helpers)]
    error: Optional[BaseException] = None
    try:
        work()
    except BaseException as e:  # noqa: BLE001 - the helpers are waited for first
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: BLE001
            error = error or e
    if error is not None:
        raise error
    return out


class Results(list):
    """Raw engine results in input order; ``nonfinite``: the batch's (nan, posinf, neginf)."""

    nonfinite = (0, 0, 0)


def _counted(views: Sequence[_in.HostView], count: Callable[[Any, Any], Any], threads: int) -> Results:
    """:func:`_run`, the non-finite values added up by the workers as the results come in."""
    bad: List[Tuple[int, int, int]] = []

    def one(engine: Any, view: Any) -> Any:
        r = count(engine, view)
        s = r.stats
        if s.nan or s.posinf or s.neginf:
            bad.append((s.nan, s.posinf, s.neginf))  # list.append: atomic under the GIL
        return r

    out = Results(_run(views, one, threads))
    if bad:
        out.nonfinite = tuple(sum(b[i] for b in bad) for i in range(3))  # type: ignore[assignment]
    return out


def v2_results(views: Sequence[_in.HostView], k: int, threads: Optional[int] = None) -> Results:
    """TensorBoard's v2 histogram of every view (raw ``V2Result``s, no policy applied)."""
    with phase("compute"):
        return _counted(views, lambda e, v: e.v2(v, k), _options.num_threads(threads))


def v1_results(views: Sequence[_in.HostView], threads: Optional[int] = None) -> Results:
    """TensorFlow's v1 counts, range and exact sums of every view (raw ``V1Result``s)."""
    with phase("compute"):
        return _counted(views, lambda e, v: e.v1(v), _options.num_threads(threads))


def apply_policy(mode: str, results: Sequence[Any], stacklevel: int = 3) -> None:
    """The non-finite policy once for a whole batch (one warning, or ``ValueError``)."""
    if isinstance(results, Results):
        nan, posinf, neginf = results.nonfinite
    else:
        nan = posinf = neginf = 0
        for r in results:
            s = r.stats
            if s.nan or s.posinf or s.neginf:
                nan += s.nan
                posinf += s.posinf
                neginf += s.neginf
    if nan or posinf or neginf:
        _options.apply_nonfinite_policy(mode, nan, posinf, neginf, stacklevel=stacklevel + 1)
