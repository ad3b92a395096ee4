"""GPU == CPU, bit for bit (docs/semantics.md §1.4): every dtype, v2 and v1, adversarial data, strided and
unaligned views, more than 2^31 elements, batches, streams and the asynchronous path.

The CPU engine defines the answer; these tests need a usable CUDA device and CuPy or PyTorch
(to put bytes on it) and are skipped, with the reason shown, everywhere else. No TensorFlow.
"""

import ctypes
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX shares the GPU here

import histgpu
from histgpu import _cpu, _input

from ..core.oracles import ulp_neighbours

try:
    from histgpu import _cuda
except ImportError:
    _cuda = None

GPU = bool(histgpu.build_info()["cuda"]["device_available"])
NO_GPU = "no usable CUDA device (CUDA engine not built, no driver or no GPU): GPU==CPU tests skipped"
pytestmark = pytest.mark.skipif(not GPU, reason=NO_GPU)

cupy = torch = None
if GPU:  # import the frameworks only where they can be used
    try:
        import cupy
    except Exception:  # noqa: BLE001 - any import failure means no CuPy
        cupy = None
    try:
        import torch

        if not torch.cuda.is_available():
            torch = None
    except Exception:  # noqa: BLE001
        torch = None
try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None

def _needs(ok, what):
    return pytest.mark.skipif(not (GPU and ok), reason=NO_GPU if not GPU else what)


needs_uploader = _needs(cupy is not None or torch is not None, "needs CuPy or PyTorch to put data on the GPU")
needs_torch = _needs(torch is not None, "needs PyTorch with CUDA")
needs_cupy = _needs(cupy is not None, "needs CuPy")

THREADS = max(1, min(8, os.cpu_count() or 1))
BIG = os.environ.get("HISTGPU_BIG_TESTS", "1") != "0"


# ------------------------------------------------------------------------------------------------
# helpers: the same bytes and layout on the host and on the device
# ------------------------------------------------------------------------------------------------


def _upload_bytes(raw: np.ndarray, offset: int):
    """(owner, device pointer) of a device buffer holding `raw` (uint8) at byte `offset`."""
    n = raw.size
    if cupy is not None:
        buf = cupy.empty(n + 64, dtype=cupy.uint8)
        if n:
            buf[offset:offset + n].set(raw)
        return buf, int(buf.data.ptr) + offset
    buf = torch.empty(n + 64, dtype=torch.uint8, device="cuda")
    if n:
        buf[offset:offset + n].copy_(torch.from_numpy(raw))
    torch.cuda.synchronize()
    return buf, int(buf.data_ptr()) + offset


def mirror(host_arr, offset=0):
    """Engine arguments of `host_arr` on the host and of an identical copy on the device
    (same shape, strides and multiplicity; the device copy starts at byte `offset` of a buffer)."""
    hv = _input.normalise(host_arr)
    itemsize = hv.dtype.itemsize
    if hv.size == 0:
        owner, dptr = _upload_bytes(np.zeros(0, np.uint8), offset)
        return owner, (0, hv.code, [0], [itemsize], 1), hv.engine_args()
    nbytes = itemsize + sum((e - 1) * s for e, s in zip(hv.shape, hv.strides))
    raw = np.frombuffer(ctypes.string_at(hv.ptr, nbytes), dtype=np.uint8).copy()
    owner, dptr = _upload_bytes(raw, offset)
    dargs = (dptr, hv.code, list(hv.shape), list(hv.strides), hv.multiplicity)
    return (owner, hv), dargs, hv.engine_args()


def bits(x):
    return np.asarray(x, dtype=np.float64).view(np.uint64)


def assert_same_v2(g, c, what=""):
    ge, gc, gs = g
    ce, cc, cs = c
    assert np.array_equal(bits(ge), bits(ce)), f"{what}: edges differ"
    assert np.array_equal(np.asarray(gc), np.asarray(cc)), f"{what}: counts differ\n gpu {gc}\n cpu {cc}"
    assert bits(gs[:2]).tolist() == bits(cs[:2]).tolist(), f"{what}: min/max {gs[:2]} vs {cs[:2]}"
    assert tuple(gs[2:]) == tuple(cs[2:]), f"{what}: counts of kinds {gs[2:]} vs {cs[2:]}"


