"""Device choice, in one place: which engine reads a view, and the engine objects.

Three engines share one interface (csrc/bindings/engine.hpp): ``_cpu.CpuEngine`` (threads over
host memory), ``_cuda.CudaEngine`` (GPU memory, on the producer's stream) and
``_cpu.EmulatedCudaEngine`` (the CUDA kernels themselves, run block by block on the host: how CI
tests GPU code without a GPU). Each takes a ``_cpu.View`` and returns the same result types.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Optional, Tuple

import numpy as np

from . import _cpu, _options
from . import _input as _in

DEVICES = ("cpu", "cuda", "cuda-emulated")


def cpu_isa() -> str:
    """The CPU kernel build to use: HISTGPU_CPU_ISA (baseline/avx2/avx512) or '' for the best."""
    return str(_cpu.process_settings()[1])


# CPU engines hold no state between calls, so one per (threads, instruction set) serves every
# call: constructing one costs as much as a small histogram.
_CPU_ENGINES: Dict[Tuple[int, str], Any] = {}


def cpu_engine(num_threads: Optional[int]) -> Any:
    """The CPU engine for `num_threads` (None: HISTGPU_NUM_THREADS or every usable core) and the
    kernel build HISTGPU_CPU_ISA names, from one read of the environment."""
    env, isa, cores = _cpu.process_settings()
    threads = _options.num_threads(num_threads) if num_threads is not None else _options.threads_from(env, cores)
    key = (threads, isa)
    engine = _CPU_ENGINES.get(key)
    if engine is None:
        engine = _cpu.CpuEngine(threads=threads, isa=isa)
        if len(_CPU_ENGINES) >= 64:
            _CPU_ENGINES.clear()
        _CPU_ENGINES[key] = engine
    return engine


def cuda_module() -> Optional[Any]:
    """The compiled CUDA engine, or None where histgpu was built without nvcc."""
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


@functools.lru_cache(maxsize=1)
def cuda_usable() -> bool:
    """True when the CUDA engine is built and a CUDA device is usable."""
    mod = cuda_module()
    return mod is not None and bool(mod.device_available())


def check_device(device: Optional[str]) -> Optional[str]:
    """`device` itself if it names an engine (or is None), else a ValueError."""
    if device is not None and device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} or None, got {device!r}")
    return device


def _require_cuda() -> Any:
    mod = cuda_module()
    if mod is None:
        raise RuntimeError(
            "histgpu: this input lives on a GPU (or device='cuda' was asked for), but histgpu "
            "was built without its CUDA engine (no nvcc at build time); device='cuda-emulated' runs "
            "the CUDA kernels on the host"
        )
    if not mod.device_available():
        reason = mod.info().get("reason") or "no CUDA device"
        raise RuntimeError(
            f"histgpu: the CUDA engine is built but no CUDA device is usable ({reason}); "
            "pass device='cpu' or data in host memory"
        )
    return mod


def engine_for(device: str, view: _in.View, num_threads: int) -> Any:
    """The engine object of `device` for a view already placed there."""
    if device == "cuda":
        return _require_cuda().CudaEngine(stream=getattr(view, "stream", 0), device=getattr(view, "device", -1))
    if device == "cuda-emulated":
        return _cpu.EmulatedCudaEngine()
    return cpu_engine(num_threads)


def place(data: Any, device: Optional[str], num_threads: int) -> Tuple[Any, _in.View]:
    """(engine, view) for `data`: the engine `device` names, or by default the one where the
    data lives (GPU data on the CUDA engine, host data on the CPU engine).

    Data is moved only where `device` asks for another memory than its own: host data is
    uploaded for ``device="cuda"``, GPU data copied to the host for ``"cpu"`` and
    ``"cuda-emulated"`` (which reads host memory).
    """
    view = _in.classify(data)
    wanted = check_device(device) or ("cuda" if view.on_device else "cpu")
    if wanted == "cuda":
        _require_cuda()
        if not view.on_device:
            view = _in.to_device(view)
    else:
        view = _in.on_host(view)
    return engine_for(wanted, view, num_threads), view


@functools.lru_cache(maxsize=1)
def v1_limits() -> np.ndarray:
    """TensorFlow's default v1 bucket limits (a read-only float64 array)."""
    limits = _cpu.v1_limits()
    limits.setflags(write=False)
    return limits


@functools.lru_cache(maxsize=1)
def v1_sizes() -> Tuple[int, int]:
    """(v1 buckets, exact-sum digits) of every v1 result."""
    buckets, digits = _cpu.v1_sizes()
    return int(buckets), int(digits)


def v2_edges(vmin: float, vmax: float, num: int, k: int) -> np.ndarray:
    """The k + 1 edges of a v2 histogram of a range holding `num` finite values."""
    return _cpu.v2_edges(float(vmin), float(vmax), int(num), int(k))
