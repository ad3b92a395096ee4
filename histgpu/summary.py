"""Drop-in ``tf.summary.histogram`` (and a v1 ``HistogramProto`` variant) computed by histgpu.

Swap one import line::

    import histgpu.summary as hsummary          # instead of tf.summary for histograms
    with writer.as_default():
        hsummary.histogram("layer1/weights", w, step=epoch)

:func:`histogram` writes, for finite data, the very event ``tf.summary.histogram`` writes
(same tag, plugin metadata, ``[k, 3]`` float64 tensor bytes and step), through the default
``tf.summary`` writer, honouring name scopes, ``tf.summary.experimental.set_step`` and
``tf.summary.record_if``. It works eagerly and inside ``tf.function``.

Non-finite values
-----------------
``tf.summary.histogram`` turns the whole histogram into NaN when one NaN is present.
histgpu leaves NaN/+-Inf out of the buckets (the buckets are those of the finite values)
and makes them visible in TensorBoard with three companion *scalar* summaries, written only
at steps where the data held any non-finite value::

    <tag>/nonfinite/nan      number of NaN values
    <tag>/nonfinite/posinf   number of +Inf values
    <tag>/nonfinite/neginf   number of -Inf values

They appear in the Scalars dashboard (and in the Time Series dashboard next to the
histogram). They are float32 scalars, as ``tf.summary.scalar`` writes (TensorBoard's data
server reads no other scalar dtype), so counts are exact up to 2**24. Because they are written only when something is wrong, a run with finite data
has exactly the events ``tf.summary.histogram`` would write. Pass ``nonfinite="raise"`` to
fail instead (like TensorFlow's v1 op does).
"""

from __future__ import annotations

import functools
import types
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union, cast

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata

import histgpu
from histgpu import _batch, _cuda_async, _input_device, _options
from histgpu import proto as _proto

__all__ = ["histogram", "histograms", "histogram_v1", "NONFINITE_SUFFIXES"]

NONFINITE_SUFFIXES: Tuple[str, str, str] = _proto.NONFINITE_SUFFIXES


# ----------------------------------------------------------------------------- input


@functools.lru_cache(maxsize=1)
def _cuda_usable() -> bool:
    try:
        return bool(histgpu.build_info()["cuda"].get("device_available"))
    except Exception:  # noqa: BLE001 - no CUDA engine at all
        return False


def _eager_input(data: Any) -> Any:
    """What histgpu should read for an eager call, converted the way TensorFlow would.

    Python numbers and lists go through ``tf.convert_to_tensor`` (so ``[0.1]`` is float32,
    exactly as ``tf.summary.histogram`` sees it); arrays and tensors are read in place. A GPU
    tensor is read on the GPU where histgpu has its CUDA engine, else copied to the host.
    """
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, (bool, int, float, list, tuple)):
        return tf.convert_to_tensor(data)
    if isinstance(data, tf.Variable) or hasattr(data, "__tf_tensor__"):
        # Variables (TF's and Keras') are read as the tensor they hold, on their device.
        data = tf.convert_to_tensor(data)
    if isinstance(data, tf.Tensor) and "GPU" in (data.device or "").upper() and not _cuda_usable():
        with tf.device("cpu:0"):
            return tf.identity(data)
    return data


def _checked_buckets(buckets: Any) -> Any:
    """``buckets`` after ``tf.summary.histogram``'s type rules, checked at the call.

    TensorFlow asserts an integer scalar: ``bool`` (Python, numpy or a ``tf.bool`` tensor),
    floats and strings raise ``TypeError``, a non-scalar tensor ``ValueError``. (TF checks
    only when it records; histgpu checks at every call, so a bad argument never waits for
    the first step that writes.) A 0-d integer numpy array is read as its integer.

    Returns
    -------
    None, int or tf.Tensor
    """
    if tf.is_tensor(buckets) or isinstance(buckets, tf.Variable):
        if not buckets.dtype.is_integer:  # tf.bool is not an integer dtype
            raise TypeError(f"buckets must be an integer or None, not a {buckets.dtype.name} tensor")
        if buckets.shape.rank not in (None, 0):
            raise ValueError(f"buckets must be a scalar, got a tensor of shape {buckets.shape}")
        return buckets
    if isinstance(buckets, np.ndarray) and buckets.ndim == 0 and buckets.dtype.kind in "iu":
        buckets = buckets.item()
    _options.bucket_count(buckets)  # TypeError for bool/float/str, ValueError above 2**24
    return buckets


