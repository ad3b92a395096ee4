"""histgpu.numpy_histogram == numpy.histogram, counts and edges, bit for bit (counted by the
engines through csrc/core/numpy_bins: never by numpy). Also the core's float formats against
numpy's and ml_dtypes' casts, and the CUDA engine (emulated on the host) on the same plans.
"""
from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import histgpu
from histgpu import _cpu, _numpy_bins

rng = np.random.default_rng(21)
FLOATS = [np.float64, np.float32, np.float16, ml_dtypes.bfloat16]
INTS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def both(a, *args, **kwargs):
    """(numpy's result or exception, histgpu's result or exception)."""
    out = []
    for fn in (np.histogram, histgpu.numpy_histogram):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            try:
                out.append(fn(a, *args, **kwargs))
            except (ValueError, TypeError) as e:
                out.append(e)
    return out


def assert_same(a, *args, **kwargs):
    want, got = both(a, *args, **kwargs)
    if isinstance(want, Exception):
        assert isinstance(got, type(want)), (want, got)
        return
    assert not isinstance(got, Exception), (want, got)
    assert got[0].dtype == want[0].dtype and np.array_equal(got[0], want[0]), (args, kwargs, got[0], want[0])
    assert got[1].dtype == want[1].dtype and np.array_equal(got[1], want[1], equal_nan=True), (args, kwargs)


def sample(dtype, n):
    dt = np.dtype(dtype)
    if dt.kind == "f" or dtype is ml_dtypes.bfloat16:
        return (rng.standard_normal(n) * 10 ** rng.uniform(-3, 3)).astype(dtype)
    info = np.iinfo(dt)
    return rng.integers(max(info.min, -5000), min(info.max, 5000), n, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS + INTS + [np.bool_], ids=lambda d: np.dtype(d).name)
def test_int_bins_ranges_edges_and_estimators(dtype):
    for trial in range(12):
        a = sample(dtype, int(rng.integers(0, 4000))) if dtype is not np.bool_ else rng.integers(0, 2, 300).astype(bool)
        k = int(rng.integers(1, 400))
        assert_same(a, k)
        assert_same(a, bins=k, range=(float(rng.uniform(-50, 0)), float(rng.uniform(0.1, 50))))
        assert_same(a, bins=k, range=(np.float32(-1.7), 2))
        assert_same(a, bins=k, range=(-3, 7))
        assert_same(a, bins=np.sort(rng.uniform(-50, 50, int(rng.integers(2, 60)))))
        assert_same(a, bins=np.array([-7, 0, 0, 3, 100]))
        assert_same(a, bins=np.sort(rng.uniform(-5, 5, 9)).astype(np.float32))
        assert_same(a, bins=_numpy_bins.ESTIMATORS[trial % len(_numpy_bins.ESTIMATORS)])


def test_edge_correction_cases():
    """Values on and one ulp around every edge: where numpy's guess is corrected."""
    for dtype, lo, hi, k in [(np.float64, 0.1, 0.7, 3), (np.float32, -1.3, 2.9, 7), (np.float64, 1e-300, 3e-300, 11),
                             (np.float32, 1e6, 1e6 + 1, 10), (np.float16, -2.0, 3.0, 41), (np.float64, -1e300, 1e300, 1000)]:
        _, edges = np.histogram(np.array([lo, hi], dtype), k)
        e = edges.astype(dtype)
        around = np.concatenate([e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf)]).astype(dtype)
        assert_same(around, k)
        assert_same(around, k, range=(lo, hi))
        assert_same(around, bins=e)


def test_non_finite_values():
    x = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 3.0])
    assert_same(x, 5)  # numpy: the autodetected range is not finite
    assert_same(x[[0, 1, 3]], 5)
    assert_same(x, 5, range=(0, 4))
    assert_same(x, bins=[0.0, 1.0, 4.0])
    assert_same(x, bins=[-np.inf, 0.0, 1.0, np.inf])
    assert_same(x, bins=[0.0, 1.0, np.inf, np.inf])
    assert_same(x, bins=[-np.inf, -np.inf, 5.0])
    with pytest.raises(ValueError, match="autodetected range of \\[nan, nan\\] is not finite"):
        histgpu.numpy_histogram(x, 5)


