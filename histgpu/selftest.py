"""``histgpu selftest``: every engine this machine has, bit for bit against the baseline CPU build.

The engines are each CPU kernel build the CPU runs (baseline, AVX2, AVX-512), the CUDA kernels
emulated on the host, and every usable GPU. Each runs a built-in adversarial set -- every dtype
with NaN and infinities, strided, reversed and broadcast layouts, values on and next to bucket
edges, subnormals, signed zeros, huge ranges, integers above 2^53, bucket counts across every
GPU shared-memory mode, the v1 buckets with exact sums, and mixed batches -- and must give the
very bits the baseline CPU build gives (docs/semantics.md §1.4).
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

import ml_dtypes
import numpy as np

from . import _cpu, _engine
from . import _input as _in

_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
           np.float16, np.float32, np.float64, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]


@dataclass
class Engine:
    """One engine under test and how to show it an array."""

    name: str
    make: Callable[[], Any]
    skip: str = ""  # why it cannot run here
    device: Optional[int] = None  # a real GPU: its buffers are uploaded

    def view(self, arr: np.ndarray, keep: list) -> Any:
        hv = _in.host_view(arr)
        if self.device is None:
            keep.append(hv)
            return hv.engine_view()
        itemsize = np.dtype(arr.dtype).itemsize
        if hv.size == 0:
            return _cpu.View(0, hv.code, [0], [itemsize], 1)
        nbytes = itemsize + sum((e - 1) * s for e, s in zip(hv.shape, hv.strides))
        mod = _engine.cuda_module()
        assert mod is not None  # a real GPU engine exists only with the CUDA module
        buf = mod.DeviceBuffer(ctypes.string_at(hv.ptr, nbytes), self.device)
        keep.append(buf)
        return _cpu.View(buf.ptr, hv.code, list(hv.shape), list(hv.strides), hv.multiplicity)


def engines() -> List[Engine]:
    """Every engine of this build and machine (unavailable ones with the reason)."""
    def cpu(isa: str) -> Callable[[], Any]:
        return lambda: _cpu.CpuEngine(threads=2, isa=isa)

    def gpu(device: int) -> Callable[[], Any]:
        return lambda: mod.CudaEngine(device=device)  # type: ignore[union-attr]

    out = []
    for isa in ("baseline", "avx2", "avx512"):
        ok = isa in _cpu.supported_isas()
        out.append(Engine(f"cpu {isa}", cpu(isa), "" if ok else f"this CPU has no {isa.upper()}"))
    out.append(Engine("cuda-emulated", lambda: _cpu.EmulatedCudaEngine()))
    mod = _engine.cuda_module()
    if mod is None:
        out.append(Engine("cuda", lambda: None, "histgpu was built without its CUDA engine (no nvcc)"))
    elif not mod.device_available():
        out.append(Engine("cuda", lambda: None, mod.info().get("reason") or "no CUDA device"))
    else:
        for d in mod.info()["devices"]:
            out.append(Engine(f"cuda:{d['id']} {d['name']}", gpu(int(d["id"])), device=int(d["id"])))
    return out


# ------------------------------------------------------------------------------------------------
# the cases
# ------------------------------------------------------------------------------------------------

Case = Tuple[str, np.ndarray, Sequence[int]]  # (what, data, bucket counts); v1 is always checked


def sample(dt: Any, n: int, rng: np.random.Generator, nonfinite: bool = True) -> np.ndarray:
    """n values of dtype `dt`: normal with outliers, and (`nonfinite`) NaN/±Inf where the type has them."""
    d = np.dtype(dt)
    if d == np.bool_:
        return rng.random(n) < 0.3
    if d.kind in "iu":
        info = np.iinfo(d)
        return rng.integers(info.min, info.max, n, dtype=d, endpoint=True)
    x = rng.standard_normal(n) * 3.0
    x[rng.random(n) < 0.01] *= 1e3
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(d)
    if nonfinite and n > 10:
        x[rng.integers(0, n, 3)] = np.nan
        if d.name != "float8_e4m3fn":
            x[rng.integers(0, n, 2)] = np.inf
            x[rng.integers(0, n, 1)] = -np.inf
    return x


def _groups() -> Dict[str, List[Case]]:
    rng = np.random.default_rng(20261202)
    g: Dict[str, List[Case]] = {}
    g["dtypes"] = [(np.dtype(dt).name, sample(dt, 70000, rng), [1, 30, 1000]) for dt in _DTYPES]
    base = rng.standard_normal(60000).astype(np.float32)
    two = base.reshape(-1, 100)
    g["layouts"] = [
        ("strided", two[:, 3:90:4], (30,)),
        ("reversed, transposed", two.T[::-1], (30,)),
        ("negative stride", base[::-7], (30,)),
        ("broadcast", np.broadcast_to(base[:333], (9, 333)), (30,)),
        ("unaligned float64", np.frombuffer(base.tobytes()[4:4 + 8 * 5000], np.float64), (30,)),
    ]
    edges: List[Case] = []
    for dt in (np.float16, np.float32, np.float64, ml_dtypes.bfloat16):
        for lo, hi, k in ((-1.0, 1.0, 30), (0.1, 0.7, 7), (-3.0, 1000.0, 999)):
            e = np.asarray(lo + (hi - lo) / k * np.arange(k + 1), dtype=np.float64).astype(dt)
            x = np.concatenate([e, np.nextafter(e.astype(np.float32), np.float32(np.inf)).astype(dt),
                                np.nextafter(e.astype(np.float32), np.float32(-np.inf)).astype(dt)])
            x = x[(x.astype(np.float64) >= lo) & (x.astype(np.float64) <= hi)]
            edges.append((f"{np.dtype(dt).name} edges [{lo}, {hi}] k={k}", x, (k,)))
    limits = np.asarray(_engine.v1_limits())
    inner = limits[np.abs(limits) < 1e30].astype(np.float32)
    edges.append(("float32 v1 limits and their neighbours",
                  np.concatenate([inner, np.nextafter(inner, np.float32(-np.inf)),
                                  np.nextafter(inner, np.float32(np.inf))]), (30,)))
    g["bucket edges"] = edges
    g["special values"] = [
        ("empty", np.zeros(0, np.float32), (0, 1, 30)),
        ("one value", np.array([2.5], np.float32), (1, 30)),
        ("all equal", np.full(5000, -7.25, np.float32), (1, 30)),
        ("signed zeros", np.array([0.0, -0.0] * 500, np.float64), (1, 30)),
        ("only NaN", np.full(100, np.nan, np.float32), (30,)),
        ("NaN, infinities and one value", np.array([np.nan, np.inf, -np.inf, 3.0] * 50, np.float32), (30,)),
        ("subnormals float32", np.array([1e-45, 1e-40, -3e-39, 0.0, 1.0] * 300, np.float32), (30,)),
        ("subnormals float64", np.array([5e-324, 1e-310, -2e-320, 0.0, 1.0] * 300, np.float64), (30,)),
        ("range overflowing float64", np.array([-1.7e308, 1.7e308, 0.0, 1e300] * 100), (1, 30)),
        ("int64 above 2^53", np.array([2**53 + 1, 2**53 + 3, 2**62, -(2**63), 2**63 - 1] * 100, np.int64), (30,)),
        ("exponents from tiny to huge", np.exp2(rng.uniform(-140, 120, 20000)).astype(np.float32)
         * np.sign(rng.standard_normal(20000)).astype(np.float32), (30,)),
    ]
    x = rng.standard_normal(20000).astype(np.float32)
    ks = sorted({0, 1, 2, 30, 429, 430, 1024, 1025, 4095, 4096, 9000, 1 << 16}
                | {k for b in mode_boundaries(4) for k in (b, b + 1)})
    g["bucket counts"] = [("float32, every GPU shared-memory mode", x, tuple(ks)),
                          ("float64", x.astype(np.float64), (30, 300, 3000, 30000))]
    return g


def mode_boundaries(key_size: int) -> List[int]:
    """The last k of each GPU count mode (csrc/cuda/policy.hpp's rule, read from the module)."""
    out, prev, lo = [], _cpu.count_mode(1, key_size), 1
    for _ in range(3):
        hi = 1 << 22
        while lo < hi:
            mid = (lo + hi) // 2
            if _cpu.count_mode(mid, key_size) > prev:
                hi = mid
            else:
                lo = mid + 1
        out.append(lo - 1)
        prev = _cpu.count_mode(lo, key_size)
    return out


# ------------------------------------------------------------------------------------------------
# comparison
# ------------------------------------------------------------------------------------------------


def _bits(x: Any) -> bytes:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float64)).tobytes()


