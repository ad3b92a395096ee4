"""Exact histograms of (sharded) ``jax.Array``s, and logging from JAX training loops.

>>> import histgpu.jax as hjax
>>> h = hjax.histogram(x, 30)       # x: a jax.Array with any sharding, on any mesh
>>> p = hjax.histogram_v1(x)        # TensorFlow's v1 content, exact sums

Each addressable shard is read where it lives (DLPack: host memory on the CPU engine, GPU
memory on the CUDA engine), replicated copies are counted once (replica 0 of each index), and
the shards' partials are merged exactly through :mod:`histgpu.sharded`. An array spread over
several processes (``jax.distributed``) is merged with JAX's own
``multihost_utils.process_allgather``: only O(k) int64 numbers travel, never the data. The
result has the same bits as ``histgpu.compute(np.asarray(x))`` / ``compute_v1``.

Logging: :func:`log_histograms` writes a pytree of parameters or gradients (flax/optax
style) to a :class:`histgpu.SummaryWriter`, tags following the pytree paths
(``params/Dense_0/kernel``); :func:`log_histograms_jit` does it from inside jitted code with
callbacks that carry O(k) numbers, not the arrays. Manual: ``docs/jax.md``.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import jax  # the real JAX: absolute imports never resolve to this module
import numpy as np

from . import _input as _in
from . import _options
from . import sharded as _hs
from ._result import Histogram, V1Histogram

__all__ = [
    "histogram",
    "histogram_v1",
    "tree_tags",
    "log_histograms",
    "log_histograms_jit",
]

Result = Union[Histogram, V1Histogram]


# ------------------------------------------------------------------------------ checks


def _check_array(x: Any, fn: str) -> "jax.Array":
    """`x` itself when it is a concrete, live jax.Array; else a clear exception."""
    if isinstance(x, jax.core.Tracer):
        raise TypeError(
            f"histgpu.jax.{fn}() got a traced value (inside jax.jit, grad, vmap, scan, ...): it reads "
            "concrete arrays. Return the array from the jitted function and call it outside, or log "
            "from inside with histgpu.jax.log_histograms_jit (callbacks carrying O(k) numbers)"
        )
    if not isinstance(x, jax.Array):
        raise TypeError(
            f"histgpu.jax.{fn}() expects a jax.Array, not {type(x).__module__}.{type(x).__name__}; "
            "use histgpu.compute / histgpu.compute_v1 for numpy, PyTorch or TensorFlow data"
        )
    if x.is_deleted():
        raise ValueError(f"histgpu.jax.{fn}(): this jax.Array has been deleted (donated to a jitted call?)")
    return x


def _check_processes(x: "jax.Array", fn: str) -> bool:
    """True when `x` spans processes (merge across them), False when this process holds it all.

    Raises where the merge could not work: an array that is not fully addressable in a process
    that is not part of a multi-process job, or one that leaves out some of the job's processes
    (they would not join the collective, and it would hang)."""
    if x.is_fully_addressable:
        return False
    count = jax.process_count()
    if count == 1:
        raise RuntimeError(
            f"histgpu.jax.{fn}(): this jax.Array is not fully addressable, but JAX runs as a single "
            "process; call jax.distributed.initialize() in every process first"
        )
    held_by = sorted({int(d.process_index) for d in x.sharding.device_set})
    if held_by != list(range(count)):
        raise ValueError(
            f"histgpu.jax.{fn}(): this jax.Array lives on processes {held_by} of {count}; the merge "
            "is a collective over every process of the job, so the array must have shards (or "
            "replicas) on all of them"
        )
    return True


def _primary_views(x: "jax.Array", spans_processes: bool) -> List[_in.View]:
    """Zero-copy views of the addressable shards this process counts: replica 0 of each index.

    JAX numbers the copies of each distinct index 0, 1, ... over the whole job, so counting
    replica 0 alone counts every element exactly once, however the mesh replicates."""
    x.block_until_ready()
    views = [_in.classify(s.data) for s in x.addressable_shards if s.replica_id == 0]
    if not spans_processes:
        held = sum(v.size for v in views)
        if held != x.size:  # a sharding JAX numbers differently would be caught here, not miscounted
            raise RuntimeError(
                f"histgpu.jax: the replica-0 shards of this array hold {held} elements, the array {x.size}; "
                f"sharding {x.sharding!r} is not supported"
            )
    return views


# --------------------------------------------------------------------- across processes


def _process_allgather_int64(a: np.ndarray) -> np.ndarray:
    """``[processes, n]``: every process's int64 vector `a`, exactly, via JAX's multihost utils.

    JAX narrows int64 to int32 unless ``jax_enable_x64`` is on (silently: ``2**40`` arrives as
    0). So the int64 words travel as pairs of int32 words, which JAX keeps either way, and are
    viewed back as int64 here: the global flag is neither needed nor touched."""
    from jax.experimental import multihost_utils

    a = np.ascontiguousarray(a, dtype=np.int64).reshape(-1)
    gathered = np.asarray(multihost_utils.process_allgather(a.view(np.int32)))
    want = (jax.process_count(), 2 * a.size)
    if gathered.dtype != np.int32 or gathered.shape != want:
        raise RuntimeError(
            f"histgpu.jax: process_allgather returned {gathered.dtype} {gathered.shape}, expected int32 {want}"
        )
    return np.ascontiguousarray(gathered).view(np.int64)


def _reduce(mins: np.ndarray, sums: np.ndarray, spans_processes: bool) -> Tuple[np.ndarray, np.ndarray]:
    """MIN-reduce `mins` and SUM-reduce `sums` (int64) over the job's processes."""
    if not spans_processes:
        return mins, sums
    rows = _process_allgather_int64(np.concatenate([mins, sums]))
    m = mins.size
    return rows[:, :m].min(axis=0), rows[:, m:].sum(axis=0, dtype=np.int64)


