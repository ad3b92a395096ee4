"""The CUDA engine where no GPU is needed: build, import, reporting, dispatch errors, and the
host builds of the code the kernels share with the host (dtype conversion, device planner).

These run everywhere the CUDA module was compiled (CI compiles it with nvcc on a machine
without a GPU); GPU-vs-CPU equality lives in tests/cuda/test_engine.py.
"""

import numpy as np
import pytest

import histgpu
from histgpu import _cpu, _engine, _input, _input_device

try:
    from histgpu import _cuda
except ImportError:  # built without nvcc
    _cuda = None

needs_module = pytest.mark.skipif(_cuda is None, reason="histgpu was built without its CUDA engine (no nvcc)")
no_device = pytest.mark.skipif(
    _cuda is not None and _cuda.device_available(), reason="a CUDA device is present (tests for machines without one)"
)

try:
    import ml_dtypes
except ImportError:  # pragma: no cover
    ml_dtypes = None


# ------------------------------------------------------------------------------------------------
# build and reporting
# ------------------------------------------------------------------------------------------------


@needs_module
def test_module_imports_and_reports():
    info = histgpu.build_info()
    assert info["cuda"]["compiled"] is True
    assert "cuda" in info["backends"]
    assert isinstance(info["cuda"]["device_available"], bool)
    assert info["cuda"]["device_available"] == _cuda.device_available()
    assert info["cuda"]["runtime_version"] >= 12000
    archs = info["cuda"]["architectures"]
    assert archs and archs != "unknown"
    assert _cuda.max_buckets == 1 << 24


@needs_module
@no_device
def test_no_device_reported_not_crashing():
    assert _cuda.device_available() is False
    assert _cuda.device_count() == 0
    info = histgpu.build_info()["cuda"]
    assert info["device_available"] is False
    assert info["devices"] == []
    assert info["reason"]  # says why (no driver / no device)
    assert _cuda.pointer_device(12345) == -1


@needs_module
@no_device
@pytest.mark.parametrize("fn", ["histogram", "compute", "compute_v1"])
def test_device_cuda_without_device_raises_clearly(fn):
    data = np.arange(10, dtype=np.float32)
    with pytest.raises(RuntimeError, match="no CUDA device is usable"):
        getattr(histgpu, fn)(data, device="cuda")


@needs_module
@no_device
def test_histogram_many_device_cuda_without_device_raises():
    with pytest.raises(RuntimeError, match="no CUDA device is usable"):
        histgpu.histogram_many([np.ones(3)], device="cuda")


def test_device_choice_for_host_data_is_cpu():
    assert isinstance(_engine.place(np.ones(3), None, 1)[0], _cpu.CpuEngine)
    assert isinstance(_engine.place([1.0, 2.0], "cpu", 1)[0], _cpu.CpuEngine)
    with pytest.raises(ValueError):
        _engine.place(np.ones(3), "tpu", 1)


class _FakeCai:
    """Looks like a GPU array (the CUDA Array Interface) without being one."""

    def __init__(self, arr, stream=None):
        self._arr = arr
        self.__cuda_array_interface__ = {
            "shape": arr.shape,
            "typestr": arr.dtype.str,
            "data": (arr.__array_interface__["data"][0], True),
            "strides": arr.strides,
            "version": 3,
            "stream": stream,
        }


def test_cai_objects_are_device_arrays():
    assert _input_device.is_device_array(_FakeCai(np.ones(3)))
    assert not _input_device.is_device_array(np.ones(3))


@needs_module
@no_device
def test_cai_input_without_device_raises():
    with pytest.raises(RuntimeError, match="no CUDA device is usable"):
        histgpu.histogram(_FakeCai(np.ones(4, np.float32)))


# ------------------------------------------------------------------------------------------------
# device views (pure Python: no GPU needed to check the layout they describe)
# ------------------------------------------------------------------------------------------------


