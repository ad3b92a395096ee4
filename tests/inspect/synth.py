"""Synthetic training logs of known behaviour for the tests/inspect/test_*.py suites.

Each pattern is a function ``step -> {tag: values}`` over :data:`STEPS` steps, seeded,
so every writer (histgpu, tf.summary, the v1 op, tensorboardX) logs the same data:

* ``healthy``   weights drift a little (a random walk), gradients keep their scale;
* ``vanishing`` gradients shrink by half every step (1e-2 -> 2e-8);
* ``exploding`` gradients double every step and hold NaN/Inf in the last steps;
* ``frozen``    weights never change (a flat, uniform "Glorot" init);
* ``shifting``, ``narrowing``, ``widening``: weights whose mean / spread move.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable, Dict, Iterable

import numpy as np

STEPS = 16
N = 2000

Pattern = Callable[[int], Dict[str, np.ndarray]]


def _rng(name: str, step: int = 0) -> np.random.Generator:
    return np.random.default_rng([sum(map(ord, name)), step])


def healthy(step: int) -> Dict[str, np.ndarray]:
    w = _rng("healthy-w").normal(0, 0.1, N)
    for s in range(1, step + 1):
        w = w + _rng("healthy-dw", s).normal(0, 0.004, N)
    g = _rng("healthy-g", step).normal(0, 0.01 * (1 - 0.01 * step), N)
    return {"dense/kernel": w, "dense/kernel_grad": g}


def vanishing(step: int) -> Dict[str, np.ndarray]:
    g = _rng("vanishing-g", step).normal(0, 0.01 * 0.3**step, N)
    return {"dense/kernel_grad": g}


def exploding(step: int) -> Dict[str, np.ndarray]:
    g = _rng("exploding-g", step).normal(0, 0.01 * 2.0**step, N)
    if step >= STEPS - 3:
        g[:7] = np.nan
        g[7:9] = np.inf
    return {"dense/kernel_grad": g}


def frozen(step: int) -> Dict[str, np.ndarray]:
    limit = np.sqrt(6 / (100 + 20))
    return {"dense/kernel": _rng("frozen-w").uniform(-limit, limit, N)}


def shifting(step: int) -> Dict[str, np.ndarray]:
    return {"dense/kernel": _rng("shift", step).normal(0.05 * step, 0.1, N)}


def narrowing(step: int) -> Dict[str, np.ndarray]:
    return {"dense/kernel": _rng("narrow", step).normal(0, 0.2 / (1 + 0.3 * step), N)}


def widening(step: int) -> Dict[str, np.ndarray]:
    return {"dense/kernel": _rng("widen", step).normal(0, 0.05 * (1 + 0.3 * step), N)}


PATTERNS: Dict[str, Pattern] = {
    "healthy": healthy,
    "vanishing": vanishing,
    "exploding": exploding,
    "frozen": frozen,
    "shifting": shifting,
    "narrowing": narrowing,
    "widening": widening,
}


def write_histgpu(logdir: str, patterns: Iterable[str], bins="tensorflow") -> None:
    """One run per pattern, written by histgpu's TF-free SummaryWriter (v1 by default, v2 with int bins)."""
    layout = "torch" if isinstance(bins, str) else "v2"
    from histgpu.writer import SummaryWriter

    for name in patterns:
        with SummaryWriter(os.path.join(logdir, name)) as w, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NonFiniteWarning for the exploding run
            for step in range(STEPS):
                for tag, values in PATTERNS[name](step).items():
                    w.add_histogram(tag, values, step, bins=bins, layout=layout)


def write_tf_v2(logdir: str, patterns: Iterable[str]) -> None:
    """Plain ``tf.summary.histogram`` (NaN data gives TensorBoard's all-NaN histogram)."""
    import tensorflow as tf

    for name in patterns:
        writer = tf.summary.create_file_writer(os.path.join(logdir, name))
        with writer.as_default():
            for step in range(STEPS):
                for tag, values in PATTERNS[name](step).items():
                    tf.summary.histogram(tag, values, step=step)
        writer.close()


def write_histgpu_summary(logdir: str, patterns: Iterable[str], v1: bool = False) -> None:
    """:mod:`histgpu.summary` (the drop-in for ``tf.summary.histogram``) through a TF writer."""
    import tensorflow as tf

    import histgpu.summary as hsummary

    write = hsummary.histogram_v1 if v1 else hsummary.histogram
    for name in patterns:
        writer = tf.summary.create_file_writer(os.path.join(logdir, name))
        with writer.as_default(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NonFiniteWarning for the exploding run
            for step in range(STEPS):
                for tag, values in PATTERNS[name](step).items():
                    write(tag, values, step=step)
        writer.close()


def write_tf_v1(logdir: str, patterns: Iterable[str]) -> None:
    """TensorFlow's v1 op (``gen_logging_ops.histogram_summary``) written with ``write_raw_pb``.

    The v1 op refuses NaN/Inf, so non-finite values are dropped before it (as a v1 user would
    have to); the exploding gradient still grows past every threshold.
    """
    import tensorflow as tf
    from tensorflow.python.ops import gen_logging_ops

    for name in patterns:
        writer = tf.summary.create_file_writer(os.path.join(logdir, name))
        with writer.as_default():
            for step in range(STEPS):
                for tag, values in PATTERNS[name](step).items():
                    finite = values[np.isfinite(values)]
                    raw = gen_logging_ops.histogram_summary(tag, tf.constant(finite))
                    tf.summary.experimental.write_raw_pb(raw, step=step)
        writer.close()


def write_tensorboardx(logdir: str, patterns: Iterable[str]) -> None:
    """tensorboardX's ``add_histogram`` (PyTorch's format: a v1 HistogramProto)."""
    from tensorboardX import SummaryWriter

    for name in patterns:
        w = SummaryWriter(os.path.join(logdir, name))
        for step in range(STEPS):
            for tag, values in PATTERNS[name](step).items():
                w.add_histogram(tag, values[np.isfinite(values)], step, bins="tensorflow")
        w.close()
