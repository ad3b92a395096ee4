"""The GPU engines under test, and the same bytes in each engine's memory.

Every GPU test runs on the emulated CUDA engine (the CUDA kernels executed on the host: always
available, so CI runs them) in two device shapes, and on the real CUDA engine where a GPU and
CuPy or PyTorch are present. The CPU engine is the oracle: results must be equal bit for bit.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Callable, List, Tuple

import numpy as np

import histgpu
from histgpu import _cpu, _input, selftest

try:
    from histgpu import _cuda
except ImportError:  # built without nvcc
    _cuda = None

GPU = bool(histgpu.build_info()["cuda"]["device_available"])

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

CPU = _cpu.CpuEngine(threads=2)

# Device shapes the emulator takes: sm_86's 99 KiB per block on 2 multiprocessors (the tightest
# shared memory histgpu supports, and few blocks: long runs of chunks per block), and an
# H200-like 132 multiprocessors with 227 KiB (many blocks, one chunk each).
EMULATED_SHAPES = {
    "emulated-sm86": dict(multiprocessors=2, smem_per_block=99 * 1024, smem_per_multiprocessor=100 * 1024,
                          threads_per_multiprocessor=1536),
    "emulated-h200": dict(multiprocessors=132, smem_per_block=227 * 1024, smem_per_multiprocessor=228 * 1024,
                          threads_per_multiprocessor=2048),
}


def _upload_bytes(raw: np.ndarray, offset: int) -> Tuple[Any, int]:
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


def _host_copy(raw: np.ndarray, offset: int) -> Tuple[Any, int]:
    """(owner, pointer) of a host buffer holding `raw` at `offset` from a 64-byte boundary."""
    buf = np.zeros(raw.size + 128, np.uint8)
    start = (-buf.ctypes.data) % 64 + offset
    buf[start:start + raw.size] = raw
    return buf, int(buf.ctypes.data) + start


@dataclass
class EngineCase:
    """One GPU engine and how to put bytes where it reads them."""

    name: str
    make: Callable[[], Any]
    place: Callable[[np.ndarray, int], Tuple[Any, int]]

    def engine(self) -> Any:
        return self.make()

    def mirror(self, host_arr: np.ndarray, offset: int = 0) -> Tuple[Any, Any, Any]:
        """(owner, engine view, CPU view) of `host_arr` and of an identical copy in this engine's
        memory: same shape, strides and multiplicity, starting `offset` bytes off alignment."""
        hv = _input.host_view(host_arr)
        itemsize = np.dtype(host_arr.dtype).itemsize
        if hv.size == 0:
            owner, ptr = self.place(np.zeros(0, np.uint8), offset)
            return (owner, hv), _cpu.View(ptr, hv.code, [0], [itemsize], 1), hv.engine_view()
        nbytes = itemsize + sum((e - 1) * s for e, s in zip(hv.shape, hv.strides))
        raw = np.frombuffer(ctypes.string_at(hv.ptr, nbytes), dtype=np.uint8).copy()
        owner, ptr = self.place(raw, offset)
        view = _cpu.View(ptr, hv.code, list(hv.shape), list(hv.strides), hv.multiplicity)
        return (owner, hv), view, hv.engine_view()


def engine_cases() -> List[EngineCase]:
    cases = [
        EngineCase(name, (lambda kw=kw: _cpu.EmulatedCudaEngine(**kw)), _host_copy)
        for name, kw in EMULATED_SHAPES.items()
    ]
    if GPU and _cuda is not None and (cupy is not None or torch is not None):
        cases.append(EngineCase("cuda", lambda: _cuda.CudaEngine(), _upload_bytes))
    return cases


def bits(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).view(np.uint64)


def same_stats(g: Any, c: Any, what: str) -> None:
    assert bits([g.min, g.max]).tolist() == bits([c.min, c.max]).tolist() or (g.num == 0 and c.num == 0), (
        f"{what}: min/max {g.min},{g.max} vs {c.min},{c.max}")
    assert (g.num, g.nan, g.posinf, g.neginf) == (c.num, c.nan, c.posinf, c.neginf), (
        f"{what}: value counts {g} vs {c}")


def same_v2(g: Any, c: Any, what: str = "") -> None:
    assert np.array_equal(bits(g.edges), bits(c.edges)), f"{what}: edges differ"
    gc, cc = np.asarray(g.counts), np.asarray(c.counts)
    if not np.array_equal(gc, cc):
        bad = np.flatnonzero(gc != cc)[:8]
        raise AssertionError(f"{what}: counts differ at {bad.tolist()}: gpu {gc[bad].tolist()} cpu {cc[bad].tolist()}")
    same_stats(g.stats, c.stats, what)


def same_v1(g: Any, c: Any, what: str = "") -> None:
    gc, cc = np.asarray(g.counts), np.asarray(c.counts)
    if not np.array_equal(gc, cc):
        bad = np.flatnonzero(gc != cc)[:8]
        raise AssertionError(f"{what}: v1 counts differ at {bad.tolist()}: gpu {gc[bad].tolist()} cpu {cc[bad].tolist()}")
    same_stats(g.stats, c.stats, what)
    assert bits([g.sum, g.sum_squares]).tolist() == bits([c.sum, c.sum_squares]).tolist(), (
        f"{what}: sums {g.sum!r},{g.sum_squares!r} vs {c.sum!r},{c.sum_squares!r}")


def check_v2(case: EngineCase, engine: Any, host_arr: np.ndarray, k: int, offset: int = 0, what: str = "") -> Any:
    """v2 of `host_arr` on `engine` (one tensor, and as a batch of one) == the CPU engine's."""
    _owner, view, hview = case.mirror(host_arr, offset)
    c = CPU.v2(hview, k)
    same_v2(engine.v2(view, k), c, f"{case.name} {what} v2 k={k}")
    same_v2(engine.v2_many([view], [k])[0], c, f"{case.name} {what} v2_many k={k}")
    return c


def check_v1(case: EngineCase, engine: Any, host_arr: np.ndarray, offset: int = 0, what: str = "") -> None:
    _owner, view, hview = case.mirror(host_arr, offset)
    same_v1(engine.v1(view), CPU.v1(hview), f"{case.name} {what}")
    gp, cp = engine.v1_partial(view), CPU.v1_partial(hview)
    assert np.array_equal(gp.counts, cp.counts), f"{case.name} {what}: v1 partial counts"
    assert np.array_equal(gp.sum_digits, cp.sum_digits), f"{case.name} {what}: sum digits"
    assert np.array_equal(gp.sumsq_digits, cp.sumsq_digits), f"{case.name} {what}: sum-of-squares digits"


sample = selftest.sample  # n values of a dtype, NaN/±Inf included unless nonfinite=False


def layouts(x: np.ndarray) -> dict:
    """Contiguous, strided (gaps and a step), reversed and transposed, broadcast (zero stride)."""
    m = x.size // 10 * 10
    two = x[:m].reshape(-1, 10)
    out = {"contiguous": x, "strided": two[:, 1:8:2], "reversed_transposed": two.T[::-1], "negative": x[::-3]}
    if x.size:
        out["broadcast"] = np.broadcast_to(x[: min(x.size, 50)], (4, min(x.size, 50)))
    return out