def assert_same_v1(g, c, what=""):
    gcounts, gs, gsum, gsq = g
    ccounts, cs, csum, csq = c
    assert np.array_equal(gcounts, ccounts), f"{what}: v1 counts differ"
    assert bits(gs[:2]).tolist() == bits(cs[:2]).tolist(), f"{what}: v1 min/max"
    assert tuple(gs[2:]) == tuple(cs[2:]), f"{what}: v1 kinds"
    assert bits([gsum, gsq]).tolist() == bits([csum, csq]).tolist(), f"{what}: sums {gsum},{gsq} vs {csum},{csq}"


def check_v2(host_arr, k, offset=0, what=""):
    _owner, dargs, hargs = mirror(host_arr, offset)
    c = _cpu.histogram_v2(*hargs, k, THREADS, "")
    g = _cuda.histogram_v2(*dargs, k, 0, -1)
    assert_same_v2(g, c, f"{what} v2 k={k}")
    many = _cuda.histogram_v2_many([dargs], [k], 0, -1)[0]  # the batch path (device planner)
    assert_same_v2(many, c, f"{what} batch k={k}")
    return c


def check_v1(host_arr, offset=0, what=""):
    _owner, dargs, hargs = mirror(host_arr, offset)
    c = _cpu.histogram_v1(*hargs, THREADS, "")
    g = _cuda.histogram_v1(*dargs, 0, -1)
    assert_same_v1(g, c, f"{what} v1")
    cp = _cpu.histogram_v1_partial(*hargs, THREADS, "")
    gp = _cuda.histogram_v1_partial(*dargs, 0, -1)
    assert np.array_equal(cp[0], gp[0]) and np.array_equal(cp[2], gp[2]) and np.array_equal(cp[3], gp[3]), what


ALL = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
       np.float16, np.float32, np.float64]
if ml_dtypes is not None:
    ALL += [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]


def sample(dt, n, rng, nonfinite=True):
    d = np.dtype(dt)
    if d == np.bool_:
        return rng.random(n) < 0.3
    if d.kind in "iu":
        info = np.iinfo(d)
        return rng.integers(info.min, info.max, n, dtype=d, endpoint=True)
    x = rng.standard_normal(n) * 3.0
    x[rng.random(n) < 0.01] *= 1e3
    x = x.astype(d)
    if nonfinite and n > 10:
        x[rng.integers(0, n, 3)] = np.nan
        x[rng.integers(0, n, 2)] = np.inf
        x[rng.integers(0, n, 1)] = -np.inf
    return x


def layouts(x):
    """Contiguous, strided (2-d with gaps and a step), and a reversed/transposed view."""
    m = x.size // 10 * 10
    two = x[:m].reshape(-1, 10)
    return {
        "contiguous": x,
        "strided": two[:, 1:8:2],
        "transposed": two.T[::-1],
    }


# ------------------------------------------------------------------------------------------------
# every dtype, both paths, every layout
# ------------------------------------------------------------------------------------------------


@needs_uploader
@pytest.mark.parametrize("dt", ALL, ids=[np.dtype(d).name for d in ALL])
@pytest.mark.parametrize("n", [1, 1000, 3 * 65536 + 17])
def test_every_dtype_and_layout(dt, n):
    rng = np.random.default_rng(n + np.dtype(dt).num)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = sample(dt, n, rng)
    for name, view in layouts(x).items():
        for k in (1, 3, 30, 1000, 70000):
            check_v2(view, k, what=f"{np.dtype(dt).name} {name} n={n}")
        check_v1(view, what=f"{np.dtype(dt).name} {name} n={n}")
        if np.dtype(dt).itemsize > 1:  # an address that is not a multiple of the item size
            check_v2(view, 30, offset=1, what=f"{np.dtype(dt).name} {name} unaligned")
            check_v1(view, offset=1, what=f"{np.dtype(dt).name} {name} unaligned")


