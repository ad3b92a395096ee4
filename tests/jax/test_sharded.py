"""histgpu.jax.histogram / histogram_v1 of sharded jax.Arrays over 8 host devices: the same bits as
histgpu.compute / compute_v1 of the whole array, for every layout (1-D and 2-D meshes, replicated
axes, Explicit and Auto axes), dtype and awkward content (NaN, ±Inf, -0.0, empty, constant)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import histgpu

from .helpers import mesh, same_v1, same_v2

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, SingleDeviceSharding  # noqa: E402
from jax.sharding import PartitionSpec as P

import histgpu.jax as hjax  # noqa: E402

# (mesh shape, axis names, partition spec): 1-D and 2-D meshes, sharded and replicated axes
LAYOUTS = [
    ((8,), ("x",), P("x")),
    ((8,), ("x",), P(None, "x")),
    ((8,), ("x",), P()),                     # fully replicated: 8 copies, counted once
    ((4, 2), ("a", "b"), P("a", "b")),
    ((4, 2), ("a", "b"), P("b", "a")),
    ((4, 2), ("a", "b"), P("a")),            # replicated over b
    ((4, 2), ("a", "b"), P(None, "b")),      # replicated over a
    ((4, 2), ("a", "b"), P(("a", "b"))),     # both axes on dimension 0
    ((4, 2), ("a", "b"), P(None, ("b", "a"))),
    ((4, 2), ("a", "b"), P()),
    ((2, 4), ("a", "b"), P("b")),            # replicated over a
    ((2, 4), ("a", "b"), P("a", "b")),
]
LAYOUT_IDS = [f"{'x'.join(map(str, s))}-{spec}" for s, _, spec in LAYOUTS]


def data(rng, shape=(16, 24), dtype=np.float32):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    flat = x.reshape(-1)
    if np.dtype(dtype).kind == "f" or dtype in (jnp.bfloat16,):
        flat[5] = np.nan
        flat[17] = -0.0
        flat[40] = np.inf
        flat[41] = -np.inf
        flat[100:110] = np.nan
    return x


def put(cpus, x, shape, names, spec, explicit=True):
    return jax.device_put(x, NamedSharding(mesh(cpus, shape, names, explicit), spec))


def check(x, buckets=30, **kw):
    """histgpu.jax of x against histgpu.compute of the gathered array, bit for bit."""
    whole = np.asarray(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        got, want = hjax.histogram(x, buckets, **kw), histgpu.compute(whole, buckets)
        got1, want1 = hjax.histogram_v1(x, **kw), histgpu.compute_v1(whole)
    assert same_v2(got, want), (got, want)
    assert same_v1(got1, want1), (got1, want1)
    return got, got1


# ----------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("shape,names,spec", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "auto"])
def test_every_layout_matches_the_whole_array(cpus, rng, shape, names, spec, explicit):
    x = put(cpus, data(rng), shape, names, spec, explicit)
    got, got1 = check(x, 30)
    assert got.nan == 11 and got.posinf == 1 and got.neginf == 1 and got.num == 16 * 24 - 13


@pytest.mark.parametrize("shape,names,spec", LAYOUTS[:6], ids=LAYOUT_IDS[:6])
@pytest.mark.parametrize("buckets", [None, 0, 1, 2, 7, 64, 1000])
def test_bucket_counts(cpus, rng, shape, names, spec, buckets):
    check(put(cpus, data(rng), shape, names, spec), buckets)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, jnp.bfloat16, np.int32, np.uint8, np.int8, np.bool_,
                                   jnp.float8_e4m3fn, jnp.float8_e5m2])
@pytest.mark.parametrize("shape,names,spec", [LAYOUTS[3], LAYOUTS[5], LAYOUTS[10]],
                         ids=[LAYOUT_IDS[3], LAYOUT_IDS[5], LAYOUT_IDS[10]])
def test_dtypes(cpus, rng, dtype, shape, names, spec):
    if np.dtype(dtype).kind in "iub":
        x = rng.integers(-100, 100, (16, 24)).astype(dtype)
    else:
        x = data(rng, dtype=np.float32).astype(dtype)
    check(put(cpus, x, shape, names, spec), 17)


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint64])
def test_64_bit_dtypes_with_x64(cpus, rng, x64, dtype):
    if np.dtype(dtype).kind == "f":
        x = data(rng, dtype=np.float64) * 1e300
        x[0, 0], x[0, 1] = -1.7e308, 1.7e308  # a range that overflows float64 (semantics §1.6)
    else:
        x = rng.integers(0, 2**62, (16, 24)).astype(dtype) * 2 + 1  # above 2**53: rounding on the cast
    arr = put(cpus, x, (4, 2), ("a", "b"), P("a", "b"))
    assert arr.dtype == dtype
    check(arr, 30)


def test_three_dimensional_array(cpus, rng):
    x = data(rng, (8, 4, 6))
    check(put(cpus, x, (4, 2), ("a", "b"), P("a", None, "b")), 30)
    check(put(cpus, x, (4, 2), ("a", "b"), P(None, "b", None)), 30)


# ----------------------------------------------------------------------------- content


@pytest.mark.parametrize("shape,names,spec", LAYOUTS[:6], ids=LAYOUT_IDS[:6])
@pytest.mark.parametrize("kind", ["empty", "all-nan", "constant", "zeros-of-both-signs", "one-finite", "tiny-range",
                                  "subnormal"])
def test_awkward_content(cpus, rng, shape, names, spec, kind):
    if kind == "empty":
        x = np.zeros((0, 24), np.float32)
    else:
        x = np.zeros((16, 24), np.float32)
        if kind == "all-nan":
            x[:] = np.nan
        elif kind == "constant":
            x[:] = 2.5
        elif kind == "zeros-of-both-signs":
            x[::2] = -0.0  # min is -0.0 and max +0.0 wherever the -0.0 values sit
        elif kind == "one-finite":
            x[:] = np.nan
            x[7, 3] = -4.0
        elif kind == "tiny-range":
            x[:] = 1.0
            x.reshape(-1)[::3] = np.nextafter(np.float32(1.0), np.float32(2.0))
        elif kind == "subnormal":
            x = (rng.integers(-50, 50, (16, 24)) * np.float32(1e-45)).astype(np.float32)
    got, got1 = check(put(cpus, x, shape, names, spec), 30)
    if kind == "zeros-of-both-signs":
        assert np.signbit(got.min) and not np.signbit(got.max) and np.signbit(got1.min)
    if kind == "empty":
        assert got.num == 0 and not got.counts.any() and got1.num == 0


def test_scalar_and_single_device_arrays(cpus, rng):
    check(jnp.float32(3.5), 30)
    one = jax.device_put(data(rng), cpus[5])  # on a device other than the default one
    assert isinstance(one.sharding, SingleDeviceSharding)
    check(one, 30)


def test_jitted_outputs_and_shard_map(cpus, rng):
    m = mesh(cpus, (4, 2), ("a", "b"), explicit=False)
    a = jax.device_put(data(rng, (16, 8)), NamedSharding(m, P("a", "b")))
    b = jax.device_put(np.nan_to_num(data(rng, (8, 24))), NamedSharding(m, P("b", None)))
    y = jax.jit(lambda a, b: jnp.tanh(a) @ b, out_shardings=NamedSharding(m, P(None, "b")))(a, jnp.nan_to_num(b))
    check(y, 30)
    z = jax.jit(lambda a: a * 2)(a)  # the sharding XLA picked
    check(z, 30)
    if hasattr(jax, "shard_map"):
        w = jax.shard_map(lambda blk: blk + 1.0, mesh=m, in_specs=P("a", "b"), out_specs=P("a", "b"))(a)
        check(w, 30)


# ------------------------------------------------------------------- in place, once


def test_each_shard_is_read_in_place(cpus, rng):
    """The views the engines read point at the shards' own buffers (zero-copy DLPack)."""
    for dtype in (np.float32, jnp.bfloat16, np.int32, np.bool_):
        x = put(cpus, np.nan_to_num(data(rng), posinf=9, neginf=-9).astype(dtype), (4, 2), ("a", "b"), P("a"))
        views = hjax._primary_views(x, False)
        shards = [s for s in x.addressable_shards if s.replica_id == 0]
        assert len(views) == len(shards) == 4
        for v, s in zip(views, shards):
            assert not v.on_device
            assert v.ptr == s.data.unsafe_buffer_pointer(), dtype


