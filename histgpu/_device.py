"""Device choice, in one place: which engine reads a given input."""
from __future__ import annotations

import os
from typing import Any, Optional

from . import _cpu

DEVICES = ("cpu", "cuda")


def cpu_isa() -> str:
    """The CPU kernel build to use: HISTGPU_CPU_ISA (baseline/avx2/avx512) or the best one."""
    return os.environ.get("HISTGPU_CPU_ISA", "")


def cuda_module() -> Optional[Any]:
    """The compiled CUDA engine, or None where histgpu was built without nvcc."""
    try:
        from . import _cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _cuda


def is_device_array(data: Any) -> bool:
    """True for arrays living in GPU memory (CuPy, PyTorch CUDA, JAX/TF GPU via DLPack)."""
    module = type(data).__module__
    if module.startswith("torch") and hasattr(data, "is_cuda"):
        # (asked first: a CUDA tensor of a dtype the CUDA Array Interface cannot describe,
        # bfloat16 say, raises TypeError from __cuda_array_interface__)
        return bool(data.is_cuda)
    try:
        if hasattr(data, "__cuda_array_interface__"):
            return True
    except Exception:  # noqa: BLE001 - the attribute exists but cannot describe this array
        return True
    if module.startswith("tensorflow"):
        # TF tensors offer no DLPack methods; a GPU one goes to the CUDA engine where that can
        # read it, and is otherwise copied to the host by TensorFlow (through __array__).
        if "GPU" not in str(getattr(data, "device", "") or "").upper():
            return False
        mod = cuda_module()
        return mod is not None and bool(mod.device_available())
    dev = getattr(data, "__dlpack_device__", None)
    if dev is not None:
        try:
            return int(dev()[0]) in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged
        except Exception:  # noqa: BLE001 - not a usable DLPack producer
            return False
    return False


def choose(data: Any, device: Optional[str]) -> str:
    """'cpu' or 'cuda' for `data`; `device=` overrides the automatic choice."""
    if device is not None and device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES} or None, got {device!r}")
    wanted = device or ("cuda" if is_device_array(data) else "cpu")
    if wanted == "cuda":
        mod = cuda_module()
        if mod is None:
            raise RuntimeError(
                "histgpu: this input lives on a GPU (or device='cuda' was asked for), but histgpu "
                "was built without its CUDA engine (no nvcc at build time)"
            )
        if not mod.device_available():
            reason = mod.info().get("reason") or "no CUDA device"
            raise RuntimeError(
                f"histgpu: the CUDA engine is built but no CUDA device is usable ({reason}); "
                "pass device='cpu' or data in host memory"
            )
    return wanted


__all__ = ["choose", "cpu_isa", "cuda_module", "is_device_array", "_cpu"]
