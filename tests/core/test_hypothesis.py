"""Property tests (hypothesis): histgpu equals TensorBoard's ``_buckets`` on generated arrays,
including edge values, and on the finite part when non-finite values are mixed in.
(Where a subnormal is involved the reference is the IEEE formula: see oracles.py, "Subnormals".)"""

import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .oracles import (
    assert_bucket_properties,
    assert_same_buckets,
    check_histogram,
    expected_buckets,
    finite_part,
    ieee_width_is_zero,
    tb_buckets,
    tb_edges,
    ulp_neighbours,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

bucket_counts = st.one_of(st.integers(-3, 40), st.sampled_from([64, 100, 255, 256, 1000]))
float_dtypes = st.sampled_from([np.float16, np.float32, np.float64])


def _range_finite(x):
    x64 = np.asarray(x, np.float64)
    x64 = x64[np.isfinite(x64)]
    return x64.size == 0 or np.isfinite(x64.max() - x64.min())


@st.composite
def float_arrays(draw, allow_nonfinite=False):
    dt = np.dtype(draw(float_dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40))
    elements = st.floats(
        allow_nan=allow_nonfinite, allow_infinity=allow_nonfinite, allow_subnormal=True, width=8 * dt.itemsize
    )
    return draw(hnp.arrays(dt, shape, elements=elements))


@SETTINGS
@given(x=float_arrays(), k=bucket_counts)
def test_float_arrays_match_tensorboard(histgpu, x, k):
    assume(_range_finite(x))
    check_histogram(histgpu, x, k, f"k={k} x={x!r}")


@st.composite
def edge_arrays(draw):
    """A range [lo, hi], a bucket count, and values on/next to the edges (and the ends)."""
    dt = np.dtype(draw(st.sampled_from([np.float32, np.float64])))
    width = 8 * dt.itemsize
    lo = draw(st.floats(min_value=-(2.0**100), max_value=2.0**100, width=width))
    span = draw(st.floats(min_value=2.0**-100, max_value=2.0**100, width=width))
    hi = float(np.asarray(lo + span, np.float64).astype(dt))
    assume(np.isfinite(hi) and hi > lo)
    k = draw(st.integers(1, 64))
    edges = tb_edges(lo, hi, k)
    vals = ulp_neighbours(edges, dt, steps=draw(st.integers(0, 3)))
    v64 = vals.astype(np.float64)
    vals = vals[(v64 >= lo) & (v64 <= hi)]
    pick = draw(st.lists(st.integers(0, max(len(vals) - 1, 0)), max_size=60))
    chosen = vals[pick] if len(vals) else vals
    x = np.concatenate([np.array([lo, hi], dtype=dt), chosen])
    perm = draw(st.permutations(range(len(x))))
    return x[list(perm)], k


@SETTINGS
@given(data=edge_arrays())
def test_edge_values_match_tensorboard(histgpu, data):
    x, k = data
    check_histogram(histgpu, x, k, f"k={k} x={x!r}")


@SETTINGS
@given(
    x=hnp.arrays(
        st.sampled_from([np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64]),
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=50),
    ),
    k=bucket_counts,
)
def test_int_arrays_match_tensorboard(histgpu, x, k):
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"k={k} x={x!r}")


@SETTINGS
@given(x=float_arrays(allow_nonfinite=True), k=st.integers(0, 40))
def test_nonfinite_mix_matches_tensorboard_on_finite_part(histgpu, x, k):
    assume(_range_finite(x))
    fin = finite_part(x)
    x64 = np.asarray(x, np.float64).reshape(-1)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        h = histgpu.compute(x, k)
    if ieee_width_is_zero(fin, k):
        assert_bucket_properties(h.to_tensor(), fin, f"k={k} x={x!r}")
    else:
        assert_same_buckets(h.to_tensor(), expected_buckets(fin, k), f"k={k} x={x!r}")
    counts = (int(np.isnan(x64).sum()), int((x64 == np.inf).sum()), int((x64 == -np.inf).sum()))
    assert (h.nan, h.posinf, h.neginf) == counts
    assert h.num == fin.size
    warned = any(issubclass(w.category, histgpu.NonFiniteWarning) for w in rec)
    assert warned == (sum(counts) > 0)


@SETTINGS
@given(x=float_arrays(), k=st.integers(1, 40), data=st.data())
def test_views_match_tensorboard(histgpu, x, k, data):
    """Random slicing with steps (negative too) and transposes."""
    assume(x.ndim >= 1 and _range_finite(x))
    index = tuple(
        slice(
            data.draw(st.none() | st.integers(-n, n)),
            data.draw(st.none() | st.integers(-n, n)),
            data.draw(st.sampled_from([None, 1, 2, 3, -1, -2])),
        )
        for n in x.shape
    )
    v = x[index]
    v = np.transpose(v, data.draw(st.permutations(range(v.ndim))))
    got = histgpu.histogram(v, k)
    c = np.ascontiguousarray(v)
    if ieee_width_is_zero(c, k):
        assert_bucket_properties(got, c, f"view {index}")
    else:
        assert_same_buckets(got, expected_buckets(c, k), f"view {index}")
