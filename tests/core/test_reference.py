"""The IEEE reference (oracles.ieee_buckets), used where a subnormal is involved, must itself be
TensorBoard's ``_buckets`` wherever TensorBoard never meets a subnormal. And tb_is_ieee must not
call an input IEEE-consistent when TensorBoard's answer differs from the formula."""

import numpy as np
import pytest

from .oracles import ieee_buckets, tb_buckets, tb_edges, tb_is_ieee, ulp_neighbours


def _cases(rng):
    out = []
    for k in (1, 2, 3, 7, 30, 100, 1000):
        out.append((rng.standard_normal(2000), k))
        out.append((rng.standard_normal(2000, dtype=np.float32), k))
        out.append((rng.uniform(-1e300, 1e300, 500), k))
        out.append((rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64), k))
        lo, hi = -3.7, 11.3
        out.append((np.concatenate([[lo, hi], np.clip(ulp_neighbours(tb_edges(lo, hi, k), np.float64, 2), lo, hi)]), k))
        out.append((np.concatenate([[lo, hi], np.clip(ulp_neighbours(tb_edges(lo, hi, k), np.float32, 2), lo, hi)]).astype(np.float32), k))
        out.append((np.array([1.0, 1.0 + 2**-52, 1.0 + 2**-51]), k))
        out.append((np.array([2.5, 2.5]), k))
        out.append((np.zeros(0), k))
        out.append((np.array([2.3e-308, 1.0, 3e-300]), k))  # smallest normals: still IEEE in TensorBoard
    return out


def test_ieee_reference_equals_tensorboard_where_no_subnormal():
    rng = np.random.default_rng(77)
    n_checked = 0
    for x, k in _cases(rng):
        assert tb_is_ieee(x, k)
        ref, tb = ieee_buckets(x, k), tb_buckets(x, k)
        assert ref.shape == tb.shape and np.array_equal(ref, tb), f"reference differs from TensorBoard, k={k}"
        n_checked += 1
    assert n_checked >= 60


@pytest.mark.parametrize(
    "x, k",
    [
        (np.array([1e-310, 1e-310]), 1),  # subnormal value
        (np.array([1e-40, 1.0], np.float32), 3),  # float32 subnormal (flushed by TF's cast)
        (np.array([1e-300, 1e-300 + 1e-315]), 3),  # subnormal range
        (np.array([0.0, 3e-308]), 2),  # subnormal width
    ],
)
def test_subnormal_cases_are_routed_to_the_reference(x, k):
    assert not tb_is_ieee(x, k)
