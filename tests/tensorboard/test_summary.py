"""histgpu.summary against tf.summary.histogram: the same events, the same behaviour."""

from __future__ import annotations

import itertools
from typing import Callable, List, Tuple

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import histgpu  # noqa: E402
import histgpu.summary as hsummary  # noqa: E402

from . import tb_helpers as H  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

_counter = itertools.count()


def write_both(tmp_path, body: Callable[[object], None]) -> Tuple[list, list]:
    """Run ``body(module)`` with tf.summary and with histgpu.summary into two logdirs."""
    n = next(_counter)
    out = []
    for mod, name in ((tf.summary, "tf"), (hsummary, "histgpu")):
        logdir = str(tmp_path / f"{name}{n}")
        writer = tf.summary.create_file_writer(logdir)
        with writer.as_default():
            body(mod)
        writer.close()
        out.append(H.summary_values(logdir))
    return out[0], out[1]


def assert_same_events(want: list, got: list) -> None:
    assert [(s, v.tag) for s, v in got] == [(s, v.tag) for s, v in want]
    for (_, w), (_, g) in zip(want, got):
        assert H.comparable(g) == H.comparable(w), w.tag


class CountingCompute:
    """Wraps histgpu.compute/compute_v1 to prove when nothing is computed."""

    def __init__(self, monkeypatch):
        self.calls: List[str] = []
        for name in ("compute", "compute_v1"):
            original = getattr(histgpu, name)

            def wrapped(*a, __name=name, __original=original, **k):
                self.calls.append(__name)
                return __original(*a, **k)

            monkeypatch.setattr(histgpu, name, wrapped)


