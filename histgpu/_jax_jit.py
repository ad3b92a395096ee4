"""The machinery of ``histgpu.jax.log_histograms_jit``: v2 histograms from inside jitted code.

Per leaf, in the traced computation (docs/jax.md, "Inside jit"):

1. JAX reduces the leaf to its range and value counts: minimum and maximum as order keys of
   the finite values (the float's bits, negative ones flipped, so that ``-0.0 < +0.0`` and the
   reduction is a selection, as in the engines) and the numbers of finite, NaN, +Inf and -Inf
   values. Sharded leaves are reduced where they live; XLA merges a few scalars.
2. A host callback turns the range into the ``k - 1`` bucket thresholds: the smallest values
   of the leaf's own type that histgpu's engines put in bucket ``j`` or above
   (docs/semantics.md §2.1). They are found by bisection over the type's ordered bit
   patterns, asking histgpu's own engine which bucket each candidate falls in, so they are
   the engines' thresholds by construction. They travel back as order keys.
3. JAX counts each finite value against the thresholds (a binary search, a scatter-add).
4. A second host callback receives the ``k`` counts and the range, builds the
   :class:`histgpu.Histogram` and writes the event.

So each callback carries O(k) numbers per leaf, never the leaf itself.

Subnormal numbers: XLA's CPU backend computes with subnormals flushed to zero (``x > 0`` is
False for ``1e-45``), and the threads it runs host callbacks on carry that mode too. So the
traced part uses integer operations on the values' bits only (classification, keys,
comparisons against threshold keys), which no float mode changes, and the host part runs
histgpu in a thread of its own with the default floating-point mode (:func:`run_clean`).
"""
from __future__ import annotations

import queue
import sys
import threading
import warnings
from typing import Any, Callable, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _options
from . import sharded as _hs

