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
