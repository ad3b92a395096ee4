"""Exact histograms of tensors sharded over ``tf.distribute`` replicas and workers.

:func:`histogram` and :func:`histogram_v1` write, once, the histogram of the whole tensor (the
concatenation of every replica's shard), bit for bit :func:`histgpu.histogram` of it, moving
only a few int64 per histogram through TensorFlow's collectives. Manual (what ``data`` means in
each context, how the collectives work, when to call it): ``docs/distribute.md``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorboard.plugins.histogram import metadata as _histogram_metadata

from . import _dtypes, _options
from . import proto as _proto
from . import sharded as _sharded
from . import summary as _summary
from ._api import compute as histgpu_compute
from ._result import Histogram

__all__ = ["histogram", "histogram_v1", "histogram_tensor"]

_SUM = tf.distribute.ReduceOp.SUM


# --------------------------------------------------------------------- where are we?


def _is_per_replica(data: Any) -> bool:
    """A DistributedValues holding a different value on each replica (PerReplica)."""
    # PerReplica is not exported by TensorFlow; its class name is stable across 2.x.
    return isinstance(data, tf.distribute.DistributedValues) and type(data).__name__ == "PerReplica"


def _is_replicated(data: Any) -> bool:
    """Mirrored values and distributed variables: one value, held by every replica."""
    return isinstance(data, tf.distribute.DistributedValues) and not _is_per_replica(data)


def _cross_replica() -> bool:
    """Cross-replica context, or outside any strategy's scope (a strategy= was given)."""
    return tf.distribute.in_cross_replica_context() or not tf.distribute.has_strategy()


