"""histgpu.jax.log_histograms_jit: v2 histograms logged from inside jitted code. The events equal
those of log_histograms on the same arrays outside jit, byte for byte; the callbacks carry O(k)
numbers, never the arrays; nothing is all-gathered."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import histgpu

from ..tensorboard.tb_helpers import read_events
from .helpers import mesh, same_v2

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P

import histgpu._jax_jit as jj  # noqa: E402
import histgpu.jax as hjax  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")


def summaries(logdir):
    return {e.step: e.summary.SerializeToString(deterministic=True) for e in read_events(str(logdir))
            if e.HasField("summary")}


def leaves(rng, dtype=np.float32):
    w = (rng.standard_normal((16, 24)) * 2).astype(np.float32)
    w[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    w[5, 5] = 0.0
    return {
        "params": {"Dense_0": {"kernel": w.astype(dtype), "bias": np.zeros(24, dtype)}},
        "tiny": (rng.integers(-40, 40, (8, 8)) * np.float32(1e-45)).astype(np.float32).astype(dtype),  # subnormal
        "const": np.full((8,), 3.25, dtype),
        "empty": np.zeros((0, 8), dtype),
        "nan": np.full((8, 2), np.nan, dtype),
    }


SPECS = {"params": {"Dense_0": {"kernel": P("a", "b"), "bias": P("b")}}, "tiny": P(None, "a"), "const": P(),
         "empty": P(None, "b"), "nan": P("a")}


def shard(tree, m):
    return jax.tree_util.tree_map(lambda a, s: jax.device_put(a, NamedSharding(m, s)), tree, SPECS)


# Each case compiles a sharded step (about a second per leaf on two cores): a chosen few.
CASES = [(True, np.float32, 30), (False, np.float32, 30), (True, np.float32, 1), (True, np.float32, 2),
         (False, np.float32, 100), (True, jnp.bfloat16, 30), (False, np.float16, 7)]


@pytest.mark.parametrize("explicit,dtype,bins", CASES,
                         ids=[f"{'explicit' if e else 'auto'}-{np.dtype(d).name}-{b}" for e, d, b in CASES])
def test_events_equal_those_logged_outside_jit(cpus, rng, tmp_path, explicit, dtype, bins):
    m = mesh(cpus, (4, 2), ("a", "b"), explicit)
    tree = shard(leaves(rng, dtype), m)

    @jax.jit
    def step_fn(tree, step):
        new = jax.tree_util.tree_map(lambda a: a * 1.5, tree)
        hjax.log_histograms_jit(w, new, step, bins=bins, prefix="in")
        return new

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        with histgpu.SummaryWriter(tmp_path / "jit") as w, histgpu.SummaryWriter(tmp_path / "out") as ref:
            outs = []
            for step in range(2):
                tree = step_fn(tree, step)
                outs.append(tree)
            jax.effects_barrier()
            for step, t in enumerate(outs):
                hjax.log_histograms(ref, t, step, bins=bins, prefix="in")
    got, want = summaries(tmp_path / "jit"), summaries(tmp_path / "out")
    assert sorted(got) == [0, 1] and got == want


def test_results_equal_histgpu_compute_of_the_gathered_arrays(cpus, rng):
    m = mesh(cpus, (2, 4), ("a", "b"))
    tree = shard(leaves(rng), m)
    seen = {}
    jj.log_v2(object(), [], 0, 30, "omit", None)  # no leaves: nothing traced

    @jax.jit
    def f(tree):
        jj.log_v2(object(), hjax.tree_tags(tree), 0, 30, "omit", lambda w, r, s, t: seen.update(r))
        return tree

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        f(tree)
        jax.effects_barrier()
        for tag, leaf in hjax.tree_tags(tree):
            assert same_v2(seen[tag], histgpu.compute(np.asarray(leaf), 30)), tag


def test_the_arrays_stay_on_their_devices(cpus, rng, monkeypatch):
    """The callbacks get O(k) numbers per leaf, and the compiled step has no all-gather."""
    m = mesh(cpus, (4, 2), ("a", "b"))
    big = jax.device_put(rng.standard_normal((512, 256)).astype(np.float32), NamedSharding(m, P("a", "b")))
    sizes = []
    real_debug, real_pure = jax.debug.callback, jax.pure_callback

    def debug_spy(fn, *args, **kw):
        sizes.extend(int(np.prod(np.shape(a))) for a in jax.tree_util.tree_leaves(args))
        return real_debug(fn, *args, **kw)

    def pure_spy(fn, shape, *args, **kw):
        sizes.extend(int(np.prod(np.shape(a))) for a in jax.tree_util.tree_leaves(args))
        return real_pure(fn, shape, *args, **kw)

    monkeypatch.setattr(jj.jax.debug, "callback", debug_spy)
    monkeypatch.setattr(jj.jax, "pure_callback", pure_spy)

    def f(x, step):
        hjax.log_histograms_jit(None, {"w": x}, step, bins=64)
        return x * 2

    hlo = jax.jit(f).lower(big, 3).compile().as_text()
    assert sizes and max(sizes) <= 64, sizes  # range keys, 4 counts, 64 counts; never 131072 values
    assert "all-gather" not in hlo
    jax.jit(f)(big, 3)
    jax.effects_barrier()


def test_float64_leaves_with_x64(cpus, rng, tmp_path, x64):
    m = mesh(cpus, (4, 2), ("a", "b"))
    x = rng.standard_normal((16, 8)) * 1e300
    x[0, 0], x[0, 1], x[0, 2] = -1.7e308, 1.7e308, 5e-324  # overflowing range, a subnormal
    arr = jax.device_put(x, NamedSharding(m, P("a", "b")))
    assert arr.dtype == np.float64
    with histgpu.SummaryWriter(tmp_path / "jit") as w, histgpu.SummaryWriter(tmp_path / "out") as ref:
        jax.jit(lambda a: hjax.log_histograms_jit(w, {"w": a}, 4, bins=30))(arr)
        jax.effects_barrier()
        hjax.log_histograms(ref, {"w": arr}, 4, bins=30)
    assert summaries(tmp_path / "jit") == summaries(tmp_path / "out")


def test_it_also_runs_eagerly(rng, tmp_path):
    with histgpu.SummaryWriter(tmp_path / "a") as w, histgpu.SummaryWriter(tmp_path / "b") as ref:
        x = jnp.asarray(rng.standard_normal(100).astype(np.float32))
        hjax.log_histograms_jit(w, {"x": x}, 2, bins=5)
        jax.effects_barrier()
        hjax.log_histograms(ref, {"x": x}, 2, bins=5)
    assert summaries(tmp_path / "a") == summaries(tmp_path / "b")


def test_nonfinite_in_jit_warns_once_per_step(rng):
    x = jnp.array([1.0, np.nan, 2.0, np.inf])

    @jax.jit
    def f(x):
        hjax.log_histograms_jit(None, {"a": x, "b": x}, 0, bins=3)
        return x

    with pytest.warns(histgpu.NonFiniteWarning, match="2 NaN, 2 \\+Inf"):
        f(x)
        jax.effects_barrier()


def test_bad_arguments_are_refused_at_trace_time(rng, tmp_path):
    def traced(fn):
        return jax.jit(fn)(jnp.ones(4))

    with pytest.raises(ValueError, match="bins='tensorflow'.*outside jit"):
        traced(lambda x: hjax.log_histograms_jit(None, {"x": x}, 0, bins="tensorflow"))
    with pytest.raises(TypeError, match="buckets"):
        traced(lambda x: hjax.log_histograms_jit(None, {"x": x}, 0, bins=2.5))
    with pytest.raises(TypeError, match="int32.*supported"):
        traced(lambda x: hjax.log_histograms_jit(None, {"x": x.astype(jnp.int32)}, 0))
    with pytest.raises(TypeError, match="SummaryWriter"):
        traced(lambda x: hjax.log_histograms_jit(str(tmp_path), {"x": x}, 0))
    with pytest.raises(ValueError, match="nonfinite"):
        traced(lambda x: hjax.log_histograms_jit(None, {"x": x}, 0, nonfinite="keep"))


# --------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16])
@pytest.mark.parametrize("k", [2, 3, 30, 257])
def test_thresholds_are_the_engines_over_every_value_of_a_16_bit_type(rng, dtype, k):
    """Exhaustively: for random ranges, #{j : x >= t_j} is the bucket histgpu's engine gives
    each of the (up to 65,536) values of the type inside the range."""
    dtype = np.dtype(dtype)
    every = np.arange(-2**15, 2**15, dtype=np.int64)
    values = jj.keys_to_values(every, dtype)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(values.astype(np.float64))
    for _ in range(4):
        lo, hi = np.sort(rng.choice(values[finite], 2, replace=False).astype(np.float64))
        keys = jj.values_to_keys(np.array([lo, hi]), dtype)
        inside = every[(every >= keys[0]) & (every <= keys[1])]
        t = jj.threshold_keys(int(keys[0]), int(keys[1]), k, dtype)
        mine = np.searchsorted(t, inside, side="right")
        spec = histgpu.sharded.RangeInfo(lo, hi, 2**40)
        want = np.repeat(np.arange(k), histgpu.sharded.local_counts(jj.keys_to_values(inside, dtype), spec, k))
        assert np.array_equal(mine, want)


def test_a_callback_thread_flushes_subnormals_and_the_host_work_does_not():
    """Why run_clean exists: XLA's callback threads compute with subnormals flushed to zero."""
    seen = {}

    def cb(x):
        seen["flushes"] = jj.flushes_subnormals()
        seen["clean"] = jj.run_clean(jj.flushes_subnormals)
        seen["counts"] = jj.run_clean(lambda: histgpu.compute(np.array([1e-45, 0.0], np.float32), 2).counts)

    jj.prepare()
    jax.jit(lambda x: jax.debug.callback(cb, x))(jnp.ones(2))
    jax.effects_barrier()
    assert seen["clean"] is False and list(seen["counts"]) == [1, 1]
    assert not jj.flushes_subnormals()  # this (the test's) thread