@pytest.mark.parametrize("shape,names,spec,distinct", [
    ((8,), ("x",), P(), 1),
    ((4, 2), ("a", "b"), P("a"), 4),
    ((4, 2), ("a", "b"), P(None, "b"), 2),
    ((2, 4), ("a", "b"), P("b"), 4),
    ((4, 2), ("a", "b"), P("a", "b"), 8),
])
def test_replicas_are_read_once(cpus, rng, monkeypatch, shape, names, spec, distinct):
    """One range read and one count read per distinct index, whatever the replication."""
    reads = {"range": 0, "counts": 0, "v1": 0}
    real = {n: getattr(hjax._hs, n) for n in ("local_range", "local_counts", "local_v1")}

    def spy(name, key):
        def f(*a, **kw):
            reads[key] += 1
            return real[name](*a, **kw)
        return f

    monkeypatch.setattr(hjax._hs, "local_range", spy("local_range", "range"))
    monkeypatch.setattr(hjax._hs, "local_counts", spy("local_counts", "counts"))
    monkeypatch.setattr(hjax._hs, "local_v1", spy("local_v1", "v1"))
    check(put(cpus, data(rng), shape, names, spec), 30)
    assert reads == {"range": distinct, "counts": distinct, "v1": distinct}


def test_the_emulated_cuda_engine_gives_the_same_bits(cpus, rng):
    """device= reaches the engine: the CUDA kernels, run on the host, agree bit for bit."""
    x = put(cpus, data(rng), (4, 2), ("a", "b"), P("a"))
    check(x, 30, device="cuda-emulated")


