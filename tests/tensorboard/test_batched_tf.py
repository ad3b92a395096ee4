"""TensorFlow's side of issue 14: ``histgpu.summary.histograms`` writes what a loop of
``histgpu.summary.histogram`` writes, through TensorFlow's own writer; TensorFlow tensors and
variables are read in place; the Keras callback's batched logging equals per-weight logging.
"""

from __future__ import annotations

import glob
import os
import warnings
from typing import Any, Callable, List

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import histgpu  # noqa: E402
import histgpu.summary as hs  # noqa: E402
from histgpu import _input as _in  # noqa: E402
from histgpu.keras import HistogramCallback  # noqa: E402

from . import faults  # noqa: E402
from . import tb_helpers as H  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning"),
    # Raised inside Keras' fit (its own numpy conversion), not by histgpu.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

rng = np.random.default_rng(1414)


def _events(tmp_path, fn: Callable[[], Any], name: str = "run") -> List[Any]:
    d = tmp_path / name
    n = 0
    while d.exists():
        n += 1
        d = tmp_path / f"{name}{n}"
    w = tf.summary.create_file_writer(str(d))
    with w.as_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        fn()
    w.close()
    (path,) = glob.glob(str(d / "events.out.tfevents.*"))
    return [e for e in faults.strict_events(path) if e.HasField("summary")]


def _values_bytes(events: List[Any]) -> bytes:
    """Every summary value of `events`, serialized in order (their steps must agree)."""
    assert len({e.step for e in events}) <= 1
    return b"".join(e.summary.SerializeToString() for e in events)


def _inputs() -> List[tuple]:
    values = [
        rng.standard_normal(1000).astype(np.float32),
        tf.Variable(rng.standard_normal((64, 32)).astype(np.float32)),
        keras.Variable(np.array([-0.0, 0.0, 2.0])),
        tf.constant(np.arange(10)),
        tf.constant(rng.standard_normal(300), dtype=tf.bfloat16),
        tf.Variable(np.ones(5, np.float16)),
        [0.1, 0.2, 0.3],  # float32, as TensorFlow converts it
        3.0,
        tf.constant([True, False]),
        np.zeros(0, np.float32),
        rng.standard_normal((300, 500)).astype(np.float32),
        np.array([np.nan, 1.0, np.inf, -np.inf]),
        np.array([np.nan]),
    ]
    return [(f"t{i}/é", v) for i, v in enumerate(values)]


@pytest.mark.parametrize("kw", [{}, {"buckets": 7}, {"buckets": 0, "description": "*md*"}, {"buckets": 1}])
def test_histograms_writes_the_loops_values_eagerly(tmp_path, kw):
    pairs = _inputs()

    def loop():
        with tf.name_scope("outer"), tf.name_scope("inner"):
            for name, v in pairs:
                assert bool(hs.histogram(name, v, 5, **kw))

    def batch():
        with tf.name_scope("outer"), tf.name_scope("inner"):
            assert bool(hs.histograms(pairs, 5, **kw))

    want, got = _events(tmp_path, loop), _events(tmp_path, batch)
    assert len(want) == len(pairs) + 6 and len(got) == 1  # 6 companions; one event for the batch
    assert got[0].step == want[0].step == 5
    assert _values_bytes(got) == _values_bytes(want)
    assert got[0].summary.value[0].tag == "outer/inner/t0/é"


def test_histograms_in_tf_function(tmp_path):
    pairs = [(n, v) for n, v in _inputs() if not isinstance(v, (list, float))]

    @tf.function
    def loop(step):
        for name, v in pairs:
            hs.histogram(name, v, step, buckets=9)

    @tf.function
    def batch(step):
        return hs.histograms(pairs, step, buckets=tf.constant(9))

    want = _events(tmp_path, lambda: [loop(tf.constant(s, tf.int64)) for s in range(2)])
    got = _events(tmp_path, lambda: [batch(tf.constant(s, tf.int64)) for s in range(2)])
    assert [e.step for e in got] == [0, 1]
    for s in range(2):
        assert _values_bytes([e for e in got if e.step == s]) == _values_bytes([e for e in want if e.step == s])