def _bucket_count_eager(buckets: Any) -> int:
    if tf.is_tensor(buckets) or isinstance(buckets, tf.Variable):
        buckets = max(0, int(tf.convert_to_tensor(buckets).numpy()))
    return _options.bucket_count(buckets)


def _nonfinite_counts(h: Any) -> np.ndarray:
    return np.array([h.nan, h.posinf, h.neginf], dtype=np.int64)


# -------------------------------------------------------------- companion scalars


def _write_nonfinite(tag: str, counts: Any, step: Any) -> Any:
    """Write ``<tag>/nonfinite/{nan,posinf,neginf}`` float32 scalars to the default writer.

    float32 like ``tf.summary.scalar``: TensorBoard's data server reads no other scalar dtype.
    """
    results = []
    for i, suffix in enumerate(NONFINITE_SUFFIXES):
        results.append(
            tf.summary.write(
                tag=f"{tag}/{suffix}",
                tensor=tf.cast(counts[i], tf.float32),
                step=step,
                metadata=_proto.nonfinite_metadata(tag, suffix),
            )
        )
    return tf.reduce_all(tf.stack(results))


# ------------------------------------------------------------------------ v2 histogram


# do_not_convert: inside a tf.function, AutoGraph would otherwise rewrite these bodies
# (and the numpy callbacks in them); they are plain graph-building code.
@tf.autograph.experimental.do_not_convert
def histogram(
    name: str,
    data: Any,
    step: Any = None,
    buckets: Any = None,
    description: Optional[str] = None,
    *,
    nonfinite: str = "omit",
) -> Any:
    """Write a histogram summary, computed by histgpu; drop-in for ``tf.summary.histogram``.

    Parameters
    ----------
    name : str
        Summary name; the tag is this name prefixed by the active name scopes.
    data : array_like or tf.Tensor
        Values of any shape (tensors on any device, variables, numpy arrays, lists),
        castable to ``float64``.
    step : int or tf.Tensor, optional
        Step of this summary; defaults to ``tf.summary.experimental.get_step()``.
    buckets : int or integer scalar tf.Tensor, optional
        Number of buckets (default 30; negative means 0). ``bool``, floats and strings
        raise ``TypeError`` (as in TensorFlow), a non-scalar tensor ``ValueError``.
    description : str, optional
        Markdown description shown in TensorBoard.
    nonfinite : {"omit", "raise"}, optional
        ``"omit"`` (default): NaN/+-Inf are left out of the buckets, counted, reported with a
        :class:`histgpu.NonFiniteWarning`, and written as companion scalars
        ``<tag>/nonfinite/{nan,posinf,neginf}`` (see the module docstring). ``"raise"``:
        non-finite data is an error (``ValueError`` eagerly, ``InvalidArgumentError`` in a
        ``tf.function``), and nothing is written.

    Returns
    -------
    bool or tf.Tensor
        True on success, False if no default summary writer exists (a bool tensor, as
        ``tf.summary.histogram`` returns).

    Raises
    ------
    TypeError
        If ``buckets`` is not an integer (``bool`` included), checked at every call.
    ValueError
        If a default writer exists and records, but no step was given and none is set;
        or if ``buckets`` is above 2**24 or a non-scalar tensor.

    Notes
    -----
    Nothing is computed unless a default writer exists and ``tf.summary.record_if`` is true.
    In a ``tf.function`` the histogram is computed by a ``tf.numpy_function`` (so it cannot
    be used under ``jit_compile=True``/XLA); eagerly, histgpu reads the tensor in place. For
    a GPU tensor the call then waits for the O(k) result (never for a copy of the tensor);
    :class:`histgpu.writer.SummaryWriter` logs GPU tensors without waiting at all.
    """
    buckets = _checked_buckets(buckets)
    summary_metadata = histogram_metadata.create_summary_metadata(display_name=None, description=description)
    with tf.summary.experimental.summary_scope(name, "histogram_summary", values=[data, buckets, step]) as (tag, _):

        def bucket_tensor() -> tf.Tensor:
            # Called by tf.summary.write only when it actually records: no work otherwise.
            if tf.executing_eagerly():
                h = histgpu.compute(_eager_input(data), _bucket_count_eager(buckets), nonfinite=nonfinite)
                counts = _nonfinite_counts(h)
                if counts.any():
                    _write_nonfinite(tag, counts, step)
                return tf.constant(h.to_tensor(), dtype=tf.float64)
            return _graph_buckets(tag, data, buckets, step, nonfinite)

        return tf.summary.write(tag=tag, tensor=bucket_tensor, step=step, metadata=summary_metadata)


