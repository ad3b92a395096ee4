"""The public entry points: histogram(), compute(), compute_v1(), build_info()."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _cpu, _device, _input, _options
from ._result import Histogram, V1Histogram

__version__ = "0.1.0"


def _engine_call(name: str, data: Any, device: Optional[str], threads: int, *extra: Any):
    """Runs engine function `name` on the engine that holds `data`."""
    where = _device.choose(data, device)
    if where == "cuda":
        from . import _cuda_backend  # GPU inputs: zero-copy device views, producer's stream

        return _cuda_backend.call(name, data, *extra)
    view = _input.normalise(data)
    fn = getattr(_cpu, name)
    return fn(*view.engine_args(), *extra, threads, _device.cpu_isa())


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
    device : {"cpu", "cuda"}, optional
        Engine override; by default data on a GPU is counted on that GPU.

    Returns
    -------
    Histogram
        ``edges``, ``counts``, ``min``, ``max``, ``num``, ``nan``, ``posinf``, ``neginf``.
    """
    k = _options.bucket_count(buckets)
    mode = _options.nonfinite_mode(nonfinite)
    threads = _options.num_threads(num_threads)
    edges, counts, stats = _engine_call("histogram_v2", data, device, threads, k)
    vmin, vmax, num, nan, posinf, neginf = stats
    _options.apply_nonfinite_policy(mode, nan, posinf, neginf)
    return Histogram(edges, counts, float(vmin), float(vmax), int(num), int(nan), int(posinf), int(neginf))


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
    parameters.
    """
    return compute(
        data, buckets, nonfinite=nonfinite, num_threads=num_threads, device=device
    ).to_tensor()


def compute_v1(
    data: Any,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> V1Histogram:
    """TensorFlow's v1 histogram (``tf.compat.v1.summary.histogram``) content, in one read.

    Counts over TensorFlow's default bucket limits, ``min``, ``max``, ``num``, and ``sum`` /
    ``sum_squares`` that are the exact sums rounded once (so they never depend on threads or
    devices). See :func:`compute` for the parameters.
    """
    mode = _options.nonfinite_mode(nonfinite)
    threads = _options.num_threads(num_threads)
    counts, stats, total, total_sq = _engine_call("histogram_v1", data, device, threads)
    vmin, vmax, num, nan, posinf, neginf = stats
    _options.apply_nonfinite_policy(mode, nan, posinf, neginf)
    return V1Histogram(
        v1_limits(), counts, float(vmin), float(vmax), int(num), float(total), float(total_sq),
        int(nan), int(posinf), int(neginf),
    )


_V1_LIMITS = None


def v1_limits() -> np.ndarray:
    """TensorFlow's default v1 bucket limits (a read-only float64 array)."""
    global _V1_LIMITS
    if _V1_LIMITS is None:
        limits = _cpu.v1_limits()
        limits.setflags(write=False)
        _V1_LIMITS = limits
    return _V1_LIMITS


def build_info() -> dict:
    """What this build of histgpu can do: version, engines, instruction sets, threads."""
    cuda = _device.cuda_module()
    cuda_info = {"compiled": cuda is not None, "device_available": False}
    if cuda is not None:
        cuda_info.update(cuda.info())
    backends = ["cpu"] + (["cuda"] if cuda is not None else [])
    return {
        "version": __version__,
        "backends": backends,
        "cpu": {
            "isa": _cpu.active_isa(_device.cpu_isa()),
            "supported_isas": list(_cpu.supported_isas()),
        },
        "cuda": cuda_info,
        "default_num_threads": _options.default_num_threads(),
        "max_buckets": _options.MAX_BUCKETS,
    }
