"""Inputs that crashed or misled histgpu (issue 16): TensorFlow tensors of dtypes histgpu does not
read (exporting a string tensor aborted the process inside TensorFlow), TensorFlow float8
tensors, and byte-swapped views that were copied in full."""

import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

import histgpu


def test_tensorflow_string_tensors_raise_type_error_in_a_process_that_survives():
    """Run where an abort would show: a child process, which must end normally."""
    code = textwrap.dedent("""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import tensorflow as tf
        import histgpu, histgpu.summary
        for make in (lambda: tf.constant(["a", "b"]), lambda: tf.Variable(["x"]),
                     lambda: tf.constant([1, 2], dtype=tf.qint8), lambda: tf.constant([1, 2], dtype=tf.quint8)):
            t = make()
            for fn in (lambda: histgpu.histogram(t), lambda: histgpu.compute_v1(t)):
                try:
                    fn()
                    print("NO ERROR", t.dtype.name)
                except TypeError as e:
                    assert "cannot histogram" in str(e) and t.dtype.name in str(e), e
                    print("TypeError", t.dtype.name)
        w = tf.summary.create_file_writer(os.environ["LOGDIR"])
        with w.as_default():
            try:
                histgpu.summary.histogram("s", tf.constant(["a"]), step=0)
                print("NO ERROR summary")
            except TypeError:
                print("TypeError summary")
    """)
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, LOGDIR=d))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")
    assert lines.count("TypeError string") == 4 and lines.count("TypeError qint8") == 2, r.stdout
    assert "NO ERROR" not in r.stdout and "TypeError summary" in lines


@pytest.mark.parametrize("name", ["float8_e4m3fn", "float8_e5m2", "bfloat16", "float16"])
def test_tensorflow_small_float_tensors_are_read(tf, name):
    values = np.array([1.0, -2.0, 0.5, 448.0 if name == "float8_e4m3fn" else 57344.0, 0.0, -0.0, 3.25])
    arr = values.astype(getattr(ml_dtypes, name) if hasattr(ml_dtypes, name) and name != "float16" else name)
    t = tf.constant(arr)
    assert t.dtype.name == name
    for k in (1, 3, 30):
        assert np.array_equal(histgpu.histogram(t, k), histgpu.histogram(arr, k))
    a, b = histgpu.compute_v1(t), histgpu.compute_v1(arr)
    assert np.array_equal(a.counts, b.counts) and (a.sum, a.sum_squares) == (b.sum, b.sum_squares)


def test_byte_swapped_broadcast_is_read_without_a_full_copy():
    """The issue's 16-byte input standing for 2^32 values: it raised MemoryError (a 32 GiB copy)."""
    x = np.broadcast_to(np.array([1.0, 2.0], ">f8"), (2**31, 2))
    h = histgpu.compute(x, 3)
    assert h.num == 2**32 and h.counts.tolist() == [2**31, 0, 2**31] and (h.min, h.max) == (1.0, 2.0)
    v1 = histgpu.compute_v1(x)
    assert v1.num == 2**32 and v1.sum == 3.0 * 2**31


@pytest.mark.parametrize("dt", [">f4", ">f8", ">i2", ">u8", ">f2", ">i4"])
def test_byte_swapped_views_equal_native(rng, dt):
    base = (rng.standard_normal(3 * 4 * 50) * 100).astype(dt).reshape(3, 4, 50)
    views = [base, base[:, ::-1, 3:40:3], base.transpose(2, 0, 1), np.broadcast_to(base[:1, :1], (7, 4, 50))]
    for v in views:
        native = v.astype(np.dtype(dt).newbyteorder("="))
        for k in (1, 30):
            assert np.array_equal(histgpu.histogram(v, k), histgpu.histogram(native, k))
        a, b = histgpu.compute_v1(v), histgpu.compute_v1(native)
        assert np.array_equal(a.counts, b.counts) and (a.sum, a.sum_squares, a.num) == (b.sum, b.sum_squares, b.num)
