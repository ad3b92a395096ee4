"""The CUDA kernels == the CPU engine, bit for bit (docs/semantics.md §1.4), on the emulated
CUDA engine everywhere (the very kernel source, run on the host) and on a real GPU where one is
present: every dtype and layout, every shared-memory mode and its boundaries, adversarial and
special data, exact sums, shards and mixed batches.
"""

import warnings

import numpy as np
import pytest

import histgpu
from histgpu import _cpu, selftest

from ..core.oracles import ulp_neighbours
from .engines import CPU, check_v1, check_v2, engine_cases, layouts, same_v2, sample

try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None

CASES = engine_cases()


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request):
    return request.param


@pytest.fixture
def engine(case):
    return case.engine()


ALL = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
       np.float16, np.float32, np.float64]
if ml_dtypes is not None:
    ALL += [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]
NAMES = [np.dtype(d).name for d in ALL]


# ------------------------------------------------------------------------------------------------
# every dtype and layout
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", ALL, ids=NAMES)
@pytest.mark.parametrize("n", [1, 1000, 65536 + 17])
def test_every_dtype_and_layout(case, engine, dt, n):
    rng = np.random.default_rng(n + np.dtype(dt).num)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = sample(dt, n, rng)
    for name, view in layouts(x).items():
        for k in (1, 3, 30, 1000):
            check_v2(case, engine, view, k, what=f"{np.dtype(dt).name} {name} n={n}")
        check_v1(case, engine, view, what=f"{np.dtype(dt).name} {name} n={n}")
        if np.dtype(dt).itemsize > 1:  # an address that is not a multiple of the item size
            check_v2(case, engine, view, 30, offset=1, what=f"{np.dtype(dt).name} {name} unaligned")
            check_v1(case, engine, view, offset=1, what=f"{np.dtype(dt).name} {name} unaligned")


@pytest.mark.parametrize("offset", [0, 2, 4, 8, 12])
def test_vector_heads_and_tails(case, engine, offset):
    rng = np.random.default_rng(offset)
    for dt in (np.float32, np.float16, np.float64) + ((ml_dtypes.bfloat16,) if ml_dtypes else ()):
        for n in (5, 16, 17, 4 * 512 * 4 + 3, 65536 + 3):
            x = rng.standard_normal(n).astype(dt)
            check_v2(case, engine, x, 30, offset=offset, what=f"{np.dtype(dt).name} n={n} offset={offset}")
            check_v1(case, engine, x, offset=offset, what=f"{np.dtype(dt).name} n={n} offset={offset}")


# ------------------------------------------------------------------------------------------------
# bucket counts: every shared-memory mode and both sides of each boundary
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_size", [4, 8], ids=["float32", "float64"])
def test_count_modes_and_their_boundaries(case, engine, key_size):
    bounds = selftest.mode_boundaries(key_size)
    assert [_cpu.count_mode(b, key_size) for b in bounds] == [0, 1, 2]
    assert [_cpu.count_mode(b + 1, key_size) for b in bounds] == [1, 2, 3]
    dt = np.float32 if key_size == 4 else np.float64
    rng = np.random.default_rng(key_size)
    x = rng.standard_normal(40000).astype(dt)
    ks = sorted({0, 1, 2, 30, 429, 430, 1024, 1025, *bounds, *(b + 1 for b in bounds)})
    for k in ks:
        check_v2(case, engine, x, k, what=f"{np.dtype(dt).name}")


@pytest.mark.parametrize("k", [1 << 16, 1 << 20])
def test_huge_bucket_counts(case, engine, k):
    rng = np.random.default_rng(k)
    x = np.concatenate([rng.standard_normal(3000), rng.uniform(-1e6, 1e6, 3000)]).astype(np.float32)
    check_v2(case, engine, x, k, what="huge k")
    if k == 1 << 16:
        check_v2(case, engine, x.astype(np.float64), k, what="huge k float64")


def test_count_mode_of_each_launch_is_the_policys(engine):
    if not isinstance(engine, _cpu.EmulatedCudaEngine):
        pytest.skip("the launch trace is the emulator's")
    x = np.random.default_rng(1).standard_normal(20000).astype(np.float32)
    v = histgpu._input.host_view(x).engine_view()
    for k in (30, 2000, 10000, 20000):
        before = len(engine.trace())
        engine.v2(v, k)
        launches = [t for t in engine.trace()[before:] if t.startswith("launch pass=1")]
        assert launches and all(f"mode={_cpu.count_mode(k, 4)}" in t for t in launches), (k, launches)


