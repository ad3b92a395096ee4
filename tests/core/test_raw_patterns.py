"""The raw-pattern path of 8- and 16-bit dtypes (docs/semantics.md §2.4, csrc/core/patterns.hpp):
counting every bit pattern once, then deriving the range, the v2 buckets, the v1 buckets and the
exact sums from the counts, gives exactly what the general path (convert to float32, range pass,
count pass, v1 pass) gives, for every dtype and every bit pattern: NaN payloads, both zeros,
subnormals and both infinities included."""

import math

import numpy as np
import pytest

from histgpu import _cpu, _dtypes, _input

NARROW = ["bool", "int8", "uint8", "int16", "uint16", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"]
ISAS = list(_cpu.supported_isas())


def _every_pattern(name, repeat=3, seed=0):
    """Every bit pattern of the dtype, each `repeat` times plus a random amount, shuffled."""
    dt = _dtypes.numpy_dtype(name)
    bits = {1: np.uint8, 2: np.uint16}[dt.itemsize]
    patterns = np.arange(2 ** (8 * dt.itemsize), dtype=np.uint64).astype(bits)
    rng = np.random.default_rng(seed)
    extra = rng.integers(0, patterns.size, patterns.size // 2)
    raw = np.concatenate([np.tile(patterns, repeat), patterns[extra]])
    rng.shuffle(raw)
    return raw.view(dt)


def _engine(threads=1, isa="", patterns=True):
    e = _cpu.CpuEngine(threads=threads, isa=isa)
    e.pattern_min16 = 0 if patterns else -1
    return e


def _view(x):
    return _input.host_view(x).engine_view()


def _v2_fields(r):
    s = r.stats
    return (np.asarray(r.edges).tobytes(), np.asarray(r.counts).tobytes(), np.float64(s.min).tobytes(),
            np.float64(s.max).tobytes(), s.num, s.nan, s.posinf, s.neginf)


def _v1_fields(r):
    s = r.stats
    return (np.asarray(r.counts).tobytes(), np.float64(s.min).tobytes(), np.float64(s.max).tobytes(), s.num, s.nan,
            s.posinf, s.neginf, np.float64(r.sum).tobytes(), np.float64(r.sum_squares).tobytes())


def _finite_subset(x):
    """The finite values of x."""
    with np.errstate(invalid="ignore"):
        return x[np.isfinite(x.astype(np.float64))]


@pytest.mark.parametrize("name", NARROW)
@pytest.mark.parametrize("k", [1, 7, 30, 1000])
def test_v2_patterns_equal_the_general_path_on_every_bit_pattern(name, k):
    x = _every_pattern(name)
    for data in (x, _finite_subset(x)):
        v = _view(data)
        expected = _v2_fields(_engine(patterns=False).v2(v, k))
        assert _v2_fields(_engine(patterns=True).v2(v, k)) == expected, name
        # and equal to float32 data holding the same values (the conversion is exact)
        as_f32 = data.astype(np.float32)
        assert _v2_fields(_engine(patterns=False).v2(_view(as_f32), k)) == expected, name


@pytest.mark.parametrize("name", NARROW)
def test_v1_patterns_equal_the_general_path_and_fsum(name):
    x = _every_pattern(name)
    v = _view(x)
    expected = _v1_fields(_engine(patterns=False).v1(v))
    got = _engine(patterns=True).v1(v)
    assert _v1_fields(got) == expected, name
    f = _finite_subset(x).astype(np.float64)
    assert got.sum == math.fsum(f) and got.sum_squares == math.fsum(f * f)
    assert got.stats.num == f.size
    # v1_partial (sharded v1) goes through the same path
    p = _engine(patterns=True).v1_partial(v)
    q = _engine(patterns=False).v1_partial(v)
    assert np.array_equal(p.counts, q.counts) and np.array_equal(p.sum_digits, q.sum_digits)
    assert np.array_equal(p.sumsq_digits, q.sumsq_digits)


def test_signed_zeros_nan_payloads_and_infinities_by_name():
    """The special patterns by name, alone and mixed: -0.0 is the min of [0.0, -0.0]; NaN
    payloads and both infinities are counted apart; subnormals are values like any other."""
    import ml_dtypes

    cases = {
        "float16": [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7C01, 0xFE00, 0x7FFF, 0x0001, 0x8001, 0x03FF, 0x3C00],
        "bfloat16": [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7F81, 0xFFC0, 0x7FFF, 0x0001, 0x8001, 0x007F, 0x3F80],
        "float8_e4m3fn": [0x00, 0x80, 0x7F, 0xFF, 0x01, 0x81, 0x07, 0x7E, 0xFE],
        "float8_e5m2": [0x00, 0x80, 0x7C, 0xFC, 0x7D, 0xFF, 0x01, 0x81, 0x7B],
    }
    for name, pats in cases.items():
        dt = _dtypes.numpy_dtype(name)
        raw = np.array(pats, dtype={1: np.uint8, 2: np.uint16}[dt.itemsize])
        for sub in (raw, raw[:2], raw[1::-1], np.repeat(raw, 1000)):
            x = sub.view(dt)
            for k in (1, 5, 30):
                a = _engine(patterns=True).v2(_view(x), k)
                b = _engine(patterns=False).v2(_view(x), k)
                assert _v2_fields(a) == _v2_fields(b), (name, sub[:4], k)
            assert _v1_fields(_engine(patterns=True).v1(_view(x))) == _v1_fields(_engine(patterns=False).v1(_view(x)))
    zeros = np.array([0x0000, 0x8000], np.uint16).view(ml_dtypes.bfloat16)
    r = _engine(patterns=True).v2(_view(zeros), 3)
    assert np.signbit(r.stats.min) and not np.signbit(r.stats.max)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_patterns_independent_of_threads_isa_and_layout(isa, threads):
    rng = np.random.default_rng(threads)
    base = rng.standard_normal((700, 1100)).astype(np.float16)
    layouts = {
        "contiguous": base,
        "strided": base[:, ::3],
        "negative": base[::-1, ::-2],
        "transposed": base.T,
        "broadcast": np.broadcast_to(base[:1], (300, 1100)),
        "unaligned": np.frombuffer(b"\0" + base.tobytes(), dtype=np.float16, count=base.size, offset=1),
    }
    for name, x in layouts.items():
        v = _view(x)
        ref = _v2_fields(_engine(1, "baseline", patterns=False).v2(v, 30))
        assert _v2_fields(_engine(threads, isa, patterns=True).v2(v, 30)) == ref, name
        ref1 = _v1_fields(_engine(1, "baseline", patterns=False).v1(v))
        assert _v1_fields(_engine(threads, isa, patterns=True).v1(v)) == ref1, name


def test_counts_past_2_32_in_one_pattern():
    """32-bit pattern counters are folded into 64-bit totals before they can overflow."""
    rows = 2**32 // 63 + 1000
    base = np.full(rows + 63, 1.5, np.float16)
    base[0] = 0.0
    base[-1] = 3.0
    # overlapping windows: every element really read, no zero stride
    from numpy.lib.stride_tricks import as_strided

    x = as_strided(base, shape=(rows, 64), strides=(2, 2), writeable=False)
    r = _engine(2, patterns=True).v2(_view(x), 4)
    assert r.stats.num == rows * 64
    assert int(np.asarray(r.counts).sum()) == rows * 64
    assert int(np.asarray(r.counts).max()) == rows * 64 - 2 > 2**32


def test_default_engine_takes_the_pattern_path_above_its_threshold():
    e = _cpu.CpuEngine(threads=1)
    assert e.pattern_min16 > 0
    x = np.random.default_rng(0).standard_normal(e.pattern_min16 * 2).astype("bfloat16")
    assert _v2_fields(e.v2(_view(x), 30)) == _v2_fields(_engine(patterns=False).v2(_view(x), 30))
