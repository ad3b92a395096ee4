"""Same bits everywhere (docs/semantics.md §1.4): every CPU kernel build and every thread count
give identical results, the per-call fast path for numpy arrays (layout read in C++) gives what
the general path gives, and ``histogram_many`` gives what one ``compute`` per tensor gives."""

import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import histgpu
from histgpu import _cpu, _engine, _input
from histgpu._options import NonFiniteWarning

ISAS = list(_cpu.supported_isas())
THREADS = [1, 2, 3, 8]


def _data():
    rng = np.random.default_rng(42)
    n = 600_011  # several chunks per thread, a ragged end
    normal = rng.standard_normal(n).astype(np.float32)
    nonfinite = normal.copy()
    nonfinite[::4999] = np.nan
    nonfinite[7::7919] = np.inf
    nonfinite[11::10007] = -np.inf
    wide = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 38, n)).astype(np.float32)
    tiny = (rng.standard_normal(n // 10) * 1e-41).astype(np.float32)  # float32 subnormals (slow paths)
    spiky = np.where(rng.random(n) < 0.9, np.float32(0), normal)  # mostly zeros
    return {
        "f32": normal,
        "f32_nonfinite": nonfinite,
        "f32_wide": wide,
        "f32_subnormal": tiny,
        "f32_zeros": spiky,
        "f32_strided": normal.reshape(601, -1)[::-1, ::3] if normal.size % 601 == 0 else normal[::3],
        "f64": rng.standard_normal(n) * 1e3,
        "f16": rng.standard_normal(n).astype(np.float16),
        "bf16": rng.standard_normal(n).astype("bfloat16"),
        "i8": rng.integers(-128, 128, n).astype(np.int8),
        "i32": rng.integers(-(2**31), 2**31, n).astype(np.int32),
    }


DATA = _data()


def _v2(r):
    s = r.stats
    return (np.asarray(r.edges).tobytes(), np.asarray(r.counts).tobytes(), np.float64(s.min).tobytes(),
            np.float64(s.max).tobytes(), s.num, s.nan, s.posinf, s.neginf)


def _v1(r):
    s = r.stats
    return (np.asarray(r.counts).tobytes(), np.float64(s.min).tobytes(), np.float64(s.max).tobytes(), s.num, s.nan,
            s.posinf, s.neginf, np.float64(r.sum).tobytes(), np.float64(r.sum_squares).tobytes())


@pytest.mark.parametrize("name", sorted(DATA))
def test_every_isa_and_thread_count_give_the_same_bits(name):
    v = _input.host_view(DATA[name]).engine_view()
    ref_v2 = {k: _v2(_cpu.CpuEngine(threads=1, isa="baseline").v2(v, k)) for k in (1, 30, 1000, 70_000)}
    ref_v1 = _v1(_cpu.CpuEngine(threads=1, isa="baseline").v1(v))
    for isa in ISAS:
        for t in THREADS:
            e = _cpu.CpuEngine(threads=t, isa=isa)
            for k, ref in ref_v2.items():
                assert _v2(e.v2(v, k)) == ref, f"{name}: isa={isa} threads={t} k={k}"
            assert _v1(e.v1(v)) == ref_v1, f"{name}: isa={isa} threads={t} v1"


def _layouts():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 50, 6)).astype(np.float32)
    return {
        "contiguous": a,
        "0-d": np.array(2.5, np.float32),
        "empty": np.zeros((3, 0), np.float32),
        "one element": a[:1, :1, :1],
        "negative strides": a[::-1, :, ::-2],
        "transposed": a.transpose(2, 0, 1),
        "broadcast": np.broadcast_to(a[:, :1], (40, 70, 6)),
        "overlapping": as_strided(a.reshape(-1)[:100], shape=(50, 60), strides=(4, 4), writeable=False),
        "fortran": np.asfortranarray(a),
        "unaligned": np.frombuffer(b"\0" + a.tobytes(), dtype=np.float32, count=a.size, offset=1),
        "bool": rng.integers(0, 2, (30, 30)).astype(bool)[::2],
        "float16 strided": a.astype(np.float16)[:, ::3],
        "int64 column": rng.integers(-5, 5, (100, 7))[:, 3],
    }


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_numpy_fast_path_equals_the_general_path(name):
    """A plain numpy array's layout is read in C++ (cpu/host_layout.hpp); a view of it through
    histgpu._input (what every other input takes) must give the very same results."""
    x = _layouts()[name]
    assert _input.plain_array_code(x) is not None
    e = _engine.cpu_engine(None)
    general = _input.host_view(x).engine_view()
    for k in (0, 1, 7, 30):
        fast = histgpu.compute(x, k)
        ref = e.v2(general, k)
        assert np.asarray(fast.edges).tobytes() == np.asarray(ref.edges).tobytes(), (name, k)
        assert np.array_equal(fast.counts, ref.counts) and fast.num == ref.stats.num, (name, k)
        assert np.array_equal(histgpu.histogram(x, k), fast.to_tensor()), (name, k)
    v1 = histgpu.compute_v1(x)
    ref1 = e.v1(general)
    assert np.array_equal(v1.counts, ref1.counts) and v1.sum == ref1.sum and v1.sum_squares == ref1.sum_squares


