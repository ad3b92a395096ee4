"""Adversarial data against TensorBoard's bucketing: values exactly on bucket edges and a few ulps
either side, subnormals, signed zeros, huge and tiny ranges, integers that float64 cannot hold.

The expected results all come from TensorBoard's ``_buckets`` (oracles.tb_buckets). The edge
formula (oracles.tb_edges) is used only to *place* the values where rounding is most fragile.
"""

import numpy as np
import pytest

from .oracles import (
    FLOAT_DTYPES,
    assert_bucket_properties,
    assert_same_buckets,
    check_histogram,
    dtype_id,
    finfo,
    is_ml_dtype,
    tb_buckets,
    tb_edges,
    ulp_neighbours,
)

BUCKETS = [1, 2, 3, 7, 30, 100, 1000, 4096]

# (lo, hi) pairs, as float64; each is cast to the tested dtype first
RANGES = {
    "sym1": (-1.0, 1.0),
    "unit": (0.0, 1.0),
    "odd": (-3.7, 11.3),
    "tenths": (0.1, 0.7),
    "offset": (1000.0, 1001.0),
    "negative": (-513.25, -0.125),
}


def _boundary_data(dt, lo, hi, k, rng, steps=2, max_edges=400):
    """lo, hi and every edge min + (max-min)/k*i (a sample of them when k is large), cast to ``dt``,
    with their neighbours up to ``steps`` ulps either side, restricted to [lo, hi]."""
    dt = np.dtype(dt)
    lo_d = np.asarray(lo, dtype=np.float64).astype(dt)
    hi_d = np.asarray(hi, dtype=np.float64).astype(dt)
    lo64, hi64 = float(lo_d.astype(np.float64)), float(hi_d.astype(np.float64))
    edges = tb_edges(lo64, hi64, k)
    if len(edges) > max_edges:
        edges = np.concatenate([edges[:50], edges[-50:], rng.choice(edges, max_edges - 100, replace=False)])
    vals = ulp_neighbours(edges, dt, steps=steps)
    v64 = vals.astype(np.float64)
    vals = vals[(v64 >= lo64) & (v64 <= hi64)]
    data = np.concatenate([np.array([lo_d, hi_d], dtype=dt), vals])
    return data[rng.permutation(len(data))]


@pytest.mark.parametrize("k", BUCKETS)
@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=dtype_id)
def test_values_on_and_next_to_bucket_edges(histgpu, rng, dt, k):
    for name, (lo, hi) in RANGES.items():
        if finfo(dt).max < max(abs(lo), abs(hi)):
            continue
        x = _boundary_data(dt, lo, hi, k, rng)
        if np.unique(x.astype(np.float64)).size < 2:
            continue
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} {name} k={k}")


@pytest.mark.parametrize("k", [1, 3, 7, 30, 100, 1000])
def test_edges_of_random_ranges(histgpu, rng, k):
    """Random (lo, hi) in float32 and float64, values on every edge +-3 ulps."""
    for dt in (np.float32, np.float64):
        for _ in range(6):
            lo, hi = np.sort(rng.standard_normal(2) * 10 ** rng.uniform(-3, 6))
            x = _boundary_data(dt, lo, hi, k, rng, steps=3)
            if np.unique(x).size < 2:
                continue
            assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} [{lo},{hi}] k={k}")


@pytest.mark.parametrize("k", [2, 3, 7, 30, 100])
def test_edges_with_random_bulk(histgpu, rng, k):
    """Edge values hidden among many ordinary values (exercises the vectorised/threaded paths)."""
    for dt in (np.float32, np.float64):
        lo, hi = -2.5, 3.75
        edge_vals = _boundary_data(dt, lo, hi, k, rng, steps=2)
        bulk = rng.uniform(lo, hi, 100_000).astype(dt)
        x = np.concatenate([bulk, edge_vals])[rng.permutation(100_000 + len(edge_vals))]
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} bulk+edges k={k}")