def _graph_buckets(tag: str, data: Any, buckets: Any, step: Any, nonfinite: str) -> tf.Tensor:
    """Graph-mode body of :func:`histogram`: histgpu through a ``tf.numpy_function``."""
    x = tf.convert_to_tensor(data)
    if tf.is_tensor(buckets):
        k = buckets
    else:  # a Python count is checked now, like the eager path does
        k = tf.constant(_options.bucket_count(buckets))

    def run(values: np.ndarray, k_value: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        h = histgpu.compute(values, max(0, int(k_value)), nonfinite=nonfinite)
        return h.to_tensor().astype(np.float64, copy=False), _nonfinite_counts(h)

    table, counts = tf.numpy_function(run, [x, tf.cast(k, tf.int64)], [tf.float64, tf.int64], stateful=True)
    if not tf.is_tensor(buckets):
        kk = _options.bucket_count(buckets)
        table.set_shape([kk, 3])
    else:
        table.set_shape([None, 3])
    counts.set_shape([3])
    wrote = tf.cond(
        tf.reduce_any(counts > 0),
        lambda: _write_nonfinite(tag, counts, step),
        lambda: tf.constant(False),
    )
    with tf.control_dependencies([wrote]):  # the companion write must run
        return tf.identity(table)


# ------------------------------------------------------------------------ v1 histogram


@tf.autograph.experimental.do_not_convert
def histogram_v1(name: str, data: Any, step: Any = None, *, nonfinite: str = "omit") -> Any:
    """Write TensorFlow's v1 ``HistogramProto`` (``tf.compat.v1.summary.histogram``'s format).

    The proto is :func:`histgpu.proto.histogram_proto`; it is written with
    ``tf.summary.experimental.write_raw_pb`` to the default ``tf.summary`` writer. Tags,
    steps, ``record_if`` and the return value behave as in :func:`histogram`; the
    non-finite companion scalars are written in the same event.

    Parameters
    ----------
    name : str
        Summary name, prefixed by the active name scopes.
    data : array_like or tf.Tensor
        Values of any shape, castable to ``float64``.
    step : int or tf.Tensor, optional
        Step; defaults to ``tf.summary.experimental.get_step()``.
    nonfinite : {"omit", "raise"}, optional
        As in :func:`histogram`.

    Returns
    -------
    tf.Tensor
        Scalar bool: True if written, False if no default writer exists or not recording.
    """
    with tf.summary.experimental.summary_scope(name, "histogram_summary", values=[data, step]) as (tag, _):

        def serialized_eager() -> bytes:
            return _v1_summary(tag, histgpu.compute_v1(_eager_input(data), nonfinite=nonfinite)).SerializeToString()

        def record() -> Any:
            if tf.executing_eagerly():
                raw = tf.constant(serialized_eager())
            else:
                x = tf.convert_to_tensor(data)

                def run(values: np.ndarray) -> bytes:
                    return _v1_summary(tag, histgpu.compute_v1(values, nonfinite=nonfinite)).SerializeToString()

                raw = tf.numpy_function(run, [x], tf.string, stateful=True)
                raw.set_shape([])
            return tf.summary.experimental.write_raw_pb(raw, step=step)

        # Mirror tf.summary.write: decide on recording first, compute only if recording.
        return tf.cond(tf.summary.should_record_summaries(), record, lambda: tf.constant(False))


def _v1_summary(tag: str, h: Any) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, histo=_proto.v1_to_proto(h))
    _proto.add_nonfinite_values(summary, tag, h.nan, h.posinf, h.neginf)
    return summary


