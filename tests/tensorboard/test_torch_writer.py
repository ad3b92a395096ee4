"""histgpu.SummaryWriter against torch.utils.tensorboard.SummaryWriter: both write, both are read
back with TensorBoard's event loader, and the HistogramProtos are compared field by field.

For finite input bucket_limit, bucket, min, max and num must be equal (==); sum and sum_squares
are exact in histgpu and float64 numpy sums in PyTorch, so they agree within 1e-12 relative
(README, "PyTorch").
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter as TorchWriter

import histgpu
from histgpu.writer import SummaryWriter

from . import tb_helpers as H

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

rng = np.random.default_rng(13)
DATA = {
    "normal_0.1": rng.normal(0, 0.1, 1000),  # the issue's case: 561 limits in PyTorch's layout
    "float32": rng.standard_normal(3000).astype(np.float32) * 5,
    "torch": torch.randn(7, 40),
    "torch_grad": torch.nn.Parameter(torch.randn(33) * 1e-3),
    "ints": np.arange(-20, 180, dtype=np.int32),
    "bool": np.array([True, False, True, True]),
    "float16": (rng.standard_normal(500) * 100).astype(np.float16),
    "one_value": np.full(10, 2.5),
    "scalar": 3.0,
    "huge": rng.uniform(-1e15, 1e15, 200),
    "tiny": rng.normal(0, 1e-13, 200),
}
BINS = ["tensorflow", "auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt", 1, 2, 10, 30, 1000,
        [-1, 0, 0.5, 2], np.linspace(-3, 3, 50), torch.tensor([-10.0, -1.0, 1.0, 10.0, 100.0])]
MAX_BINS = [None, 1, 3, 10, 100]


def _bins_id(b) -> str:
    return b if isinstance(b, str) else str(b) if np.ndim(b) == 0 else f"edges{len(b)}"


def _histos(path: str):
    return [((s, v.tag), v.histo) for s, v in H.summary_values(path) if v.HasField("histo")]


def assert_same_proto(ours, theirs, what=""):
    assert list(ours.bucket_limit) == list(theirs.bucket_limit), what
    assert list(ours.bucket) == list(theirs.bucket), what
    assert (ours.min, ours.max, ours.num) == (theirs.min, theirs.max, theirs.num), what
    for a, b in ((ours.sum, theirs.sum), (ours.sum_squares, theirs.sum_squares)):
        assert a == b or abs(a - b) <= 1e-12 * abs(b), (what, a, b)


def _both(tmp_path, calls):
    """Run `calls(writer)` on both writers; the (step, tag) -> proto lists, or the errors raised."""
    out = []
    for name, cls in (("histgpu", SummaryWriter), ("torch", TorchWriter)):
        w = cls(str(tmp_path / name))
        try:
            calls(w)
        finally:
            w.close()
        out.append(_histos(str(tmp_path / name)))
    return out


@pytest.mark.parametrize("bins", BINS, ids=_bins_id)
def test_add_histogram_writes_torchs_proto(tmp_path, bins):
    expected_errors = []

    def calls(w):
        step = 0
        for name, values in DATA.items():
            for max_bins in MAX_BINS:
                step += 1
                try:
                    w.add_histogram(f"{name}/{max_bins}", values, step, bins=bins, max_bins=max_bins)
                except ValueError as e:  # where PyTorch raises (no value inside explicit bins)
                    expected_errors.append((type(w).__module__.split(".")[0], name, max_bins, type(e)))

    ours, theirs = _both(tmp_path, calls)
    errs = {(n, m) for who, n, m, _ in expected_errors if who == "histgpu"}
    assert errs == {(n, m) for who, n, m, _ in expected_errors if who == "torch"}
    assert [k for k, _ in ours] == [k for k, _ in theirs] and len(ours) + len(errs) == len(DATA) * len(MAX_BINS)
    for (key, a), (_, b) in zip(ours, theirs):
        assert_same_proto(a, b, (key, _bins_id(bins)))


def test_the_issues_example_keeps_every_empty_bucket_between(tmp_path):
    ours, theirs = _both(tmp_path, lambda w: w.add_histogram("w", DATA["normal_0.1"], 0))
    assert len(ours[0][1].bucket_limit) == len(theirs[0][1].bucket_limit) > 400
    assert_same_proto(ours[0][1], theirs[0][1])


def test_sums_are_exact_and_agree_with_torchs(tmp_path):
    x = rng.standard_normal(100_000) * 1e3 + 1e7  # float64 sums of these round in PyTorch
    ours, theirs = _both(tmp_path, lambda w: w.add_histogram("w", x, 0, bins=50))
    a, b = ours[0][1], theirs[0][1]
    assert a.sum == math.fsum(x) and a.sum_squares == H.exact_sum_squares(x)
    assert_same_proto(a, b)


def test_values_beyond_the_default_bins(tmp_path):
    """Values at PyTorch's last default edge and past it (counted in num, not in the buckets)."""
    edges = histgpu._torch_layout.default_bins()
    x = np.concatenate([rng.standard_normal(100), [edges[-1], edges[-1], 5e21, -edges[-1], -3e25]])
    ours, theirs = _both(tmp_path, lambda w: (w.add_histogram("w", x, 0), w.add_histogram("w", x, 1, max_bins=77)))
    for (_, a), (_, b) in zip(ours, theirs):
        assert_same_proto(a, b)


