"""Inputs from other frameworks (TensorFlow EagerTensor, ``__array__``, ``__dlpack__``) and build_info()."""

import numpy as np
import pytest

from .oracles import assert_same_buckets, tb_buckets


@pytest.mark.parametrize(
    "tf_dtype", ["float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "bool"]
)
@pytest.mark.parametrize("k", [1, 30])
def test_tensorflow_eager_tensor(histgpu, tf, tf_dtype, k):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((40, 25)) * 50
    t = tf.cast(tf.constant(base), getattr(tf, tf_dtype))
    from tensorboard.plugins.histogram import summary_v2

    expected = summary_v2._buckets(t, k).numpy()  # the oracle on the very same tensor
    assert_same_buckets(histgpu.histogram(t, k), expected, f"EagerTensor {tf_dtype} k={k}")
    assert_same_buckets(histgpu.compute(t, k).to_tensor(), expected, f"compute EagerTensor {tf_dtype} k={k}")


def test_tensorflow_transposed_and_variable(histgpu, tf):
    rng = np.random.default_rng(12)
    t = tf.transpose(tf.constant(rng.standard_normal((30, 70), dtype=np.float32)))
    v = tf.Variable(rng.standard_normal((10, 10)))
    assert_same_buckets(histgpu.histogram(t, 30), tb_buckets(t.numpy(), 30), "transposed EagerTensor")
    assert_same_buckets(histgpu.histogram(v, 7), tb_buckets(v.numpy(), 7), "tf.Variable")


def test_tensorflow_with_nonfinite(histgpu, tf):
    t = tf.constant([1.0, float("nan"), 2.0, float("inf"), 3.0], dtype=tf.float32)
    with pytest.warns(histgpu.NonFiniteWarning):
        h = histgpu.compute(t, 3)
    assert (h.nan, h.posinf, h.neginf) == (1, 1, 0)
    assert_same_buckets(h.to_tensor(), tb_buckets(np.array([1.0, 2.0, 3.0], np.float32), 3), "TF non-finite")


class ArrayOnly:
    """Exposes only ``__array__``."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


class DLPackOnly:
    """Exposes only the DLPack protocol (as a CPU tensor of another framework would)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


@pytest.mark.parametrize("wrapper", [ArrayOnly, DLPackOnly])
@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.standard_normal(5000, dtype=np.float32),
        lambda r: r.standard_normal((50, 40)),
        lambda r: r.standard_normal((50, 40)).T,
        lambda r: r.standard_normal(3000)[::-2],
        lambda r: r.integers(-100, 100, 1000, dtype=np.int16),
        lambda r: r.standard_normal(1000).astype(np.float16),
        lambda r: np.array(2.5),
    ],
    ids=["f32", "f64_2d", "f64_T", "f64_neg_stride", "int16", "f16", "0d"],
)
def test_protocol_objects(histgpu, wrapper, make):
    a = make(np.random.default_rng(13))
    obj = wrapper(a)
    assert not isinstance(obj, np.ndarray)
    expected = tb_buckets(a, 30)
    assert_same_buckets(histgpu.histogram(obj, 30), expected, f"{wrapper.__name__}")
    assert_same_buckets(histgpu.compute(obj, 30).to_tensor(), expected, f"compute {wrapper.__name__}")


def test_dlpack_bool(histgpu):
    a = np.array([True, False, True, True])
    assert_same_buckets(histgpu.histogram(DLPackOnly(a), 3), tb_buckets(a, 3), "DLPack bool")


def test_numpy_subclass_masked_array_without_masked_values(histgpu):
    a = np.ma.masked_array(np.arange(10.0), mask=[0] * 10)
    assert_same_buckets(histgpu.histogram(a, 4), tb_buckets(np.arange(10.0), 4), "masked array without mask")


# ------------------------------------------------------------------------------------------------
# build_info
# ------------------------------------------------------------------------------------------------
def test_build_info(histgpu):
    info = histgpu.build_info()
    assert isinstance(info, dict)
    assert isinstance(info["version"], str) and info["version"]
    assert "cpu" in info["backends"]
    assert isinstance(info["cpu"], dict) and isinstance(info["cpu"].get("isa"), str)
    cuda = info["cuda"]
    assert isinstance(cuda["compiled"], bool) and isinstance(cuda["device_available"], bool)
    if cuda["device_available"]:
        assert cuda["compiled"]
    assert isinstance(info["default_num_threads"], int) and info["default_num_threads"] >= 1


def test_version_matches_metadata(histgpu):
    from importlib.metadata import version

    assert histgpu.build_info()["version"] == version("histgpu")
