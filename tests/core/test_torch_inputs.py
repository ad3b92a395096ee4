"""PyTorch CPU tensors as inputs: read in place, gradients ignored, bfloat16/FP8 understood.
PyTorch is a test dependency (pyproject.toml), so these never skip."""

import numpy as np
import pytest
import torch  # a test dependency (pyproject.toml): never skipped

import histgpu


def test_parameter_that_requires_grad():
    p = torch.nn.Parameter(torch.randn(300, 20))
    assert np.array_equal(histgpu.histogram(p), histgpu.histogram(p.detach().numpy()))


@pytest.mark.parametrize("dtype", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float16", "int8"])
def test_dtypes_numpy_cannot_name_are_viewed_not_converted(dtype):
    t = (torch.randn(5000) * 4).to(getattr(torch, dtype))
    assert np.array_equal(histgpu.histogram(t, 50), histgpu.histogram(t.float().numpy(), 50))
    assert histgpu.compute_v1(t).sum == histgpu.compute_v1(t.float().numpy()).sum


def test_non_contiguous_view():
    t = torch.randn(64, 48).t()[::3]
    assert np.array_equal(histgpu.histogram(t), histgpu.histogram(t.contiguous().numpy()))