# ------------------------------------------------------------------------------------------------
# subnormals and signed zeros
# TensorBoard flushes subnormals inconsistently (oracles.py, "Subnormals"): check_histogram compares
# with TensorBoard where no subnormal is involved and with the IEEE formula where one is.
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 7, 30, 1000])
def test_subnormals(histgpu, rng, k):
    tiny64 = np.finfo(np.float64).smallest_subnormal
    tiny32 = np.finfo(np.float32).smallest_subnormal
    cases = {
        "f64 subnormal bulk": rng.uniform(-1e-308, 1e-308, 5000),
        "f64 subnormal + normal": np.concatenate([rng.uniform(0, 1e-310, 1000), [1e-300, 2.0]]),
        "f64 k*tiny": np.arange(0, 4 * k + 1) * tiny64,
        "f64 sub, ulps": np.array([0.0, tiny64, 2 * tiny64, 3 * tiny64, -tiny64]),
        "f32 subnormals": rng.uniform(-1e-38, 1e-38, 5000).astype(np.float32),
        "f32 ulps": (np.arange(-5, 40) * tiny32).astype(np.float32),
        "f16 subnormals": (np.arange(-30, 31) * np.float16(6e-8)).astype(np.float16),
        "f32 smallest normal edges": np.array(
            [0.0, np.finfo(np.float32).tiny, np.finfo(np.float32).tiny * 2, tiny32], np.float32
        ),
    }
    for name, x in cases.items():
        check_histogram(histgpu, x, k, f"{name} k={k}")


@pytest.mark.parametrize("k", [1, 2, 3, 30])
def test_width_underflows_to_zero(histgpu, k):
    """Range of a few subnormal ulps: (max - min) / k rounds to 0 (or is subnormal) in float64."""
    tiny = np.finfo(np.float64).smallest_subnormal
    for x in ([0.0, tiny], [0.0, tiny, tiny], [-tiny, tiny, 0.0], [0.0, 2 * tiny, tiny], [5 * tiny, 6 * tiny]):
        arr = np.array(x)
        got = check_histogram(histgpu, arr, k, f"{x} k={k}")
        assert_bucket_properties(got, arr, f"{x} k={k}")


@pytest.mark.parametrize("k", [2, 3, 30, 1000])
def test_subnormal_width_with_normal_range(histgpu, k):
    """Normal range, subnormal width (TensorBoard drops every count here)."""
    for hi in (3e-308, 2.3e-308 * k, 1e-307):
        x = np.array([0.0, hi, hi / 2, hi / 3, hi * 0.999])
        got = check_histogram(histgpu, x, k, f"[0, {hi}] k={k}")
        assert_bucket_properties(got, x, f"[0, {hi}] k={k}")


@pytest.mark.parametrize("k", [1, 2, 3, 30])
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64], ids=dtype_id)
def test_signed_zeros(histgpu, dt, k):
    cases = [
        [-0.0, 0.0, 1.0],
        [0.0, -0.0, -1.0],
        [-0.0, 0.0, -0.0, 0.0],
        [-0.0],
        [0.0, -0.0, 0.5, -0.5, 0.0],
        [-0.0, 1e-45, -1e-45],
    ]
    for x in cases:
        arr = np.array(x, dtype=dt)
        check_histogram(histgpu, arr, k, f"{x} {dtype_id(dt)} k={k}")


