"""histgpu inspect reads what other writers write: ``tf.summary.histogram``, TensorFlow's v1
op, Keras' TensorBoard callback, tensorboardX (PyTorch's format) -- and finds the same
patterns there as in histgpu's own logs.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from histgpu.inspect import inspect_logdir  # noqa: E402

from . import synth as S  # noqa: E402

PATTERNS = ("healthy", "vanishing", "exploding", "frozen")
EXPECTED = {
    ("healthy", "dense/kernel"): set(),
    ("healthy", "dense/kernel_grad"): set(),
    ("vanishing", "dense/kernel_grad"): {"vanishing"},
    ("exploding", "dense/kernel_grad"): {"exploding"},
    ("frozen", "dense/kernel"): {"not learning"},
}


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("inspect-formats")
    S.write_tf_v2(str(root / "tf_v2"), PATTERNS)
    S.write_tf_v1(str(root / "tf_v1"), PATTERNS)
    S.write_histgpu(str(root / "histgpu_v2"), PATTERNS, bins=30)
    S.write_histgpu(str(root / "histgpu_v1"), PATTERNS)
    S.write_histgpu_summary(str(root / "hsummary_v2"), PATTERNS)
    S.write_histgpu_summary(str(root / "hsummary_v1"), PATTERNS, v1=True)
    return str(root)


@pytest.fixture(scope="module")
def result(logdir):
    return inspect_logdir(logdir)


def _series(result, writer):
    return {
        (s.run.split("/", 1)[1], s.tag): (s, d) for s, d in zip(result.data.series, result.diagnoses)
        if s.run.startswith(writer + "/")
    }


WRITERS = [
    ("tf_v2", "v2"),
    ("tf_v1", "v1"),
    ("histgpu_v2", "v2"),
    ("histgpu_v1", "v1"),
    ("hsummary_v2", "v2"),
    ("hsummary_v1", "v1"),
]


@pytest.mark.parametrize("writer,fmt", WRITERS)
def test_patterns_flagged_for_every_writer(result, writer, fmt):
    found = _series(result, writer)
    assert set(found) == set(EXPECTED)
    for key, labels in EXPECTED.items():
        s, d = found[key]
        assert s.fmt == fmt and len(s.stats) == S.STEPS
        assert {f.label for f in d.problems} == labels, (writer, key, [str(f) for f in d.flags])
    assert not result.data.problems


@pytest.mark.parametrize("writer", ["histgpu_v1", "histgpu_v2", "hsummary_v1", "hsummary_v2"])
def test_histgpu_nonfinite_scalars_counted(result, writer):
    """histgpu leaves NaN/Inf out and logs <tag>/nonfinite/* scalars: inspect counts them."""
    s, d = _series(result, writer)[("exploding", "dense/kernel_grad")]
    assert [st.nonfinite for st in s.stats][-4:] == [0, 9, 9, 9]
    assert all(st.valid for st in s.stats)  # the finite part is still measured
    assert any("27 NaN/Inf values left out" in f.evidence for f in d.problems)


def test_tf_nan_histogram_is_exploding(result):
    """tf.summary.histogram turns data with NaN into an all-NaN histogram: that is evidence too."""
    s, d = _series(result, "tf_v2")[("exploding", "dense/kernel_grad")]
    assert [st.valid for st in s.stats][-3:] == [False, False, False]
    assert any("non-finite bucket edges" in f.evidence for f in d.problems)
    assert d.latest.step == S.STEPS - 4  # the latest step with finite values


def test_same_statistics_as_histgpu_writes(result):
    """histgpu writes TensorBoard's exact bytes: statistics of finite steps are identical."""
    tf2, hg2 = _series(result, "tf_v2"), _series(result, "histgpu_v2")
    tf1, hg1 = _series(result, "tf_v1"), _series(result, "histgpu_v1")
    for key in EXPECTED:
        for a, b in zip(tf2[key][0].stats, hg2[key][0].stats):
            if a.valid:
                assert (a.count, a.mean, a.std, a.min, a.max) == (b.count, b.mean, b.std, b.min, b.max)
                assert np.array_equal(a.quantiles, b.quantiles)
        for a, b in zip(tf1[key][0].stats, hg1[key][0].stats):
            assert a.exact and b.exact and (a.count, a.min, a.max) == (b.count, b.min, b.max)
            assert np.array_equal(a.quantiles, b.quantiles)  # same buckets
            # TensorFlow sums sequentially, histgpu exactly: the last bits may differ.
            assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-18)
            assert a.std == pytest.approx(b.std, rel=1e-9, abs=1e-18)


def test_tensorboardx(tmp_path):
    pytest.importorskip("tensorboardX", reason="tensorboardX not installed (pip install tensorboardX)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        S.write_tensorboardx(str(tmp_path), PATTERNS)
    res = inspect_logdir(str(tmp_path))
    got = {(d.run, d.tag): {f.label for f in d.problems} for d in res.diagnoses}
    assert got == {k: v for k, v in EXPECTED.items()}
    assert all(s.fmt == "v1" and s.stats[0].exact for s in res.data.series)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside Keras
def test_keras_callback(tmp_path):
    """Keras' own TensorBoard callback (v2 histograms under <logdir>/train)."""
    keras = tf.keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.layers[0].trainable = False  # a frozen layer: "not learning"
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    cb = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1, write_graph=False, profile_batch=0)
    model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
    res = inspect_logdir(str(tmp_path))
    by = {(d.run, d.tag): d for d in res.diagnoses}
    tags = {t for r, t in by if r == "train"}
    assert tags and all(t.endswith("/histogram") for t in tags), tags
    frozen = [d for (r, t), d in by.items() if "kernel" in t and {f.label for f in d.problems} == {"not learning"}]
    trained = [d for (r, t), d in by.items() if "kernel" in t and not d.problems]
    assert len(frozen) == 1 and len(trained) == 1, [(k, d.problem_text()) for k, d in by.items()]
    assert all(len(d.stats) == 4 for d in by.values())
    assert os.path.isdir(tmp_path / "train")
