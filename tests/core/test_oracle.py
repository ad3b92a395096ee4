"""histgpu.histogram / histgpu.compute against TensorBoard's own bucketing (``summary_v2._buckets``).

Every expected value comes from the oracle (see oracles.tb_buckets); nothing is hand-written.
Sizes are chosen so that TensorBoard's one_hot (n * k * 8 bytes) stays small.
"""

import math

import numpy as np
import pytest

from .oracles import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    assert_same_buckets,
    check_histogram,
    dtype_id,
    is_ml_dtype,
    tb_buckets,
)

BUCKETS = [1, 2, 3, 7, 30, 100, 1000, 4096]


def _n_for(k):
    # keep TensorBoard's n*k*8-byte one_hot below ~100 MB
    return int(min(200_003, 12_000_000 // k))


# ------------------------------------------------------------------------------------------------
# random data, all bucket counts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", BUCKETS)
@pytest.mark.parametrize("dist", ["normal32", "uniform64", "lognormal32", "normal_shifted64"])
def test_random_data_matches_tensorboard(histgpu, rng, dist, k):
    n = _n_for(k)
    if dist == "normal32":
        x = rng.standard_normal(n, dtype=np.float32)
    elif dist == "uniform64":
        x = rng.uniform(-3.0, 7.0, n)
    elif dist == "lognormal32":
        x = rng.lognormal(0.0, 2.0, n).astype(np.float32)
    else:  # far from zero: cancellation in x - min matters
        x = 1e6 + rng.standard_normal(n)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dist} n={n} k={k}")


@pytest.mark.parametrize("n", [1, 2, 3, 10, 31, 1000, 65_537])
@pytest.mark.parametrize("k", [1, 30, 100])
def test_sizes_match_tensorboard(histgpu, rng, n, k):
    x = rng.standard_normal(n, dtype=np.float32)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"n={n} k={k}")


def test_default_bucket_count_is_30(histgpu, rng):
    x = rng.standard_normal(5000)
    got = histgpu.histogram(x)
    assert got.shape == (30, 3)
    assert_same_buckets(got, tb_buckets(x, None), "buckets=None")
    assert_same_buckets(histgpu.compute(x).to_tensor(), tb_buckets(x, 30), "compute, buckets=None")


@pytest.mark.parametrize("k", [7, 30])
def test_one_million_values(histgpu, rng, k):
    # large enough that the engine splits the work between threads and SIMD blocks
    x = rng.standard_normal(1_000_003, dtype=np.float32)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"1e6 normal k={k}")


def test_large_bucket_count(histgpu, rng):
    # 2**20 buckets: most are empty; TensorBoard's one_hot stays small because n is small
    x = rng.standard_normal(5)
    k = 2**20
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), "k=2**20")


def test_max_bucket_count_is_accepted(histgpu):
    k = 2**24
    out = histgpu.histogram(np.array([0.0, 1.0, 0.5]), k)
    assert out.shape == (k, 3)
    assert out[:, 2].sum() == 3
    assert out[0, 0] == 0.0 and out[-1, 1] == 1.0


# ------------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------------
def _random_of_dtype(rng, dt, n):
    dt = np.dtype(dt)
    if dt == np.bool_:
        return rng.integers(0, 2, n).astype(np.bool_)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    if is_ml_dtype(dt):
        return (rng.standard_normal(n) * 8).astype(dt)
    return (rng.standard_normal(n) * 100).astype(dt)


@pytest.mark.parametrize("k", [1, 3, 30, 256])
@pytest.mark.parametrize("dt", ALL_DTYPES, ids=dtype_id)
def test_dtypes_match_tensorboard(histgpu, rng, dt, k):
    x = _random_of_dtype(rng, dt, 20_011)
    if np.dtype(dt).kind == "f" or is_ml_dtype(dt):
        x = x[np.isfinite(x.astype(np.float64))]
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} k={k}")


@pytest.mark.parametrize("dt", INT_DTYPES, ids=dtype_id)
def test_integer_extremes(histgpu, dt):
    info = np.iinfo(dt)
    x = np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1, info.max // 3], dtype=dt)
    for k in (1, 2, 3, 7, 30, 255, 256):
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} extremes k={k}")


