"""Logging a JAX training loop's parameters and gradients (flax/optax-style pytrees, sharded) to
histgpu.SummaryWriter: tags follow the pytree paths, and each event is the one
``SummaryWriter.add_histograms`` writes for the gathered arrays, byte for byte."""
from __future__ import annotations

import collections

import numpy as np
import pytest

import histgpu

from ..tensorboard.tb_helpers import TBReader, read_events
from .helpers import mesh

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P

import histgpu.jax as hjax  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

# optax's Adam state is a tuple holding this namedtuple (and an EmptyState); built here so that
# neither flax nor optax is needed
ScaleByAdamState = collections.namedtuple("ScaleByAdamState", "count mu nu")
EmptyState = collections.namedtuple("EmptyState", "")


def init_params(rng, m=None):
    """A flax-style parameter dict of Dense(16) -> Dense(4); sharded over `m` when given."""
    p = {"params": {
        "Dense_0": {"kernel": rng.standard_normal((8, 16)).astype(np.float32) * 0.3, "bias": np.zeros(16, np.float32)},
        "Dense_1": {"kernel": rng.standard_normal((16, 4)).astype(np.float32) * 0.3, "bias": np.zeros(4, np.float32)},
    }}
    if m is None:
        return jax.tree_util.tree_map(jnp.asarray, p)
    specs = {"params": {"Dense_0": {"kernel": P(None, "b"), "bias": P("b")},   # model-parallel over b
                        "Dense_1": {"kernel": P("b", None), "bias": P()}}}     # replicated over a
    return jax.tree_util.tree_map(lambda a, s: jax.device_put(a, NamedSharding(m, s)), p, specs)


def loss_fn(params, x, y):
    h = jnp.tanh(x @ params["params"]["Dense_0"]["kernel"] + params["params"]["Dense_0"]["bias"])
    out = h @ params["params"]["Dense_1"]["kernel"] + params["params"]["Dense_1"]["bias"]
    return jnp.mean((out - y) ** 2)


def adam_init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return (ScaleByAdamState(jnp.zeros((), jnp.int32), zeros, zeros), EmptyState())


@jax.jit
def train_step(params, opt, x, y):
    grads = jax.grad(loss_fn)(params, x, y)
    adam = opt[0]
    count = adam.count + 1
    mu = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, adam.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, adam.nu, grads)
    params = jax.tree_util.tree_map(lambda p, m, v: p - 0.01 * m / (jnp.sqrt(v) + 1e-8), params, mu, nu)
    return params, (ScaleByAdamState(count, mu, nu), opt[1]), grads


PARAM_TAGS = ["params/Dense_0/bias", "params/Dense_0/kernel", "params/Dense_1/bias", "params/Dense_1/kernel"]


# ------------------------------------------------------------------------------ tags


def test_tags_follow_pytree_paths(rng):
    params = init_params(rng)
    assert [t for t, _ in hjax.tree_tags(params)] == PARAM_TAGS
    assert [t for t, _ in hjax.tree_tags(params, "grads")] == ["grads/" + t for t in PARAM_TAGS]
    opt = adam_init(params)
    assert [t for t, _ in hjax.tree_tags(opt)] == ["0/count"] + [f"0/mu/{t}" for t in PARAM_TAGS] + [
        f"0/nu/{t}" for t in PARAM_TAGS]
    assert hjax.tree_tags({"a": [1.0, None, 2.0], "b": (3.0,)}) == [("a/0", 1.0), ("a/2", 2.0), ("b/0", 3.0)]
    x = jnp.ones(3)
    assert hjax.tree_tags(x) == [("value", x)] and hjax.tree_tags(x, "w") == [("w", x)]
    assert hjax.tree_tags({}) == []


def test_tag_clashes_and_bad_prefixes_are_refused():
    with pytest.raises(ValueError, match="same tag|get the tag"):
        hjax.tree_tags({"a/b": 1.0, "a": {"b": 2.0}})
    with pytest.raises(TypeError, match="prefix"):
        hjax.tree_tags({"a": 1.0}, prefix="")
    with pytest.raises(TypeError, match="prefix"):
        hjax.tree_tags({"a": 1.0}, prefix=3)


# ------------------------------------------------------------------- training loop


def _summaries(logdir):
    return {e.step: e.summary.SerializeToString(deterministic=True) for e in read_events(str(logdir))
            if e.HasField("summary")}