@needs_uploader
@pytest.mark.parametrize("offset", [0, 2, 4, 8, 12])
def test_vector_alignment_heads_and_tails(offset):
    rng = np.random.default_rng(offset)
    for dt in (np.float32, np.float16, np.float64):
        for n in (5, 16, 17, 65536 + 3):
            x = rng.standard_normal(n).astype(dt)
            check_v2(x, 30, offset=offset, what=f"{np.dtype(dt).name} n={n} offset={offset}")
            check_v1(x, offset=offset, what=f"{np.dtype(dt).name} n={n} offset={offset}")


# ------------------------------------------------------------------------------------------------
# adversarial data
# ------------------------------------------------------------------------------------------------


def _edge_data(dt, lo, hi, k, rng):
    d = np.dtype(dt)
    width = (np.float64(hi) - np.float64(lo)) / k
    edges = lo + width * np.arange(k + 1)
    x = ulp_neighbours(edges, d, steps=2)
    return np.concatenate([x, np.array([lo, hi], dtype=d), rng.uniform(lo, hi, 500).astype(d)])


@needs_uploader
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64] + ([ml_dtypes.bfloat16] if ml_dtypes else []),
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [1, 2, 7, 30, 100, 999])
def test_values_on_and_around_thresholds(dt, k):
    rng = np.random.default_rng(k)
    for lo, hi in [(-1.0, 1.0), (0.1, 0.7), (-3.0, 1000.0), (1e-3, 1.0)]:
        x = _edge_data(dt, lo, hi, k, rng)
        x = x[(x.astype(np.float64) >= lo) & (x.astype(np.float64) <= hi)]
        check_v2(x, k, what=f"edges {np.dtype(dt).name} [{lo},{hi}]")
    check_v1(x, what=f"edges {np.dtype(dt).name}")


SPECIAL = {
    "empty_f32": np.zeros(0, np.float32),
    "one": np.array([2.5], np.float32),
    "all_equal": np.full(100000, -7.25, np.float32),
    "signed_zeros": np.array([0.0, -0.0] * 1000, np.float32),
    "all_nan": np.full(1000, np.nan, np.float64),
    "nan_inf_and_one": np.array([np.nan, np.inf, -np.inf, 3.0] * 100, np.float32),
    "subnormals_f64": np.array([5e-324, 1e-310, -2e-320, 0.0] * 500, np.float64),
    "subnormals_f32": np.array([1e-45, 1e-40, -3e-39, 0.0] * 500, np.float32),
    "huge_range_f64": np.array([-1.7e308, 1.7e308, 0.0, 1e300, -5.0] * 100, np.float64),
    "f32_max": np.array([3.4e38, -3.4e38, 1.0] * 1000, np.float32),
    "int64_above_2_53": np.array([2**53 + 1, 2**53 + 3, 2**62, -(2**63), 2**63 - 1, 5] * 300, np.int64),
    "uint64_top": np.array([2**64 - 1, 2**63, 0, 1] * 300, np.uint64),
    "piled_up": np.concatenate([np.zeros(500000, np.float32), np.array([1.0, -1.0], np.float32)]),
    "tiny_and_huge": np.array([1e-300, 1e300, -1e-200, 1e150, 3.0] * 999, np.float64),
    "cancelling": np.concatenate([np.arange(1, 50001, dtype=np.float64) * 1e10,
                                  -np.arange(1, 50001, dtype=np.float64) * 1e10, [1e-10]]),
}


@needs_uploader
@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_inputs(name):
    x = SPECIAL[name]
    for k in (0, 1, 5, 30):
        check_v2(x, k, what=name)
    check_v1(x, what=name)


@needs_uploader
def test_exact_sums_wide_exponents():
    """Values whose exponents jump around move the per-thread sum windows constantly."""
    rng = np.random.default_rng(3)
    for dt in (np.float32, np.float64):
        info = np.finfo(dt)
        lo, hi = np.log2(info.tiny) - 20, np.log2(info.max) - 2
        e = rng.uniform(lo, hi, 300000)
        x = (np.sign(rng.standard_normal(e.size)) * np.exp2(e)).astype(dt)
        check_v1(x, what=f"wide {np.dtype(dt).name}")
        check_v2(x, 30, what=f"wide {np.dtype(dt).name}")


