"""histgpu.inspect.stats: statistics from buckets (estimates) and from v1 sums (exact)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import histgpu
from histgpu.inspect.plots import rebin
from histgpu.inspect.stats import BASIS_POINTS, Buckets, bucket_moments, fraction_within, quantiles, step_stats
from histgpu.proto import histogram_proto


def _v1_stats(x: np.ndarray):
    p = histogram_proto(x)
    b = Buckets.from_v1(p.min, p.max, p.bucket_limit, p.bucket)
    v1 = {"min": p.min, "max": p.max, "num": p.num, "sum": p.sum, "sum_squares": p.sum_squares}
    return step_stats(0, 0.0, b, v1=v1), b


def test_v2_estimates_close_to_numpy(rng):
    x = rng.normal(0.3, 2.0, 100_000)
    table = histgpu.histogram(x, 30)
    b = Buckets.from_table(table)
    s = step_stats(5, 1.0, b)
    width = (x.max() - x.min()) / 30
    assert s.count == x.size and s.step == 5 and not s.exact
    assert s.min == x.min() and s.max == x.max()
    assert abs(s.mean - x.mean()) < 0.01
    assert abs(s.std / x.std() - 1) < 0.02
    q_true = np.quantile(x, np.array(BASIS_POINTS) / 10000.0)
    assert np.all(np.abs(s.quantiles - q_true) <= width)
    assert s.quantiles[0] == x.min() and s.quantiles[-1] == x.max()
    assert np.all(np.diff(s.quantiles) >= 0)


def test_v1_moments_are_exact(rng):
    x = rng.normal(-1.5, 0.25, 20_000)
    s, b = _v1_stats(x)
    assert s.exact and s.count == x.size
    assert s.mean == math.fsum(x.tolist()) / x.size
    assert abs(s.std - x.std()) <= 1e-9 * x.std()
    assert s.min == x.min() and s.max == x.max()
    # The bucket estimate agrees with the exact moments (v1 buckets are fine).
    _, m, sd = bucket_moments(b)
    assert abs(m - s.mean) < 0.01 and abs(sd / s.std - 1) < 0.05


def test_v1_migration_matches_tensorboard(rng):
    """Buckets.from_v1 is TensorBoard's data_compat migration (computed in float64)."""
    from tensorboard import data_compat
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.util import tensor_util

    x = rng.standard_t(3, 5000)
    p = histogram_proto(x)
    migrated = tensor_util.make_ndarray(data_compat.migrate_value(summary_pb2.Summary.Value(tag="t", histo=p)).tensor)
    b = Buckets.from_v1(p.min, p.max, p.bucket_limit, p.bucket)
    ours = np.stack([b.left, b.right, b.counts], axis=1)
    assert ours.shape == migrated.shape
    np.testing.assert_allclose(ours, migrated, rtol=1e-6)


def test_all_equal_values():
    s = step_stats(0, 0.0, Buckets.from_table(histgpu.histogram(np.full(100, 2.5), 30)))
    assert s.count == 100 and s.mean == 2.5 and s.std == 0.0
    assert np.all(s.quantiles == 2.5) and s.valid


def test_empty_and_nonfinite_edges():
    empty = step_stats(0, 0.0, Buckets.from_table(np.zeros((30, 3))))
    assert empty.count == 0 and not empty.valid and not empty.has_nonfinite
    nan_table = np.full((30, 3), np.nan)
    nan_table[:, 2] = 0  # what tf.summary.histogram writes for data with a NaN
    bad = step_stats(3, 0.0, Buckets.from_table(nan_table))
    assert not bad.valid and bad.has_nonfinite and "non-finite" in bad.nonfinite_note


def test_nonfinite_sums_in_v1_proto():
    b = Buckets.from_v1(1.0, 3.0, [2.0, 4.0], [1, 1])
    s = step_stats(0, 0.0, b, v1={"min": 1.0, "max": 3.0, "num": 2, "sum": math.inf, "sum_squares": math.inf})
    assert s.has_nonfinite and not s.exact and s.valid  # falls back to the bucket estimate


def test_fraction_within_and_quantiles():
    b = Buckets(np.array([-1.0, 0.0]), np.array([0.0, 1.0]), np.array([10.0, 30.0]))
    assert fraction_within(b, -0.5, 0.5) == pytest.approx(0.5)
    assert fraction_within(b, 0.0, 1.0) == pytest.approx(0.75)
    q = quantiles(b, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(q, [-1.0, 0.0, 1 / 3, 1.0])
    point = Buckets(np.array([0.0]), np.array([0.0]), np.array([5.0]))
    assert fraction_within(point, -1e-6, 1e-6) == 1.0


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_rebin_keeps_every_value(rng, fmt):
    x = rng.normal(0, 1, 3000)
    if fmt == "v2":
        b = Buckets.from_table(histgpu.histogram(x, 30))
    else:
        _, b = _v1_stats(x)
    counts = rebin(b, np.linspace(x.min(), x.max(), 61))
    assert counts.sum() == pytest.approx(x.size) and np.all(counts >= -1e-9)