# ------------------------------------------------------------------------------------------------
# huge and tiny ranges
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 7, 30, 100, 4096])
def test_huge_ranges(histgpu, rng, k):
    f32max = float(np.finfo(np.float32).max)
    cases = {
        "f32 +-1e38": np.concatenate([[-1e38, 1e38], rng.uniform(-1e38, 1e38, 3000)]).astype(np.float32),
        "f32 +-max": np.concatenate([[-f32max, f32max], rng.uniform(-3e38, 3e38, 3000)]).astype(np.float32),
        "f32 0..max": np.concatenate([[0.0, f32max], rng.uniform(0, 3e38, 1000), [1e-38, 1.0]]).astype(np.float32),
        "f64 +-1e300": np.concatenate([[-1e300, 1e300], rng.uniform(-1e300, 1e300, 3000)]),
        "f64 +-8e307": np.concatenate([[-8e307, 8.9e307], rng.uniform(-8e307, 8e307, 3000), [1e-300, 0.0]]),
        "f64 0..max": np.array([0.0, np.finfo(np.float64).max, 1.0, 1e308, 5e307]),
        "f64 -max..0": np.array([0.0, -np.finfo(np.float64).max, -1.0, -1e308]),
        "f16 +-max": np.array([-65504.0, 65504.0, 0.0, 1.0, -3.0, 60000.0], np.float16),
        "f64 mixed scales": np.array([-1e200, 1e-200, 1.0, 1e200, -1.0, 1e100]),
    }
    if k <= 100:
        cases["f32 max edges"] = _boundary_data(np.float32, -f32max, f32max, k, rng)
        cases["f64 8e307 edges"] = _boundary_data(np.float64, -8e307, 8.9e307, k, rng)
    for name, x in cases.items():
        assert np.isfinite(x.astype(np.float64).max() - x.astype(np.float64).min())
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{name} k={k}")


@pytest.mark.parametrize("k", [1, 2, 3, 7, 30, 100])
@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=dtype_id)
def test_tiny_ranges(histgpu, dt, k):
    """Values a few ulps apart: width is far below one ulp of the values."""
    for x0 in (1.0, -3.3, 1000.0, 0.1, 1e-300, 1e300, 3e38):
        if abs(x0) > finfo(dt).max or (x0 != 0 and abs(x0) < float(finfo(dt).tiny)):
            continue
        base = np.asarray(x0, np.float64).astype(dt)
        for m in (1, 2, 3, 5, 31):
            neighbours = ulp_neighbours([base.astype(np.float64)], dt, steps=m)
            ups = np.sort(neighbours[neighbours.astype(np.float64) >= float(base.astype(np.float64))])
            x = np.concatenate([ups, ups[: max(1, len(ups) // 2)]])
            if np.unique(x.astype(np.float64)).size < 2:
                continue
            check_histogram(histgpu, x, k, f"{dtype_id(dt)} {x0}+{m}ulp k={k}")


# ------------------------------------------------------------------------------------------------
# integers that float64 cannot represent
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 7, 30, 1000])
def test_int64_beyond_2_53(histgpu, rng, k):
    big = 2**53
    cases = {
        "2^53 +- j": np.array([big + j for j in range(-6, 7)], np.int64),
        "2^62 +- j": np.array([2**62 + j for j in range(-600, 600, 37)] + [0], np.int64),
        "full range": np.array([-(2**63), 2**63 - 1, 0, -1, 1, 2**63 - 1025, -(2**63) + 1025], np.int64),
        "random wide": rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64, endpoint=True),
        "random near 2^60": 2**60 + rng.integers(-(2**12), 2**12, 5000, dtype=np.int64),
        "collapses to one value": np.array([2**60, 2**60 + 1, 2**60 + 2, 2**60 - 1], np.int64),
        "negative collapse": np.array([-(2**63), -(2**63) + 1, -(2**63) + 511], np.int64),
    }
    for name, x in cases.items():
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"int64 {name} k={k}")


@pytest.mark.parametrize("k", [1, 2, 3, 7, 30, 1000])
def test_uint64_near_2_64(histgpu, rng, k):
    top = 2**64 - 1
    cases = {
        "top values": np.array([top, top - 1, top - 2048, 2**63, 0], np.uint64),
        "collapses to 2^64": np.array([top, top - 1, top - 1000], np.uint64),
        "around 2^63": np.array([2**63 + j for j in range(-5000, 5000, 333)], np.uint64),
        "random": rng.integers(0, top, 5000, dtype=np.uint64, endpoint=True),
        "around 2^53": np.array([2**53 + j for j in range(-4, 5)], np.uint64),
    }
    for name, x in cases.items():
        assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"uint64 {name} k={k}")


