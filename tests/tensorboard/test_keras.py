"""histgpu.keras.HistogramCallback against keras.callbacks.TensorBoard, and the demo example."""

from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import histgpu  # noqa: E402
from histgpu.keras import HistogramCallback  # noqa: E402

from . import tb_helpers as H  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning"),
    # Raised inside Keras' own TensorBoard callback (the reference run), not by histgpu.
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

REPO = pathlib.Path(__file__).resolve().parents[2]
rng = np.random.default_rng(3)
X = rng.standard_normal((256, 20)).astype("float32")
Y = (X[:, :1] * 2 - X[:, 1:2]).astype("float32")


def make_model(optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(8, activation="relu", name="d1"), keras.layers.Dense(1, name="d2")],
        name="net",
    )
    model.compile(optimizer=optimizer or keras.optimizers.Adam(0.01), loss="mse")
    return model


def run_files(root):
    return sorted(os.path.relpath(os.path.dirname(p), root) for p in H.event_files(str(root)))


def test_same_layout_tags_and_values_as_keras_tensorboard(tmp_path):
    fit = dict(epochs=3, batch_size=64, verbose=0, validation_split=0.25, shuffle=False)
    make_model().fit(X, Y, callbacks=[keras.callbacks.TensorBoard(str(tmp_path / "keras"), histogram_freq=1)], **fit)
    make_model().fit(X, Y, callbacks=[HistogramCallback(str(tmp_path / "histgpu"), histogram_freq=1)], **fit)

    assert run_files(tmp_path / "keras") == run_files(tmp_path / "histgpu") == ["train", "validation"]
    want, got = H.TBReader(str(tmp_path / "keras")), H.TBReader(str(tmp_path / "histgpu"))
    assert got.histogram_tags() == want.histogram_tags()
    assert set(want.histogram_tags()["train"]) == {
        "net/d1/kernel/histogram",
        "net/d1/bias/histogram",
        "net/d2/kernel/histogram",
        "net/d2/bias/histogram",
    }
    for tag in want.histogram_tags()["train"]:
        w, g = want.histogram_series("train", tag), got.histogram_series("train", tag)
        assert [s for s, _ in g] == [s for s, _ in w] == [0, 1, 2]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(w, g)), tag
    # Everything else Keras writes (epoch scalars, ...) is there too.
    assert got.multiplexer.Runs().keys() == want.multiplexer.Runs().keys()
    for run in ("train", "validation"):
        assert got.multiplexer.Runs()[run]["tensors"] == want.multiplexer.Runs()[run]["tensors"]


def test_histogram_freq_and_buckets(tmp_path):
    cb = HistogramCallback(str(tmp_path), histogram_freq=2, buckets=7, write_graph=False)
    make_model().fit(X, Y, epochs=5, batch_size=128, verbose=0, callbacks=[cb])
    series = H.TBReader(str(tmp_path)).histogram_series("train", "net/d1/kernel/histogram")
    assert [s for s, _ in series] == [0, 2, 4]
    assert all(t.shape == (7, 3) for _, t in series)


def test_gradient_histograms_are_the_last_batch_gradients(tmp_path):
    # SGD with learning rate 0 keeps the weights fixed, so the gradients of the last batch
    # can be recomputed outside fit.
    model = make_model(keras.optimizers.SGD(learning_rate=0.0))
    cb = HistogramCallback(str(tmp_path), gradients=True, write_graph=False)
    model.fit(X, Y, epochs=2, batch_size=100, shuffle=False, verbose=0, callbacks=[cb])

    last = slice(200, 256)  # 256 samples in batches of 100: the last batch is 200..255
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(Y[last], model(X[last], training=True))
    grads = tape.gradient(loss, model.trainable_weights)

    reader = H.TBReader(str(tmp_path))
    tags = reader.histogram_tags()["train"]
    for weight, grad in zip(model.trainable_weights, grads):
        tag = f"{weight.path}/gradient"
        assert tag in tags
        series = reader.histogram_series("train", tag)
        assert [s for s, _ in series] == [0, 1]
        want = histgpu.histogram(grad.numpy())
        for _, table in series:
            assert table[:, 2].sum() == np.prod(weight.shape)
            np.testing.assert_allclose(table, want, rtol=1e-5, atol=1e-7)
    # The optimizer is left as it was, and a later fit works without the callback.
    assert "apply" not in vars(model.optimizer)
    model.fit(X, Y, epochs=1, batch_size=128, verbose=0)


def test_gradients_work_on_a_second_fit(tmp_path):
    model = make_model()
    model.fit(X, Y, epochs=1, batch_size=128, verbose=0)  # train function traced without capture
    model.fit(X, Y, epochs=2, batch_size=128, verbose=0,
              callbacks=[HistogramCallback(str(tmp_path), gradients=True, write_graph=False)])
    series = H.TBReader(str(tmp_path)).histogram_series("train", "net/d1/kernel/gradient")
    assert [s for s, _ in series] == [0, 1]
    assert not np.array_equal(series[0][1], series[1][1])