def _writes_summaries(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes summaries (the chief; every single-worker strategy)."""
    try:
        return bool(strategy.extended.should_save_summary)
    except NotImplementedError:
        return True


def _num_workers(strategy: tf.distribute.Strategy) -> int:
    local = max(1, len(strategy.extended.worker_devices))
    return max(1, strategy.num_replicas_in_sync // local)


def _bucket_arg(buckets: Any) -> Tuple[tf.Tensor, Optional[int]]:
    """(k as an int64 tensor, k when known while tracing)."""
    if tf.is_tensor(buckets):
        static = tf.get_static_value(buckets)
        k = tf.cast(buckets, tf.int64)
        return k, None if static is None else _options.bucket_count(int(static))
    k = _options.bucket_count(buckets)
    return tf.constant(k, tf.int64), k


def _worker_shards(strategy: tf.distribute.Strategy, data: Any) -> Any:
    """``data`` on this worker's first replica, empty on its other replicas."""
    x = tf.convert_to_tensor(data)
    calls = []

    def value_fn(ctx: Any) -> tf.Tensor:
        calls.append(ctx)
        return tf.identity(x) if len(calls) == 1 else tf.reshape(x, [-1])[:0]

    return strategy.experimental_distribute_values_from_function(value_fn)


# ----------------------------------------------------------- host sides (numpy_function)
#
# tf.distribute reduces only by SUM (and MEAN), so MIN/MAX travel as a gather-by-SUM: each
# replica writes its 2 order keys into its own row of an [R, 2] block of zeros and the SUM
# all-reduce leaves every replica with all R rows; a selection over them is exact. The block
# rides in the same int64 message as the counts, so a round is one collective.


def _message(mins: np.ndarray, sums: np.ndarray, replica: Any, replicas: Any) -> np.ndarray:
    """``[R * 2 keys (own row filled) | sums]``, to be all-reduced with SUM."""
    block = np.zeros((int(replicas), 2), dtype=np.int64)
    block[int(replica)] = mins
    return np.concatenate([block.reshape(-1), np.asarray(sums, dtype=np.int64)])


def _split(msg: np.ndarray, replicas: Any) -> Tuple[np.ndarray, np.ndarray]:
    """(MIN over the replicas' key rows, the summed rest) of a reduced :func:`_message`."""
    n = 2 * int(replicas)
    return msg[:n].reshape(-1, 2).min(axis=0), msg[n:]


def _np_range_msg(values: np.ndarray, replica: np.ndarray, replicas: np.ndarray) -> np.ndarray:
    return _message(*_sharded.local_range(values).to_collective(), replica, replicas)


def _np_counts(
    values: np.ndarray, own_msg: np.ndarray, msg: np.ndarray, replica: np.ndarray, replicas: np.ndarray, k: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """This shard's counts against the global range, plus its value count as a last entry.

    ``own_msg`` is this replica's phase-1 message before the reduce: its own range, handed to
    the engine so that the shard is not read a third time."""
    g = _sharded.RangeInfo.from_collective(*_split(msg, replicas))
    n = 2 * int(replicas)
    own = _sharded.RangeInfo.from_collective(own_msg[:n].reshape(-1, 2)[int(replica)], own_msg[n:])
    h = _sharded.local_histogram(values, g, _options.bucket_count(int(k)), local=own)
    counts = np.append(np.asarray(h.counts, dtype=np.int64), np.int64(h.num))
    return counts, np.asarray(h.edges, dtype=np.float64)


def _np_finish(mode: str):
    def finish(msg: np.ndarray, replicas: np.ndarray, counts: np.ndarray, edges: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        g = _sharded.RangeInfo.from_collective(*_split(msg, replicas))
        counts = np.asarray(counts, dtype=np.int64)
        if int(counts[-1]) != g.num or int(counts[:-1].sum()) != (g.num if counts.size > 1 else 0):
            raise ValueError("histgpu.distribute: summed counts do not match the merged range")
        _options.apply_nonfinite_policy(mode, g.nan, g.posinf, g.neginf)
        h = Histogram(edges, counts[:-1].astype(np.uint64), g.min, g.max, g.num, g.nan, g.posinf, g.neginf)
        return h.to_tensor(), np.array([g.nan, g.posinf, g.neginf], dtype=np.int64)

    return finish


def _np_v1_msg(values: np.ndarray, replica: np.ndarray, replicas: np.ndarray) -> np.ndarray:
    return _message(*_sharded.local_v1(values).to_collective(), replica, replicas)


def _np_v1_finish(tag: str, mode: str):
    def finish(msg: np.ndarray, replicas: np.ndarray) -> Tuple[bytes, np.ndarray]:
        h = _sharded.V1Partial.from_collective(*_split(msg, replicas)).finish(nonfinite=mode)
        summary = _proto.summary_pb2.Summary()
        summary.value.add(tag=tag, histo=_proto.v1_to_proto(h))
        _proto.add_nonfinite_values(summary, tag, h.nan, h.posinf, h.neginf)
        return summary.SerializeToString(), np.array([h.nan, h.posinf, h.neginf], dtype=np.int64)

    return finish


# --------------------------------------------------------- replica context: collectives


def _shard_tensor(data: Any) -> tf.Tensor:
    """``data`` as a tensor whose dtype histgpu reads, checked while tracing: a failure
    inside a numpy_function on one replica would leave the others waiting in a collective."""
    x = tf.convert_to_tensor(data)
    try:
        _dtypes.numpy_code(np.dtype(x.dtype.as_numpy_dtype))
    except TypeError as exc:
        raise TypeError(f"histgpu.distribute: {exc} (tensor dtype {x.dtype.name})") from None
    return x


def _replica_ids() -> Tuple[Any, tf.Tensor, tf.Tensor]:
    ctx = tf.distribute.get_replica_context()
    rid = tf.cast(ctx.replica_id_in_sync_group, tf.int64)
    return ctx, rid, tf.constant(ctx.num_replicas_in_sync, tf.int64)


def _replica_table(data: Any, k: tf.Tensor, k_static: Optional[int], mode: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """In replica context: the global ``[k, 3]`` table and ``[nan, posinf, neginf]``.

    Identical on every replica. Two SUM all-reduces: ``2R + 4`` int64 (the range), then
    ``k + 1`` int64 (the counts).
    """
    ctx, rid, nrep = _replica_ids()
    x = _shard_tensor(data)
    own_msg = tf.numpy_function(_np_range_msg, [x, rid, nrep], tf.int64, stateful=True)
    own_msg.set_shape([2 * ctx.num_replicas_in_sync + 4])
    msg = ctx.all_reduce(_SUM, own_msg)
    counts, edges = tf.numpy_function(
        _np_counts, [x, own_msg, msg, rid, nrep, k], [tf.int64, tf.float64], stateful=True
    )
    n = None if k_static is None else k_static + 1
    counts.set_shape([n])
    edges.set_shape([n])
    counts = ctx.all_reduce(_SUM, counts)
    table, nonfinite = tf.numpy_function(
        _np_finish(mode), [msg, nrep, counts, edges], [tf.float64, tf.int64], stateful=True
    )
    table.set_shape([k_static, 3])
    nonfinite.set_shape([3])
    return table, nonfinite


def _replica_v1(data: Any, tag: str, mode: str) -> Tuple[tf.Tensor, tf.Tensor]:
    """In replica context: the serialized v1 ``Summary`` of the whole tensor, and non-finite counts.

    One SUM all-reduce of ``2R + 1,843`` int64.
    """
    ctx, rid, nrep = _replica_ids()
    x = _shard_tensor(data)
    msg = tf.numpy_function(_np_v1_msg, [x, rid, nrep], tf.int64, stateful=True)
    msg.set_shape([None])
    msg = ctx.all_reduce(_SUM, msg)
    raw, nonfinite = tf.numpy_function(_np_v1_finish(tag, mode), [msg, nrep], [tf.string, tf.int64], stateful=True)
    raw.set_shape([])
    nonfinite.set_shape([3])
    return raw, nonfinite


def _run_per_replica(strategy: tf.distribute.Strategy, fn: Any, shards: Any) -> Tuple[tf.Tensor, ...]:
    """Run ``fn`` on every replica's shard; return this worker's first replica's result."""
    out = strategy.run(fn, args=(shards,))
    return tuple(strategy.experimental_local_results(o)[0] for o in out)


def _route(data: Any, strategy: Optional[tf.distribute.Strategy]) -> Tuple[str, Optional[tf.distribute.Strategy], Any]:
    """How to histogram ``data`` here: ``(how, strategy, shards)``.

    "local": one value (no strategy, a replicated value, or a plain value on a single
    worker): no collective. "replica": replica context, ``data`` is this replica's shard.
    "shards": cross-replica context, ``shards`` holds one shard per replica.
    """
    if strategy is None:
        if not tf.distribute.has_strategy():
            if _is_per_replica(data):
                raise ValueError(
                    "histgpu.distribute got PerReplica values outside the strategy's scope: call it "
                    "inside `with strategy.scope():` or pass strategy="
                )
            return "local", None, data
        strategy = tf.distribute.get_strategy()
    if _is_replicated(data):
        return "local", strategy, data
    if not _cross_replica():
        return "replica", strategy, data
    if _is_per_replica(data):
        return "shards", strategy, data
    if _num_workers(strategy) == 1:
        return "local", strategy, data
    return "shards", strategy, _worker_shards(strategy, data)


def _skip_local_write(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """A non-chief worker in cross-replica context: the chief writes, this one does not."""
    return strategy is not None and _cross_replica() and not _writes_summaries(strategy)


# ------------------------------------------------------------------------ public API


def histogram_tensor(
    data: Any,
    buckets: Any = None,
    *,
    nonfinite: str = "omit",
    strategy: Optional[tf.distribute.Strategy] = None,
) -> tf.Tensor:
    """The ``[k, 3]`` float64 bucket tensor of the whole sharded tensor; nothing is written.

    In replica context every replica gets the same tensor; in cross-replica context, this
    worker's first replica's copy. ``data`` and the parameters as in :func:`histogram`.
    """
    mode = _options.nonfinite_mode(nonfinite)
    k, k_static = _bucket_arg(buckets)
    how, strategy, shards = _route(data, strategy)
    if how == "local":
        return _local_table(data, k, k_static, mode)
    fn = lambda x: _replica_table(x, k, k_static, mode)  # noqa: E731
    return (_run_per_replica(strategy, fn, shards) if how == "shards" else fn(shards))[0]


def _local_table(data: Any, k: tf.Tensor, k_static: Optional[int], mode: str) -> tf.Tensor:
    def run(values: np.ndarray, kv: np.ndarray) -> np.ndarray:
        return histgpu_compute(values, _options.bucket_count(int(kv)), nonfinite=mode).to_tensor()

    out = tf.numpy_function(run, [tf.convert_to_tensor(data), k], tf.float64, stateful=True)
    out.set_shape([k_static, 3])
    return out


def _write_v2(tag: str, table: tf.Tensor, nonfinite: tf.Tensor, step: Any, description: Optional[str]) -> tf.Tensor:
    """tf.summary.histogram's event for ``table``, plus the non-finite companion scalars."""
    md = _histogram_metadata.create_summary_metadata(display_name=None, description=description)
    if tf.executing_eagerly():
        if bool(tf.reduce_any(nonfinite > 0)):
            _summary._write_nonfinite(tag, nonfinite, step)
    else:
        wrote = tf.cond(
            tf.reduce_any(nonfinite > 0),
            lambda: _summary._write_nonfinite(tag, nonfinite, step),
            lambda: tf.constant(False),
        )
        with tf.control_dependencies([wrote]):  # the companion write must run
            table = tf.identity(table)
    return tf.summary.write(tag=tag, tensor=table, step=step, metadata=md)


def histogram(
    name: str,
    data: Any,
    step: Any = None,
    buckets: Any = None,
    description: Optional[str] = None,
    *,
    nonfinite: str = "omit",
    strategy: Optional[tf.distribute.Strategy] = None,
) -> Any:
    """Write the histogram of a tensor sharded over replicas/workers, once, from the chief.

    Drop-in for ``tf.summary.histogram`` (same tag, metadata, ``[k, 3]`` float64 tensor),
    but the buckets are those of the whole tensor: bit for bit
    ``histgpu.histogram(concatenation of all shards, buckets)``.

    Parameters
    ----------
    name : str
        Summary name (prefixed by the active name scopes).
    data : tf.Tensor, PerReplica, variable or array_like
        This replica's shard (replica context) or the per-replica shards (cross-replica
        context); see ``docs/distribute.md``.
    step : int or tf.Tensor, optional
        Defaults to ``tf.summary.experimental.get_step()``.
    buckets : int, optional
        Number of buckets (default 30; negative means 0).
    description : str, optional
        Markdown description shown in TensorBoard.
    nonfinite : {"omit", "raise"}
        As in :func:`histgpu.summary.histogram`, on the global counts (companion scalars
        ``<tag>/nonfinite/*`` when any). ``"raise"`` fails on every replica at once, after
        the collectives, so no replica is left waiting.

    Returns
    -------
    bool or tf.Tensor
        Whether a summary was written: False on workers other than the chief, on replicas
        other than replica 0, without a default writer, or when ``record_if`` is off.
    """
    mode = _options.nonfinite_mode(nonfinite)
    how, strategy, shards = _route(data, strategy)
    if how == "local":  # one value: no collective; written as tf.summary would
        if _skip_local_write(strategy):
            return tf.constant(False)
        return _summary.histogram(name, data, step=step, buckets=buckets, description=description, nonfinite=mode)
    k, k_static = _bucket_arg(buckets)
    with tf.summary.experimental.summary_scope(name, "histogram_summary", values=[data, buckets, step]) as (tag, _):
        fn = lambda x: _replica_table(x, k, k_static, mode)  # noqa: E731
        table, counts = _run_per_replica(strategy, fn, shards) if how == "shards" else fn(shards)
        if not _writes_summaries(strategy):  # in replica context TF also records on replica 0 only
            return tf.constant(False)
        return _write_v2(tag, table, counts, step, description)


def histogram_v1(
    name: str,
    data: Any,
    step: Any = None,
    *,
    nonfinite: str = "omit",
    strategy: Optional[tf.distribute.Strategy] = None,
) -> Any:
    """Write TensorFlow's v1 ``HistogramProto`` of the whole sharded tensor, once.

    Like :func:`histgpu.summary.histogram_v1`, for sharded ``data`` (see :func:`histogram`):
    ``bucket_limit``, ``bucket``, ``min``, ``max``, ``num`` and the exact ``sum`` /
    ``sum_squares`` equal :func:`histgpu.proto.histogram_proto` of the concatenation.
    One read of each shard, one SUM all-reduce of ``2R + 1,843`` int64.
    """
    mode = _options.nonfinite_mode(nonfinite)
    how, strategy, shards = _route(data, strategy)
    if how == "local":
        if _skip_local_write(strategy):
            return tf.constant(False)
        return _summary.histogram_v1(name, data, step=step, nonfinite=mode)
    with tf.summary.experimental.summary_scope(name, "histogram_summary", values=[data, step]) as (tag, _):
        fn = lambda x: _replica_v1(x, tag, mode)  # noqa: E731
        raw, _ = _run_per_replica(strategy, fn, shards) if how == "shards" else fn(shards)
        if not _writes_summaries(strategy):
            return tf.constant(False)
        return tf.summary.experimental.write_raw_pb(raw, step=step)