# ------------------------------------------------------------------------------------------------
# adversarial and special data
# ------------------------------------------------------------------------------------------------


def _edge_data(dt, lo, hi, k, rng):
    width = (np.float64(hi) - np.float64(lo)) / k
    edges = lo + width * np.arange(k + 1)
    x = ulp_neighbours(edges, np.dtype(dt), steps=2)
    return np.concatenate([x, np.array([lo, hi], dtype=dt), rng.uniform(lo, hi, 500).astype(dt)])


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64] + ([ml_dtypes.bfloat16] if ml_dtypes else []),
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [1, 2, 7, 30, 100, 999])
def test_values_on_and_around_thresholds(case, engine, dt, k):
    rng = np.random.default_rng(k)
    for lo, hi in [(-1.0, 1.0), (0.1, 0.7), (-3.0, 1000.0), (1e-3, 1.0)]:
        x = _edge_data(dt, lo, hi, k, rng)
        x = x[(x.astype(np.float64) >= lo) & (x.astype(np.float64) <= hi)]
        check_v2(case, engine, x, k, what=f"edges {np.dtype(dt).name} [{lo},{hi}]")
        check_v1(case, engine, x, what=f"edges {np.dtype(dt).name}")


def _v1_limit_neighbours(dt):
    limits = histgpu.v1_limits()
    inner = limits[np.abs(limits) < 1e30]
    with np.errstate(over="ignore"):
        v = inner.astype(dt)
    v = v[np.isfinite(v)]
    return np.concatenate([v, np.nextafter(v, dt(-np.inf)), np.nextafter(v, dt(np.inf))])


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_v1_limits_and_their_neighbours(case, engine, dt):
    """Every TensorFlow limit and one ulp either side: where the guess table is most fragile."""
    check_v1(case, engine, _v1_limit_neighbours(dt), what=f"v1 limits {np.dtype(dt).name}")