def test_fast_path_keeps_the_checks_and_warnings():
    x = np.array([1.0, np.nan, 3.0], np.float32)
    with pytest.warns(NonFiniteWarning):
        h = histgpu.compute(x, 4)
    assert (h.num, h.nan) == (2, 1)
    with pytest.raises(ValueError):
        histgpu.histogram(x, 4, nonfinite="raise")
    with pytest.raises(TypeError):
        histgpu.histogram(np.zeros(3, np.float32), 2.5)
    with pytest.raises(ValueError):
        histgpu.compute(np.zeros(3, np.float32), num_threads=0)
    big_endian = np.arange(10, dtype=">f4")  # not a native dtype: the general path converts it
    assert np.array_equal(histgpu.histogram(big_endian, 3), histgpu.histogram(np.arange(10, dtype="<f4"), 3))


def _many_inputs():
    rng = np.random.default_rng(9)
    out = [rng.standard_normal(int(n)).astype(np.float32) for n in rng.integers(1, 5000, 150)]
    out += [
        np.zeros(0, np.float32),
        np.full(17, 3.0),
        rng.standard_normal((300, 300))[::2, ::-3],
        np.broadcast_to(rng.standard_normal(64), (1000, 64)),
        rng.standard_normal(200_000).astype("bfloat16"),  # large enough to be split across threads
        rng.standard_normal(300_000).astype(np.float16),
        rng.integers(-100, 100, 5000).astype(np.int8),
        np.array([1.0, np.nan, np.inf, -2.0]),
        [1.0, 2.0, 3.0],  # not an array: classified, then counted in the same call
        np.arange(12, dtype=">i4"),
        7.0,
    ]
    return out


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_histogram_many_equals_one_compute_per_tensor(threads):
    tensors = _many_inputs()
    ks = [int(k) for k in np.random.default_rng(1).integers(0, 200, len(tensors))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteWarning)
        for buckets in (None, 30, ks):
            many = histgpu.histogram_many(tensors, buckets, num_threads=threads)
            assert len(many) == len(tensors)
            for i, (t, h) in enumerate(zip(tensors, many)):
                k = buckets[i] if isinstance(buckets, list) else buckets
                one = histgpu.compute(t, k, num_threads=1)
                assert np.asarray(h.edges).tobytes() == np.asarray(one.edges).tobytes(), i
                assert np.array_equal(h.counts, one.counts), i
                assert (h.min, h.max, h.num, h.nan, h.posinf, h.neginf) == (
                    one.min, one.max, one.num, one.nan, one.posinf, one.neginf), i


def test_histogram_many_warns_once_for_the_batch():
    tensors = [np.array([1.0, np.nan]), np.array([np.inf, 2.0]), np.ones(3)]
    with pytest.warns(NonFiniteWarning) as record:
        histgpu.histogram_many(tensors)
    assert len([w for w in record if issubclass(w.category, NonFiniteWarning)]) == 1
    with pytest.raises(ValueError):
        histgpu.histogram_many(tensors, nonfinite="raise")


def test_read_ceiling_probe_reads_everything():
    x = np.random.default_rng(0).integers(0, 2**63, 300_003, dtype=np.uint64)
    expected = int(np.bitwise_xor.reduce(x))
    for isa in ISAS:
        for t in (1, 2):
            assert _cpu.CpuEngine(threads=t, isa=isa).read_array(x, _input.plain_array_code(x)) == expected