# leaf dtype name -> (integer type of the same width, mask of the non-sign bits, exponent bits)
_FLOAT_BITS = {
    "float16": (np.int16, 0x7FFF, 0x7C00),
    "bfloat16": (np.int16, 0x7FFF, 0x7F80),
    "float32": (np.int32, 0x7FFFFFFF, 0x7F800000),
    "float64": (np.int64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
}
_BIG_NUM = 2**62  # a stand-in for "many values": thresholds depend on the count only through num > 0


def _x64() -> bool:
    return bool(jax.config.jax_enable_x64)


def _leaf_dtype(tag: str, leaf: Any) -> np.dtype:
    dt = np.dtype(leaf.dtype)
    if dt.name not in _FLOAT_BITS:
        raise TypeError(
            f"histgpu.jax.log_histograms_jit: leaf {tag!r} has dtype {dt.name}; inside jit only "
            f"{', '.join(_FLOAT_BITS)} are supported (log other dtypes with log_histograms outside jit)"
        )
    return dt


# ------------------------------------------------------------------ clean floating point


def flushes_subnormals() -> bool:
    """True when this thread computes with subnormals flushed to zero (FTZ/DAZ), as XLA's
    threads do."""
    tiny = sys.float_info.min  # a variable: the division is done now, in this thread's mode
    return tiny / 2.0 == 0.0


class _CleanThread:
    """One daemon thread, started from a thread with the default floating-point mode (a new
    thread inherits its creator's), that runs host work handed to it by XLA's threads."""

    def __init__(self) -> None:
        self._jobs: "queue.Queue[Tuple[Callable[[], Any], queue.Queue]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="histgpu-jax-host", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            fn, reply = self._jobs.get()
            try:
                reply.put((True, fn()))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                reply.put((False, e))

    def call(self, fn: Callable[[], Any]) -> Any:
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((fn, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value


_clean: "_CleanThread | None" = None
_clean_lock = threading.Lock()


def prepare() -> None:
    """Start the clean thread now (called while tracing, in the caller's thread)."""
    global _clean
    with _clean_lock:
        if _clean is None and not flushes_subnormals():
            _clean = _CleanThread()


def run_clean(fn: Callable[[], Any]) -> Any:
    """``fn()`` with subnormals computed as IEEE says: inline where this thread's mode is the
    default, else in the clean thread (XLA runs callbacks with subnormals flushed)."""
    if not flushes_subnormals():
        return fn()
    if _clean is None:
        raise RuntimeError(
            "histgpu.jax: a host callback runs with subnormals flushed to zero and no clean thread "
            "was started; log_histograms_jit must be traced from a thread with the default "
            "floating-point mode"
        )
    return _clean.call(fn)


# ---------------------------------------------------------------------- keys <-> values


def key_type(dtype: np.dtype) -> Any:
    """The integer type of the order keys of `dtype` (int32, or int64 for float64)."""
    return np.int64 if np.dtype(dtype).name == "float64" else np.int32


def values_to_keys(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Order keys of `values` (of `dtype`): integers in the order of the values, -0.0 < +0.0."""
    itype, mask, _ = _FLOAT_BITS[np.dtype(dtype).name]
    bits = np.asarray(values, dtype=dtype).view(itype).astype(np.int64)
    return np.where(bits >= 0, bits, bits ^ np.int64(mask))


def keys_to_values(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values of `dtype` whose order keys are `keys` (the inverse of :func:`values_to_keys`)."""
    itype, mask, _ = _FLOAT_BITS[np.dtype(dtype).name]
    k = np.asarray(keys, dtype=np.int64)
    bits = np.where(k >= 0, k, k ^ np.int64(mask)).astype(itype)
    return bits.view(dtype)


def _bucket_of(keys: np.ndarray, spec: _hs.RangeInfo, k: int, dtype: np.dtype) -> np.ndarray:
    """The v2 bucket histgpu's engine puts each value of key `keys` in (all within `spec`).

    The engine only returns counts, but its bucket map is monotone: counting the values sorted
    gives each one's bucket from the cumulative counts."""
    order = np.argsort(keys, kind="stable")
    values = keys_to_values(np.asarray(keys)[order], dtype)
    cum = np.cumsum(_hs.local_counts(values, spec, k, num_threads=1, device="cpu"))
    out = np.empty(len(keys), np.int64)
    out[order] = np.searchsorted(cum, np.arange(len(keys)), side="right")
    return out


def threshold_keys(kmin: int, kmax: int, k: int, dtype: np.dtype) -> np.ndarray:
    """Keys of ``t[j - 1]``, ``j = 1 .. k - 1``: the smallest value of `dtype` that histgpu puts in
    bucket ``>= j`` of the range whose finite min and max have keys `kmin` and `kmax`. A finite
    value of key ``q`` is in bucket ``#{j : q >= key(t[j - 1])}``."""
    dtype = np.dtype(dtype)
    if k <= 1:
        return np.zeros(0, np.int64)
    vmin, vmax = (float(v) for v in keys_to_values(np.array([kmin, kmax]), dtype))
    spec = _hs.RangeInfo(vmin, vmax, _BIG_NUM)
    j = np.arange(1, k, dtype=np.int64)
    lo = np.full(k - 1, kmin, np.int64)
    hi = np.full(k - 1, kmax, np.int64)  # max is in the last bucket: every j is reached by kmax
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without int64 overflow
        mid = np.where(active, mid, lo)
        ok = _bucket_of(mid, spec, k, dtype) >= j
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


def thresholds(vmin: float, vmax: float, k: int, dtype: np.dtype) -> np.ndarray:
    """The ``k - 1`` thresholds (values of `dtype`) of the range ``vmin .. vmax``."""
    kmin, kmax = (int(q) for q in values_to_keys(np.array([vmin, vmax]), dtype))
    return keys_to_values(threshold_keys(kmin, kmax, k, dtype), dtype)


# ------------------------------------------------------------------------- traced part
# Integer operations on the bits only: no float mode (XLA:CPU flushes subnormals) changes them.


def _device_range(leaf: Any, dtype: np.dtype) -> Tuple[Any, Any, Any, Any]:
    """(finite mask, keys, ``[key(min), key(max)]``, ``[num, nan, posinf, neginf]``) of a traced leaf.

    The leaf keeps its shape (and so its sharding): only elementwise operations and full
    reductions, which XLA merges across devices as a few scalars."""
    itype, mask, expo = _FLOAT_BITS[dtype.name]
    ktype = key_type(dtype)
    ctype = jnp.int64 if _x64() else jnp.int32
    bits = lax.bitcast_convert_type(leaf, itype)
    magnitude = bits & jnp.array(mask, itype)
    finite = magnitude < jnp.array(expo, itype)
    inf = magnitude == jnp.array(expo, itype)
    keys = jnp.where(bits >= 0, bits, bits ^ jnp.array(mask, itype)).astype(ktype)
    big, small = jnp.iinfo(ktype).max, jnp.iinfo(ktype).min
    kmin = jnp.min(jnp.where(finite, keys, big), initial=big)
    kmax = jnp.max(jnp.where(finite, keys, small), initial=small)
    stats = jnp.stack([
        jnp.sum(finite, dtype=ctype),
        jnp.sum(magnitude > jnp.array(expo, itype), dtype=ctype),
        jnp.sum(inf & (bits >= 0), dtype=ctype),
        jnp.sum(inf & (bits < 0), dtype=ctype),
    ])
    return finite, keys, jnp.stack([kmin, kmax]), stats


def _bucket_index(keys: Any, table_keys: Any, k: int) -> Any:
    """``#{j : keys >= table_keys[j]}`` per element: a branchless binary search over the
    ``k - 1`` threshold keys padded to a power of two with the key type's maximum (above every
    finite key). Elementwise compares and gathers from a small replicated table keep the
    leaf's sharding (``jnp.searchsorted`` reshapes its input, which explicitly sharded meshes
    refuse)."""
    n = 1
    while n < k:
        n *= 2
    top = jnp.iinfo(table_keys.dtype).max
    table = jnp.concatenate([table_keys, jnp.full((n - (k - 1),), top, table_keys.dtype)])
    b = jnp.zeros(keys.shape, jnp.int32)
    step = n // 2
    while step >= 1:
        b = jnp.where(keys >= table[b + (step - 1)], b + step, b)
        step //= 2
    return b


def _explicit_mesh(x: Any) -> Any:
    """The abstract mesh of `x`'s type when some of its axes are Explicit (JAX's sharding in
    types), else None."""
    typeof = getattr(jax, "typeof", None)
    axis_type = getattr(jax.sharding, "AxisType", None)
    if typeof is None or axis_type is None:
        return None
    mesh = getattr(getattr(typeof(x), "sharding", None), "mesh", None)
    types = getattr(mesh, "axis_types", ()) or ()
    return mesh if any(t == axis_type.Explicit for t in types) else None


def _scatter_counts(b: Any, n: int, ctype: Any) -> Any:
    """``bincount(b, length=n)`` of a sharded index array, as a replicated ``[n]`` array.

    XLA partitions the scatter-add (local counts, then an all-reduce of ``n`` numbers). With
    explicitly sharded types JAX asks for the output's sharding, which is given by running the
    scatter in automatic mode with a replicated output."""
    def count(b: Any) -> Any:
        return jnp.zeros(n, ctype).at[b].add(jnp.ones((), ctype))

    mesh = _explicit_mesh(b)
    if mesh is None:
        return count(b)
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.sharding.auto_axes(count, out_sharding=NamedSharding(mesh, PartitionSpec()))(b)


def _device_counts(keys: Any, finite: Any, range_keys: Any, stats: Any, k: int, dtype: np.dtype) -> Any:
    ctype = jnp.int64 if _x64() else jnp.int32
    if k == 0:
        return jnp.zeros(0, ctype)
    if k == 1:
        return stats[:1]  # every finite value is in the one bucket
    ktype = key_type(dtype)

    def host_thresholds(range_keys: Any, stats: Any) -> np.ndarray:
        rk, num = np.asarray(range_keys), int(np.asarray(stats)[0])
        if num == 0:
            return np.zeros(k - 1, ktype)  # nothing finite: nothing is counted against them
        return run_clean(lambda: threshold_keys(int(rk[0]), int(rk[1]), k, dtype)).astype(ktype)

    table = jax.pure_callback(host_thresholds, jax.ShapeDtypeStruct((k - 1,), ktype), range_keys, stats)
    b = jnp.where(finite, _bucket_index(keys, table, k), k)  # NaN/Inf go to a bucket that is dropped
    return _scatter_counts(b, k + 1, ctype)[:k]


def log_v2(writer: Any, pairs: Sequence[Tuple[str, Any]], step: Any, k: int, mode: str,
           write: Callable[..., None]) -> None:
    """Trace the reductions and callbacks of every leaf; `write(writer, results, step, None)` runs
    on the host once the counts exist."""
    dtypes = [_leaf_dtype(tag, leaf) for tag, leaf in pairs]
    if not pairs:
        return
    for tag, leaf in pairs:
        if int(np.prod(np.shape(leaf), dtype=np.int64)) > 2**31 - 1 and not _x64():
            raise ValueError(
                f"histgpu.jax.log_histograms_jit: leaf {tag!r} has more than 2**31 - 1 elements; its counts "
                "need int64: enable jax_enable_x64, or log it outside jit"
            )
    prepare()
    operands = []
    for (_, leaf), dt in zip(pairs, dtypes):
        leaf = jnp.asarray(leaf)
        finite, keys, range_keys, stats = _device_range(leaf, dt)
        operands += [range_keys, stats, _device_counts(keys, finite, range_keys, stats, k, dt)]
    tags = [tag for tag, _ in pairs]

    def build(step: Any, arrays: Sequence[Any]) -> None:
        results = []
        for i, (tag, dt) in enumerate(zip(tags, dtypes)):
            range_keys, stats, counts = (np.asarray(a) for a in arrays[3 * i:3 * i + 3])
            num, nan, posinf, neginf = (int(v) for v in stats)
            vmin, vmax = (float(v) for v in keys_to_values(range_keys, dt)) if num else (0.0, 0.0)
            spec = _hs.RangeInfo(vmin, vmax, num, nan, posinf, neginf)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _options.NonFiniteWarning)
                results.append((tag, _hs.histogram_from_counts(spec, counts.astype(np.int64))))
        _options.apply_nonfinite_policy(mode, sum(h.nan for _, h in results), sum(h.posinf for _, h in results),
                                        sum(h.neginf for _, h in results), stacklevel=1)
        if writer is not None:
            write(writer, results, None if step is None else int(np.asarray(step)), None)

    def on_host(step: Any, *arrays: Any) -> None:
        run_clean(lambda: build(step, arrays))

    jax.debug.callback(on_host, step, *operands)
