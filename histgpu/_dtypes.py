"""The dtypes the engines read, from the compiled module's table (csrc/core/dtypes.hpp).

numpy, torch and DLPack names are looked up in that one table, never re-typed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Tuple

import ml_dtypes
import numpy as np

from . import _cpu


@dataclass(frozen=True)
class DTypeInfo:
    """One row of the engine's dtype table."""

    code: int  #: the engine's dtype code
    name: str  #: numpy / ml_dtypes / torch name
    itemsize: int  #: bytes per element
    kernel_bits: int  #: 32 or 64: the float type it is counted in
    dlpack: Tuple[int, int]  #: DLPack (type code, bits)


TABLE: Tuple[DTypeInfo, ...] = tuple(
    DTypeInfo(code, name, itemsize, kbits, (dl_code, dl_bits))
    for code, name, itemsize, kbits, dl_code, dl_bits in _cpu.dtype_table()
)
BY_CODE: Dict[int, DTypeInfo] = {d.code: d for d in TABLE}
BY_NAME: Dict[str, DTypeInfo] = {d.name: d for d in TABLE}
SUPPORTED: Tuple[str, ...] = tuple(sorted(BY_NAME))


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a table name (bfloat16 and the FP8 formats come from ml_dtypes)."""
    try:
        return np.dtype(name)
    except TypeError:
        return np.dtype(getattr(ml_dtypes, name))


NUMPY_CODES: Dict[np.dtype, int] = {numpy_dtype(d.name): d.code for d in TABLE}
# DLPack (type code, bits) -> engine code; producers before DLPack 0.8 describe bool as a
# 1-bit unsigned integer.
DLPACK_CODES: Dict[Tuple[int, int], int] = {d.dlpack: d.code for d in TABLE}
DLPACK_CODES.setdefault((1, 1), BY_NAME["bool"].code)

_KINDS = {"c": "complex", "U": "string", "S": "bytes", "O": "object", "M": "datetime", "m": "timedelta",
          "V": "structured/void"}


def unsupported(what: str) -> TypeError:
    """The TypeError for data of dtype `what`, naming what is accepted."""
    return TypeError(f"histgpu cannot histogram data of dtype {what}; supported dtypes: {', '.join(SUPPORTED)}")


def numpy_code(dtype: Any) -> int:
    """The engine's code for a numpy dtype (any byte order), or a TypeError saying what is accepted."""
    dt = np.dtype(dtype)
    code = NUMPY_CODES.get(dt.newbyteorder("="))
    if code is None:
        kind = _KINDS.get(dt.kind)
        raise TypeError(
            f"histgpu cannot histogram {kind + ' ' if kind else ''}data (dtype {dt}); "
            f"supported dtypes: {', '.join(SUPPORTED)}"
        )
    return code


def framework_code(dtype: Any) -> int:
    """The engine's code for a torch / TensorFlow / JAX dtype, by its name."""
    name = str(getattr(dtype, "name", None) or dtype).replace("torch.", "")
    info = BY_NAME.get(name)
    if info is None:
        raise unsupported(str(dtype))
    return info.code