# ------------------------------------------------------------------ many histograms at once


@tf.autograph.experimental.do_not_convert
def histograms(
    data: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]],
    step: Any = None,
    buckets: Any = None,
    description: Optional[str] = None,
    *,
    nonfinite: str = "omit",
) -> Any:
    """Write the histograms of many tensors at once: the batch form of :func:`histogram`.

    ``histograms({"a": x, "b": y}, step)`` writes exactly the events that ``histogram("a", x,
    step)`` and then ``histogram("b", y, step)`` write (one event per histogram, same tags,
    metadata, tensor bytes and step; the non-finite companions before the histogram they belong
    to), but all of them through one ``tf.summary.experimental.write_raw_pb`` call into the
    default writer's own event file. The tensors are read in place (variables in one
    TensorFlow op) and counted over every core; nothing is computed unless the writer records.

    Parameters
    ----------
    data : mapping or iterable of (str, array_like)
        Summary names and their values, e.g. ``{v.path: v for v in model.weights}``. Each name
        is prefixed by the active name scopes, as in :func:`histogram`.
    step, buckets, description, nonfinite
        As in :func:`histogram`, shared by all histograms.

    Returns
    -------
    bool or tf.Tensor
        True on success, False if no default summary writer exists or it does not record (a
        bool tensor, as :func:`histogram` returns).

    Raises
    ------
    TypeError
        A name is not a string, ``data`` holds no pairs, ``buckets`` is not an integer.
    ValueError
        A default writer exists but no step was given and none is set; ``nonfinite="raise"``
        met NaN or an infinity (``InvalidArgumentError`` inside a ``tf.function``); nothing is
        written then.
    """
    buckets = _checked_buckets(buckets)
    _options.nonfinite_mode(nonfinite)
    names, values = _named_values(data)
    scope = tf.get_current_name_scope()  # what summary_scope prefixes a name with
    tags = [f"{scope}/{name}" if scope else name for name in names]
    if tf.executing_eagerly():
        return _histograms_eager(tags, values, step, buckets, description, nonfinite)
    return _histograms_graph(tags, values, step, buckets, description, nonfinite)


def _named_values(data: Any) -> Tuple[List[str], List[Any]]:
    items = data.items() if isinstance(data, Mapping) else data
    names: List[str] = []
    values: List[Any] = []
    try:
        for item in items:
            name, value = item
            if not isinstance(name, str):
                raise TypeError(f"histograms() takes str names, not {type(name).__name__} {name!r}")
            names.append(name or "histogram_summary")  # as summary_scope names an empty name
            values.append(value)
    except (TypeError, ValueError) as e:
        if isinstance(e, TypeError) and str(e).startswith("histograms()"):
            raise
        raise TypeError(
            f"histograms() takes a mapping or an iterable of (name, data) pairs, not {type(data).__name__}"
        ) from None
    return names, values


def _histograms_eager(tags: List[str], values: List[Any], step: Any, buckets: Any, description: Optional[str],
                      nonfinite: str) -> Any:
    if not bool(tf.summary.should_record_summaries()) or (step is None and tf.summary.experimental.get_step() is None):
        # No writer, not recording, or no step: TensorFlow's own answer (False, or its
        # ValueError), from a write of no summary at all.
        return tf.summary.experimental.write_raw_pb(tf.constant([], tf.string), step=step)
    k = _bucket_count_eager(buckets)
    with _batch.phase("input"):
        inputs = _eager_inputs(values)
    results = _results_many(inputs, k)
    _batch.apply_policy(nonfinite, results, stacklevel=4)  # the caller of histograms() (autograph wraps it)
    with _batch.phase("proto"):
        strings = _summary_strings(tags, results, description)
    with _batch.phase("TensorFlow writer"):
        return tf.summary.experimental.write_raw_pb(tf.constant(b"".join(strings), tf.string), step=step)


