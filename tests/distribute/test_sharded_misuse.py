"""Misuse of the sharded API that gave silently wrong results (issue 16): each now raises, saying
what was expected."""

import numpy as np
import pytest

import histgpu
import histgpu.sharded as S


def test_merge_refuses_histograms_that_cannot_be_one():
    good = histgpu.compute(np.arange(10.0), 3)
    with pytest.raises(ValueError, match="edges for"):
        histgpu.merge([good, histgpu.Histogram(np.arange(4.0), np.array([1, 2], np.uint64), 0.0, 3.0, 3)])
    with pytest.raises(ValueError, match="num=5 but its counts add up to 10"):
        histgpu.merge([good, histgpu.Histogram(good.edges, good.counts, good.min, good.max, 5)])
    with pytest.raises(ValueError, match="non-negative integers"):
        histgpu.merge([histgpu.Histogram(good.edges, good.counts.astype(float), 0.0, 9.0, 10)])
    assert histgpu.merge([good, good]).num == 20  # consistent ones still merge


def test_local_range_of_other_data_is_refused():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(300000)
    wrong = S.local_range(x)            # the range of x ...
    shard = x * 10                      # ... claimed for x * 10: same count, other range
    spec = S.merge_ranges([S.local_range(shard)])
    with pytest.raises(ValueError, match="do not describe this shard"):
        S.local_counts(shard, spec, 30, local=wrong)
    with_nan = x.copy()
    with_nan[::100] = np.nan           # NaNs the claimed range does not know of
    spec2 = S.merge_ranges([S.local_range(with_nan)])
    claimed = S.RangeInfo(wrong.min, wrong.max, with_nan.size - with_nan[::100].size)
    with pytest.raises(ValueError, match="do not describe this shard"):
        S.local_counts(with_nan, spec2, 30, local=claimed)
    ok = S.local_range(shard)          # the shard's own range is accepted, and read once
    assert np.array_equal(S.local_counts(shard, spec, 30, local=ok), S.local_counts(shard, spec, 30))


def test_shards_outside_the_shared_range_are_refused():
    x = np.linspace(-1, 1, 1001)
    spec = S.merge_ranges([S.local_range(x[:500])])  # the range of half the data only
    with pytest.raises(ValueError, match="outside the shared range"):
        S.local_counts(x, spec, 10)


@pytest.mark.parametrize("bad", [(-np.inf, 1.0), (0.0, np.inf), (np.nan, 1.0), (2.0, 1.0)])
def test_infinite_or_reversed_specs_are_refused(bad):
    spec = S.RangeInfo(bad[0], bad[1], 10)
    with pytest.raises(ValueError, match="finite min <= max"):
        S.local_counts(np.array([0.5]), spec, 5)


def test_summed_counts_that_overflowed_are_refused():
    spec = S.merge_ranges([S.local_range(np.arange(10.0))])
    huge = np.array([2**63, 2**63, 0], dtype=np.uint64)  # a uint64 sum that wrapped or exceeds int64
    with pytest.raises(ValueError, match="overflow"):
        S.histogram_from_counts(spec, huge)
    wrapped = np.array([2**62, 2**62, 2**62, 2**62 + 10], dtype=np.uint64)  # sums past 2^64 wrap in uint64
    with pytest.raises(ValueError):
        S.histogram_from_counts(spec, wrapped)


def test_collective_keys_must_be_the_int64_the_range_sent():
    r = S.local_range(np.array([-3.5, 0.25, 7.0]))
    mins, sums = r.to_collective()
    assert S.RangeInfo.from_collective(mins, sums) == r
    with pytest.raises(ValueError, match="float array|int32"):
        S.RangeInfo.from_collective(mins.astype(np.float64), sums)
    with pytest.raises(ValueError, match="int32"):
        S.RangeInfo.from_collective(mins.astype(np.int32), sums)  # JAX without x64 narrows like this
    with pytest.raises(ValueError, match="order keys of finite values"):
        S.RangeInfo.from_collective(np.array([0x7FF8000000000000, mins[1]], np.int64), sums)  # a NaN key
    with pytest.raises(ValueError, match="min > max|reduced with MIN"):
        S.RangeInfo.from_collective(np.array([histgpu._result.order_key(100.0), mins[1]], np.int64), sums)
