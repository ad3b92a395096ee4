"""Sharded histograms merge exactly: histgpu.sharded (the engine-agnostic two-phase API).

For any split of a tensor into shards (uneven, empty, NaN/Inf, all-equal shards, all shards
equal, ...) the merged result must equal histgpu.compute / compute_v1 / histogram_proto of
the concatenation bit for bit. Collectives are simulated with numpy MIN and SUM over the
int64 arrays that ``to_collective`` produces, exactly as torch.distributed/MPI would reduce
them. No TensorFlow here (see test_tf_strategies.py for the real engines).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import histgpu
from histgpu import sharded as S
from histgpu.proto import histogram_proto

try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None

pytestmark = pytest.mark.filterwarnings("ignore::histgpu.NonFiniteWarning")


# ----------------------------------------------------------------------------- helpers


def bits(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.int64)


def random_split(x: np.ndarray, rng: np.random.Generator, shards: int) -> list:
    """Uneven shards at random cut points; repeated cut points make empty shards."""
    cuts = np.sort(rng.integers(0, x.size + 1, size=shards - 1))
    return np.split(x, cuts)


def all_reduce(arrays: list, op: str) -> np.ndarray:
    """What a MIN/SUM all-reduce of int64 arrays gives every rank."""
    stack = np.stack([np.asarray(a) for a in arrays])
    assert stack.dtype == np.int64, "collective payloads must be int64"
    return stack.min(axis=0) if op == "min" else stack.sum(axis=0)


def two_phase(parts: list, k) -> histgpu.Histogram:
    """The torch.distributed recipe of the module docstring, with simulated collectives."""
    pieces = [S.local_range(p).to_collective() for p in parts]
    g = S.RangeInfo.from_collective(all_reduce([m for m, _ in pieces], "min"), all_reduce([s for _, s in pieces], "sum"))
    counts = all_reduce([S.local_counts(p, g, k) for p in parts], "sum")
    return S.histogram_from_counts(g, counts)


def v1_two_phase(parts: list) -> histgpu.V1Histogram:
    pieces = [S.local_v1(p).to_collective() for p in parts]
    merged = S.V1Partial.from_collective(all_reduce([m for m, _ in pieces], "min"), all_reduce([s for _, s in pieces], "sum"))
    return merged.finish()


def assert_same_histogram(got: histgpu.Histogram, want: histgpu.Histogram, what: str = "") -> None:
    assert np.array_equal(bits(got.to_tensor()), bits(want.to_tensor())), f"{what}: tensors differ"
    assert np.array_equal(bits(got.edges), bits(want.edges)), f"{what}: edges differ"
    assert got.counts.dtype == want.counts.dtype and np.array_equal(got.counts, want.counts), what
    assert bits(got.min) == bits(want.min) and bits(got.max) == bits(want.max), f"{what}: min/max"
    assert (got.num, got.nan, got.posinf, got.neginf) == (want.num, want.nan, want.posinf, want.neginf), what


def assert_same_v1(got: histgpu.V1Histogram, want: histgpu.V1Histogram, what: str = "") -> None:
    assert np.array_equal(got.counts, want.counts) and got.counts.dtype == want.counts.dtype, what
    for f in ("min", "max", "sum", "sum_squares"):
        assert bits(getattr(got, f)) == bits(getattr(want, f)), f"{what}: {f}"
    assert (got.num, got.nan, got.posinf, got.neginf) == (want.num, want.nan, want.posinf, want.neginf), what


def check_all_ways(parts: list, k, what: str = "") -> None:
    """Every merge route equals the single-tensor result of the concatenation."""
    whole = np.concatenate([np.asarray(p).reshape(-1) for p in parts]) if parts else np.zeros(0)
    want = histgpu.compute(whole, k)
    assert_same_histogram(two_phase(parts, k), want, what + " two-phase")
    g = S.merge_ranges([S.local_range(p) for p in parts])
    locals_ = [S.local_histogram(p, g, k) for p in parts]
    assert_same_histogram(S.merge(locals_), want, what + " merge()")
    if len(locals_) > 2:  # associativity: a tree of partial merges
        tree = S.merge([S.merge(locals_[: len(locals_) // 2]), S.merge(locals_[len(locals_) // 2 :])])
        assert_same_histogram(tree, want, what + " tree merge")
    want_v1 = histgpu.compute_v1(whole)
    got_v1 = v1_two_phase(parts)
    assert_same_v1(got_v1, want_v1, what + " v1")
    assert_same_v1(S.merge_v1([S.local_v1(p) for p in parts]).finish(), want_v1, what + " merge_v1")
    from histgpu.proto import v1_to_proto

    assert v1_to_proto(got_v1).SerializeToString(deterministic=True) == histogram_proto(whole).SerializeToString(
        deterministic=True
    ), what + " v1 proto"


# ---------------------------------------------------------------- named adversarial splits


def _normal(rng, n, dtype=np.float32):
    return rng.standard_normal(n).astype(dtype)


CASES = {
    "uneven": lambda rng: [_normal(rng, 1000), _normal(rng, 3), _normal(rng, 0), _normal(rng, 517) * 9],
    "empty_shards": lambda rng: [_normal(rng, 0), _normal(rng, 40), _normal(rng, 0), _normal(rng, 0)],
    "all_empty": lambda rng: [np.zeros(0, np.float32)] * 3,
    "nan_shard": lambda rng: [np.array([np.nan, 1.5, np.nan], np.float32), _normal(rng, 200), np.array([np.inf, -np.inf, 7.0], np.float32)],
    "only_nonfinite": lambda rng: [np.array([np.nan]), np.array([np.inf, -np.inf]), np.zeros(0)],
    "one_shard_all_equal": lambda rng: [np.full(300, 0.25, np.float32), _normal(rng, 100), np.full(5, -3.0, np.float32)],
    "every_value_equal": lambda rng: [np.full(n, 2.5, np.float32) for n in (10, 0, 1, 7)],
    "shards_identical": lambda rng: [np.arange(-5, 6, dtype=np.float32)] * 4,
    "one_value_total": lambda rng: [np.zeros(0), np.array([3.0]), np.zeros(0)],
    "signed_zeros": lambda rng: [np.array([0.0]), np.array([-0.0]), np.array([0.0, -0.0])],
    "signed_zero_range": lambda rng: [np.array([-0.0, 1.0]), np.array([0.0, -1.0, -0.0])],
    "huge_range_halved": lambda rng: [np.array([-1.7e308, 1.0]), np.array([1.6e308, -5.0])],
    "int64_beyond_2_53": lambda rng: [np.array([2**62, 1, 3], np.int64), np.array([2**53 + 1, -(2**60)], np.int64)],
    "float64_wide": lambda rng: [rng.standard_normal(50) * np.exp(rng.uniform(-300, 300, 50)) for _ in range(3)],
    "float16": lambda rng: [_normal(rng, 100, np.float16), _normal(rng, 7, np.float16) * 100],
    "uint8": lambda rng: [rng.integers(0, 256, 90).astype(np.uint8), np.array([255], np.uint8)],
    "bool": lambda rng: [np.array([True, False]), np.array([True])],
    "subnormals": lambda rng: [np.array([5e-324, 1e-310]), np.array([0.0, 2e-308])],
}
if ml_dtypes is not None:
    CASES["bfloat16"] = lambda rng: [_normal(rng, 64).astype(ml_dtypes.bfloat16), _normal(rng, 9).astype(ml_dtypes.bfloat16)]


@pytest.mark.parametrize("k", [30, 1, 7, 0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_named_splits_equal_the_whole(case, k, rng):
    check_all_ways(CASES[case](rng), k, f"{case} k={k}")


def test_many_random_splits(rng):
    x = rng.standard_normal(20_000).astype(np.float32) * 3
    x[rng.integers(0, x.size, 30)] = np.nan
    x[rng.integers(0, x.size, 5)] = np.inf
    x[rng.integers(0, x.size, 200)] = 0.5
    for trial in range(20):
        parts = random_split(x, rng, int(rng.integers(1, 12)))
        check_all_ways(parts, int(rng.integers(1, 100)), f"trial {trial}")


def test_strided_views_and_broadcasts(rng):
    base = rng.standard_normal((40, 30))
    parts = [base[::2, ::-1], np.broadcast_to(np.float64(0.125), (7, 9)), base.T[3:5], base[0, 0]]
    check_all_ways(parts, 13, "views")


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from([0.0, -0.0, 1.0, 1.0 + 2**-23])),
        max_size=60,
    ),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    k=st.integers(0, 40),
)
def test_hypothesis_any_split(values, cuts, k):
    x = np.array(values, dtype=np.float32)
    parts = np.split(x, sorted(c for c in cuts if c <= x.size))
    check_all_ways(parts, k)


def test_mixed_float_dtypes_are_the_float64_histogram(rng):
    # Not the contract of tf.distribute (one dtype there), but shards of different float
    # types give the histogram of their float64 values.
    a = rng.standard_normal(300).astype(np.float32)
    b = rng.standard_normal(40) * 7
    whole = np.concatenate([a.astype(np.float64), b])
    assert_same_histogram(two_phase([a, b], 23), histgpu.compute(whole, 23), "mixed")


# --------------------------------------------------------------------- collective format


def test_collective_payloads_are_int64_and_small(rng):
    x = rng.standard_normal(1000)
    mins, sums = S.local_range(x).to_collective()
    assert mins.dtype == sums.dtype == np.int64 and mins.shape == (2,) and sums.shape == (4,)
    mins, sums = S.local_v1(x).to_collective()
    assert mins.dtype == sums.dtype == np.int64 and mins.shape == (2,)
    assert sums.shape == (4 + histgpu.v1_limits().size + 2 * 144,)
    assert S.local_counts(x, S.local_range(x), 17).dtype == np.int64


def test_empty_shard_sends_the_neutral_element():
    mins, sums = S.local_range(np.zeros(0)).to_collective()
    assert mins.tolist() == [np.iinfo(np.int64).max] * 2 and sums.tolist() == [0, 0, 0, 0]
    assert S.RangeInfo.from_collective(mins, sums) == S.RangeInfo(0.0, 0.0, 0)


@pytest.mark.parametrize("v", [-np.inf, -1.7976931348623157e308, -1.0, -5e-324, -0.0, 0.0, 5e-324, 2.0, 1.7976931348623157e308, np.inf])
def test_order_keys_round_trip_and_order(v):
    assert bits(S.from_order_key(S.order_key(v))) == bits(v)
    assert S.order_key(-0.0) < S.order_key(0.0)
    with np.errstate(over="ignore"):
        assert S.order_key(np.nextafter(v, np.inf)) >= S.order_key(v)


def test_float_counts_are_refused():
    g = S.local_range([1.0, 2.0])
    with pytest.raises(TypeError, match="int64"):
        S.histogram_from_counts(g, np.array([1.0, 1.0]))
    with pytest.raises(TypeError, match="int64"):
        S.RangeInfo.from_collective(np.zeros(2, np.int64), np.zeros(4))


# ------------------------------------------------------------------------------ errors


def test_merge_refuses_different_bucket_counts(rng):
    g = S.local_range([0.0, 1.0])
    with pytest.raises(ValueError, match="bucket counts"):
        S.merge([S.local_histogram([0.0, 1.0], g, 3), S.local_histogram([0.5], g, 4)])


def test_merge_refuses_different_edges():
    # Two independently computed histograms: different ranges, hence different buckets.
    with pytest.raises(ValueError, match="different bucket edges"):
        S.merge([histgpu.compute([0.0, 1.0], 4), histgpu.compute([0.0, 2.0], 4)])


def test_merge_of_compute_results_with_the_same_edges_is_exact():
    a, b = np.array([0.0, 0.3, 1.0]), np.array([1.0, 0.0, 0.7, 0.7])
    assert_same_histogram(S.merge([histgpu.compute(a, 5), histgpu.compute(b, 5)]), histgpu.compute(np.r_[a, b], 5))


def test_merge_treats_shards_without_finite_values_as_identity():
    a = histgpu.compute([0.0, 4.0], 4)
    empty = histgpu.compute([np.nan, np.inf], 4)  # edges all zero: no finite value
    m = S.merge([empty, a])
    assert_same_histogram(m, histgpu.compute([0.0, 4.0, np.nan, np.inf], 4))


def test_merge_needs_histograms():
    with pytest.raises(ValueError):
        S.merge([])
    with pytest.raises(TypeError):
        S.merge([np.zeros(3)])
    with pytest.raises(ValueError):
        S.merge_v1([])


def test_shard_outside_the_shared_range_is_an_error():
    g = S.merge_ranges([S.local_range([0.0, 1.0])])  # forgot the shard holding 5.0
    with pytest.raises(ValueError, match="outside the shared range"):
        S.local_counts([0.5, 5.0], g, 4)


def test_counts_that_do_not_add_up_are_an_error():
    parts = [np.array([0.0, 1.0]), np.array([2.0])]
    g = S.merge_ranges([S.local_range(p) for p in parts])
    with pytest.raises(ValueError, match="every shard"):
        S.histogram_from_counts(g, S.local_counts(parts[0], g, 3))  # one shard missing


def test_wrong_payload_shapes_are_errors():
    with pytest.raises(ValueError):
        S.RangeInfo.from_collective(np.zeros(3, np.int64), np.zeros(4, np.int64))
    with pytest.raises(ValueError):
        S.V1Partial.from_collective(np.zeros(2, np.int64), np.zeros(10, np.int64))


def test_nonfinite_policy_applies_to_the_global_counts():
    parts = [np.array([1.0, 2.0]), np.array([np.nan])]
    g = S.merge_ranges([S.local_range(p) for p in parts])
    counts = sum(S.local_counts(p, g, 2) for p in parts)
    with pytest.warns(histgpu.NonFiniteWarning):
        S.histogram_from_counts(g, counts)
    with pytest.raises(ValueError, match="NaN"):
        S.histogram_from_counts(g, counts, nonfinite="raise")
    with pytest.raises(ValueError, match="NaN"):
        S.merge_v1([S.local_v1(p) for p in parts]).finish(nonfinite="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S.histogram_from_counts(S.local_range([1.0]), S.local_counts([1.0], S.local_range([1.0]), 2))


def test_local_counts_with_the_shards_own_range_reads_it_once_and_agrees():
    """Passing phase 1's RangeInfo skips the engine's second range read; the counts must not
    change, whatever the shard (NaN, strided, repeated elements)."""
    rng = np.random.default_rng(11)
    whole = rng.standard_normal(50_000).astype(np.float32)
    whole[::777] = np.nan
    shards = [whole[:20_000], whole[20_000:][::-1], np.broadcast_to(whole[:7], (3, 7))]
    ranges = [S.local_range(s) for s in shards]
    g = S.merge_ranges(ranges)
    for shard, mine in zip(shards, ranges):
        assert np.array_equal(S.local_counts(shard, g, 30, local=mine), S.local_counts(shard, g, 30))


def test_local_range_of_another_view_is_refused():
    x = np.arange(10, dtype=np.float64)
    view = np.broadcast_to(x, (3, 10))  # counted 3 times: its stats are multiples of 3
    g = S.local_range(view)
    wrong = S.local_range(x[:4])  # 4 values: not a multiple of the view's repetition
    with pytest.raises(ValueError, match="local stats"):
        S.local_counts(view, g, 5, local=wrong)
    with pytest.raises(TypeError):
        S.local_counts(x, g, 5, local=(0.0, 9.0, 10, 0, 0, 0))