def test_cai_device_view_layout_matches_host_normalisation():
    base = np.arange(4 * 6 * 5, dtype=np.float32).reshape(4, 6, 5)
    for arr in [base, base[:, ::2, 1:4], base.transpose(2, 0, 1), base[::-1, :, ::-2], base[:, 2:3, :]]:
        view = _input.device_view(_FakeCai(arr, stream=2))
        host = _input.host_view(arr)
        assert (view.ptr, view.code, view.shape, view.strides, view.multiplicity) == (
            host.ptr, host.code, host.shape, host.strides, host.multiplicity)
        assert view.stream == 2
        assert view.size == arr.size


def test_cai_device_view_c_contiguous_without_strides():
    arr = np.zeros((3, 4), np.int16)
    fake = _FakeCai(arr)
    fake.__cuda_array_interface__["strides"] = None
    view = _input.device_view(fake)
    assert view.shape == (12,) and view.strides == (2,) and view.code == 3 and view.stream == 0


def test_cai_zero_size_and_broadcast():
    empty = _input.device_view(_FakeCai(np.zeros((0, 5), np.float64)))
    assert empty.size == 0 and empty.shape == (0,) and empty.ptr == 0
    bcast = np.broadcast_to(np.arange(5, dtype=np.float32), (7, 5))
    v = _input.device_view(_FakeCai(bcast))
    assert v.multiplicity == 7 and v.shape == (5,)


def test_dlpack_capsule_reader_on_host_arrays():
    """The ctypes DLPack reader, exercised on numpy's own (CPU) capsules."""
    base = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    for arr in [base, base[:, 1:3, ::2], base.transpose(1, 2, 0)]:
        info = _input_device.read_dlpack_capsule(arr.__dlpack__())
        assert info.device_type == 1
        assert info.code == 12 and info.itemsize == 8
        assert info.shape == arr.shape
        assert info.strides == arr.strides
        assert info.ptr == arr.__array_interface__["data"][0]
    for dt, code in [(np.int8, 1), (np.uint16, 4), (np.int32, 5), (np.uint64, 8), (np.float16, 9), (np.float32, 11), (np.bool_, 0)]:
        info = _input_device.read_dlpack_capsule(np.zeros(3, dt).__dlpack__())
        assert info.code == code, dt


def test_stream_handles():
    assert _input_device.stream_handle(None) == 0
    assert _input_device.stream_handle(7) == 7

    class TorchLike:
        cuda_stream = 1234

    class CupyLike:
        ptr = 99

    assert _input_device.stream_handle(TorchLike()) == 1234
    assert _input_device.stream_handle(CupyLike()) == 99
    with pytest.raises(TypeError):
        _input_device.stream_handle("default")


# ------------------------------------------------------------------------------------------------
# histogram_many on host data (the CPU engine), same as compute() of each
# ------------------------------------------------------------------------------------------------


def test_histogram_many_host_equals_compute():
    rng = np.random.default_rng(5)
    tensors = [
        rng.standard_normal(1000).astype(np.float32),
        rng.integers(-5, 5, (10, 10)),
        np.zeros(0),
        np.full(7, 3.5),
        rng.standard_normal((20, 30))[:, ::3],
    ]
    ks = [30, 7, 5, 3, 1]
    got = histgpu.histogram_many(tensors, ks)
    for t, k, h in zip(tensors, ks, got):
        ref = histgpu.compute(t, k)
        assert np.array_equal(h.to_tensor(), ref.to_tensor())
        assert (h.min, h.max, h.num) == (ref.min, ref.max, ref.num)
    same_k = histgpu.histogram_many(tensors[:2])
    assert [h.buckets for h in same_k] == [30, 30]


def test_histogram_many_nonfinite_policy():
    data = [np.array([1.0, np.nan, 2.0]), np.array([np.inf, 0.0])]
    with pytest.warns(histgpu.NonFiniteWarning):
        hs = histgpu.histogram_many(data, 2)
    assert (hs[0].nan, hs[1].posinf) == (1, 1)
    with pytest.raises(ValueError):
        histgpu.histogram_many(data, 2, nonfinite="raise")
    with pytest.raises(ValueError):
        histgpu.histogram_many(data, [1, 2, 3])


# ------------------------------------------------------------------------------------------------
# host builds of the shared host/device code
# ------------------------------------------------------------------------------------------------