def test_histograms_a_mapping_set_step_and_iterables(tmp_path):
    data = {"a": np.arange(5.0), "b": tf.Variable([1.0, 2.0])}

    def batch():
        tf.summary.experimental.set_step(11)
        try:
            hs.histograms(data)
            hs.histograms(iter(data.items()), step=12)
        finally:
            tf.summary.experimental.set_step(None)

    got = _events(tmp_path, batch)
    assert [(e.step, [v.tag for v in e.summary.value]) for e in got] == [(11, ["a", "b"]), (12, ["a", "b"])]


def test_histograms_not_recording_computes_nothing(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("computed while not recording")

    monkeypatch.setattr(hs, "_results_many", fail)
    assert not bool(hs.histograms({"a": np.ones(3)}, 1))  # no default writer
    with pytest.raises(ValueError, match="No step set"):  # a writer, no step: TensorFlow's error
        _events(tmp_path, lambda: hs.histograms({"a": np.ones(3)}))

    def off():
        with tf.summary.record_if(False):
            assert not bool(hs.histograms({"a": np.ones(3)}, 1))
            assert not bool(tf.function(lambda: hs.histograms({"a": tf.ones(3)}, tf.constant(1, tf.int64)))())

    assert _events(tmp_path, off) == []


def test_histograms_nonfinite_raise_writes_nothing(tmp_path):
    pairs = {"ok": np.ones(3), "bad": np.array([1.0, np.nan])}

    def eager():
        with pytest.raises(ValueError, match="nonfinite='raise'"):
            hs.histograms(pairs, 1, nonfinite="raise")
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.function(lambda: hs.histograms({k: tf.constant(v) for k, v in pairs.items()},
                                              tf.constant(1, tf.int64), nonfinite="raise"))()

    assert _events(tmp_path, eager) == []


def test_histograms_argument_errors():
    with pytest.raises(TypeError, match="str names"):
        hs.histograms([(1, np.ones(2))], 0)
    for bad in ([5], [np.ones(3)], 7):
        with pytest.raises(TypeError, match="pairs"):
            hs.histograms(bad, 0)
    with pytest.raises(TypeError):
        hs.histograms({"a": np.ones(2)}, 0, buckets=2.5)
    with pytest.raises(ValueError):
        hs.histograms({"a": np.ones(2)}, 0, nonfinite="nope")


def test_histograms_one_warning(tmp_path):
    def batch():
        with pytest.warns(histgpu.NonFiniteWarning) as record:
            hs.histograms({"a": np.array([np.nan, 1.0]), "b": np.array([np.inf])}, 1)
        assert len(record) == 1 and record[0].filename == __file__

    w = tf.summary.create_file_writer(str(tmp_path))
    with w.as_default():
        batch()
    w.close()


def test_histograms_no_second_event_file(tmp_path):
    w = tf.summary.create_file_writer(str(tmp_path))
    with w.as_default():
        tf.summary.scalar("loss", 1.0, step=0)
        hs.histograms({"a": np.ones(3)}, 0)
    w.close()
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 1


# ------------------------------------------------------------------- zero-copy reads


def _buffer(t: Any) -> int:
    """Address of a CPU tensor's buffer, as DLPack exports it."""
    return np.from_dlpack(tf.convert_to_tensor(t)).ctypes.data


@pytest.mark.parametrize("make", [
    lambda x: tf.constant(x),
    lambda x: tf.Variable(x),
    lambda x: keras.Variable(x),
], ids=["tensor", "tf.Variable", "keras.Variable"])
def test_tensorflow_data_read_in_place(make, monkeypatch):
    x = rng.standard_normal((256, 128)).astype(np.float32)
    data = make(x)
    for cls in {type(data), type(getattr(data, "value", data))}:
        if hasattr(cls, "numpy"):  # the copy that histgpu must not make
            monkeypatch.setattr(cls, "numpy", lambda self: pytest.fail(".numpy() called"), raising=False)
    view = _in.classify(data)
    assert view.ptr == _buffer(data.value if isinstance(data, keras.Variable) else data)
    assert np.array_equal(histgpu.histogram(data), histgpu.histogram(x))


def test_bfloat16_variable_read_in_place():
    data = tf.Variable(rng.standard_normal(1000), dtype=tf.bfloat16)
    view = _in.classify(data)
    assert view.ptr == tf.convert_to_tensor(data).__array__().ctypes.data
    assert np.array_equal(histgpu.histogram(data), histgpu.histogram(data.numpy()))


def test_variables_read_in_one_op_share_their_buffers():
    variables = [tf.Variable(rng.standard_normal(n).astype(np.float32)) for n in (10, 1000, 5)]
    read = hs._eager_inputs(variables + [keras.Variable(np.ones(4, np.float32))])
    assert [_in.classify(t).ptr for t in read[:3]] == [_buffer(v) for v in variables]


def test_a_variable_read_stays_what_it_was_after_an_update():
    v = tf.Variable(np.ones(100_000, np.float32))
    (t,) = hs._eager_inputs([v])
    v.assign_add(tf.ones(100_000))  # TensorFlow copies on write while the buffer is shared
    assert histgpu.compute(t).max == 1.0 and histgpu.compute(v).max == 2.0


# --------------------------------------------------------------------- Keras callback


def _model() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu", name="d1"),
                              keras.layers.LayerNormalization(name="n1"), keras.layers.Dense(1, name="d2")], name="net")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