def _same_stats(a: Any, b: Any) -> bool:
    counts = (a.num, a.nan, a.posinf, a.neginf) == (b.num, b.nan, b.posinf, b.neginf)
    return counts and (a.num == 0 or _bits([a.min, a.max]) == _bits([b.min, b.max]))


def _diff_v2(a: Any, b: Any) -> str:
    if _bits(a.edges) != _bits(b.edges):
        return "edges differ"
    if not np.array_equal(a.counts, b.counts):
        return f"counts differ in {int(np.sum(np.asarray(a.counts) != np.asarray(b.counts)))} bucket(s)"
    return "" if _same_stats(a.stats, b.stats) else f"range differs: {a.stats} vs {b.stats}"


def _diff_v1(a: Any, b: Any) -> str:
    if not np.array_equal(a.counts, b.counts):
        return "v1 counts differ"
    if not _same_stats(a.stats, b.stats):
        return "v1 range differs"
    if _bits([a.sum, a.sum_squares]) != _bits([b.sum, b.sum_squares]):
        return f"v1 sums differ: {a.sum!r}, {a.sum_squares!r} vs {b.sum!r}, {b.sum_squares!r}"
    return ""


def _run_group(engine: Any, ref: Any, e: Engine, cases: List[Case]) -> List[str]:
    failures = []
    keep: list = []
    views, refs, ks = [], [], []
    for what, arr, buckets in cases:
        v, hv = e.view(arr, keep), _in.host_view(arr).engine_view()
        for k in buckets:
            d = _diff_v2(engine.v2(v, k), ref.v2(hv, k))
            if d:
                failures.append(f"{what}, k={k}: {d}")
            views.append(v)
            refs.append(ref.v2(hv, k))
            ks.append(k)
        d = _diff_v1(engine.v1(v), ref.v1(hv))
        if d:
            failures.append(f"{what}: {d}")
    for i, (got, want) in enumerate(zip(engine.v2_many(views, ks), refs)):  # one batch of them all
        d = _diff_v2(got, want)
        if d:
            failures.append(f"batch item {i} (k={ks[i]}): {d}")
    return failures