SPECIAL = {
    "empty_f32": np.zeros(0, np.float32),
    "one": np.array([2.5], np.float32),
    "all_equal": np.full(70000, -7.25, np.float32),
    "signed_zeros": np.array([0.0, -0.0] * 1000, np.float32),
    "negative_zero_only": np.full(33, -0.0, np.float64),
    "all_nan": np.full(1000, np.nan, np.float64),
    "all_nan_f32": np.full(5000, np.nan, np.float32),  # the vector path before any sum window exists
    "nan_first_f32": np.concatenate([np.full(64, np.nan, np.float32), np.linspace(-3, 3, 5000, dtype=np.float32)]),
    "near_f32_max_with_nan_and_inf": np.array([3.3e38, -3.0e38, np.nan, np.inf, 1e38] * 2000, np.float32),
    "nan_inf_and_one": np.array([np.nan, np.inf, -np.inf, 3.0] * 100, np.float32),
    "subnormals_f64": np.array([5e-324, 1e-310, -2e-320, 0.0] * 500, np.float64),
    "subnormals_f32": np.array([1e-45, 1e-40, -3e-39, 0.0] * 500, np.float32),
    "huge_range_f64": np.array([-1.7e308, 1.7e308, 0.0, 1e300, -5.0] * 100, np.float64),
    "f32_max": np.array([3.4e38, -3.4e38, 1.0] * 1000, np.float32),
    "int64_above_2_53": np.array([2**53 + 1, 2**53 + 3, 2**62, -(2**63), 2**63 - 1, 5] * 300, np.int64),
    "uint64_top": np.array([2**64 - 1, 2**63, 0, 1] * 300, np.uint64),
    "piled_up": np.concatenate([np.zeros(100000, np.float32), np.array([1.0, -1.0], np.float32)]),
    "tiny_and_huge": np.array([1e-300, 1e300, -1e-200, 1e150, 3.0] * 999, np.float64),
    "cancelling": np.concatenate([np.arange(1, 20001, dtype=np.float64) * 1e10,
                                  -np.arange(1, 20001, dtype=np.float64) * 1e10, [1e-10]]),
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_inputs(case, engine, name):
    x = SPECIAL[name]
    for k in (0, 1, 5, 30):
        check_v2(case, engine, x, k, what=name)
    check_v1(case, engine, x, what=name)


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_exact_sums_over_wide_exponents(case, engine, dt):
    """Exponents that jump around move every thread's sum window up and push values below it."""
    rng = np.random.default_rng(3)
    info = np.finfo(dt)
    lo, hi = np.log2(info.tiny) - 20, np.log2(info.max) - 2
    e = rng.uniform(lo, hi, 60000)
    x = (np.sign(rng.standard_normal(e.size)) * np.exp2(e)).astype(dt)
    check_v1(case, engine, x, what=f"wide {np.dtype(dt).name}")
    rising = np.sort(np.abs(x))  # every value above the window before it
    check_v1(case, engine, rising, what=f"rising {np.dtype(dt).name}")
    check_v1(case, engine, rising[::-1].copy(), what=f"falling {np.dtype(dt).name}")


# ------------------------------------------------------------------------------------------------
# shards and batches
# ------------------------------------------------------------------------------------------------


def test_shards_against_a_global_range(case, engine):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(100001).astype(np.float32)
    for gmin, gmax, gnum in [(float(x.min()) - 1, float(x.max()) + 2, x.size * 3), (-1.0, 1.0, 10**9)]:
        xs = x[(x >= gmin) & (x <= gmax)]
        _o, view, hview = case.mirror(xs)
        same_v2(engine.v2_shard(view, 30, gmin, gmax, gnum), CPU.v2_shard(hview, 30, gmin, gmax, gnum), "shard")
        local = CPU.range(hview)
        same_v2(engine.v2_shard(view, 30, gmin, gmax, gnum, local), CPU.v2_shard(hview, 30, gmin, gmax, gnum, local),
                "shard with its known range")
    _o, view, hview = case.mirror(x)
    r, c = engine.range(view), CPU.range(hview)
    assert (r.min, r.max, r.num) == (c.min, c.max, c.num)


def test_a_batch_of_300_mixed_tensors(case, engine):
    rng = np.random.default_rng(300)
    hosts, ks = [], []
    dts = [np.float32, np.float32, np.float16, np.float64, np.int32, np.uint8, np.int64] + (
        [ml_dtypes.bfloat16] if ml_dtypes else [])
    for i in range(300):
        dt = dts[i % len(dts)]
        n = int(rng.choice([0, 1, 7, 100, 1000, 4096, 65537]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = sample(dt, n, rng, nonfinite=(i % 5 == 0))
        if i % 17 == 0 and n:
            x = np.full(n, x[0])
        if i % 11 == 0 and n >= 20:
            x = x[: n // 10 * 10].reshape(-1, 10)[:, ::3]
        hosts.append(x)
        ks.append(int(rng.choice([0, 1, 5, 30, 64, 500, 5000])))
    mirrors = [case.mirror(x) for x in hosts]
    got = engine.v2_many([m[1] for m in mirrors], ks)
    for i, ((_o, _v, hview), g) in enumerate(zip(mirrors, got)):
        same_v2(g, CPU.v2(hview, ks[i]), f"batch tensor {i} ({hosts[i].dtype}, n={hosts[i].size}, k={ks[i]})")


def test_histogram_many_and_compute_reach_the_emulated_engine():
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal(n).astype(dt) for n, dt in [(100, np.float32), (5000, np.float64), (0, np.float32)]]
    xs.append(rng.integers(-9, 9, (30, 7), dtype=np.int16)[:, ::2])
    ref = histgpu.histogram_many(xs, [3, 30, 5, 7])
    got = histgpu.histogram_many(xs, [3, 30, 5, 7], device="cuda-emulated")
    for a, b in zip(got, ref):
        assert np.array_equal(a.to_tensor(), b.to_tensor()) and (a.min, a.max, a.num) == (b.min, b.max, b.num)
    for x in xs:
        a, b = histgpu.compute(x, 30, device="cuda-emulated"), histgpu.compute(x, 30)
        assert np.array_equal(a.to_tensor(), b.to_tensor())
        v, w = histgpu.compute_v1(x, device="cuda-emulated"), histgpu.compute_v1(x)
        assert np.array_equal(v.counts, w.counts) and (v.sum, v.sum_squares) == (w.sum, w.sum_squares)