_CODES = [(np.bool_, 0), (np.int8, 1), (np.uint8, 2), (np.int16, 3), (np.uint16, 4), (np.int32, 5),
          (np.uint32, 6), (np.int64, 7), (np.uint64, 8), (np.float16, 9), (np.float32, 11), (np.float64, 12)]
if ml_dtypes is not None:
    _CODES += [(ml_dtypes.bfloat16, 10), (ml_dtypes.float8_e4m3fn, 13), (ml_dtypes.float8_e5m2, 14)]


@pytest.mark.parametrize("dt,code", _CODES, ids=[np.dtype(d).name for d, _ in _CODES])
def test_dtype_conversion_is_exact(dt, code):
    """core's convert<D> (csrc/core/dtypes.hpp: one source for the CPU and CUDA kernels) ==
    numpy/ml_dtypes' exact cast to float64, bit for bit
    (every bit pattern of the 8- and 16-bit types; random and extreme values otherwise)."""
    rng = np.random.default_rng(code)
    d = np.dtype(dt)
    if code == 0:
        raw = np.arange(256, dtype=np.uint8)
        expected = (raw != 0).astype(np.float64)
    elif d.itemsize <= 2:
        raw = np.arange(2 ** (8 * d.itemsize), dtype=np.uint8 if d.itemsize == 1 else np.uint16)
        with np.errstate(invalid="ignore"):
            expected = raw.view(d).astype(np.float64)
    elif d.kind == "f":
        info = np.finfo(d)
        with np.errstate(over="ignore"):
            big = (rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 40, 5000)).astype(d)
        raw = np.concatenate([
            big,
            np.array([0.0, -0.0, info.max, -info.max, info.tiny, info.smallest_subnormal, np.inf, -np.inf, np.nan], d),
        ])
        expected = raw.astype(np.float64)
    else:
        info = np.iinfo(d)
        raw = np.concatenate([
            rng.integers(info.min, info.max, 5000, dtype=d, endpoint=True),
            np.array([info.min, info.max, 0, 2**53 + 1 if info.max > 2**53 else 1], d),
        ])
        expected = raw.astype(np.float64)
    got = _cpu._convert_bytes(code, raw.tobytes())
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint64), expected[~nan].view(np.uint64))


def _planner_ranges(f64, rng):
    dt = np.float64 if f64 else np.float32
    fmax = float(np.finfo(dt).max)
    tiny = float(np.finfo(dt).tiny)
    out = [(-1.0, 1.0), (0.0, 1.0), (-0.0, 5e-324 if f64 else 1e-45), (-fmax, fmax), (-fmax, 0.0),
           (1.0, float(np.nextafter(dt(1), dt(2)))), (-3.0, float(np.nextafter(dt(-3), dt(0)))),
           (0.1, 0.7), (-2.0**60, 2.0**60 + 2.0**10), (1e-30, 1e30), (tiny, 4 * tiny)]
    for _ in range(400):
        a, b = sorted(rng.standard_normal(2) * 10.0 ** float(rng.integers(-20, 20)))
        out.append((a, b))
    for _ in range(100):
        a = float(rng.standard_normal() * 1e3)
        steps = int(rng.integers(1, 50))
        b = dt(a)
        for _ in range(steps):
            b = np.nextafter(b, dt(np.inf))
        out.append((a, float(b)))
    res = []
    for a, b in out:
        a, b = float(dt(a)), float(dt(b))
        if a < b:
            res.append((a, b))
    return res


@needs_module
@pytest.mark.parametrize("f64", [False, True], ids=["float32", "float64"])
def test_device_planner_host_build_equals_core(f64):
    """v2_plan.cuh's thresholds (host build) are core's v2_thresholds, bit for bit: widths,
    halved (overflowing) ranges, ranges of a few ulps, subnormals, huge bucket counts."""
    rng = np.random.default_rng(7 if f64 else 8)
    cases = 0
    for a, b in _planner_ranges(f64, rng):
        for k in (1, 2, 3, 7, 30, 255, 4096):
            mism, same_spec = _cuda._check_planner(f64, a, b, k)
            assert mism == 0 and same_spec, (f64, a, b, k, mism)
            cases += 1
    assert cases > 1000