rng = np.random.default_rng(12345)
CASES = {
    "float32_normal": rng.standard_normal(10_000).astype(np.float32),
    "float64_uniform": rng.uniform(-3, 5, size=(40, 50)),
    "float16": rng.standard_normal(999).astype(np.float16),
    "int32": rng.integers(-1000, 1000, size=777).astype(np.int32),
    "int64_above_2_53": np.array([2**53 + 1, 2**60 + 7, -(2**62), 5], dtype=np.int64),
    "uint8": rng.integers(0, 255, size=300).astype(np.uint8),
    "bool": rng.integers(0, 2, size=50).astype(bool),
    "empty": np.zeros((0,), np.float32),
    "single": np.array([3.5]),
    "constant": np.full((7, 3), -2.25),
    "scalar_0d": np.float64(1.5),
    "two_values": np.array([0.0, 1.0]),
    "tiny_range": np.array([1.0, np.nextafter(1.0, 2.0), 1.0]),
    "huge_range": np.array([-1e300, 1e300, 0.0]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("buckets", [None, 1, 7])
def test_same_event_as_tf_eager(tmp_path, case, buckets):
    data = CASES[case]

    def body(mod):
        assert bool(mod.histogram("h", data, step=3, buckets=buckets))

    assert_same_events(*write_both(tmp_path, body))


@pytest.mark.parametrize("buckets", [0, -4, 2, 30, 257])
def test_same_event_bucket_counts(tmp_path, buckets):
    data = CASES["float32_normal"]
    assert_same_events(*write_both(tmp_path, lambda mod: mod.histogram("h", data, step=0, buckets=buckets)))


def test_same_event_python_inputs_and_variables(tmp_path):
    """Lists and Python floats become float32 in TF; histgpu must see the same values."""
    import keras

    variable = tf.Variable(rng.standard_normal((5, 4)), dtype=tf.float32)
    layer = keras.layers.Dense(6)
    layer.build((None, 9))
    bf16 = tf.constant(rng.standard_normal(100), dtype=tf.bfloat16)

    def body(mod):
        mod.histogram("list", [0.1, 0.2, 0.7, 1e-3], step=0)
        mod.histogram("float", 0.1, step=0)
        mod.histogram("int", 7, step=0)
        mod.histogram("tensor", tf.constant([[1.0, 2.0], [3.0, 9.0]]), step=0)
        mod.histogram("variable", variable, step=0)
        mod.histogram("keras_variable", layer.kernel, step=0)
        mod.histogram("bfloat16", bf16, step=0)
        mod.histogram("strided", tf.constant(CASES["float64_uniform"])[::3, ::-2], step=0)

    assert_same_events(*write_both(tmp_path, body))


def test_same_event_name_scopes_description_and_steps(tmp_path):
    def body(mod):
        with tf.name_scope("outer"):
            with tf.name_scope("inner"):
                mod.histogram("weights", CASES["float32_normal"], step=1, description="**bold** text")
            mod.histogram("odd name:with/chars", CASES["int32"], step=np.int64(2**40))
        mod.histogram("step_tensor", CASES["float16"], step=tf.constant(5, tf.int64))

    assert_same_events(*write_both(tmp_path, body))


def test_same_event_set_step(tmp_path):
    def body(mod):
        tf.summary.experimental.set_step(11)
        try:
            mod.histogram("a", CASES["float64_uniform"])
            step = tf.Variable(4, dtype=tf.int64)
            tf.summary.experimental.set_step(step)
            mod.histogram("b", CASES["int32"])
            step.assign(9)
            mod.histogram("b", CASES["int32"] * 2)
        finally:
            tf.summary.experimental.set_step(None)

    assert_same_events(*write_both(tmp_path, body))


def test_same_event_in_tf_function(tmp_path):
    def body(mod):
        step = tf.Variable(0, dtype=tf.int64)
        tf.summary.experimental.set_step(step)

        @tf.function
        def f(x, k):
            with tf.name_scope("fn"):
                a = mod.histogram("dynamic_buckets", x, buckets=k)
            b = mod.histogram("static", x * 2.0, step=step + 100, buckets=5)
            c = mod.histogram("default", tf.reshape(x, [-1, 4]))
            return tf.stack([a, b, c])

        try:
            for i in range(3):
                step.assign(i)
                x = tf.constant(np.random.default_rng(i).standard_normal(64 * (i + 1)), tf.float32)
                assert f(x, tf.constant(3 + i, tf.int32)).numpy().all()
        finally:
            tf.summary.experimental.set_step(None)

    assert_same_events(*write_both(tmp_path, body))


def test_record_if_false_computes_nothing(tmp_path, monkeypatch):
    counter = CountingCompute(monkeypatch)
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default(), tf.summary.record_if(False):
        assert not bool(hsummary.histogram("x", CASES["float32_normal"], step=0))
        assert not bool(hsummary.histogram_v1("y", CASES["float32_normal"], step=0))
        assert not bool(hsummary.histogram("no_step_is_fine_when_not_recording", [1.0]))

        @tf.function
        def f(x):
            return hsummary.histogram("g", x, step=1), hsummary.histogram_v1("g1", x, step=1)

        assert not any(bool(r) for r in f(tf.constant([1.0, 2.0])))
    writer.close()
    assert counter.calls == []
    assert H.summary_values(str(tmp_path / "run")) == []


def test_record_if_callable_per_step(tmp_path, monkeypatch):
    counter = CountingCompute(monkeypatch)
    step = tf.Variable(0, dtype=tf.int64)

    def body(mod):
        with tf.summary.record_if(lambda: tf.equal(step % 2, 0)):

            @tf.function
            def f(x):
                return mod.histogram("every_other", x, step=step)

            for i in range(5):
                step.assign(i)
                f(tf.constant([float(i), 1.0, 2.0]))

    want, got = write_both(tmp_path, body)
    assert_same_events(want, got)
    assert [s for s, _ in got] == [0, 2, 4]
    assert len(counter.calls) == 3


def test_no_default_writer_returns_false(monkeypatch):
    counter = CountingCompute(monkeypatch)
    assert not bool(tf.summary.histogram("x", [1.0], step=0))
    assert not bool(hsummary.histogram("x", [1.0], step=0))
    assert not bool(hsummary.histogram("x", [1.0]))  # no step either: still just False
    assert not bool(hsummary.histogram_v1("x", [1.0], step=0))
    assert counter.calls == []


def test_no_step_raises_like_tf(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default():
        with pytest.raises(ValueError, match="No step set") as want:
            tf.summary.histogram("x", [1.0])
        with pytest.raises(ValueError, match="No step set") as got:
            hsummary.histogram("x", [1.0])
        assert str(got.value) == str(want.value)
        with pytest.raises(ValueError, match="No step set"):
            hsummary.histogram_v1("x", [1.0])
    writer.close()


def test_invalid_buckets_rejected(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default():
        with pytest.raises((TypeError, ValueError)):
            tf.summary.histogram("x", [1.0], step=0, buckets=2.5)
        with pytest.raises(TypeError):
            hsummary.histogram("x", [1.0], step=0, buckets=2.5)
    writer.close()


# Values tf.summary.histogram refuses with TypeError: bool of every kind, floats, strings.
_TYPE_ERROR_BUCKETS = {
    "True": lambda: True,
    "False": lambda: False,
    "np.True_": lambda: np.bool_(True),
    "float": lambda: 3.0,
    "str": lambda: "3",
    "bool tensor": lambda: tf.constant(True),
    "float tensor": lambda: tf.constant(3.0),
}


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("case", list(_TYPE_ERROR_BUCKETS))
def test_bool_and_float_buckets_raise_type_error_like_tf(tmp_path, case, graph):
    buckets = _TYPE_ERROR_BUCKETS[case]()
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    for mod in (tf.summary, hsummary):  # TensorFlow is the oracle: it raises TypeError too

        def call(mod=mod):
            return mod.histogram("x", [1.0, 2.0, 3.0], step=0, buckets=buckets)

        with writer.as_default(), pytest.raises(TypeError):
            tf.function(call)() if graph else call()
    writer.close()
    assert H.summary_values(str(tmp_path / "run")) == []  # nothing was written


def test_bool_buckets_raise_even_when_not_recording():
    # No default writer: TF would only find out at the first step that writes.
    with pytest.raises(TypeError, match="bool"):
        hsummary.histogram("x", [1.0], step=0, buckets=True)


def test_non_scalar_bucket_tensor_raises_value_error_like_tf(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default():
        for mod in (tf.summary, hsummary):
            with pytest.raises(ValueError):
                mod.histogram("x", [1.0], step=0, buckets=tf.constant([3]))
    writer.close()


def test_integer_bucket_tensors_and_variables_accepted(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    with writer.as_default():
        assert bool(hsummary.histogram("a", [1.0, 2.0], step=0, buckets=tf.constant(4)))
        assert bool(hsummary.histogram("b", [1.0, 2.0], step=0, buckets=tf.Variable(5)))
        assert bool(hsummary.histogram("c", [1.0, 2.0], step=0, buckets=np.array(6)))
    writer.close()
    shapes = {v.tag: tuple(d.size for d in v.tensor.tensor_shape.dim) for _, v in H.summary_values(str(tmp_path / "run"))}
    assert shapes == {"a": (4, 3), "b": (5, 3), "c": (6, 3)}


# ---------------------------------------------------------------- non-finite values


def _bad_data() -> np.ndarray:
    x = rng.standard_normal(1000).astype(np.float32)
    x[[3, 10, 500]] = np.nan
    x[[7, 8]] = np.inf
    x[999] = -np.inf
    return x


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_nonfinite_buckets_of_finite_part_and_companion_scalars(tmp_path, graph):
    bad = _bad_data()
    finite = bad[np.isfinite(bad)]
    logdir = str(tmp_path / "run")
    writer = tf.summary.create_file_writer(logdir)
    fn = tf.function(hsummary.histogram) if graph else hsummary.histogram
    with writer.as_default(), pytest.warns(histgpu.NonFiniteWarning):
        assert bool(fn("layer/w", tf.constant(bad), step=4))
        assert bool(fn("layer/w", tf.constant(finite), step=5))  # finite: no companions
    writer.close()

    values = H.summary_values(logdir)
    hist = [(s, v) for s, v in values if v.tag == "layer/w"]
    ref_dir = str(tmp_path / "ref")
    ref = tf.summary.create_file_writer(ref_dir)
    with ref.as_default():
        tf.summary.histogram("layer/w", finite, step=4)
        tf.summary.histogram("layer/w", finite, step=5)
    ref.close()
    assert_same_events(H.summary_values(ref_dir), hist)

    from tensorboard.util import tensor_util

    scalars = {v.tag: (s, tensor_util.make_ndarray(v.tensor).item(), v.metadata.plugin_data.plugin_name)
               for s, v in values if v.tag != "layer/w"}
    assert scalars == {
        "layer/w/nonfinite/nan": (4, 3.0, "scalars"),
        "layer/w/nonfinite/posinf": (4, 2.0, "scalars"),
        "layer/w/nonfinite/neginf": (4, 1.0, "scalars"),
    }
    # TensorBoard's reading stack sees them as scalar time series.
    reader = H.TBReader(logdir)
    assert reader.scalar_series(".", "layer/w/nonfinite/nan") == [(4, 3.0)]


def test_nonfinite_raise_writes_nothing(tmp_path):
    logdir = str(tmp_path / "run")
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        with pytest.raises(ValueError, match="nonfinite"):
            hsummary.histogram("x", _bad_data(), step=0, nonfinite="raise")
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.function(lambda x: hsummary.histogram("x", x, step=0, nonfinite="raise"))(tf.constant(_bad_data()))
        with pytest.raises(ValueError):
            hsummary.histogram_v1("x", _bad_data(), step=0, nonfinite="raise")
    writer.close()
    assert H.summary_values(logdir) == []


# ------------------------------------------------------------------------ v1 format


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_histogram_v1_matches_tf_op(tmp_path, graph):
    data = CASES["float32_normal"]
    logdir = str(tmp_path / "run")
    writer = tf.summary.create_file_writer(logdir)
    fn = tf.function(hsummary.histogram_v1) if graph else hsummary.histogram_v1
    with writer.as_default(), tf.name_scope("scope"):
        assert bool(fn("v1", tf.constant(data), step=6))
    writer.close()
    [(step, value)] = H.summary_values(logdir)
    want = H.tf_v1_histo(data)
    assert step == 6 and value.tag == ("v1" if graph else "scope/v1")
    got = value.histo
    assert list(got.bucket_limit) == list(want.bucket_limit) and list(got.bucket) == list(want.bucket)
    assert (got.min, got.max, got.num) == (want.min, want.max, want.num)
    assert got.sum == H.exact_sum(data) and got.sum_squares == H.exact_sum_squares(data)


def test_histogram_v1_nonfinite_companions_in_same_event(tmp_path):
    logdir = str(tmp_path / "run")
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(), pytest.warns(histgpu.NonFiniteWarning):
        hsummary.histogram_v1("v1", _bad_data(), step=2)
    writer.close()
    events = [e for e in H.read_events(logdir) if e.HasField("summary")]
    assert len(events) == 1
    assert [v.tag for v in events[0].summary.value] == ["v1"] + [f"v1/{s}" for s in hsummary.NONFINITE_SUFFIXES]
    assert events[0].summary.value[0].histo.num == 994


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="no GPU visible to TensorFlow")
def test_gpu_tensor_same_event(tmp_path):  # pragma: no cover - GPU machines only
    with tf.device("GPU:0"):
        data = tf.random.stateless_normal([1 << 16], seed=[1, 2])

    assert_same_events(*write_both(tmp_path, lambda mod: mod.histogram("gpu", data, step=0)))
