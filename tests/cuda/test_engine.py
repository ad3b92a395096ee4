"""The real GPU through the public API, bit for bit with the CPU (docs/semantics.md §1.4):
PyTorch, CuPy, CUDA Array Interface, DLPack and JAX inputs, more than 2^31 elements, streams
and the asynchronous path.

The kernels themselves are checked against the CPU engine on every machine by
tests/cuda/test_kernels.py (emulated, and on the GPU where there is one). These tests need a
usable CUDA device and CuPy or PyTorch, and are skipped, with the reason shown, elsewhere.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX shares the GPU here

import histgpu
from histgpu import _cpu, _input

from .engines import CPU, GPU, _cuda, bits, cupy, same_v1, same_v2, torch

NO_GPU = "no usable CUDA device (CUDA engine not built, no driver or no GPU): GPU==CPU tests skipped"
pytestmark = pytest.mark.skipif(not GPU, reason=NO_GPU)
try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None

def _needs(ok, what):
    return pytest.mark.skipif(not (GPU and ok), reason=NO_GPU if not GPU else what)


needs_uploader = _needs(cupy is not None or torch is not None, "needs CuPy or PyTorch to put data on the GPU")
needs_torch = _needs(torch is not None, "needs PyTorch with CUDA")
needs_cupy = _needs(cupy is not None, "needs CuPy")

BIG = os.environ.get("HISTGPU_BIG_TESTS", "1") != "0"


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
    hview = _input.host_view(host).engine_view()
    dview = _cpu.View(ptr, 2, [n], [1], 1)
    gpu = _cuda.CudaEngine()
    for k in (30, 256):
        g = gpu.v2(dview, k)
        same_v2(g, CPU.v2(hview, k), f"2^31+ k={k}")
        assert int(np.asarray(g.counts).sum()) == n
    same_v1(gpu.v1(dview), CPU.v1(hview), "2^31+ v1")
    # a strided view of it: every other element (> 2^30 elements, > 2^31 bytes apart)
    sv = _cpu.View(ptr, 2, [n // 2], [2], 1)
    hs = _input.host_view(host[: (n // 2) * 2 : 2]).engine_view()
    same_v2(gpu.v2(sv, 30), CPU.v2(hs, 30), "2^31+ strided")


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
        pend = histgpu._cuda_async.enqueue_histogram(x2, 30)
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
    pend = histgpu._cuda_async.enqueue_histograms(ts, [3, 30, 7, 5])
    hs = histgpu.histogram_many(ts, [3, 30, 7, 5])
    while not pend.done():
        pass
    for t, h, p, k in zip(hosts, hs, pend.result(), [3, 30, 7, 5]):
        ref = histgpu.compute(t, k)
        _same_hist(h, ref, "histogram_many")
        _same_hist(p, ref, "enqueue_histograms")
    single = histgpu._cuda_async.enqueue_histogram(ts[1], 30).result()
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