@pytest.mark.parametrize("dt", INT_DTYPES, ids=dtype_id)
def test_every_small_integer_value(histgpu, dt):
    # every integer in a small range, with the range split into many bucket counts
    lo = 0 if np.dtype(dt).kind == "u" else -60
    x = np.arange(lo, lo + 121).astype(dt)
    for k in (1, 2, 3, 7, 11, 30, 60, 119, 120, 121, 240, 1000):
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} arange k={k}")


def test_bool(histgpu):
    for x in ([True, False, True], [True] * 5, [False] * 3, [False, True]):
        arr = np.array(x, dtype=np.bool_)
        for k in (1, 2, 3, 30):
            assert_same_buckets(histgpu.histogram(arr, k), tb_buckets(arr, k), f"bool {x} k={k}")


@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=dtype_id)
def test_every_finite_value_of_small_float(histgpu, dt):
    """Every finite value of the type (all 2**16 or 2**8 bit patterns; float32/64: a dense sample)."""
    dt = np.dtype(dt)
    if dt.itemsize <= 2:
        raw = np.arange(2 ** (8 * dt.itemsize), dtype=np.uint32).astype(
            np.uint16 if dt.itemsize == 2 else np.uint8
        )
        x = raw.view(dt)
    else:
        x = np.random.default_rng(7).standard_normal(50_000).astype(dt)
    with np.errstate(invalid="ignore"):
        x = x[np.isfinite(x.astype(np.float64))]
    for k in (1, 7, 30, 100):
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} all values k={k}")
    # only the small-magnitude part (a narrow range with many values on each edge)
    small = x[np.abs(x.astype(np.float64)) <= 2.0]
    for k in (3, 30, 1000):
        assert_same_buckets(histgpu.histogram(small, k), tb_buckets(small, k), f"{dtype_id(dt)} |x|<=2 k={k}")


# ------------------------------------------------------------------------------------------------
# special sizes and bucket counts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, 2, 30])
@pytest.mark.parametrize("dt", [np.float32, np.float64, np.int32, np.bool_], ids=dtype_id)
def test_empty(histgpu, dt, k):
    for shape in [(0,), (0, 5), (3, 0, 2)]:
        x = np.zeros(shape, dtype=dt)
        got = histgpu.histogram(x, k)
        assert_same_buckets(got, tb_buckets(x, k), f"empty {shape} k={k}")
        h = histgpu.compute(x, k)
        assert h.num == 0
        assert h.nan == h.posinf == h.neginf == 0
        assert_same_buckets(h.to_tensor(), tb_buckets(x, k), f"compute empty {shape} k={k}")


@pytest.mark.parametrize("k", [-1, -30, -(2**31)])
def test_negative_buckets_mean_zero(histgpu, rng, k):
    x = rng.standard_normal(100)
    got = histgpu.histogram(x, k)
    assert got.shape == (0, 3)
    assert_same_buckets(got, tb_buckets(x, k), f"k={k}")


def test_zero_buckets(histgpu, rng):
    for x in (rng.standard_normal(50), np.array([2.0, 2.0]), np.array([], np.float32), np.float32(4)):
        assert_same_buckets(histgpu.histogram(x, 0), tb_buckets(x, 0), "k=0")


@pytest.mark.parametrize("k", [1, 2, 3, 30])
@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.5, -2.75, 1e-310, 3.4e38, -1.7e308], ids=lambda v: repr(v)
)
def test_single_value_and_all_equal(histgpu, value, k):
    for n in (1, 2, 1000):
        x = np.full(n, value, dtype=np.float64)
        check_histogram(histgpu, x, k, f"{n} x {value!r} k={k}")
        h = histgpu.compute(x, k)
        assert h.num == n
        assert h.min == value and h.max == value
        assert np.all(h.edges == value)


def test_zero_dim(histgpu):
    for x in (np.float32(2.5), np.array(-7.0), np.array(3, dtype=np.int16), np.array(True)):
        for k in (0, 1, 5, 30):
            assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"0-d {x!r} k={k}")