@pytest.mark.parametrize("bins", ["tensorflow", 30])
@pytest.mark.parametrize("sharded", [True, False], ids=["sharded", "one-device"])
def test_training_loop_logs_what_add_histograms_writes(cpus, rng, tmp_path, bins, sharded):
    m = mesh(cpus, (4, 2), ("a", "b"), explicit=False) if sharded else None
    params = init_params(rng, m)
    opt = adam_init(params)
    xs = rng.standard_normal((5, 32, 8)).astype(np.float32)
    ys = rng.standard_normal((5, 32, 4)).astype(np.float32)
    with histgpu.SummaryWriter(tmp_path / "jax") as w, histgpu.SummaryWriter(tmp_path / "ref") as ref:
        for step in range(5):
            params, opt, grads = train_step(params, opt, xs[step], ys[step])
            tree = {"params": params, "grads": grads, "opt": opt}
            out = hjax.log_histograms(w, tree, step, bins=bins, walltime=1000.0 + step)
            # the reference: the same tags, each array gathered to the host first; v2 as the
            # writer's layout="v2" writes it, v1 as TensorFlow's collapsed proto
            gathered = {tag: np.asarray(leaf) for tag, leaf in hjax.tree_tags(tree)}
            if bins == "tensorflow":
                ref.add_computed({t: histgpu.compute_v1(a) for t, a in gathered.items()}, step, 1000.0 + step)
            else:
                ref.add_histograms(gathered, step, bins=bins, walltime=1000.0 + step, layout="v2")
            assert list(out) == list(gathered)
    got, want = _summaries(tmp_path / "jax"), _summaries(tmp_path / "ref")
    assert sorted(got) == list(range(5)) and got == want
    tags = TBReader(str(tmp_path)).histogram_tags()["jax"]
    assert {"params/params/Dense_0/kernel", "grads/params/Dense_1/bias", "opt/0/mu/params/Dense_0/kernel"} <= set(tags)
    if sharded:
        k = params["params"]["Dense_0"]["kernel"]
        assert not k.sharding.is_fully_replicated and len(k.sharding.device_set) == 8


def test_nonfinite_leaves_get_companion_scalars_and_one_warning(cpus, rng, tmp_path):
    m = mesh(cpus, (4, 2), ("a", "b"))
    g = rng.standard_normal((16, 8)).astype(np.float32)
    g[0, :3] = np.nan
    g[1, 0] = np.inf
    tree = {"grads": {"w": jax.device_put(g, NamedSharding(m, P("a", "b"))), "b": jnp.array([np.nan, 1.0])}}
    with histgpu.SummaryWriter(tmp_path) as w:
        with pytest.warns(histgpu.NonFiniteWarning) as rec:
            out = hjax.log_histograms(w, tree, 7, bins=10)
        assert len(rec) == 1 and "4 NaN, 1 +Inf" in str(rec[0].message)
        assert out["grads/w"].nan == 3 and out["grads/w"].posinf == 1 and out["grads/b"].nan == 1
        with pytest.raises(ValueError, match="nonfinite='raise'"):
            hjax.log_histograms(w, tree, 8, nonfinite="raise")
    events = [e for e in read_events(str(tmp_path)) if e.HasField("summary")]
    assert [e.step for e in events] == [7]  # the refused step wrote nothing
    tags = [v.tag for v in events[0].summary.value]
    assert tags == ["grads/b", "grads/b/nonfinite/nan", "grads/b/nonfinite/posinf", "grads/b/nonfinite/neginf",
                    "grads/w", "grads/w/nonfinite/nan", "grads/w/nonfinite/posinf", "grads/w/nonfinite/neginf"]


def test_without_a_writer_it_only_computes(cpus, rng):
    """The form the processes without a writer use in a multi-process job."""
    params = init_params(rng, mesh(cpus, (4, 2), ("a", "b")))
    out = hjax.log_histograms(None, params, 0, bins=12)
    for tag, leaf in hjax.tree_tags(params):
        assert np.array_equal(out[tag].to_tensor(), histgpu.histogram(np.asarray(leaf), 12))


def test_numpy_and_python_leaves_are_logged_too(tmp_path):
    with histgpu.SummaryWriter(tmp_path) as w:
        out = hjax.log_histograms(w, {"lr": 0.01, "w": np.arange(6.0)}, 1)
    assert out["lr"].num == 1 and out["w"].num == 6


def test_bad_arguments(tmp_path):
    tree = {"w": jnp.ones(4)}
    with pytest.raises(TypeError, match="SummaryWriter"):
        hjax.log_histograms("logs", tree, 0)
    with histgpu.SummaryWriter(tmp_path) as w:
        with pytest.raises(ValueError, match="bins"):
            hjax.log_histograms(w, tree, 0, bins="auto")
        with pytest.raises(TypeError, match="global_step"):
            hjax.log_histograms(w, tree, 1.5)
        with pytest.raises(ValueError, match="nonfinite"):
            hjax.log_histograms(w, tree, 0, nonfinite="drop")

        @jax.jit
        def f(t):
            hjax.log_histograms(w, t, 0)
            return t

        with pytest.raises(TypeError, match="log_histograms_jit"):
            f(tree)
    with pytest.raises(RuntimeError, match="closed"):
        hjax.log_histograms(w, tree, 0)
