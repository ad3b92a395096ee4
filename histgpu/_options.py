"""Validation of the options every entry point shares: buckets, threads, non-finite policy."""
from __future__ import annotations

import numbers
import os
import warnings
from typing import List, Optional

from . import _cpu

DEFAULT_BUCKETS = 30  # TensorBoard's DEFAULT_BUCKET_COUNT
MAX_BUCKETS: int = int(_cpu.max_buckets)  # the engines' limit (csrc/core/histogram.hpp)
NONFINITE_MODES = ("omit", "raise")


class NonFiniteWarning(RuntimeWarning):
    """NaN or infinite values were left out of a histogram (they are counted separately)."""


def bucket_count(buckets: object) -> int:
    """TensorBoard's rules: None means 30, a negative count means 0."""
    if buckets is None:
        return DEFAULT_BUCKETS
    if isinstance(buckets, bool) or not isinstance(buckets, numbers.Integral):
        raise TypeError(f"buckets must be an integer or None, not {type(buckets).__name__} {buckets!r}")
    k = int(buckets)
    if k > MAX_BUCKETS:
        raise ValueError(f"buckets={k} is above the limit of {MAX_BUCKETS}")
    return max(k, 0)


def bucket_counts(buckets: object, n: int) -> List[int]:
    """One bucket count for all `n` tensors (an int or None), or one per tensor (a sequence)."""
    if buckets is None or isinstance(buckets, numbers.Integral) and not isinstance(buckets, bool):
        return [bucket_count(buckets)] * n
    if isinstance(buckets, (str, bytes)) or not hasattr(buckets, "__iter__"):
        raise TypeError(f"buckets must be an integer, None or one integer per tensor, not {type(buckets).__name__}")
    ks = [bucket_count(b) for b in buckets]  # type: ignore[union-attr]
    if len(ks) != n:
        raise ValueError(f"histgpu: {len(ks)} bucket counts for {n} tensors")
    return ks


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def default_num_threads() -> int:
    """Cores this process may run on (respects affinity masks and cgroup-limited CPU sets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def num_threads(requested: Optional[int]) -> int:
    """`num_threads=` wins, then HISTGPU_NUM_THREADS, then every usable core."""
    if requested is not None:
        return _positive_int(requested, "num_threads")
    env, _isa, cores = _cpu.process_settings()
    return threads_from(env, cores)


def threads_from(env: Optional[str], cores: int) -> int:
    """The default thread count from HISTGPU_NUM_THREADS (`env`, None when unset) and the usable
    cores (`cores`, 0 when unknown), as :func:`_cpu.process_settings` reads them in one call:
    os.environ and os.sched_getaffinity cost more than a whole histogram of a small tensor."""
    if env:
        try:
            return _positive_int(int(env), "HISTGPU_NUM_THREADS")
        except ValueError:
            raise ValueError(f"HISTGPU_NUM_THREADS must be a positive integer, got {env!r}") from None
    return cores if cores > 0 else default_num_threads()


def nonfinite_mode(mode: str) -> str:
    if mode not in NONFINITE_MODES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_MODES}, got {mode!r}")
    return mode


def apply_nonfinite_policy(mode: str, nan: int, posinf: int, neginf: int, stacklevel: int = 3) -> None:
    """Warn about (mode 'omit') or refuse (mode 'raise') data holding NaN or infinities."""
    if nan + posinf + neginf == 0:
        return
    what = f"{nan} NaN, {posinf} +Inf and {neginf} -Inf value(s)"
    if mode == "raise":
        raise ValueError(f"histgpu: data holds {what} (nonfinite='raise')")
    warnings.warn(
        f"histgpu: left {what} out of the histogram; they are counted in .nan/.posinf/.neginf",
        NonFiniteWarning,
        stacklevel=stacklevel + 1,
    )