class _PerWeight(HistogramCallback):
    """The callback as it logged before the batch form: one histgpu.summary.histogram per tensor."""

    def _write_histograms(self, epoch: int) -> None:
        with self._train_writer.as_default():
            for layer in self.model.layers:
                for w in layer.weights:
                    hs.histogram(f"{w.path}/histogram", w, step=epoch, buckets=self.buckets)
            if self.gradients and self._grad_captured:
                for w in self._grad_weights:
                    hs.histogram(f"{w.path}/gradient", self._grad_buffers[id(w)], step=epoch, buckets=self.buckets)
                self._grad_captured = False
            self._train_writer.flush()


@pytest.mark.parametrize("gradients", [False, True])
def test_callback_writes_what_per_weight_logging_writes(tmp_path, gradients):
    x = rng.standard_normal((64, 12)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    runs = {}
    for name, cls in (("batch", HistogramCallback), ("loop", _PerWeight)):
        cb = cls(str(tmp_path / name), histogram_freq=1, gradients=gradients, buckets=12, write_graph=False)
        _model().fit(x, y, epochs=3, batch_size=32, verbose=0, shuffle=False, callbacks=[cb])
        files = glob.glob(str(tmp_path / name / "train" / "events.out.tfevents.*"))
        assert len(files) == 1  # the histograms are in Keras' own train file
        runs[name] = [e for e in faults.strict_events(files[0]) if e.HasField("summary")
                      and any(v.tag.endswith(("/histogram", "/gradient")) for v in e.summary.value)]
    for epoch in range(3):
        got = [e for e in runs["batch"] if e.step == epoch]
        want = [e for e in runs["loop"] if e.step == epoch]
        assert len(got) == 1 and len(want) == (12 if gradients else 6)
        assert _values_bytes(got) == _values_bytes(want)


def test_callback_write_images_keeps_keras_order(tmp_path):
    x = rng.standard_normal((32, 12)).astype(np.float32)
    cb = HistogramCallback(str(tmp_path), histogram_freq=1, write_images=True, write_graph=False)
    _model().fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[cb])
    tags = [v.tag for e in faults.strict_events(H.event_files(str(tmp_path / "train"))[0]) for v in e.summary.value]
    hist = [t for t in tags if t.endswith(("/histogram", "/image"))]
    assert hist[:2] == ["net/d1/kernel/histogram", "net/d1/kernel/image"]


def test_environment_is_untouched():
    assert "HISTGPU_NUM_THREADS" not in os.environ or os.environ["HISTGPU_NUM_THREADS"]
