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
   the engines' thresholds by construction.
3. JAX counts each finite value against the thresholds (``searchsorted``, scatter-add).
4. A second host callback receives the ``k`` counts and the range, builds the
   :class:`histgpu.Histogram` and writes the event.

So each callback carries O(k) numbers per leaf, never the leaf itself.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _options
from . import sharded as _hs

# leaf dtype name -> (integer type of the same width, its mask of the non-sign bits)
_FLOAT_BITS = {
    "float16": (np.int16, 0x7FFF),
    "bfloat16": (np.int16, 0x7FFF),
    "float32": (np.int32, 0x7FFFFFFF),
    "float64": (np.int64, 0x7FFFFFFFFFFFFFFF),
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
    if dt.name == "float64" and not _x64():  # cannot happen: JAX makes float32 of it
        raise TypeError(f"histgpu.jax.log_histograms_jit: leaf {tag!r} is float64 without jax_enable_x64")
    return dt


# ---------------------------------------------------------------------- keys <-> values


def keys_to_values(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values of `dtype` whose order keys are `keys` (the inverse of the key map)."""
    itype, mask = _FLOAT_BITS[np.dtype(dtype).name]
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


def thresholds(kmin: int, kmax: int, k: int, dtype: np.dtype) -> np.ndarray:
    """``t[j - 1]`` for ``j = 1 .. k - 1``: the smallest value of `dtype` in bucket ``>= j`` of
    the range with order keys ``kmin .. kmax``; a value ``x`` is in bucket
    ``#{j : x >= t[j - 1]}``."""
    dtype = np.dtype(dtype)
    if k <= 1:
        return np.zeros(0, dtype)
    vmin, vmax = (float(v) for v in keys_to_values(np.array([kmin, kmax]), dtype))
    spec = _hs.RangeInfo(vmin, vmax, _BIG_NUM)
    j = np.arange(1, k, dtype=np.int64)
    lo = np.full(k - 1, kmin, np.int64)
    hi = np.full(k - 1, kmax, np.int64)  # max is in the last bucket: every j is reached by kmax
    while True:
        active = lo < hi
        if not active.any():
            return keys_to_values(lo, dtype)
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)  # floor((lo + hi) / 2) without int64 overflow
        mid = np.where(active, mid, lo)
        ok = _bucket_of(mid, spec, k, dtype) >= j
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


# ------------------------------------------------------------------------- traced part



def _device_range(leaf: Any, dtype: np.dtype) -> Tuple[Any, Any, Any]:
    """(finite mask, ``[key(min), key(max)]``, ``[num, nan, posinf, neginf]``) of a traced leaf.

    The leaf keeps its shape (and so its sharding): only elementwise operations and full
    reductions, which XLA merges across devices as a few scalars."""
    itype, mask = _FLOAT_BITS[dtype.name]
    ktype = jnp.int64 if dtype.name == "float64" else jnp.int32
    ctype = jnp.int64 if _x64() else jnp.int32
    finite = jnp.isfinite(leaf)
    bits = lax.bitcast_convert_type(leaf, itype)
    keys = jnp.where(bits >= 0, bits, bits ^ jnp.array(mask, itype)).astype(ktype)
    big, small = jnp.iinfo(ktype).max, jnp.iinfo(ktype).min
    kmin = jnp.min(jnp.where(finite, keys, big), initial=big)
    kmax = jnp.max(jnp.where(finite, keys, small), initial=small)
    stats = jnp.stack([
        jnp.sum(finite, dtype=ctype),
        jnp.sum(jnp.isnan(leaf), dtype=ctype),
        jnp.sum(leaf == jnp.inf, dtype=ctype),
        jnp.sum(leaf == -jnp.inf, dtype=ctype),
    ])
    return finite, jnp.stack([kmin, kmax]), stats


def _bucket_index(leaf: Any, thr: Any, k: int) -> Any:
    """``#{j : leaf >= thr[j]}`` per element: a branchless binary search over the ``k - 1``
    thresholds padded with +Inf to a power of two (elementwise compares and gathers from a small
    replicated table, so that the leaf keeps its sharding; ``jnp.searchsorted`` reshapes its
    input, which explicitly sharded meshes refuse)."""
    n = 1
    while n < k:
        n *= 2
    table = jnp.concatenate([thr, jnp.full((n - (k - 1),), jnp.inf, thr.dtype)])
    b = jnp.zeros(leaf.shape, jnp.int32)
    step = n // 2
    while step >= 1:
        b = jnp.where(leaf >= table[b + (step - 1)], b + step, b)
        step //= 2
    return b


def _device_counts(leaf: Any, finite: Any, keys: Any, stats: Any, k: int, dtype: np.dtype) -> Any:
    ctype = jnp.int64 if _x64() else jnp.int32
    if k == 0:
        return jnp.zeros(0, ctype)
    if k == 1:
        return stats[:1]  # every finite value is in the one bucket

    def host_thresholds(keys: Any, stats: Any) -> np.ndarray:
        keys, num = np.asarray(keys), int(np.asarray(stats)[0])
        if num == 0:
            return np.zeros(k - 1, dtype)  # nothing finite: nothing is counted against them
        return thresholds(int(keys[0]), int(keys[1]), k, dtype)

    thr = jax.pure_callback(host_thresholds, jax.ShapeDtypeStruct((k - 1,), dtype), keys, stats)
    b = jnp.where(finite, _bucket_index(leaf, thr, k), k)  # NaN/Inf go to a bucket that is dropped
    return _scatter_counts(b, k + 1, ctype)[:k]


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


def log_v2(writer: Any, pairs: Sequence[Tuple[str, Any]], step: Any, k: int, mode: str,
           write: Callable[..., None]) -> None:
    """Trace the reductions and callbacks of every leaf; `write(writer, results, step, None)` runs
    on the host once the counts exist."""
    dtypes = [_leaf_dtype(tag, leaf) for tag, leaf in pairs]
    if not pairs:
        return
    limit = 2**31 - 1
    for (tag, leaf), dt in zip(pairs, dtypes):
        if int(np.prod(np.shape(leaf), dtype=np.int64)) > limit and not _x64():
            raise ValueError(
                f"histgpu.jax.log_histograms_jit: leaf {tag!r} has more than 2**31 - 1 elements; its counts "
                "need int64: enable jax_enable_x64, or log it outside jit"
            )
    operands = []
    for (tag, leaf), dt in zip(pairs, dtypes):
        leaf = jnp.asarray(leaf)
        finite, keys, stats = _device_range(leaf, dt)
        operands += [keys, stats, _device_counts(leaf, finite, keys, stats, k, dt)]
    tags = [tag for tag, _ in pairs]

    def on_host(step: Any, *arrays: Any) -> None:
        results = []
        for i, (tag, dt) in enumerate(zip(tags, dtypes)):
            keys, stats, counts = (np.asarray(a) for a in arrays[3 * i:3 * i + 3])
            num, nan, posinf, neginf = (int(v) for v in stats)
            vmin, vmax = (float(v) for v in keys_to_values(keys, dt)) if num else (0.0, 0.0)
            spec = _hs.RangeInfo(vmin, vmax, num, nan, posinf, neginf)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", _options.NonFiniteWarning)
                results.append((tag, _hs.histogram_from_counts(spec, counts.astype(np.int64))))
        _options.apply_nonfinite_policy(mode, sum(h.nan for _, h in results), sum(h.posinf for _, h in results),
                                        sum(h.neginf for _, h in results), stacklevel=1)
        if writer is not None:
            s = None if step is None else int(np.asarray(step))
            write(writer, results, s, None)

    jax.debug.callback(on_host, step, *operands)