def run(stdout: TextIO, *, verbose: bool = False) -> int:
    """Run every engine on every case group; print the table; 0 only if all that ran passed."""
    t0 = time.monotonic()
    groups = _groups()
    ref = _cpu.CpuEngine(threads=1, isa="baseline")
    table: Dict[str, Dict[str, str]] = {}
    details: List[str] = []
    failed = False
    for e in engines():
        row = table.setdefault(e.name, {})
        if e.skip:
            for g in groups:
                row[g] = "skipped"
            details.append(f"{e.name}: skipped ({e.skip})")
            continue
        try:
            engine = e.make()
        except Exception as exc:  # noqa: BLE001 - an engine that cannot start fails every group
            for g in groups:
                row[g] = "FAIL"
            details.append(f"{e.name}: could not start: {exc}")
            failed = True
            continue
        for g, cases in groups.items():
            try:
                fails = _run_group(engine, ref, e, cases)
            except Exception as exc:  # noqa: BLE001 - reported, never hidden
                fails = [f"raised {type(exc).__name__}: {exc}"]
            row[g] = "pass" if not fails else "FAIL"
            failed |= bool(fails)
            details += [f"{e.name} / {g}: {f}" for f in fails[: (None if verbose else 5)]]
        stdout.write(f"  {e.name}: done\n")
        stdout.flush()
    names = list(groups)
    width = max(len(n) for n in table) + 2
    stdout.write("\n" + "engine".ljust(width) + "".join(n.ljust(16) for n in names) + "\n")
    for engine_name, row in table.items():
        stdout.write(engine_name.ljust(width) + "".join(row[n].ljust(16) for n in names) + "\n")
    if details:
        stdout.write("\n" + "\n".join(details) + "\n")
    stdout.write(f"\nhistgpu selftest: {'FAILED' if failed else 'every engine that ran gave the baseline bits'} "
                 f"({time.monotonic() - t0:.0f} s)\n")
    return 1 if failed else 0
