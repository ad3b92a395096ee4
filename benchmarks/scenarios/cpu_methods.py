"""The methods of the CPU scenario: histgpu and every peer, as ``setup(x, k, tmp) -> run``.

``setup`` runs outside the timed region (imports, converting the numpy data to the library's
own tensor, opening a summary writer: what a training loop has before it logs); ``run()`` is
the timed call and returns something :func:`counted` can sum. Peers that need a range are given
none: they compute min and max inside the timed call, as TensorBoard's bucketing must.
Imports happen inside ``setup``, so the parent process (which only reads this registry) never
loads TensorFlow or PyTorch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import numpy as np

Run = Callable[[], Any]
Setup = Callable[[np.ndarray, Optional[int], str], Run]


@dataclass(frozen=True)
class CpuMethod:
    """One line of the CPU comparison.

    Attributes
    ----------
    name, label : str
        Identifier (``--methods``) and the text shown in tables.
    module : str
        Top-level module that must be importable for the method to run.
    setup : Setup
        ``setup(x, k, tmpdir) -> run``; ``k`` is None for v1 methods.
    baseline : str or None
        The histgpu method this one is compared with (None: it is histgpu).
    v1 : bool
        Uses TensorFlow's fixed v1 bucket limits; the bucket count does not apply.
    tb_memory : bool
        Builds TensorBoard's ``one_hot`` matrix: needs about ``n * (8k + 36)`` bytes.
    pooled : bool
        Runs TensorFlow ops, whose CPU allocator keeps freed memory in a pool: a case reusing
        memory an earlier case pooled shows no extra peak. Such methods get one process per
        dtype, with the cases in increasing order of the memory they need.
    """

    name: str
    label: str
    module: str
    setup: Setup
    baseline: Optional[str]
    v1: bool = False
    tb_memory: bool = False
    pooled: bool = False

    def memory_needed(self, n: int, k: Optional[int]) -> Optional[int]:
        """Bytes the method must allocate for ``n`` values, when that is known to be large."""
        if self.tb_memory and k is not None:
            return n * (8 * k + 36)  # one_hot (n*k float64) + float64 copy, offsets, int32 indices
        return None


def counted(result: Any) -> Optional[float]:
    """Total count in a method's result (to check that every value was counted), or None."""
    if result is None or isinstance(result, (bytes, bool)):
        return None
    if hasattr(result, "counts"):  # histgpu.V1Histogram
        return float(np.asarray(result.counts, dtype=np.float64).sum())
    if hasattr(result, "values") and callable(result.values):  # boost_histogram
        return float(result.values().sum())
    if isinstance(result, tuple):  # numpy / torch.histogram: (counts, edges)
        result = result[0]
    if hasattr(result, "numpy"):  # torch / tf tensors
        result = result.float().numpy() if hasattr(result, "float") else result.numpy()
    arr = np.asarray(result, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 3:  # v2 [k, 3] bucket tensor
        return float(arr[:, 2].sum())
    return float(arr.sum())


def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------ histgpu


def _histgpu(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import histgpu

    return lambda: histgpu.histogram(x, k)


def _histgpu_1t(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import histgpu

    return lambda: histgpu.histogram(x, k, num_threads=1)


def _histgpu_v1(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import histgpu

    return lambda: histgpu.compute_v1(x)


def _with_isa(isa: str, setup: Setup) -> Setup:
    """`setup` with the CPU kernels of `isa` (HISTGPU_CPU_ISA, read by histgpu on every call)."""

    def wrapped(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
        os.environ["HISTGPU_CPU_ISA"] = isa
        return setup(x, k, tmp)

    return wrapped


def _histgpu_read(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    """One read of the data by every default thread (the ceiling of the histgpu rows)."""
    import histgpu
    from histgpu import _cpu, _input

    engine = _cpu.CpuEngine(threads=histgpu.build_info()["default_num_threads"])
    data = np.ascontiguousarray(x)
    code = _input.plain_array_code(data)
    return lambda: (engine.read_array(data, code), None)[1]


def _summary_call(x: np.ndarray, k: Optional[int], tmp: str, histogram: Callable[..., Any]) -> Run:
    """A full summary call on a TF tensor: compute, build the event, write it, flush."""
    import tensorflow as tf

    with tf.device("/CPU:0"):
        t = tf.constant(x)
    writer = tf.summary.create_file_writer(tmp)
    step = [0]

    def run() -> None:
        step[0] += 1
        with writer.as_default():
            histogram("values", t, step=step[0], buckets=k)
        writer.flush()

    return run


def _histgpu_summary(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import histgpu.summary

    return _summary_call(x, k, tmp, histgpu.summary.histogram)


# ----------------------------------------------------------------------- TensorFlow / TensorBoard


def _tf_summary(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import tensorflow as tf

    return _summary_call(x, k, tmp, tf.summary.histogram)


def _tb_buckets(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import tensorflow as tf
    from tensorboard.plugins.histogram import summary_v2

    with tf.device("/CPU:0"):
        t = tf.constant(x)

    def run() -> Any:
        with tf.device("/CPU:0"):
            return summary_v2._buckets(t, k).numpy()

    return run


def _tf_v1_op(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import tensorflow as tf
    from tensorflow.python.ops import gen_logging_ops

    with tf.device("/CPU:0"):
        t = tf.constant(x)

    def run() -> Any:
        with tf.device("/CPU:0"):
            gen_logging_ops.histogram_summary(tag="values", values=t).numpy()
        return None

    return run


# ------------------------------------------------------------------------------- other peers


def _numpy(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    return lambda: np.histogram(x, bins=k)


def _fast_histogram(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    from fast_histogram import histogram1d

    def run() -> Any:
        return histogram1d(x, bins=k, range=(float(x.min()), float(x.max())))

    return run


def _boost_histogram(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import boost_histogram as bh

    threads = _threads()

    def run() -> Any:
        h = bh.Histogram(bh.axis.Regular(k, float(x.min()), float(x.max())))
        h.fill(x, threads=threads)
        return h

    return run


def _torch_tensor(x: np.ndarray) -> Any:
    """The numpy data as a CPU torch tensor without a copy (bfloat16 reinterpreted bitwise)."""
    import torch

    if x.dtype.name == "bfloat16":
        return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(x)


def _torch_histc(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import torch

    t = _torch_tensor(x)
    return lambda: torch.histc(t, bins=k)


def _torch_histogram(x: np.ndarray, k: Optional[int], tmp: str) -> Run:
    import torch

    t = _torch_tensor(x)
    return lambda: torch.histogram(t, bins=k)


METHODS: Dict[str, CpuMethod] = {
    m.name: m
    for m in (
        CpuMethod("histgpu", "histgpu.histogram", "histgpu", _histgpu, None),
        CpuMethod("histgpu_1t", "histgpu.histogram, 1 thread", "histgpu", _histgpu_1t, None),
        CpuMethod("histgpu_v1", "histgpu.compute_v1 (v1 + exact sums)", "histgpu", _histgpu_v1, None, v1=True),
        CpuMethod("histgpu_avx2", "histgpu.histogram, AVX2 build", "histgpu", _with_isa("avx2", _histgpu), None),
        CpuMethod("histgpu_v1_avx2", "histgpu.compute_v1, AVX2 build", "histgpu", _with_isa("avx2", _histgpu_v1), None,
                  v1=True),
        CpuMethod("histgpu_read", "one read of the data (the read ceiling)", "histgpu", _histgpu_read, None, v1=True),
        CpuMethod("histgpu_summary", "histgpu.summary.histogram + event write", "tensorflow", _histgpu_summary, None,
                  pooled=True),
        CpuMethod("tf_summary", "tf.summary.histogram + event write", "tensorflow", _tf_summary, "histgpu_summary",
                  tb_memory=True, pooled=True),
        CpuMethod("tb_buckets", "TensorBoard summary_v2._buckets", "tensorflow", _tb_buckets, "histgpu",
                  tb_memory=True, pooled=True),
        CpuMethod("tf_v1_op", "TF v1 op histogram_summary", "tensorflow", _tf_v1_op, "histgpu_v1", v1=True,
                  pooled=True),
        CpuMethod("numpy", "numpy.histogram", "numpy", _numpy, "histgpu"),
        CpuMethod("fast_histogram", "fast_histogram.histogram1d + min/max", "fast_histogram", _fast_histogram,
                  "histgpu"),
        CpuMethod("boost_histogram", "boost_histogram threaded fill + min/max", "boost_histogram",
                  _boost_histogram, "histgpu"),
        CpuMethod("torch_histc", "torch.histc", "torch", _torch_histc, "histgpu"),
        CpuMethod("torch_histogram", "torch.histogram", "torch", _torch_histogram, "histgpu"),
    )
}
