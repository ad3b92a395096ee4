"""A running ``tensorboard`` server shows the batched histograms while training is still running.

The server is started on an empty logdir before training. After each logged epoch (step) the
training waits until the server serves that step's histograms, so every step is seen live,
from the one event file TensorBoard's default loader follows per run: Keras' ``train`` file
for ``HistogramCallback`` (weights and gradients, next to Keras' own epoch scalars), and
``histgpu.SummaryWriter``'s file for ``add_histograms`` in a PyTorch-style loop.
"""

from __future__ import annotations

import glob
import os
import time
from typing import Any, List

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import histgpu  # noqa: E402
from histgpu.keras import HistogramCallback  # noqa: E402
from histgpu.writer import SummaryWriter  # noqa: E402

from . import tb_helpers as H  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

EPOCHS = 3
WAIT_S = 90.0  # per step; TensorBoard reloads every second here


def _served_steps(srv: H.TensorBoardServer, run: str, tag: str) -> List[int]:
    try:
        return [step for _, step, _ in srv.get("/data/plugin/histograms/histograms", run=run, tag=tag)]
    except (OSError, ValueError):  # 400 until the run and tag are loaded
        return []


def _served(srv: H.TensorBoardServer, run: str, tag: str, step: int) -> np.ndarray:
    for _, s, buckets in srv.get("/data/plugin/histograms/histograms", run=run, tag=tag):
        if s == step:
            return np.array(buckets, dtype=np.float64).reshape(-1, 3)
    raise AssertionError(f"step {step} of {run}/{tag} not served")


def _wait(srv: H.TensorBoardServer, run: str, tags: List[str], step: int) -> None:
    srv.wait_for(lambda: all(step in _served_steps(srv, run, t) for t in tags), timeout=WAIT_S,
                 what=f"step {step} of {run} {tags}")


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="module")
def server(logdir):
    srv = H.TensorBoardServer(str(logdir))  # started on an empty logdir, before any training
    try:
        yield srv
    finally:
        srv.stop()


class _WatchServer(keras.callbacks.Callback):
    """After the histogram callback's epoch end: wait until the server shows that epoch."""

    def __init__(self, srv: H.TensorBoardServer, gradient_tags: List[str]):
        super().__init__()
        self.srv = srv
        self.gradient_tags = gradient_tags
        self.seen: List[Any] = []

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        weights = {f"{w.path}/histogram": w for layer in self.model.layers for w in layer.weights}
        _wait(self.srv, "keras/train", list(weights) + self.gradient_tags, epoch)
        for tag, w in weights.items():  # the values logged at this very epoch, as the server shows them
            assert np.array_equal(_served(self.srv, "keras/train", tag, epoch), histgpu.histogram(w)), tag
        scalars = self.srv.get("/data/plugin/scalars/tags").get("keras/train", {})
        self.seen.append((epoch, time.monotonic(), "epoch_loss" in scalars))


def test_keras_callback_histograms_arrive_while_training(server, logdir):
    tmp_path = logdir
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(16, activation="relu", name="d1"),
                              keras.layers.LayerNormalization(name="n1"), keras.layers.Dense(1, name="d2")],
                             name="live")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    gradient_tags = [f"{w.path}/gradient" for w in model.trainable_weights]
    watch = _WatchServer(server, gradient_tags)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((128, 10)).astype(np.float32)
    y = rng.standard_normal((128, 1)).astype(np.float32)
    cb = HistogramCallback(str(tmp_path / "keras"), histogram_freq=1, gradients=True, write_graph=False)
    model.fit(x, y, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[cb, watch])
    finished = time.monotonic()
    assert [e for e, _, _ in watch.seen] == list(range(EPOCHS))
    assert all(t < finished for _, t, _ in watch.seen)  # each epoch was served during fit
    assert all(loss for _, _, loss in watch.seen)  # Keras' epoch scalars are read from the same file
    assert len(glob.glob(str(tmp_path / "keras" / "train" / "events.out.tfevents.*"))) == 1
    tags = server.get("/data/plugin/histograms/tags")["keras/train"]
    assert set(tags) == {f"{w.path}/histogram" for w in model.weights} | set(gradient_tags)


def test_writer_add_histograms_arrive_while_training(server, logdir):
    tmp_path = logdir
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 10), torch.randn(64, 1)
    tags = [name for name, _ in model.named_parameters()]
    with SummaryWriter(str(tmp_path / "writer")) as w:
        for step in range(EPOCHS):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            params = dict(model.named_parameters())
            w.add_histograms({n: p.detach() for n, p in params.items()}, step)
            w.add_histograms({f"{n}/v2": p.detach() for n, p in params.items()}, step, layout="v2", bins=20)
            _wait(server, "writer", tags + [f"{t}/v2" for t in tags], step)
            for n, p in params.items():
                assert np.array_equal(_served(server, "writer", f"{n}/v2", step), histgpu.histogram(p.detach(), 20))
                served = _served(server, "writer", n, step)  # PyTorch's proto: buckets sum to the count
                assert served[:, 2].sum() == p.numel()
    assert len(glob.glob(os.path.join(tmp_path, "writer", "events.out.tfevents.*"))) == 1
