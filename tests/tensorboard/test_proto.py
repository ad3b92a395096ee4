"""histgpu.proto.histogram_proto against TensorFlow's own HistogramSummary op (docs/semantics.md §1.3)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import histgpu

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp  # noqa: E402

from histgpu.proto import collapse_empty_buckets, histogram_proto  # noqa: E402

from . import tb_helpers as H  # noqa: E402

DBL_MAX = float(np.finfo(np.float64).max)


def check_against_tf(values: np.ndarray) -> None:
    """Every field of histgpu's proto equals TF's op (sums: the exact oracle)."""
    got = histogram_proto(values)
    want = H.tf_v1_histo(values)
    assert list(got.bucket_limit) == list(want.bucket_limit)
    assert list(got.bucket) == list(want.bucket)
    # == (not bit equality): for mixed +-0 TF keeps whichever zero came first.
    assert got.min == want.min and got.max == want.max
    assert got.num == want.num
    x = np.asarray(values).reshape(-1).astype(np.float64)
    assert H.same_float(got.sum, H.exact_sum(x))
    assert H.same_float(got.sum_squares, H.exact_sum_squares(x))


def test_collapse_rules_by_hand():
    limits = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    lim, cnt = collapse_empty_buckets(limits, np.array([0, 0, 3, 0, 1, 0]))
    assert lim.tolist() == [2.0, 3.0, 4.0, 5.0, 6.0] and cnt.tolist() == [0, 3, 0, 1, 0]
    lim, cnt = collapse_empty_buckets(limits, np.array([1, 2, 0, 0, 0, 7]))
    assert lim.tolist() == [1.0, 2.0, 5.0, 6.0] and cnt.tolist() == [1, 2, 0, 7]
    lim, cnt = collapse_empty_buckets(limits, np.zeros(6, int))
    assert lim.tolist() == [6.0] and cnt.tolist() == [0]
    lim, cnt = collapse_empty_buckets(np.array([]), np.array([], int))
    assert lim.tolist() == [DBL_MAX] and cnt.tolist() == [0]


@pytest.mark.parametrize(
    "values",
    [
        np.array([], np.float64),
        np.array([0.0]),
        np.array([-0.0]),
        np.array([1.0, 2.0, 2.5, 0.0, -3.0]),
        np.array([1e-300, -1e-300, 2.3e-308, -2.3e-308]),  # below the smallest limit, still normal
        np.array([1e25, -1e25, 1e300, -DBL_MAX]),  # beyond 1e20: last finite buckets
        np.linspace(-5, 5, 1001),
        np.full(100, 3.25),
    ],
    ids=["empty", "zero", "negzero", "small", "tiny", "huge", "linspace", "constant"],
)
def test_matches_tf_fixed(values):
    check_against_tf(values)


@pytest.mark.parametrize(
    "dtype",
    ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"],
)
def test_matches_tf_dtypes(dtype):
    rng = np.random.default_rng(1)
    if np.dtype(dtype).kind == "f":
        values = (rng.standard_normal(5000) * 100).astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=5000, dtype=dtype, endpoint=True)
    check_against_tf(values)


def test_matches_tf_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.random.default_rng(2).standard_normal(3000).astype(ml_dtypes.bfloat16)
    check_against_tf(values)


def test_values_on_and_around_every_limit():
    """Each default limit, and one ulp either side, lands where C++ upper_bound puts it."""
    limits = H.tf_default_limits()
    finite = limits[np.abs(limits) < DBL_MAX]
    values = np.concatenate([finite, np.nextafter(finite, -np.inf), np.nextafter(finite, np.inf)])
    values = values[(values == 0) | (np.abs(values) >= np.finfo(np.float64).tiny)]  # no subnormals
    check_against_tf(np.random.default_rng(3).permutation(values))


def test_int64_above_2_53_rounds_like_tf():
    values = np.array([2**53 + 1, 2**62 + 3, -(2**63), 2**63 - 1], dtype=np.int64)
    check_against_tf(values)


def test_big_random_normal():
    values = np.random.default_rng(4).standard_normal(200_000).astype(np.float32)
    got = histogram_proto(values)
    want = H.tf_v1_histo(values)
    assert list(got.bucket_limit) == list(want.bucket_limit)
    assert list(got.bucket) == list(want.bucket)
    assert (got.min, got.max, got.num) == (want.min, want.max, want.num)
    assert got.sum == math.fsum(values.astype(np.float64).tolist())


def test_nonfinite_left_out_and_warned():
    values = np.array([1.0, np.nan, np.inf, -np.inf, 2.0, np.nan])
    with pytest.warns(histgpu.NonFiniteWarning):
        got = histogram_proto(values)
    want = H.tf_v1_histo(np.array([1.0, 2.0]))
    assert list(got.bucket_limit) == list(want.bucket_limit)
    assert list(got.bucket) == list(want.bucket)
    assert (got.min, got.max, got.num, got.sum) == (1.0, 2.0, 2.0, 3.0)


def test_nonfinite_raise_like_tf():
    with pytest.raises(ValueError):
        histogram_proto(np.array([1.0, np.nan]), nonfinite="raise")


def test_sum_squares_overflow_is_inf():
    got = histogram_proto(np.array([1e200, -1e200]))
    assert got.sum == 0.0 and got.sum_squares == math.inf


def test_exact_sums_order_free():
    """Catastrophic cancellation: the exact sum is kept where naive summation loses it."""
    values = np.array([1e16, 1.0, -1e16, 1.0, 3.0e-8])
    got = histogram_proto(values)
    assert got.sum == math.fsum(values.tolist())
    assert got.sum == histogram_proto(values[::-1]).sum


def _limit_neighbourhood():
    limits = H.tf_default_limits()
    finite = limits[np.abs(limits) < DBL_MAX]
    return st.sampled_from(finite).flatmap(
        lambda v: st.sampled_from([float(v), float(np.nextafter(v, -np.inf)), float(np.nextafter(v, np.inf))])
    )


# Subnormals are left out of the TF comparisons: TF's op runs with denormals flushed to
# zero (DAZ), so it files them with 0 -- see test_subnormals_like_tf_daz.
_finite64 = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, max_value=1e308, min_value=-1e308, allow_subnormal=False),
    st.floats(min_value=-1e-3, max_value=1e-3, allow_subnormal=False),
    _limit_neighbourhood(),
    st.sampled_from([0.0, -0.0, 2.2250738585072014e-308, -2.2250738585072014e-308, 1e-12, -1e-12]),
)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 60), elements=_finite64))
def test_matches_tf_property_float64(values):
    check_against_tf(values)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 60), elements=st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)))
def test_matches_tf_property_float32(values):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finite data must not warn
        check_against_tf(values)


SUBNORMAL_CASES = (
    np.array([-5e-324, 1.0]),
    np.array([1e-310, -1e-310, 2.0]),
    np.array([1e-45, -1e-45], np.float32),
)


@pytest.mark.parametrize("values", SUBNORMAL_CASES, ids=["neg-f64", "pm-f64", "pm-f32"])
def test_subnormals_are_filed_by_their_true_value(values):
    """Documented difference (README): TF's op runs with denormals-are-zero, so it files a
    subnormal like 0 and its min/max then depend on the order of the data; histgpu files every
    value by its true value (np.searchsorted is TF's upper_bound without DAZ)."""
    got = histgpu.compute_v1(values)
    f = values.astype(np.float64)
    limits = histgpu.v1_limits()
    idx = np.minimum(np.searchsorted(limits, f, side="right"), limits.size - 1)
    assert np.array_equal(got.counts, np.bincount(idx, minlength=limits.size))
    assert (got.min, got.max) == (f.min(), f.max())


@pytest.mark.parametrize("values", SUBNORMAL_CASES[1:], ids=["pm-f64", "pm-f32"])
def test_tf_op_flushes_subnormals(values):
    """TF's op really does differ on these inputs (if TF stops flushing subnormals, this tells
    us the README's note can go)."""
    want = H.tf_v1_histo(values)
    proto = histogram_proto(values)
    assert (list(proto.bucket), proto.min, proto.max) != (list(want.bucket), want.min, want.max)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_values_spread_over_every_decade(dtype):
    """Dense coverage of the limits from 1e-12 to 1e20 (both signs) in the input's own precision."""
    top = {"float16": 6e4, "float32": 1e19, "float64": 1e19}[dtype]
    bottom = {"float16": 1e-4, "float32": 1e-11, "float64": 1e-11}[dtype]
    mags = np.geomspace(bottom, top, 20_000)
    values = np.concatenate([mags, -mags]).astype(dtype)
    check_against_tf(np.random.default_rng(5).permutation(values))