def test_special_inputs():
    assert_same(np.zeros(0), 4)
    assert_same(np.zeros(0, np.float32), 4)
    assert_same(np.full(7, 3.0), 4)
    assert_same(np.full(7, np.float16(3000)), 4)  # x +- 0.5 rounds back to x in float16
    assert_same(np.array([2**60, 2**60 + 1, -(2**61)], np.int64), 4)  # exact extremes past 2**53
    assert_same(np.array([0, 2**64 - 1], np.uint64), 3)
    assert_same(np.linspace(0, 1, 1001)[::-3], 13)  # a negative stride
    assert_same(np.broadcast_to(np.arange(5.0), (4, 5)), 3)  # stride 0: each value 4 times
    assert_same(np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1), 5)
    assert_same([1, 2, 3, 4], 2)
    assert_same(np.arange(1e5), 1_000_000)
    assert_same(np.array([1.0, 2.0]), bins=[1.0])
    assert_same(np.array([1.0, 2.0]), bins=np.array([]))


def test_bad_arguments_raise_like_numpy():
    x = np.arange(10.0)
    for args, kw in [((0,), {}), ((-1,), {}), ((2.5,), {}), (([3, 1, 2],), {}), (([[1, 2]],), {}), (("nope",), {}),
                     ((5,), {"range": (3, 1)}), ((5,), {"range": (0, np.inf)}), ((100,), {"range": (1.0, 1.0 + 1e-15)})]:
        want, got = both(x, *args, **kw)
        assert isinstance(want, Exception) and isinstance(got, type(want)), (args, kw, want, got)
    with pytest.raises(ValueError, match="NaN"):
        histgpu.numpy_histogram(x, bins=[0.0, np.nan, 1.0])
    with pytest.warns(RuntimeWarning, match="uint8"):
        histgpu.numpy_histogram(np.array([True, False]), 2)


def test_torch_tensors_and_the_emulated_gpu_engine():
    t = torch.randn(300, 7)
    for bins in (10, [-1.0, 0.0, 2.0], "fd"):
        want = np.histogram(t.numpy(), bins)
        for device in (None, "cuda-emulated"):
            got = histgpu.numpy_histogram(t, bins, device=device)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (bins, device)
    got = histgpu.numpy_histogram(t, 50, range=(-1, 1), device="cuda-emulated")
    assert all(np.array_equal(g, w) for g, w in zip(got, np.histogram(t.numpy(), 50, range=(-1, 1))))


@settings(max_examples=150, deadline=None)
@given(
    a=hnp.arrays(st.sampled_from([np.float64, np.float32, np.float16]), st.integers(0, 300),
                 elements=st.floats(-1e4, 1e4, width=16)),
    k=st.integers(1, 200),
    lo=st.floats(-2e4, 2e4, allow_nan=False),
    width=st.floats(1e-3, 3e4, allow_nan=False),
    use_range=st.booleans(),
)
def test_hypothesis_equal_width(a, k, lo, width, use_range):
    assert_same(a, k, range=(lo, lo + width) if use_range else None)


@settings(max_examples=100, deadline=None)
@given(a=hnp.arrays(np.float64, st.integers(0, 200), elements=st.floats(-1e6, 1e6)),
       edges=st.lists(st.floats(-2e6, 2e6), min_size=2, max_size=40))
def test_hypothesis_explicit_edges(a, edges):
    assert_same(a, bins=np.sort(np.array(edges)))


FORMATS = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32, "float64": np.float64,
           "float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_core_rounding_is_the_cast(name):
    code = _numpy_bins._FORMATS[name]
    v = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-45, 45, 3000), [0.0, -0.0, 448, 464, 465, 480,
                        57344, 61439, 61440, 65504, 65519, 65520, 1e-8, 6e-8, 3e-5, np.inf, -np.inf]])
    with np.errstate(all="ignore"):
        want = v.astype(FORMATS[name]).astype(np.float64)
    got = np.array([_cpu.np_round(float(x), code) for x in v])
    assert np.array_equal(got, want, equal_nan=True)
    real = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[real]), np.signbit(want[real]))


def test_plans_are_numpys_rule_on_every_interval():
    """The threshold table's labels are numpy's bin at both ends of every interval."""
    for dtype, code in ((np.float32, 11), (np.float64, 12), (np.float16, 9)):
        a = sample(dtype, 2000)
        counts, edges = np.histogram(a, 37)
        # the same rule histgpu builds, checked value by value on the interval ends
        first, last = _numpy_bins.outer_edges(a.size, None, lambda: (a.min(), a.max()))  # noqa: B023
        rule, _ = _numpy_bins.uniform_bins(np.dtype(dtype), first, last, 37)
        t, labels = rule.plan(code, float(a.min()), float(a.max()))
        assert len(labels) == len(t) - 1 and np.all(np.diff(labels) != 0)
        inner = t[1:-1].astype(dtype)
        for i, start in enumerate(inner):
            below = np.nextafter(start, -np.inf, dtype=dtype)
            assert rule.bin(float(start)) == labels[i + 1] and rule.bin(float(below)) == labels[i]
        assert labels.max() == 36 and np.array_equal(histgpu.numpy_histogram(a, 37)[0], counts)