# ------------------------------------------------------------------------------------------------
# shapes and memory layouts
# ------------------------------------------------------------------------------------------------
def _views(rng):
    a = rng.standard_normal((37, 41, 3), dtype=np.float32)
    b = rng.standard_normal((50, 60))
    c = rng.standard_normal((5, 6, 7, 8), dtype=np.float32)
    return {
        "rank3": a,
        "rank4": c,
        "transposed": b.T,
        "fortran": np.asfortranarray(b),
        "slice_step3": a.reshape(-1)[::3],
        "negative_stride": a.reshape(-1)[::-1],
        "negative_step2_2d": b[::-2, 1::3],
        "rank3_permuted": np.transpose(a, (2, 0, 1)),
        "rank4_permuted_sliced": np.transpose(c, (3, 1, 0, 2))[::2, :, ::-1],
        "column": b[:, 7],
        "broadcast_row": np.broadcast_to(b[3], (40, 60)),
        "broadcast_col": np.broadcast_to(b[:, :1], (50, 33)),
        "broadcast_middle": np.broadcast_to(a[:, :1, :], (37, 20, 3)),
        "broadcast_scalar": np.broadcast_to(np.float32(0.25), (100,)),
        "int_view": np.arange(1000, dtype=np.int64).reshape(10, 100)[:, ::-7],
        "f16_transposed": b.astype(np.float16).T,
    }


@pytest.mark.parametrize("k", [1, 7, 30])
@pytest.mark.parametrize(
    "name",
    [
        "rank3", "rank4", "transposed", "fortran", "slice_step3", "negative_stride", "negative_step2_2d",
        "rank3_permuted", "rank4_permuted_sliced", "column", "broadcast_row", "broadcast_col",
        "broadcast_middle", "broadcast_scalar", "int_view", "f16_transposed",
    ],
)
def test_views_match_tensorboard(histgpu, rng, name, k):
    v = _views(rng)[name]
    expected = tb_buckets(np.ascontiguousarray(v), k)
    assert_same_buckets(histgpu.histogram(v, k), expected, f"{name} k={k}")
    assert_same_buckets(histgpu.compute(v, k).to_tensor(), expected, f"compute {name} k={k}")


# ------------------------------------------------------------------------------------------------
# Python lists and scalars
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        [1, 2, 3],
        [1.5, -2.25, 8.0, 8.0],
        [[1, 2], [3, 4], [5, 6]],
        [True, False, True],
        [1, 2.5],
        [2**62, -(2**62) + 1, 3],
        3.25,
        7,
        -0.0,
        True,
        [],
        [[]],
    ],
    ids=repr,
)
@pytest.mark.parametrize("k", [1, 4, 30])
def test_python_lists_and_scalars(histgpu, data, k):
    assert_same_buckets(histgpu.histogram(data, k), tb_buckets(np.asarray(data), k), f"{data!r} k={k}")


# ------------------------------------------------------------------------------------------------
# the full result object
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 30, 1000])
@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16, np.int64, np.uint8], ids=dtype_id)
def test_compute_fields_consistent_with_oracle(histgpu, rng, dt, k):
    x = _random_of_dtype(rng, dt, 3001)
    if np.dtype(dt).kind == "f":
        x = x[np.isfinite(x)]
    h = histgpu.compute(x, k)
    expected = tb_buckets(x, k)
    assert isinstance(h, histgpu.Histogram)
    t = h.to_tensor()
    assert_same_buckets(t, expected, f"compute {dtype_id(dt)} k={k}")
    assert_same_buckets(histgpu.histogram(x, k), t, "histogram() == compute().to_tensor()")
    assert h.buckets == k
    edges = np.asarray(h.edges)
    counts = np.asarray(h.counts)
    assert edges.dtype == np.float64 and edges.shape == (k + 1,)
    assert counts.dtype == np.uint64 and counts.shape == (k,)
    assert np.array_equal(edges[:-1], expected[:, 0])
    assert np.array_equal(edges[1:], expected[:, 1])
    assert np.array_equal(counts.astype(np.float64), expected[:, 2])
    x64 = x.astype(np.float64)
    assert h.min == x64.min() and h.max == x64.max()
    assert isinstance(h.num, int) and h.num == x.size
    assert (h.nan, h.posinf, h.neginf) == (0, 0, 0)


def test_signed_zero_min_max(histgpu):
    """docs/semantics.md §1.4: -0.0 < +0.0 for min/max selection, whatever the order."""
    for x in ([0.0, -0.0], [-0.0, 0.0], [0.0, -0.0, 0.0, -0.0, 0.0]):
        for dt in (np.float32, np.float64, np.float16):
            h = histgpu.compute(np.array(x, dtype=dt), 3)
            assert math.copysign(1.0, h.min) == -1.0, f"min of {x} ({dtype_id(dt)}) should be -0.0"
            assert math.copysign(1.0, h.max) == 1.0, f"max of {x} ({dtype_id(dt)}) should be +0.0"