@needs_uploader
def test_in_range_shards_equal_cpu():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(200001).astype(np.float32)
    _o, dargs, hargs = mirror(x)
    for gmin, gmax, gnum in [(float(x.min()) - 1, float(x.max()) + 2, x.size * 3), (-1.0, 1.0, 10)]:
        xs = x[(x >= gmin) & (x <= gmax)]
        _o2, d2, h2 = mirror(xs)
        c = _cpu.histogram_v2_in_range(*h2, 30, gmin, gmax, gnum, None, THREADS, "")
        g = _cuda.histogram_v2_in_range(*d2, 30, gmin, gmax, gnum, None, 0, -1)
        assert_same_v2(g, c, "in_range")
    c = _cpu.range_stats(*hargs, THREADS, "")
    g = _cuda.range_stats(*dargs, 0, -1)
    assert bits(g[:2]).tolist() == bits(c[:2]).tolist() and tuple(g[2:]) == tuple(c[2:])


# ------------------------------------------------------------------------------------------------
# more than 2^31 elements
# ------------------------------------------------------------------------------------------------


@needs_uploader
@pytest.mark.skipif(not BIG, reason="HISTGPU_BIG_TESTS=0")
def test_more_than_2_31_elements():
    n = 2**31 + 4097
    if cupy is not None:
        dev = (cupy.arange(n, dtype=cupy.uint32) % 253).astype(cupy.uint8)
        dev[n - 1] = 255
        host = dev.get()
        ptr = int(dev.data.ptr)
    else:
        dev = (torch.arange(n, dtype=torch.int64, device="cuda") % 253).to(torch.uint8)
        dev[n - 1] = 255
        torch.cuda.synchronize()
        host = dev.cpu().numpy()
        ptr = int(dev.data_ptr())
    hargs = _input.normalise(host).engine_args()
    dargs = (ptr, 2, [n], [1], 1)
    for k in (30, 256):
        c = _cpu.histogram_v2(*hargs, k, THREADS, "")
        g = _cuda.histogram_v2(*dargs, k, 0, -1)
        assert_same_v2(g, c, f"2^31+ k={k}")
        assert int(np.asarray(g[1]).sum()) == n
    assert_same_v1(_cuda.histogram_v1(*dargs, 0, -1), _cpu.histogram_v1(*hargs, THREADS, ""), "2^31+ v1")
    # a strided view of it: every other element (> 2^30 elements, > 2^31 bytes apart)
    sv = (ptr, 2, [n // 2], [2], 1)
    hs = _input.normalise(host[: (n // 2) * 2 : 2]).engine_args()
    assert_same_v2(_cuda.histogram_v2(*sv, 30, 0, -1), _cpu.histogram_v2(*hs, 30, THREADS, ""), "2^31+ strided")


# ------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------


@needs_uploader
def test_batch_of_300_mixed_tensors():
    rng = np.random.default_rng(300)
    hosts, ks = [], []
    dts = [np.float32, np.float32, np.float32, np.float16, np.float64, np.int32, np.uint8] + (
        [ml_dtypes.bfloat16] if ml_dtypes else [])
    for i in range(300):
        dt = dts[i % len(dts)]
        n = int(rng.choice([0, 1, 7, 100, 4096, 65536, 65537, 200000]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = sample(dt, n, rng, nonfinite=(i % 5 == 0))
        if i % 17 == 0 and n:
            x = np.full(n, x[0])
        if i % 11 == 0 and n >= 20:
            x = x[: n // 10 * 10].reshape(-1, 10)[:, ::3]
        hosts.append(x)
        ks.append(int(rng.choice([1, 5, 30, 64, 500])))
    mirrors = [mirror(x) for x in hosts]
    got = _cuda.histogram_v2_many([m[1] for m in mirrors], ks, 0, -1)
    for i, ((_o, _d, hargs), g) in enumerate(zip(mirrors, got)):
        assert_same_v2(g, _cpu.histogram_v2(*hargs, ks[i], THREADS, ""), f"batch tensor {i}")
    pend = _cuda.enqueue_v2_many([m[1] for m in mirrors], ks, 0, -1)
    pend.wait()
    assert pend.done() and len(pend) == 300
    for g, g2 in zip(got, pend.results()):
        assert_same_v2(g2, g, "enqueue vs many")


# ------------------------------------------------------------------------------------------------
# framework inputs through the public API, streams, async
# ------------------------------------------------------------------------------------------------


def _same_hist(a, b, what=""):
    assert np.array_equal(bits(a.edges), bits(b.edges)), what
    assert np.array_equal(a.counts, b.counts), what
    assert bits([a.min, a.max]).tolist() == bits([b.min, b.max]).tolist(), what
    assert (a.num, a.nan, a.posinf, a.neginf) == (b.num, b.nan, b.posinf, b.neginf), what


def _same_v1(a, b, what=""):
    assert np.array_equal(a.counts, b.counts), what
    assert bits([a.min, a.max, a.sum, a.sum_squares]).tolist() == bits([b.min, b.max, b.sum, b.sum_squares]).tolist(), what
    assert (a.num, a.nan, a.posinf, a.neginf) == (b.num, b.nan, b.posinf, b.neginf), what


def _torch_to_numpy(t):
    name = str(t.dtype).replace("torch.", "")
    if name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        raw = t.contiguous().view(torch.uint8 if t.element_size() == 1 else torch.int16).cpu().numpy()
        return raw.view(getattr(ml_dtypes, name))
    return t.cpu().numpy()


@needs_torch
def test_torch_tensors_through_api():
    g = torch.Generator(device="cuda").manual_seed(0)
    base = torch.randn(513, 257, device="cuda", generator=g)
    cases = {
        "f32": base,
        "f32_T": base.t(),
        "f32_slice": base[3:500:3, 1::2],
        "f32_expand": base[:, :1].expand(513, 40),
        "f16": base.half(),
        "bf16": base.bfloat16(),
        "f64": base.double()[::2],
        "i64": (base * 1000).long(),
        "bool": base > 0,
        "u8": (base * 50).clamp(0, 255).to(torch.uint8),
    }
    for name in ("float8_e4m3fn", "float8_e5m2"):
        if hasattr(torch, name) and ml_dtypes is not None:
            cases[name] = base.clamp(-400, 400).to(getattr(torch, name))
    for name, t in cases.items():
        host = _torch_to_numpy(t)
        for k in (1, 30):
            _same_hist(histgpu.compute(t, k), histgpu.compute(host, k), f"torch {name} k={k}")
        assert np.array_equal(histgpu.histogram(t, 30), histgpu.histogram(host, 30))
        _same_v1(histgpu.compute_v1(t), histgpu.compute_v1(host), f"torch v1 {name}")


@needs_cupy
def test_cupy_arrays_through_api():
    rs = cupy.random.RandomState(1)
    base = rs.standard_normal((300, 401), dtype=cupy.float32)
    cases = {
        "f32": base,
        "reversed": base[::-1, ::-3],
        "broadcast": cupy.broadcast_to(base[:1], (50, 401)),
        "f16": base.astype(cupy.float16),
        "f64": base.astype(cupy.float64).T,
        "u16": (base * 1000).astype(cupy.uint16),
        "i8": (base * 40).astype(cupy.int8),
    }
    for name, a in cases.items():
        host = cupy.asnumpy(a)
        _same_hist(histgpu.compute(a, 30), histgpu.compute(host, 30), f"cupy {name}")
        _same_v1(histgpu.compute_v1(a), histgpu.compute_v1(host), f"cupy v1 {name}")


class _CaiOnly:
    def __init__(self, arr):
        self._arr = arr
        self.__cuda_array_interface__ = arr.__cuda_array_interface__


class _DLPackOnly:
    def __init__(self, t):
        self._t = t

    def __dlpack__(self, stream=None):
        return self._t.__dlpack__(stream=stream)

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


@needs_uploader
def test_cuda_array_interface_and_dlpack_objects():
    if cupy is not None:
        a = cupy.random.RandomState(2).standard_normal((1000, 7), dtype=cupy.float32)[:, ::2]
        host = cupy.asnumpy(a)
    else:
        a = torch.randn(1000, 7, device="cuda")[:, ::2]
        host = a.cpu().numpy()
    _same_hist(histgpu.compute(_CaiOnly(a), 30), histgpu.compute(host, 30), "CAI object")
    _same_hist(histgpu.compute(_DLPackOnly(a), 30), histgpu.compute(host, 30), "DLPack object")


def test_jax_arrays_if_available():
    jax = pytest.importorskip("jax")
    try:
        gpu = jax.devices("gpu")[0]
    except Exception:  # noqa: BLE001
        pytest.skip("JAX sees no GPU")
    x = jax.device_put(jax.numpy.linspace(-3, 7, 100003, dtype=jax.numpy.float32), gpu)
    host = np.asarray(x)
    _same_hist(histgpu.compute(x, 30), histgpu.compute(host, 30), "jax")


@needs_torch
def test_work_is_ordered_on_the_producers_stream():
    n = 1 << 24
    lin = torch.linspace(-1, 1, n, device="cuda")
    torch.cuda.synchronize()
    ref = histgpu.compute(lin.cpu().numpy(), 30)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = torch.zeros(n, device="cuda")
        torch.cuda._sleep(10**6)  # keep s busy, so that the add below is still queued
        x.add_(lin)
        h = histgpu.compute(x, 30)  # ordered after the add on s: must see it
        x2 = torch.zeros(n, device="cuda")
        x2.add_(lin)
        pend = histgpu._cuda_backend.enqueue_histogram(x2, 30)
        x2.fill_(5.0)  # queued after the histogram: must not be seen by it
    _same_hist(h, ref, "stream ordering (sync)")
    _same_hist(pend.result(), ref, "stream ordering (async)")
    s.synchronize()
    assert histgpu.compute(x2, 3).min == 5.0


@needs_cupy
def test_cupy_non_blocking_stream():
    with cupy.cuda.Stream(non_blocking=True):
        a = cupy.random.RandomState(3).standard_normal(3 * 10**6, dtype=cupy.float32)
        a *= 7
        h = histgpu.compute(a, 30)
        host = cupy.asnumpy(a)
    _same_hist(h, histgpu.compute(host, 30), "cupy stream")


@needs_uploader
def test_enqueue_and_histogram_many_api():
    if torch is not None:
        ts = [torch.randn(n, device="cuda") for n in (10, 1000, 65537, 0)]
        hosts = [t.cpu().numpy() for t in ts]
    else:
        ts = [cupy.random.standard_normal(n, dtype=cupy.float32) for n in (10, 1000, 65537, 0)]
        hosts = [cupy.asnumpy(t) for t in ts]
    pend = histgpu._cuda_backend.enqueue_histograms(ts, [3, 30, 7, 5])
    hs = histgpu.histogram_many(ts, [3, 30, 7, 5])
    while not pend.done():
        pass
    for t, h, p, k in zip(hosts, hs, pend.result(), [3, 30, 7, 5]):
        ref = histgpu.compute(t, k)
        _same_hist(h, ref, "histogram_many")
        _same_hist(p, ref, "enqueue_histograms")
    single = histgpu._cuda_backend.enqueue_histogram(ts[1], 30).result()
    _same_hist(single, histgpu.compute(hosts[1], 30), "enqueue_histogram")
    mixed = histgpu.histogram_many([ts[1], hosts[2]], 30)
    _same_hist(mixed[1], histgpu.compute(hosts[2], 30), "mixed host/device batch")


@needs_uploader
def test_host_data_with_device_cuda_is_uploaded():
    x = np.random.default_rng(9).standard_normal(10000)
    _same_hist(histgpu.compute(x, 30, device="cuda"), histgpu.compute(x, 30), "device='cuda' host input")


def test_build_info_sees_the_device():
    info = histgpu.build_info()["cuda"]
    assert info["compiled"] and info["device_available"] and info["devices"]
    assert _cuda.device_count() >= 1
