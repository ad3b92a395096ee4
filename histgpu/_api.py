"""The public entry points: compute(), histogram(), compute_v1(), histogram_many(), build_info()."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Union

import numpy as np

from . import _cpu, _cuda_async, _dtypes, _engine, _options
from . import _input as _in
from ._result import Histogram, V1Histogram, histogram_from, histogram_of, v1_histogram_from
from ._version import __version__


def compute(
    data: Any,
    buckets: Optional[int] = None,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> Histogram:
    """Histogram of `data` exactly as TensorBoard's ``tf.summary.histogram`` buckets it.

    Parameters
    ----------
    data : array_like
        Numbers of any shape and memory layout: numpy arrays (read in place, whatever their
        strides), lists, scalars, TensorFlow/PyTorch/JAX tensors. Accepted dtypes: bool,
        signed/unsigned integers, float16, bfloat16, float32, float64, float8_e4m3fn,
        float8_e5m2.
    buckets : int, optional
        Number of buckets ``k`` (default 30, negative means 0, at most 2**24).
    nonfinite : {"omit", "raise"}
        NaN/±Inf values are left out of the range and buckets and counted; ``"omit"`` warns
        with :class:`histgpu.NonFiniteWarning`, ``"raise"`` raises ``ValueError``.
    num_threads : int, optional
        CPU threads (default: ``HISTGPU_NUM_THREADS`` or every usable core). Never changes
        the result.
    device : {"cpu", "cuda", "cuda-emulated"}, optional
        Engine override; by default data on a GPU is counted on that GPU and host data on the
        CPU. ``"cuda-emulated"`` runs the CUDA kernels on the host, block by block (slow: for
        checking GPU code without a GPU).

    Returns
    -------
    Histogram
        ``edges``, ``counts``, ``min``, ``max``, ``num``, ``nan``, ``posinf``, ``neginf``: the
        v2 histogram (see :meth:`Histogram.to_tensor` for TensorBoard's ``[k, 3]`` tensor).
    """
    k = _options.bucket_count(buckets)
    mode = _options.nonfinite_mode(nonfinite)
    code = _host_array_code(data, device)
    if code is not None:  # a plain numpy array: straight to the CPU engine
        h = histogram_of(_engine.cpu_engine(num_threads).v2_array(data, code, k))
    else:
        engine, view = _engine.place(data, device, _options.num_threads(num_threads))
        h = histogram_from(engine.v2(view.engine_view(), k))
    _options.apply_nonfinite_policy(mode, h.nan, h.posinf, h.neginf)
    return h


def _host_array_code(data: Any, device: Optional[str]) -> Optional[int]:
    """The dtype code of a plain numpy array bound for the CPU engine, else None (the general
    path: histgpu._input.classify and histgpu._engine.place)."""
    if device is not None and device != "cpu":
        return None
    return _in.plain_array_code(data)


def histogram(
    data: Any,
    buckets: Optional[int] = None,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> np.ndarray:
    """The ``[k, 3]`` float64 bucket tensor of ``tf.summary.histogram``, bit for bit.

    Equal (``np.array_equal``) to ``tensorboard.plugins.histogram.summary_v2._buckets`` for
    finite data; non-finite values are handled as in :func:`compute`, which takes the same
    parameters and returns the same histogram as a :class:`Histogram`.
    """
    code = _host_array_code(data, device)
    if code is None:
        return compute(data, buckets, nonfinite=nonfinite, num_threads=num_threads, device=device).to_tensor()
    # A plain numpy array: the tensor comes from the CPU engine directly (same bits as
    # compute(...).to_tensor()), the checks in compute's order.
    k = _options.bucket_count(buckets)
    mode = _options.nonfinite_mode(nonfinite)
    tensor, nan, posinf, neginf = _engine.cpu_engine(num_threads).v2_array(data, code, k, True)
    _options.apply_nonfinite_policy(mode, nan, posinf, neginf, stacklevel=2)
    return tensor


def compute_v1(
    data: Any,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> V1Histogram:
    """TensorFlow's v1 histogram (the ``HistogramProto`` of ``tf.compat.v1.summary.histogram``,
    PyTorch's and tensorboardX's ``add_histogram``), in one read.

    Counts over TensorFlow's default bucket limits, ``min``, ``max``, ``num``, and ``sum`` /
    ``sum_squares`` that are the exact sums rounded once (so they never depend on threads or
    devices). See :func:`compute` for the parameters; :func:`histgpu.histogram_proto` encodes
    the result as the proto.
    """
    mode = _options.nonfinite_mode(nonfinite)
    code = _host_array_code(data, device)
    if code is not None:  # a plain numpy array: straight to the CPU engine
        h = V1Histogram(_engine.v1_limits(), *_engine.cpu_engine(num_threads).v1_array(data, code))
    else:
        engine, view = _engine.place(data, device, _options.num_threads(num_threads))
        h = v1_histogram_from(engine.v1(view.engine_view()), _engine.v1_limits())
    _options.apply_nonfinite_policy(mode, h.nan, h.posinf, h.neginf)
    return h


def histogram_many(
    tensors: Sequence[Any],
    buckets: Union[None, int, Sequence[Optional[int]]] = None,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
    stream: Any = None,
) -> List[Histogram]:
    """:func:`compute` of many tensors at once (a model's weights, say).

    Each engine gets its share in one call: GPU tensors one batch per device (a fixed number of
    kernel launches and one wait, whatever their number), host tensors one call of the CPU
    engine. `buckets` is one count for all or one per tensor. Results are in input order and
    equal to ``compute`` of each tensor; a single :class:`histgpu.NonFiniteWarning` covers the
    whole batch.
    """
    ks = _options.bucket_counts(buckets, len(tensors))
    mode = _options.nonfinite_mode(nonfinite)
    _engine.check_device(device)
    threads = _options.num_threads(num_threads)
    # Plain numpy arrays bound for the CPU engine skip classification: the engine reads their
    # layout itself (histgpu._input.plain_array_code; inlined, as it runs once per tensor).
    codes: List[Optional[int]] = [None] * len(tensors)
    if device is None or device == "cpu":
        numpy_codes, ndarray = _dtypes.NUMPY_CODES, np.ndarray
        codes = [numpy_codes.get(t.dtype) if type(t) is ndarray else None for t in tensors]
    views: List[Optional[_in.View]] = [None if c is not None else _in.classify(t) for t, c in zip(tensors, codes)]
    wanted = [device or ("cuda" if v is not None and v.on_device else "cpu") for v in views]
    out: List[Optional[Histogram]] = [None] * len(views)
    # GPU batches first, so that the host engines' share overlaps with them
    pending = [
        (idx, _cuda_async.enqueue_views([_engine.place(views[i], "cuda", threads)[1] for i in idx], [ks[i] for i in idx],
                                        stream=stream))
        for idx in _cuda_async.by_device([i for i, w in enumerate(wanted) if w == "cuda"], views)  # type: ignore[arg-type]
    ]
    cpu_idx = [i for i, w in enumerate(wanted) if w == "cpu"]
    if cpu_idx:  # one call of the CPU engine: the GIL released once, its threads across tensors
        placed = [None if codes[i] is not None else _in.on_host(views[i]) for i in cpu_idx]  # type: ignore[arg-type]
        items = [tensors[i] if v is None else v.engine_view() for i, v in zip(cpu_idx, placed)]
        item_codes = [-1 if c is None else c for c in (codes[i] for i in cpu_idx)]
        results = _engine.cpu_engine(threads).v2_items(items, item_codes, [ks[i] for i in cpu_idx])
        for i, fields in zip(cpu_idx, results):
            out[i] = histogram_of(fields)
    emulated_idx = [i for i, w in enumerate(wanted) if w == "cuda-emulated"]
    if emulated_idx:
        emulated = [_in.on_host(views[i]) for i in emulated_idx]  # type: ignore[arg-type]
        engine = _engine.engine_for("cuda-emulated", emulated[0], threads)
        for i, r in zip(emulated_idx, engine.v2_many([v.engine_view() for v in emulated], [ks[i] for i in emulated_idx])):
            out[i] = histogram_from(r)
    for idx, pend in pending:
        for i, h in zip(idx, pend.results()):
            out[i] = h
    done: List[Histogram] = [h for h in out if h is not None]
    if any(h.nan or h.posinf or h.neginf for h in done):
        _options.apply_nonfinite_policy(
            mode, sum(h.nan for h in done), sum(h.posinf for h in done), sum(h.neginf for h in done), stacklevel=2
        )
    return done


def build_info() -> dict:
    """What this build of histgpu can do: version, engines, instruction sets, threads."""
    cuda = _engine.cuda_module()
    cuda_info = {"compiled": cuda is not None, "device_available": False}
    if cuda is not None:
        cuda_info.update(cuda.info())
    return {
        "version": __version__,
        "backends": ["cpu"] + (["cuda-emulated"] if hasattr(_cpu, "EmulatedCudaEngine") else [])
        + (["cuda"] if cuda is not None else []),
        "cpu": {
            "isa": _cpu.active_isa(_engine.cpu_isa()),
            "supported_isas": list(_cpu.supported_isas()),
        },
        "cuda": cuda_info,
        "default_num_threads": _options.default_num_threads(),
        "max_buckets": _options.MAX_BUCKETS,
    }


__all__ = ["__version__", "build_info", "compute", "compute_v1", "histogram", "histogram_many"]