def test_add_histograms_and_v2_layout(tmp_path):
    x = DATA["float32"]
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w:
        w.add_histograms({"a": x, "b": x[:10]}, 1, bins=12, max_bins=5)
        w.add_histograms({"c": x}, 2, bins=12, layout="v2")
        w.add_histogram("d", x, 3, layout="v2")  # the default bins stand for TensorBoard's 30
    with TorchWriter(str(tmp_path / "torch")) as t:
        t.add_histogram("a", x, 1, bins=12, max_bins=5)
        t.add_histogram("b", x[:10], 1, bins=12, max_bins=5)
    ours, theirs = _histos(path), _histos(str(tmp_path / "torch"))
    for (ka, a), (kb, b) in zip(ours, theirs):
        assert ka == kb
        assert_same_proto(a, b)
    r = H.TBReader(path)
    assert np.array_equal(r.histogram_series(".", "c")[0][1], histgpu.histogram(x, 12))
    assert np.array_equal(r.histogram_series(".", "d")[0][1], histgpu.histogram(x, 30))


def test_add_histogram_raw_is_torchs(tmp_path):
    values = np.array([i + 0.001 for i in range(50) for _ in range(i)])
    counts, limits = np.histogram(values, bins=np.arange(52))
    args = dict(min=values.min(), max=values.max(), num=len(values), sum=values.sum(), sum_squares=values.dot(values))

    def calls(w):
        w.add_histogram_raw("list", bucket_limits=limits[1:].tolist(), bucket_counts=counts.tolist(), global_step=0, **args)
        w.add_histogram_raw("numpy", bucket_limits=limits[1:], bucket_counts=counts, global_step=1, walltime=5.0, **args)
        w.add_histogram_raw("torch", 0, 1, 3, 1.5, 2.5, torch.tensor([0.5, 1.0]), torch.tensor([1, 2]), 2)

    ours, theirs = _both(tmp_path, calls)
    assert [(k, a.SerializeToString()) for k, a in ours] == [(k, b.SerializeToString()) for k, b in theirs]
    with SummaryWriter(str(tmp_path / "bad")) as w:
        with pytest.raises(ValueError, match="len"):
            w.add_histogram_raw("x", 0, 1, 1, 1, 1, [1.0, 2.0], [1])
        with pytest.raises(TypeError):
            w.add_histogram_raw("x", "low", 1, 1, 1, 1, [1.0], [1])
    with TorchWriter(str(tmp_path / "bad_torch")) as t, pytest.raises(ValueError):
        t.add_histogram_raw("x", 0, 1, 1, 1, 1, [1.0, 2.0], [1])


def test_nonfinite_values_are_left_out_and_shown(tmp_path):
    x = DATA["float32"].copy()
    x[:5] = np.nan
    x[5:7] = np.inf
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w, pytest.warns(histgpu.NonFiniteWarning):
        w.add_histogram("w", x, 0, bins=20)
    with TorchWriter(str(tmp_path / "torch")) as t:
        t.add_histogram("w", x[np.isfinite(x)], 0, bins=20)
    (_, a), = _histos(path)
    (_, b), = _histos(str(tmp_path / "torch"))
    assert_same_proto(a, b)
    tags = [v.tag for _, v in H.summary_values(path)]
    assert tags == ["w", "w/nonfinite/nan", "w/nonfinite/posinf", "w/nonfinite/neginf"]
    with SummaryWriter(str(tmp_path / "r2")) as w:
        with pytest.raises(ValueError, match="nonfinite"):
            w.add_histogram("w", x, 0, nonfinite="raise")
        with pytest.warns(histgpu.NonFiniteWarning):
            w.add_histogram("nan_only", np.full(3, np.nan), 0)  # no finite value: an empty histogram
    (_, empty), = _histos(str(tmp_path / "r2"))
    assert empty.num == 0 and list(empty.bucket) == [0.0]


BAD = [
    # (values, kwargs, exception histgpu raises, what PyTorch raises or None where it misbehaves)
    (np.zeros(0), {}, ValueError, ValueError),
    (torch.zeros(0, 3), {"bins": 10}, ValueError, ValueError),
    (np.arange(5.0), {"bins": "nope"}, ValueError, ValueError),
    (np.arange(5.0), {"bins": "Auto"}, ValueError, ValueError),
    (np.arange(5.0), {"bins": 0}, ValueError, ValueError),
    (np.arange(5.0), {"bins": -3}, ValueError, ValueError),
    (np.arange(5.0), {"bins": 2.5}, TypeError, TypeError),
    (np.arange(5.0), {"bins": True}, TypeError, None),
    (np.arange(5.0), {"bins": [0.0, 2.0, 1.0]}, ValueError, ValueError),
    (np.arange(5.0), {"bins": [[0.0, 1.0]]}, ValueError, ValueError),
    (np.arange(5.0), {"bins": [0.0, np.nan, 1.0]}, ValueError, None),
    (np.arange(5.0), {"bins": [10.0, 20.0, 30.0]}, ValueError, ValueError),  # no value inside the bins
    (np.arange(5.0), {"max_bins": 0}, ValueError, ZeroDivisionError),
    (np.arange(5.0), {"max_bins": -2}, ValueError, None),
    (np.arange(5.0), {"max_bins": 2.5}, TypeError, None),
    (np.arange(5.0), {"max_bins": "10"}, TypeError, None),
]


@pytest.mark.parametrize("values, kwargs, ours, theirs", BAD)
def test_bad_input_raises_clear_errors(tmp_path, values, kwargs, ours, theirs):
    with SummaryWriter(str(tmp_path / "h")) as w:
        with pytest.raises(ours) as info:
            w.add_histogram("x", values, 0, **kwargs)
    assert str(info.value)  # says what is wrong
    assert _histos(str(tmp_path / "h")) == []  # nothing written
    if theirs is not None:
        with TorchWriter(str(tmp_path / "t")) as t, pytest.raises(theirs):
            t.add_histogram("x", values, 0, **kwargs)
