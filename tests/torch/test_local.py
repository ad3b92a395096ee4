"""histgpu.torch in one process (no process group): plain tensors, module logging, checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.tensorboard import SummaryWriter as TorchWriter

import histgpu
import histgpu.torch as ht

from ..tensorboard import tb_helpers as H
from ..tensorboard.test_torch_writer import assert_same_proto

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_plain_tensors_are_the_whole_tensor():
    t = torch.randn(40, 9, dtype=torch.float64)
    t[0, 0] = float("nan")
    with pytest.warns(histgpu.NonFiniteWarning):
        h = ht.histogram(t, 13)
    with pytest.warns(histgpu.NonFiniteWarning):
        want = histgpu.compute(t, 13)
    assert np.array_equal(h.edges, want.edges) and np.array_equal(h.counts, want.counts) and h.nan == 1
    with pytest.warns(histgpu.NonFiniteWarning):
        v1 = ht.histogram_v1(t)
    assert v1.sum == histgpu.compute_v1(t[~torch.isnan(t)]).sum
    assert histgpu.torch is ht  # also reachable as an attribute of the package


def _model():
    torch.manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    m(torch.randn(8, 6)).sum().backward()
    return m


@pytest.mark.parametrize("bins, max_bins", [("tensorflow", None), (20, 4), ("auto", None), ([-100.0, 0.0, 0.25, 100.0], None)])
def test_log_histograms_equals_torchs_writer(tmp_path, bins, max_bins):
    m = _model()
    with histgpu.SummaryWriter(str(tmp_path / "ours")) as w:
        assert ht.log_histograms(w, m, 7, bins=bins, max_bins=max_bins) == 8
    with TorchWriter(str(tmp_path / "theirs")) as t:
        for name, p in m.named_parameters():
            t.add_histogram(name, p, 7, bins=bins, max_bins=max_bins)
            t.add_histogram(f"{name}/grad", p.grad, 7, bins=bins, max_bins=max_bins)
    ours = [((s, v.tag), v.histo) for s, v in H.summary_values(str(tmp_path / "ours"))]
    theirs = [((s, v.tag), v.histo) for s, v in H.summary_values(str(tmp_path / "theirs"))]
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    for (k, a), (_, b) in zip(ours, theirs):
        assert_same_proto(a, b, k)


def test_log_histograms_through_torchs_writer_and_v2(tmp_path):
    m = _model()
    with TorchWriter(str(tmp_path / "t")) as t:
        assert ht.log_histograms(t, m, 1, gradients=False) == 4
    assert [v.tag for _, v in H.summary_values(str(tmp_path / "t"))] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with histgpu.SummaryWriter(str(tmp_path / "v2")) as w:
        ht.log_histograms(w, m, 2, bins=9, layout="v2")
    r = H.TBReader(str(tmp_path / "v2"))
    assert np.array_equal(r.histogram_series(".", "0.weight/grad")[0][1], histgpu.histogram(m[0].weight.grad, 9))
    with pytest.raises(ValueError, match="writer"):
        ht.log_histograms(None, m, 0)
    with TorchWriter(str(tmp_path / "t2")) as t, pytest.raises(TypeError, match="v2"):
        ht.log_histograms(t, m, 0, layout="v2")
    with histgpu.SummaryWriter(str(tmp_path / "bad")) as w:
        for kw, exc in (({"bins": "nope"}, ValueError), ({"max_bins": 0}, ValueError), ({"layout": "v3"}, ValueError)):
            with pytest.raises(exc):
                ht.log_histograms(w, m, 0, **kw)
    with pytest.raises(TypeError):
        ht.histogram(np.zeros(3))
