"""Inputs histgpu must refuse, with the right exception type and a message that says what was wrong."""

import datetime

import numpy as np
import pytest

from .oracles import assert_same_buckets, tb_buckets


def _both(histgpu):
    return (histgpu.histogram, histgpu.compute)


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, words",
    [
        (np.array([1 + 2j, 3.0]), ["complex"]),
        (np.array([1 + 2j], dtype=np.complex64), ["complex"]),
        ([1 + 1j, 2], ["complex"]),
        (1j, ["complex"]),
        (np.array(["a", "b"]), ["str", "<u", "unicode", "string"]),
        (np.array([b"ab", b"cd"]), ["bytes", "|s", "string"]),
        (["1.0", "2.0"], ["str", "<u", "unicode", "string"]),
        ("123", ["str", "<u", "unicode", "string"]),
        (np.array([1.0, None, 2.0], dtype=object), ["object"]),
        (np.array([1.0, 2.0], dtype=object), ["object"]),
        ([1.0, None], ["object", "none"]),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), ["datetime", "<m8", "<m", "m8"]),
        (np.array([1, 2], dtype="timedelta64[s]"), ["timedelta", "m8"]),
        ([datetime.datetime(2020, 1, 1)], ["object", "datetime"]),
        (np.zeros(3, dtype=[("a", np.float32), ("b", np.int32)]), ["structured", "void", "record", "('a'"]),
        (object(), ["object"]),
        ({"a": 1}, ["object", "dict"]),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, list) else "list",
)
def test_unsupported_dtypes_raise_type_error(histgpu, data, words):
    for fn in _both(histgpu):
        with pytest.raises(TypeError) as exc:
            fn(data, 10)
        msg = str(exc.value).lower()
        assert any(w in msg for w in words), f"{fn.__name__}: message {msg!r} does not name the dtype"


@pytest.mark.parametrize(
    "data",
    [
        [[1.0, 2.0], [3.0]],
        [1.0, [2.0, 3.0]],
        [[[1], [2]], [[3], [4, 5]]],
    ],
    ids=["ragged2", "scalar_and_list", "ragged3"],
)
def test_ragged_lists_raise_value_error(histgpu, data):
    for fn in _both(histgpu):
        with pytest.raises(ValueError) as exc:
            fn(data, 10)
        assert str(exc.value), "empty message"


# ------------------------------------------------------------------------------------------------
# buckets
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [True, False, 30.0, 2.5, np.float64(30), "30", b"30", [30], (30,), 1 + 0j,
                                 np.array([30])])
def test_bucket_type_errors(histgpu, bad):
    for fn in _both(histgpu):
        with pytest.raises(TypeError, match="bucket"):
            fn(np.array([1.0, 2.0]), bad)


@pytest.mark.parametrize("bad", [2**24 + 1, 2**31, 2**40, 10**30, np.int64(2**33), np.uint64(2**63)])
def test_bucket_too_large(histgpu, bad):
    for fn in _both(histgpu):
        with pytest.raises(ValueError, match="bucket"):
            fn(np.array([1.0, 2.0]), bad)


@pytest.mark.parametrize("k", [np.int8(3), np.int16(7), np.int32(30), np.int64(30), np.uint8(5), np.uint32(100),
                               np.uint64(7)])
def test_numpy_integer_bucket_counts_accepted(histgpu, rng, k):
    x = rng.standard_normal(500)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, int(k)), f"buckets={k!r}")
    assert_same_buckets(histgpu.compute(x, k).to_tensor(), tb_buckets(x, int(k)), f"compute buckets={k!r}")


def test_negative_numpy_integer_bucket_count(histgpu):
    assert histgpu.histogram(np.array([1.0, 2.0]), np.int64(-5)).shape == (0, 3)
    assert histgpu.histogram(np.array([1.0, 2.0]), -(10**30)).shape == (0, 3)


def test_buckets_keyword(histgpu, rng):
    x = rng.standard_normal(100)
    assert_same_buckets(histgpu.histogram(x, buckets=7), tb_buckets(x, 7), "buckets=7 keyword")


def test_options_are_keyword_only(histgpu):
    with pytest.raises(TypeError):
        histgpu.histogram(np.array([1.0, 2.0]), 3, "omit")
    with pytest.raises(TypeError):
        histgpu.compute(np.array([1.0, 2.0]), 3, "omit")


# ------------------------------------------------------------------------------------------------
# num_threads and HISTGPU_NUM_THREADS
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, -8, 1.5, 2.0, "2"])
def test_bad_num_threads(histgpu, bad):
    for fn in _both(histgpu):
        with pytest.raises(ValueError, match="num_threads"):
            fn(np.array([1.0, 2.0]), 3, num_threads=bad)


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "1.5"])
def test_bad_env_num_threads(histgpu, monkeypatch, bad):
    monkeypatch.setenv("HISTGPU_NUM_THREADS", bad)
    for fn in _both(histgpu):
        with pytest.raises(ValueError, match="HISTGPU_NUM_THREADS"):
            fn(np.array([1.0, 2.0]), 3)


def test_explicit_num_threads_wins_over_bad_env(histgpu, monkeypatch, rng):
    monkeypatch.setenv("HISTGPU_NUM_THREADS", "abc")
    x = rng.standard_normal(100)
    assert_same_buckets(histgpu.histogram(x, 5, num_threads=2), tb_buckets(x, 5), "explicit num_threads")


# ------------------------------------------------------------------------------------------------
# device
# ------------------------------------------------------------------------------------------------
def test_bad_device(histgpu):
    with pytest.raises((ValueError, TypeError)) as exc:
        histgpu.histogram(np.array([1.0, 2.0]), 3, device="tpu")
    assert "device" in str(exc.value).lower() or "tpu" in str(exc.value).lower()


def test_cpu_device_accepted(histgpu, rng):
    x = rng.standard_normal(100)
    assert_same_buckets(histgpu.histogram(x, 5, device="cpu"), tb_buckets(x, 5), "device='cpu'")
    assert_same_buckets(histgpu.histogram(x, 5, device=None), tb_buckets(x, 5), "device=None")
