"""The classic TensorBoard histogram example, with histgpu computing the histograms.

A two-layer Keras model (Dense(10, relu) on 100 inputs, then Dense(1)) is trained with Adam
and MSE on 1000 random samples for 10 epochs in a GradientTape loop. Each epoch logs the
first layer's weights, biases and kernel gradients to ``logs/histogram_example`` through
``histgpu.summary.histogram`` -- the one-line swap for ``tf.summary.histogram``.

Run ``make demo`` (or ``python examples/train_keras.py``), then ``make tensorboard`` and
open the printed address; the Histograms and Distributions tabs show the three series.
"""

from __future__ import annotations

import argparse
import glob
import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import histgpu.summary  # noqa: E402  (instead of tf.summary.histogram)

DEFAULT_LOGDIR = os.path.join("logs", "histogram_example")


def build_model() -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(100,)),
            tf.keras.layers.Dense(10, activation="relu", name="layer1"),
            tf.keras.layers.Dense(1, name="layer2"),
        ]
    )


def clear_old_events(logdir: str) -> None:
    """Remove event files of an earlier run so steps 0..N are not shown twice."""
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        os.remove(path)


def train(logdir: str, epochs: int, seed: int) -> list:
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((1000, 100), dtype=np.float32)
    y = rng.random((1000, 1), dtype=np.float32)

    model = build_model()
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.01)
    loss_fn = tf.keras.losses.MeanSquaredError()
    writer = tf.summary.create_file_writer(logdir)
    layer1 = model.get_layer("layer1")

    losses = []
    for epoch in range(epochs):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

        with writer.as_default():
            histgpu.summary.histogram("layer1_weights", layer1.kernel, step=epoch)
            histgpu.summary.histogram("layer1_biases", layer1.bias, step=epoch)
            histgpu.summary.histogram("layer1_gradients", grads[0], step=epoch)  # d loss / d kernel
        losses.append(float(loss))
        print(f"Epoch {epoch + 1}/{epochs}  loss: {losses[-1]:.6f}", flush=True)

    writer.flush()
    writer.close()
    return losses


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default=DEFAULT_LOGDIR, help="where to write events (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep event files of earlier runs in --logdir")
    args = parser.parse_args(argv)

    os.makedirs(args.logdir, exist_ok=True)
    if not args.keep:
        clear_old_events(args.logdir)
    train(args.logdir, args.epochs, args.seed)

    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    if not os.path.exists(tensorboard):
        tensorboard = "tensorboard"
    print(f"\nWrote histograms to {args.logdir}. View them with:")
    print(f"  {shlex.quote(tensorboard)} --logdir {shlex.quote(args.logdir)} --host 127.0.0.1 --port 6006")
    print("(or `make tensorboard`), then open http://127.0.0.1:6006/#histograms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