@pytest.mark.parametrize("k", [1, 3, 30, 4096])
def test_int64_edges(histgpu, rng, k):
    """int64 values placed on float64 edges (rounded both ways) of a range beyond 2^53."""
    lo, hi = -(2**61) + 12345, 2**62 - 7
    edges = tb_edges(float(lo), float(hi), k)
    if len(edges) > 300:
        edges = rng.choice(edges, 300, replace=False)
    e = np.clip(edges, float(lo), float(2**62 - 1024))
    vals = np.concatenate([e.astype(np.int64) + d for d in (-1025, -1, 0, 1, 1025)])
    x = np.concatenate([[lo, hi], np.clip(vals, lo, hi)]).astype(np.int64)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"int64 edges k={k}")


# ------------------------------------------------------------------------------------------------
# float64 range that overflows: TensorBoard answers with inf/nan, histgpu documents its own result
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3, 7, 30, 100])
def test_overflowing_range_properties(histgpu, rng, k):
    fmax = np.finfo(np.float64).max
    cases = {
        "+-max": np.array([-fmax, fmax]),
        "+-1.5e308 bulk": np.concatenate([[-1.5e308, 1.6e308], rng.uniform(-1.0, 1.0, 5000) * 1.5e308]),
        "+-max with zeros": np.array([fmax, -fmax, 0.0, -0.0, 1.0, -1e308, 1e308]),
        "+-1e308 f64 bulk": np.concatenate([[-1e308, 1e308], rng.uniform(-1.0, 1.0, 20_000) * 1e308]),
    }
    for name, x in cases.items():
        assert not np.isfinite(np.float64(x.max()) - np.float64(x.min())), "range must overflow"
        h = histgpu.compute(x, k)
        edges = np.asarray(h.edges)
        counts = np.asarray(h.counts)
        t = histgpu.histogram(x, k)
        assert np.all(np.isfinite(edges)), f"{name}: non-finite edges {edges}"
        assert np.all(np.diff(edges) >= 0), f"{name}: edges not monotone {edges}"
        assert edges[0] == x.min() and edges[-1] == x.max(), f"{name}: end edges {edges[0]}, {edges[-1]}"
        assert int(counts.sum()) == x.size and h.num == x.size
        assert h.min == x.min() and h.max == x.max()
        assert np.array_equal(t, h.to_tensor())
        assert np.array_equal(t[:, 0], edges[:-1]) and np.array_equal(t[:, 1], edges[1:])
        # monotone bucketing: values clearly inside a bucket are counted in it
        margin = 1e-9 * (edges[-1] / 2 - edges[0] / 2)
        interior = edges[1:-1]
        with np.errstate(over="ignore"):
            dist = np.min(np.abs(x[:, None] - interior[None, :]), axis=1, initial=np.inf)
        if np.all(dist > margin):
            below = np.array([(x < e).sum() for e in interior])
            assert np.array_equal(np.cumsum(counts)[:-1], below), f"{name}: counts disagree with edges"


def test_overflowing_range_float64_only(histgpu):
    """float32/float16 extremes never overflow in float64: they must match TensorBoard exactly."""
    for dt in (np.float32, np.float16):
        m = finfo(dt).max
        x = np.array([-m, m, 0], dtype=dt)
        for k in (1, 30):
            assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} +-max k={k}")


# ------------------------------------------------------------------------------------------------
# fp8/bf16 specials (the cast to float64 is exact; TensorBoard sees the same numbers)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [d for d in FLOAT_DTYPES if is_ml_dtype(d)], ids=dtype_id)
@pytest.mark.parametrize("k", [1, 2, 7, 30, 100])
def test_ml_dtypes_extremes(histgpu, dt, k):
    fi = finfo(dt)
    x = np.array(
        [float(fi.max), -float(fi.max), float(fi.tiny), float(fi.smallest_subnormal), 0.0, -0.0, 1.0, -2.0],
        dtype=np.float64,
    ).astype(dt)
    assert_same_buckets(histgpu.histogram(x, k), tb_buckets(x, k), f"{dtype_id(dt)} extremes k={k}")