# ------------------------------------------------------------------------- histograms


def _local_stack(pieces: Sequence[Tuple[np.ndarray, np.ndarray]], neutral: Tuple[np.ndarray, np.ndarray]
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """MIN of the mins and SUM of the sums of this process's shards (`neutral` when it has none)."""
    if not pieces:
        return neutral
    mins = np.stack([m for m, _ in pieces]).min(axis=0)
    sums = np.asarray(np.sum(np.stack([s for _, s in pieces]), axis=0, dtype=np.int64))
    return mins, sums


def histogram(
    x: Any,
    buckets: Optional[int] = None,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> Histogram:
    """TensorBoard's v2 histogram of the whole (global) ``jax.Array`` `x`, bit for bit.

    Equal to ``histgpu.compute(np.asarray(x), buckets)`` for any sharding (``NamedSharding``
    on 1-D or 2-D meshes, replicated axes, ``SingleDeviceSharding``, ...), without gathering
    `x`: two reads of each local shard, in place, and two rounds of O(k) int64 numbers.

    Parameters
    ----------
    x : jax.Array
        Concrete (not traced) and live. When `x` spans several processes, **every process**
        of the ``jax.distributed`` job must call this, with the same `buckets`.
    buckets : int, optional
        ``k`` (default 30), as in :func:`histgpu.compute`.
    nonfinite : {"omit", "raise"}
        As in :func:`histgpu.compute`, applied to the global NaN/Inf counts.
    num_threads, device
        As in :func:`histgpu.compute`, for the engine that reads each shard (by default CPU
        shards go to the CPU engine, GPU shards to the CUDA engine).

    Raises
    ------
    TypeError
        `x` is not a jax.Array, or is a tracer; `buckets` is not an integer.
    ValueError
        A bad option, a deleted array, or an array that lives on some processes only.
    RuntimeError
        `x` is not fully addressable and ``jax.distributed`` was not initialised.
    """
    k = _options.bucket_count(buckets)
    mode = _options.nonfinite_mode(nonfinite)
    x = _check_array(x, "histogram")
    spans = _check_processes(x, "histogram")
    views = _primary_views(x, spans)
    # phase 1: ranges (one read of each shard), merged exactly as order keys and int64 counts
    ranges = [_hs.local_range(v, num_threads=num_threads, device=device) for v in views]
    mins, sums = _reduce(*_local_stack([r.to_collective() for r in ranges], _hs.RangeInfo(0.0, 0.0, 0).to_collective()),
                         spans)
    spec = _hs.RangeInfo.from_collective(mins, sums)
    # phase 2: counts against the merged range (the second and last read)
    counts = [_hs.local_counts(v, spec, k, num_threads=num_threads, device=device, local=r)
              for v, r in zip(views, ranges)]
    total = np.asarray(np.sum(np.stack(counts), axis=0, dtype=np.int64)) if counts else np.zeros(k, np.int64)
    if spans:
        total = _process_allgather_int64(total).sum(axis=0, dtype=np.int64)
    return _hs.histogram_from_counts(spec, total, nonfinite=mode)


def histogram_v1(
    x: Any,
    *,
    nonfinite: str = "omit",
    num_threads: Optional[int] = None,
    device: Optional[str] = None,
) -> V1Histogram:
    """TensorFlow's v1 histogram of the whole ``jax.Array`` `x`: ``histgpu.compute_v1(np.asarray(x))``.

    One read of each local shard and one round of 1,845 int64 numbers; ``sum`` and
    ``sum_squares`` are exact sums rounded once, whatever the sharding. Parameters and
    exceptions as in :func:`histogram`.
    """
    mode = _options.nonfinite_mode(nonfinite)
    x = _check_array(x, "histogram_v1")
    spans = _check_processes(x, "histogram_v1")
    views = _primary_views(x, spans)
    parts = [_hs.local_v1(v, num_threads=num_threads, device=device).to_collective() for v in views]
    if not parts:
        parts = [_hs.local_v1(np.zeros(0, np.float32)).to_collective()]  # MIN's and SUM's neutral elements
    mins, sums = _reduce(*_local_stack(parts, parts[0]), spans)
    return _hs.V1Partial.from_collective(mins, sums).finish(nonfinite=mode)


# ------------------------------------------------------------------------------ pytrees


def _key_name(key: Any) -> str:
    """One pytree path entry as a tag component: dict keys, attribute names, sequence indices."""
    tu = jax.tree_util
    if isinstance(key, tu.DictKey):
        return str(key.key)
    if isinstance(key, tu.GetAttrKey):
        return str(key.name)
    if isinstance(key, tu.SequenceKey):
        return str(key.idx)
    if isinstance(key, tu.FlattenedIndexKey):
        return str(key.key)
    return str(key)


def tree_tags(tree: Any, prefix: Optional[str] = None, *, is_leaf: Optional[Callable[[Any], bool]] = None
              ) -> List[Tuple[str, Any]]:
    """``(tag, leaf)`` pairs of a pytree, tags joining the path with ``/``.

    ``{"params": {"Dense_0": {"kernel": w}}}`` gives ``("params/Dense_0/kernel", w)``; dict keys,
    dataclass/namedtuple fields (flax ``struct``, optax states) and list/tuple indices all name
    a level. `prefix` is put in front (``prefix="grads"`` → ``grads/params/Dense_0/kernel``).
    ``None`` leaves are skipped, as JAX skips them.

    Raises
    ------
    ValueError
        Two leaves would get the same tag (``{"a/b": x, "a": {"b": y}}``).
    """
    if prefix is not None and (not isinstance(prefix, str) or not prefix):
        raise TypeError(f"prefix must be a non-empty str or None, not {prefix!r}")
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    out: List[Tuple[str, Any]] = []
    seen: Dict[str, int] = {}
    for i, (path, leaf) in enumerate(flat):
        parts = ([prefix] if prefix else []) + [_key_name(k) for k in path]
        tag = "/".join(parts) if parts else "value"
        if tag in seen:
            raise ValueError(f"two pytree leaves get the tag {tag!r} (leaves {seen[tag]} and {i})")
        seen[tag] = i
        out.append((tag, leaf))
    return out


def _histogram_of(leaf: Any, k: Optional[int]) -> Result:
    """A leaf's histogram, non-finite values left out silently (the caller reports them once)."""
    if isinstance(leaf, jax.core.Tracer):
        _check_array(leaf, "log_histograms")  # raises, pointing to log_histograms_jit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _options.NonFiniteWarning)
        if isinstance(leaf, jax.Array):
            return histogram_v1(leaf) if k is None else histogram(leaf, k)
        from . import _api

        return _api.compute_v1(leaf) if k is None else _api.compute(leaf, k)


def _check_writer(writer: Any) -> None:
    from .writer import SummaryWriter

    if writer is not None and not isinstance(writer, SummaryWriter):
        raise TypeError(f"writer must be a histgpu.SummaryWriter or None, not {type(writer).__name__}")


def _write(writer: Any, results: Sequence[Tuple[str, Result]], step: Optional[int], walltime: Optional[float]) -> None:
    """One event holding every histogram (and the non-finite companion scalars) of `results`,
    as ``SummaryWriter.add_histograms(..., layout="v2")`` or ``bins="tensorflow"`` writes it."""
    writer.add_computed(results, step, walltime)


def _buckets(bins: Union[str, int]) -> Optional[int]:
    """None for ``bins="tensorflow"`` (the v1 proto), else the v2 bucket count."""
    if isinstance(bins, str):
        if bins != "tensorflow":
            raise ValueError(f"bins must be 'tensorflow' (TensorFlow's v1 HistogramProto) or an int k "
                             f"(TensorBoard's v2 [k, 3] tensor), not {bins!r}")
        return None
    if isinstance(bins, bool):
        raise TypeError("bins must be 'tensorflow' or an int, not a bool")
    return _options.bucket_count(bins)


def log_histograms(
    writer: Any,
    tree: Any,
    step: Optional[int] = None,
    *,
    bins: Union[str, int] = "tensorflow",
    prefix: Optional[str] = None,
    nonfinite: str = "omit",
    walltime: Optional[float] = None,
) -> Dict[str, Result]:
    """Log one histogram per leaf of `tree` (parameters, gradients, optimizer state) in one event.

    Call it outside jitted code, on the arrays a train step returned::

        state, grads = train_step(state, batch)          # jitted; grads returned as an output
        hjax.log_histograms(writer, {"params": state.params, "grads": grads}, step)

    Every ``jax.Array`` leaf is counted shard by shard where it lives (:func:`histogram`,
    :func:`histogram_v1`), so sharded parameters are never gathered; other leaves (numpy, Python
    numbers) go to :func:`histgpu.compute`. Tags follow :func:`tree_tags`.

    Parameters
    ----------
    writer : histgpu.SummaryWriter or None
        Where the event goes. ``None`` computes without writing: in a multi-process job every
        process must call this (the merges are collectives), and usually only process 0 has a
        writer (``writer if jax.process_index() == 0 else None``).
    tree : pytree
        Nested dicts/lists/tuples/dataclasses of arrays.
    step : int, optional
        The event's step.
    bins : "tensorflow" or int
        As in :meth:`histgpu.SummaryWriter.add_histogram`: the v1 ``HistogramProto`` (default)
        or TensorBoard's v2 ``[k, 3]`` tensor with ``k`` buckets.
    prefix : str, optional
        Put in front of every tag.
    nonfinite : {"omit", "raise"}
        NaN/Inf are left out and shown as ``<tag>/nonfinite/*`` scalars; one
        :class:`histgpu.NonFiniteWarning` covers the whole tree. ``"raise"`` raises
        ``ValueError`` and writes nothing.
    walltime : float, optional
        Event time (default: now).

    Returns
    -------
    dict
        Tag → :class:`histgpu.Histogram` (``bins=k``) or :class:`histgpu.V1Histogram`.
    """
    from . import writer as _w

    _check_writer(writer)
    k = _buckets(bins)
    mode = _options.nonfinite_mode(nonfinite)
    step = _w._check_step(step)
    pairs = [(_w._check_tag(tag), leaf) for tag, leaf in tree_tags(tree, prefix)]
    results = [(tag, _histogram_of(leaf, k)) for tag, leaf in pairs]
    _options.apply_nonfinite_policy(mode, sum(h.nan for _, h in results), sum(h.posinf for _, h in results),
                                    sum(h.neginf for _, h in results), stacklevel=2)
    if writer is not None and results:
        _write(writer, results, step, walltime)
    return dict(results)


def log_histograms_jit(
    writer: Any,
    tree: Any,
    step: Any,
    *,
    bins: int = 30,
    prefix: Optional[str] = None,
    nonfinite: str = "omit",
) -> None:
    """Log v2 histograms of a pytree from **inside** jitted code, without copying the arrays out.

    ::

        @jax.jit
        def train_step(state, batch):
            grads = jax.grad(loss)(state.params, batch)
            hjax.log_histograms_jit(writer, {"grads": grads}, state.step, bins=30)
            ...

    The arrays stay on their devices: JAX reduces each leaf to its range (order keys, so that
    ``-0.0 < +0.0``) and value counts, a host callback turns that range into the bucket
    thresholds histgpu's engines use, JAX counts each leaf against them, and a second callback
    receives the ``k`` counts and writes the event. Each callback carries O(k) numbers per leaf;
    the histograms equal :func:`histogram` of the same arrays, bit for bit (except for subnormal
    values where the backend flushes them to zero: see ``docs/jax.md``).

    Only v2 (``bins=k``) and floating-point leaves (float16, bfloat16, float32; float64 with
    ``jax_enable_x64``) are supported here: the v1 proto's exact sums need the engines' wide
    integer accumulators, so log v1 with :func:`log_histograms` outside jit.

    Parameters
    ----------
    writer : histgpu.SummaryWriter or None
        ``None`` writes nothing (the other processes of a multi-process job).
    tree : pytree of arrays (traced or concrete)
    step : int or traced integer scalar
    bins : int
        ``k`` buckets (default 30).
    prefix, nonfinite
        As in :func:`log_histograms`; the warning (or the ``ValueError`` of ``"raise"``, which
        JAX reports as a runtime error of the computation) comes from the callback.
    """
    from . import _jax_jit
    from . import writer as _w

    _check_writer(writer)
    if isinstance(bins, str):
        raise ValueError(
            f"bins={bins!r}: inside jit only v2 histograms (bins=<int>) are supported; log the v1 "
            "HistogramProto with histgpu.jax.log_histograms outside jit"
        )
    k = _options.bucket_count(bins)
    mode = _options.nonfinite_mode(nonfinite)
    pairs = [(_w._check_tag(tag), leaf) for tag, leaf in tree_tags(tree, prefix)]
    _jax_jit.log_v2(writer, pairs, step, k, mode, _write)