# -------------------------------------------------------------------- non-finite


def test_nonfinite_policy(cpus, rng):
    x = put(cpus, data(rng), (4, 2), ("a", "b"), P("a", "b"))
    with pytest.warns(histgpu.NonFiniteWarning) as rec:
        hjax.histogram(x)
    assert len([w for w in rec if w.category is histgpu.NonFiniteWarning]) == 1  # one warning, global counts
    assert "11 NaN, 1 +Inf and 1 -Inf" in str(rec[0].message)
    with pytest.raises(ValueError, match="nonfinite='raise'"):
        hjax.histogram(x, nonfinite="raise")
    with pytest.raises(ValueError, match="nonfinite='raise'"):
        hjax.histogram_v1(x, nonfinite="raise")
    clean = put(cpus, np.nan_to_num(data(rng), nan=0.0, posinf=0.0, neginf=0.0), (4, 2), ("a", "b"), P("a", "b"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hjax.histogram(clean, nonfinite="raise")
        hjax.histogram_v1(clean, nonfinite="raise")


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("fn", [hjax.histogram, hjax.histogram_v1])
@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), [1.0, 2.0], 3.0, None], ids=["numpy", "list", "float", "None"])
def test_non_jax_input_is_refused(fn, bad):
    with pytest.raises(TypeError, match="expects a jax.Array"):
        fn(bad)


@pytest.mark.parametrize("buckets,exc", [("10", TypeError), (2.5, TypeError), (True, TypeError), (2**25, ValueError)])
def test_bad_buckets(cpus, buckets, exc):
    with pytest.raises(exc, match="buckets"):
        hjax.histogram(jnp.ones(8), buckets)


def test_bad_options(cpus):
    with pytest.raises(ValueError, match="nonfinite"):
        hjax.histogram(jnp.ones(8), nonfinite="ignore")
    with pytest.raises(ValueError, match="nonfinite"):
        hjax.histogram_v1(jnp.ones(8), nonfinite="ignore")
    with pytest.raises(ValueError, match="device"):
        hjax.histogram(jnp.ones(8), device="tpu")
    with pytest.raises(ValueError, match="num_threads"):
        hjax.histogram(jnp.ones(8), num_threads=0)


def test_tracers_are_refused_with_a_pointer_to_the_jit_form():
    @jax.jit
    def f(x):
        hjax.histogram(x)
        return x

    with pytest.raises(TypeError, match="log_histograms_jit"):
        f(jnp.ones(8))
    with pytest.raises(TypeError, match="traced"):
        jax.grad(lambda x: hjax.histogram_v1(x).num + x.sum())(jnp.ones(3))


def test_deleted_arrays_are_refused(cpus):
    x = jnp.arange(8.0)
    x.delete()
    with pytest.raises(ValueError, match="deleted"):
        hjax.histogram(x)


def test_arrays_that_are_not_fully_addressable_need_jax_distributed(monkeypatch):
    """In one process every array is fully addressable; the check is exercised on a stand-in
    (the real multi-process case is tests/jax/test_distributed.py)."""
    class NotAddressable:
        is_fully_addressable = False

    assert jax.process_count() == 1
    with pytest.raises(RuntimeError, match="jax.distributed.initialize"):
        hjax._check_processes(NotAddressable(), "histogram")