def _histograms_graph(tags: List[str], values: List[Any], step: Any, buckets: Any, description: Optional[str],
                      nonfinite: str) -> Any:
    xs = [tf.convert_to_tensor(v) for v in values]
    k = buckets if tf.is_tensor(buckets) else tf.constant(_options.bucket_count(buckets))

    def run(k_value: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
        results = _results_many(list(arrays), max(0, int(k_value)))
        _batch.apply_policy(nonfinite, results, stacklevel=3)
        return np.array(b"".join(_summary_strings(tags, results, description)), dtype=object)

    def record() -> Any:
        raw = tf.numpy_function(run, [tf.cast(k, tf.int64)] + xs, tf.string, stateful=True)
        raw.set_shape([])
        return tf.summary.experimental.write_raw_pb(raw, step=step)

    return tf.cond(tf.summary.should_record_summaries(), record, lambda: tf.constant(False))


def _tf_variable(value: Any) -> Any:
    """The ``tf.Variable`` `value` is or holds (a Keras variable's), else None."""
    if isinstance(value, tf.Variable):
        return value
    if hasattr(value, "__tf_tensor__"):
        inner = getattr(value, "value", None)  # Keras: the tf.Variable (a cast tensor under autocast)
        if isinstance(inner, tf.Variable):
            return inner
    return None


def _eager_inputs(values: Sequence[Any]) -> List[Any]:
    """:func:`_eager_input` of every value; variables are read in one op per device, as tensors
    that share the variables' buffers (no copy)."""
    out = list(values)
    by_device: dict = {}
    for i, v in enumerate(values):
        var = _tf_variable(v)
        if var is None:
            out[i] = _eager_input(v)
        else:
            by_device.setdefault(var.device, []).append((i, var))
    for device, items in by_device.items():
        with tf.device(device):
            read = tf.raw_ops.IdentityN(input=[var for _, var in items])
        on_gpu = "GPU" in device.upper()
        for (i, _), t in zip(items, read):
            out[i] = _eager_input(t) if on_gpu else t
    return out


def _results_many(inputs: List[Any], k: int) -> List[Any]:
    """Raw v2 results of every input (host data over every core, GPU data on its GPU), no
    non-finite policy applied."""
    device = [i for i, x in enumerate(inputs) if not _host_eager(x) and _input_device.is_device_array(x)]
    if not device:
        with _batch.phase("input"):
            views = _batch.host_views(inputs)
        return _batch.v2_results(views, k)
    out: List[Any] = [None] * len(inputs)
    host = [i for i in range(len(inputs)) if i not in set(device)]
    groups: dict = {}
    for i in device:
        groups.setdefault(_device_key(inputs[i]), []).append(i)
    pendings = [(idx, _cuda_async.enqueue_histograms([inputs[i] for i in idx], k)) for idx in groups.values()]
    if host:
        with _batch.phase("input"):
            views = _batch.host_views([inputs[i] for i in host])
        out_host = _batch.v2_results(views, k)
        for i, r in zip(host, out_host):
            out[i] = r
    for idx, pending in pendings:
        for i, h in zip(idx, cast(List[histgpu.Histogram], pending.result())):
            out[i] = types.SimpleNamespace(k=h.buckets, edges=h.edges, counts=h.counts, stats=h)
    return out


def _host_eager(value: Any) -> bool:
    """An eager tensor in host memory or a numpy array: no need to ask whether it is on a GPU."""
    if type(value) is np.ndarray:
        return True
    return isinstance(value, tf.Tensor) and hasattr(value, "_numpy") and "GPU" not in value.device.upper()


def _device_key(value: Any) -> Any:
    device = getattr(value, "device", None)
    return device if isinstance(device, str) else id(type(value))


def _summary_strings(tags: List[str], results: List[Any], description: Optional[str]) -> List[bytes]:
    """Serialized ``Summary`` protos, in the order the per-tensor calls write their events."""
    metadata = _proto.histogram_metadata_bytes(description)
    k = int(results[0].k) if results else 0
    blob = _proto.v2_tables(results)
    assert blob is not None  # one bucket count for all
    framed = _proto.framed_v2_values([t.encode("utf-8") for t in tags], k, blob, metadata)
    out: List[bytes] = []
    for tag, r, value in zip(tags, results, framed):
        s = r.stats
        if s.nan or s.posinf or s.neginf:
            out.extend(_proto.nonfinite_summaries(tag, s.nan, s.posinf, s.neginf))
        out.append(value)  # a Summary of one value is its framed value
    return out