def test_demo_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_keras_example", REPO / "examples" / "train_keras.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    logdir = str(tmp_path / "histogram_example")
    assert example.main(["--logdir", logdir, "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[1] for line in out.splitlines() if line.startswith("Epoch ")] == ["1/3", "2/3", "3/3"]
    assert f"tensorboard --logdir {logdir}" in out
    reader = H.TBReader(logdir)
    assert set(reader.histogram_tags()["."]) == {"layer1_weights", "layer1_biases", "layer1_gradients"}
    for tag in ("layer1_weights", "layer1_biases", "layer1_gradients"):
        series = reader.histogram_series(".", tag)
        assert [s for s, _ in series] == [0, 1, 2]
        assert series[0][1][:, 2].sum() == {"layer1_weights": 1000, "layer1_biases": 10, "layer1_gradients": 1000}[tag]


# ------------------------------------------------------------ fit leaving by an exception


class Interrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (a user's Ctrl-C) at the end of one training batch."""

    def __init__(self, epoch, batch=0):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def _capture_installed(model, cb) -> bool:
    return ("apply" in vars(model.optimizer) or "make_train_function" in vars(model)
            or bool(cb._grad_buffers) or cb._grad_flag is not None)


def _buffer_refs(cb):
    import weakref

    return [weakref.ref(v) for v in cb._grad_buffers.values()]


def _all_dead(refs) -> bool:
    import gc

    gc.collect()
    return all(r() is None for r in refs)


def test_capture_removed_when_another_callback_interrupts_fit(tmp_path):
    model = make_model()
    cb = HistogramCallback(str(tmp_path / "a"), gradients=True, write_graph=False)
    refs = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            refs.extend(_buffer_refs(cb))

    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, epochs=3, batch_size=64, verbose=0, callbacks=[cb, Spy(), Interrupt(epoch=1, batch=1)])
    assert refs  # the capture had been installed
    # Keras calls no callback after the interrupt; the next training of the model removes
    # the capture before it traces, so it never runs the capturing step.
    model.fit(X, Y, epochs=1, batch_size=64, verbose=0)
    assert not _capture_installed(model, cb)
    assert _all_dead(refs), "the gradient buffers are still referenced"
    model.train_on_batch(X[:8], Y[:8])
    assert "apply" not in vars(model.optimizer)


def test_capture_removed_at_once_when_a_train_step_raises(tmp_path):
    # The loss checks its input inside the traced train step: the third batch holds a NaN,
    # so the step raises InvalidArgumentError from inside model.train_function.
    x = X.copy()
    x[130, 0] = np.nan

    def loss(y_true, y_pred):
        return keras.losses.mean_squared_error(tf.debugging.check_numerics(y_true, "y"), y_pred)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(1, name="d")], name="net")
    model.compile(optimizer="sgd", loss=loss)
    cb = HistogramCallback(str(tmp_path), gradients=True, write_graph=False)
    y = np.where(np.isnan(x[:, :1]), np.nan, Y)
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0, callbacks=[cb])
    assert not _capture_installed(model, cb)  # removed before fit returned control
    assert model.train_function is None


def test_capture_removed_at_once_when_its_own_logging_raises(tmp_path):
    class PoisonKernel(keras.callbacks.Callback):  # runs before HistogramCallback at epoch end
        def on_epoch_end(self, epoch, logs=None):
            kernel = self.model.get_layer("d1").kernel
            kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    model = make_model()
    cb = HistogramCallback(str(tmp_path), gradients=True, nonfinite="raise", write_graph=False)
    with pytest.raises(ValueError, match="nonfinite='raise'"):
        model.fit(X, Y, epochs=2, batch_size=128, verbose=0, callbacks=[PoisonKernel(), cb])
    assert not _capture_installed(model, cb)


def test_same_callback_reused_after_an_interrupted_fit(tmp_path):
    model = make_model()
    cb = HistogramCallback(str(tmp_path), gradients=True, write_graph=False)
    with pytest.raises(KeyboardInterrupt):
        model.fit(X, Y, epochs=2, batch_size=128, verbose=0, callbacks=[cb, Interrupt(epoch=0)])
    history = model.fit(X, Y, epochs=2, batch_size=128, verbose=0, callbacks=[cb])
    assert len(history.history["loss"]) == 2
    assert not _capture_installed(model, cb)
    series = H.TBReader(str(tmp_path)).histogram_series("train", "net/d1/kernel/gradient")
    assert [s for s, _ in series] == [0, 1]  # the second fit's gradients (steps restart at 0)
    assert all(t[:, 2].sum() == 20 * 8 for _, t in series)


# ------------------------------------------------------------ constructor arguments


@pytest.mark.parametrize("kwargs,error,match", [
    ({"histogram_freq": -1}, ValueError, "histogram_freq must be >= 0"),
    ({"histogram_freq": 1.5}, TypeError, "histogram_freq must be an integer"),
    ({"histogram_freq": True}, TypeError, "histogram_freq must be an integer"),
    ({"histogram_freq": "1"}, TypeError, "histogram_freq must be an integer"),
    ({"buckets": "x"}, TypeError, "buckets must be an integer or None"),
    ({"buckets": 2.5}, TypeError, "buckets must be an integer or None"),
    ({"buckets": True}, TypeError, "buckets must be an integer or None"),
    ({"buckets": 2**25}, ValueError, "above the limit"),
    ({"nonfinite": "drop"}, ValueError, "nonfinite must be one of"),
    ({"gradients": "yes"}, TypeError, "gradients must be True or False"),
])
def test_constructor_rejects_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        HistogramCallback(str(tmp_path), **kwargs)


def test_constructor_accepts_numpy_integers_and_zero(tmp_path):
    cb = HistogramCallback(str(tmp_path), histogram_freq=np.int64(2), buckets=np.int32(5), write_graph=False)
    assert (cb.histogram_freq, cb.buckets) == (2, 5) and type(cb.buckets) is int
    off = HistogramCallback(str(tmp_path / "off"), histogram_freq=0, gradients=True, write_graph=False)
    model = make_model()
    model.fit(X, Y, epochs=1, batch_size=128, verbose=0, callbacks=[off])
    assert H.TBReader(str(tmp_path / "off")).histogram_tags() == {}  # histogram_freq=0: none at all
    assert not _capture_installed(model, off)
