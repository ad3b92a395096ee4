"""A PyTorch-style ``SummaryWriter`` for histograms that needs no TensorFlow.

``add_histogram(tag, values, step, bins=..., max_bins=...)`` writes what
``torch.utils.tensorboard.SummaryWriter.add_histogram`` writes (a v1 ``HistogramProto`` of
``numpy.histogram``'s bins, counted by histgpu's engines: :mod:`histgpu._torch_layout`);
``layout="v2"`` writes TensorBoard's v2 ``[k, 3]`` bucket tensor instead, and v2 histograms of
GPU tensors are logged without waiting for the GPU. The event file and the background queue
are in :mod:`histgpu._event_file`. Manual (asynchronous logging, errors, full disks, process
exit): ``docs/writer.md``.
"""

from __future__ import annotations

import numbers
import operator
import os
import socket
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, Union, cast

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

import histgpu
from histgpu import _batch, _cpu, _cuda_async, _engine, _input_device, _options
from histgpu import _torch_layout as _tl
from histgpu import proto as _proto
from histgpu._event_file import EventFile, EventJob, EventQueue, finalize_queue

__all__ = ["SummaryWriter"]

# ------------------------------------------------------------------------------ helpers

Bins = Union[str, int, Sequence[float], np.ndarray]
_Value = Tuple[summary_pb2.Summary.Value, Tuple[int, int, int]]

#: ``layout=`` values: PyTorch's ``HistogramProto`` (the default), TensorBoard's v2 ``[k, 3]`` tensor.
LAYOUTS = ("torch", "v2")


@dataclass(frozen=True)
class _Spec:
    """A checked (bins, max_bins, layout): `k` for v2, `bins`/`max_bins` for PyTorch's proto."""

    layout: str
    k: int = 0
    bins: Optional[_tl.TorchBins] = None
    max_bins: Optional[int] = None

    @property
    def v2(self) -> bool:
        return self.layout == "v2"


def _histogram_spec(bins: Any, max_bins: Any, layout: Any) -> _Spec:
    """Checks the histogram options of an ``add_*`` call before anything is computed."""
    if layout == "v2":
        if max_bins is not None:
            raise ValueError("max_bins applies to layout='torch' only (a v2 histogram has exactly bins=k buckets)")
        if isinstance(bins, str):
            if bins != "tensorflow":
                raise ValueError(
                    f"layout='v2' takes bins=<int>, the bucket count (the default 'tensorflow' stands for "
                    f"TensorBoard's 30), not {bins!r}"
                )
            return _Spec("v2", k=_options.DEFAULT_BUCKETS)
        if isinstance(bins, bool):
            raise TypeError("bins must be an int with layout='v2', not a bool")
        return _Spec("v2", k=_options.bucket_count(bins))
    if layout != "torch":
        raise ValueError(f"layout must be one of {LAYOUTS}, not {layout!r}")
    return _Spec("torch", bins=_tl.parse_bins(bins), max_bins=_tl.check_max_bins(max_bins))


def _host_value(tag: str, values: Any, spec: _Spec, description: Optional[str], nonfinite: str) -> _Value:
    """Summary value of `values`, computed now (host data, or PyTorch's proto of any data)."""
    if not spec.v2:
        assert spec.bins is not None
        proto, bad = _tl.local_proto(values, spec.bins, spec.max_bins, nonfinite)
        value = summary_pb2.Summary.Value(tag=tag, histo=proto)
        if description:
            value.metadata.CopyFrom(summary_pb2.SummaryMetadata(summary_description=description))
        return value, bad
    h = histgpu.compute(values, spec.k, nonfinite=nonfinite)
    return _proto.histogram_v2_value(tag, h.to_tensor(), description), (h.nan, h.posinf, h.neginf)


def _gpu_value(tag: str, h: histgpu.Histogram, description: Optional[str], mode: str) -> _Value:
    """Summary value of a histogram that arrived from the GPU (run by the background thread)."""
    # compute() applies the policy as results arrive; for enqueued results it is applied here.
    _options.apply_nonfinite_policy(mode, h.nan, h.posinf, h.neginf)
    return _proto.histogram_v2_value(tag, h.to_tensor(), description), (h.nan, h.posinf, h.neginf)


def _summary(values: Iterable[Tuple[str, _Value]]) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    for tag, (value, bad) in values:
        summary.value.append(value)
        _proto.add_nonfinite_values(summary, tag, *bad)
    return summary


def _framed(tag: str, value: _Value) -> bytes:
    """A summary value and its non-finite companions, as the bytes they take in a ``Summary``."""
    return _summary([(tag, value)]).SerializeToString()


def _companions(tag: str, stats: Any) -> bytes:
    """The ``<tag>/nonfinite/*`` scalars of a histogram whose data held NaN or infinities."""
    if not (stats.nan or stats.posinf or stats.neginf):
        return b""
    summary = summary_pb2.Summary()
    _proto.add_nonfinite_values(summary, tag, stats.nan, stats.posinf, stats.neginf)
    return summary.SerializeToString()


def _host_entries(tags: List[str], values: List[Any], spec: _Spec, mode: str) -> List[bytes]:
    """The framed summary values (:func:`_framed`) of many host tensors, counted over every core.

    Byte for byte what :meth:`SummaryWriter.add_histogram` writes for each (tests/tensorboard/
    test_batched.py): TensorBoard's v2 tensors and PyTorch's protos with ``bins="tensorflow"``
    are built straight from the engines' results (histgpu.proto's byte builders); other bins
    take two reads of the data and go through :func:`_host_value`.
    """
    if not spec.v2 and spec.bins is not None and spec.bins.kind != "tensorflow":
        return [_framed(tag, _host_value(tag, v, spec, None, mode)) for tag, v in zip(tags, values)]
    with _batch.phase("input"):
        views = _batch.host_views(values)
    if not spec.v2 and any(v.size == 0 for v in views):
        raise ValueError("the input has no element: an empty tensor has no histogram (PyTorch raises ValueError too)")
    if spec.v2:
        results = _batch.v2_results(views, spec.k)
        _batch.apply_policy(mode, results, stacklevel=3)
        with _batch.phase("proto"):
            return _v2_entries(tags, results, None)
    results = _batch.v1_results(views)
    _batch.apply_policy(mode, results, stacklevel=3)
    with _batch.phase("proto"):
        return _torch_entries(tags, views, results, spec)


def _v2_entries(tags: List[str], results: List[Any], description: Optional[str]) -> List[bytes]:
    """Framed v2 summary values (``histogram_v2_value`` and companions) of raw engine results."""
    metadata = _proto.histogram_metadata_bytes(description)
    blob = _proto.v2_tables(results)
    if blob is None:  # bucket counts differ: one table at a time
        out = [_proto.framed_v2_values([tag.encode("utf-8")], int(r.k), _proto.v2_tables([r]) or b"", metadata)[0]
               for tag, r in zip(tags, results)]
    else:
        out = _proto.framed_v2_values([tag.encode("utf-8") for tag in tags], int(results[0].k) if results else 0,
                                      blob, metadata)
    for j, r in enumerate(results):
        s = r.stats
        if s.nan or s.posinf or s.neginf:
            out[j] += _companions(tags[j], s)
    return out


def _torch_entries(tags: List[str], views: List[Any], results: List[Any], spec: _Spec) -> List[bytes]:
    """Framed PyTorch-layout values (``bins="tensorflow"``) of raw v1 results, following
    :func:`histgpu._torch_layout.torch_proto`'s rules: numpy's bins over PyTorch's default
    edges are v1 buckets 2 .. len - 2, and the proto holds the support of the counts, which
    runs from the bucket of the minimum to the bucket of the maximum (docs/semantics.md §1.3.2:
    a value's bucket is the first limit above it). The common case is built in C++
    (core/summary_bytes.cpp); a support reaching the outermost limits, no finite value or
    ``max_bins`` take the general path."""
    if spec.max_bins is not None:
        built: List[Optional[bytes]] = [None] * len(results)
    else:
        built = _cpu.torch_layout_values(tags, results)
    out: List[bytes] = [b""] * len(results)
    slow: List[int] = []
    any_bad = not isinstance(results, _batch.Results) or any(results.nonfinite)
    for j, value in enumerate(built):
        if value is None:
            slow.append(j)
        elif any_bad and (s := results[j].stats).nan + s.posinf + s.neginf:
            out[j] = value + _companions(tags[j], s)
        else:
            out[j] = value
    if slow:
        engine = _engine.engine_for("cpu", None, _options.num_threads(None))  # type: ignore[arg-type]
        for j in sorted(slow):
            r, view = results[j], views[j]
            s = r.stats
            totals = _tl.Totals(float(s.min), float(s.max), int(s.num), float(r.sum), float(r.sum_squares))
            ev = view.engine_view()

            def count(rule: Any, ev: Any = ev, s: Any = s) -> np.ndarray:
                return engine.numpy_counts(ev, rule, _tl.counting_stats(s))

            assert spec.bins is not None
            proto = _tl.torch_proto(spec.bins, spec.max_bins, totals, r.counts, count)
            value = summary_pb2.Summary.Value(tag=tags[j], histo=proto)
            out[j] = _framed(tags[j], (value, (int(s.nan), int(s.posinf), int(s.neginf))))
    return out


def _check_tag(tag: Any) -> str:
    """`tag`, checked now rather than when the event is written (maybe in the background)."""
    if not isinstance(tag, str):
        raise TypeError(f"a tag must be a str, not {type(tag).__name__} {tag!r}")
    if not tag:
        raise ValueError("a tag must be a non-empty string")
    try:
        tag.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"tag {tag!r} is not valid Unicode text ({e.reason})") from None
    return tag


def _check_step(global_step: Any) -> Optional[int]:
    """None, or the step as an int; refuses what int() would silently truncate (1.5) or misread."""
    if global_step is None:
        return None
    if isinstance(global_step, bool):
        raise TypeError(f"global_step must be an integer or None, not a bool ({global_step!r})")
    try:
        step = operator.index(global_step)
    except TypeError:
        raise TypeError(
            f"global_step must be an integer or None, not {type(global_step).__name__} {global_step!r}"
        ) from None
    if not -(2**63) <= step < 2**63:
        raise ValueError(f"global_step={step} does not fit the event's int64 step")
    return step


def _raw_sequence(values: Any, what: str) -> List[float]:
    """A 1-D sequence of numbers (list, numpy array, tensor) as floats, as the proto stores them."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a 1-D sequence of numbers, not {type(values).__name__}") from None
    if arr.ndim != 1:
        raise TypeError(f"{what} must be a 1-D sequence of numbers, got shape {arr.shape}")
    return arr.tolist()


def _raw_number(value: Any, what: str) -> float:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{what} must be a number, not {type(value).__name__} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, not {type(value).__name__} {value!r}") from None


def _event(summary: summary_pb2.Summary, global_step: Optional[int], wall_time: float) -> event_pb2.Event:
    event = event_pb2.Event(wall_time=wall_time, summary=summary)
    if global_step is not None:
        event.step = global_step
    return event


def _pairs(tensors: Any) -> List[Tuple[str, Any]]:
    """``(tag, values)`` pairs of a mapping or an iterable of pairs, tags checked."""
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    try:
        pairs = [tuple(item) for item in items]
    except TypeError:
        raise TypeError(
            f"tensors must be a mapping or an iterable of (tag, values) pairs, not {type(tensors).__name__}"
        ) from None
    for pair in pairs:
        if len(pair) != 2:
            raise TypeError(f"tensors must hold (tag, values) pairs, got an item of length {len(pair)}")
        _check_tag(pair[0])
    return pairs  # type: ignore[return-value]


def _device_key(values: Any) -> Any:
    """Which GPU holds `values`, where it says so cheaply (a batch must live on one GPU)."""
    dlpack_device = getattr(values, "__dlpack_device__", None)
    if dlpack_device is not None:
        try:
            return tuple(int(x) for x in dlpack_device())
        except Exception:  # noqa: BLE001 - not a usable DLPack producer; let the engine say so
            pass
    device = getattr(values, "device", None)
    return device if isinstance(device, str) else None  # TensorFlow: "/job:.../device:GPU:0"


def _failing_in(what: str, job: EventJob) -> EventJob:
    """`job`, with a note on which event failed added to its exception (Python >= 3.11)."""

    def run() -> event_pb2.Event:
        try:
            return job()
        except BaseException as e:
            if hasattr(e, "add_note"):
                e.add_note(f"histgpu.writer: raised in the background while building the event of {what}")
            raise

    return run


class SummaryWriter:
    """Write histogram summaries to TensorBoard event files without TensorFlow.

    The constructor and :meth:`add_histogram` take the parameters of PyTorch's
    ``torch.utils.tensorboard.SummaryWriter``, so swapping the import is enough for
    histogram logging. v2 histograms of GPU tensors are written asynchronously (see
    ``docs/writer.md``): the caller waits for the enqueue only.

    Parameters
    ----------
    log_dir : str or os.PathLike, optional
        Run directory. Default: ``runs/<date>_<time>_<hostname><comment>`` like PyTorch.
    comment : str, optional
        Suffix of the default ``log_dir``; ignored when ``log_dir`` is given.
    purge_step : int, optional
        Like PyTorch: write a ``SessionLog.START`` at this step, so TensorBoard drops
        events with a step >= ``purge_step`` written by an earlier, crashed run.
    max_queue : int, optional
        Most events (one per ``add_*`` call) queued at once, default 64: events waiting for
        their GPU results, and host events queued behind them. When the queue is full, the
        next ``add_*`` call blocks until the oldest queued event is written. The pinned host
        memory held meanwhile is O(buckets) per histogram, never the tensors' size; the
        tensors themselves are kept alive until their histograms are computed.
    flush_secs : int, optional
        Accepted for compatibility. Nothing waits for a timer: every event is handed to the
        operating system as soon as it is written (by the call itself, or for queued events
        by the background thread).
    filename_suffix : str, optional
        Suffix of the event file name.

    Notes
    -----
    Non-finite values (NaN, +-Inf) are left out of the histogram and made visible as
    companion scalars ``<tag>/nonfinite/{nan,posinf,neginf}`` in the same event, written
    only when any is present (see :mod:`histgpu.summary`).
    """

    def __init__(
        self,
        log_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        comment: str = "",
        purge_step: Optional[int] = None,
        max_queue: int = 64,
        flush_secs: int = 120,
        filename_suffix: str = "",
    ):
        if isinstance(max_queue, bool) or not isinstance(max_queue, numbers.Integral) or max_queue < 1:
            raise ValueError(f"max_queue must be a positive integer, got {max_queue!r}")
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir: str = os.fspath(log_dir)
        purge_step = _check_step(purge_step)
        self.max_queue = int(max_queue)
        self.flush_secs = flush_secs
        # Raises OSError naming log_dir when it cannot be written (read-only, full, a file).
        events = EventQueue(EventFile(self.log_dir, filename_suffix), self.max_queue)
        if purge_step is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            try:
                events.put_ready(event_pb2.Event(step=purge_step, session_log=start))
            except BaseException:
                events.close()
                raise
        self._events: Optional[EventQueue] = events
        # Drains the queue when the writer is garbage collected or at interpreter exit
        # (weakref.finalize runs the finalisers of live objects from an atexit hook).
        self._finalizer: weakref.finalize = weakref.finalize(self, finalize_queue, events)

    # ---------------------------------------------------------------- plumbing

    def get_logdir(self) -> str:
        """The run directory events are written to."""
        return self.log_dir

    @property
    def file_path(self) -> str:
        """Path of the event file this writer appends to."""
        if self._events is None:
            raise RuntimeError("SummaryWriter is closed")
        return self._events.file.path

    def _queue(self) -> EventQueue:
        """The open queue; first raises what the background thread failed with, if anything."""
        events = self._events
        if events is None:
            raise RuntimeError("SummaryWriter is closed")
        err = events.take_error()
        if err is not None:
            raise err
        return events

    def flush(self) -> None:
        """Wait until every queued event is written (or has failed).

        Raises
        ------
        Exception
            The first error the background thread met since the last ``add_*``/``flush``
            call (that event was not written), e.g. ``OSError`` on a full disk; also when the
            thread died, which ends the wait instead of hanging it.
        """
        events = self._events
        if events is None:
            return
        events.wait()
        err = events.take_error()
        if err is not None:
            raise err

    def close(self) -> None:
        """Write every queued event, then close the file; later ``add_*`` calls raise ``RuntimeError``.

        Raises
        ------
        Exception
            As :meth:`flush`, or ``OSError`` from closing the file; the file is closed (its
            descriptor released) all the same.
        """
        events, self._events = self._events, None
        if events is None:
            return
        self._finalizer.detach()
        try:
            events.close()
        finally:
            err = events.take_error()
            if err is not None:
                raise err

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -------------------------------------------------------------- histograms

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: Optional[int] = None,
        bins: Bins = "tensorflow",
        walltime: Optional[float] = None,
        max_bins: Optional[int] = None,
        *,
        description: Optional[str] = None,
        nonfinite: str = "omit",
        layout: str = "torch",
    ) -> None:
        """Add a histogram of ``values``: what PyTorch's ``add_histogram`` writes, same signature.

        With the default ``layout="torch"`` the event holds the ``HistogramProto`` of
        ``torch.utils.tensorboard.SummaryWriter.add_histogram`` for the same arguments: the
        bins of ``numpy.histogram(values, bins)`` (counted by histgpu's engines, where the
        values live), ``max_bins`` down-sampling, every bin from just before the first
        non-empty one to the last non-empty one. For finite values ``bucket_limit``,
        ``bucket``, ``min``, ``max`` and ``num`` are PyTorch's exactly; ``sum`` and
        ``sum_squares`` are the exact sums rounded once (PyTorch's are float64 numpy sums,
        which may differ in the last bits). This is computed before the call returns.

        With ``layout="v2"`` the event holds TensorBoard's v2 ``[k, 3]`` bucket tensor,
        equal to ``tf.summary.histogram(..., buckets=k)``'s; for ``values`` on a GPU the call
        returns once the work is enqueued on the producer's stream and the event is written
        in the background (see ``docs/writer.md``). It may block when ``max_queue`` events are
        waiting already.

        Parameters
        ----------
        tag : str
            Data identifier.
        values : array_like
            numpy array, PyTorch/TensorFlow/JAX tensor (on any device histgpu can read),
            list or scalar; any shape, castable to ``float64``.
        global_step : int, optional
            Step to record.
        bins : str, int or sequence of float, optional
            ``layout="torch"``: as in PyTorch. ``"tensorflow"`` (default): PyTorch's 1,549
            default edges (TensorFlow's v1 limits without ``±DBL_MAX``); one of numpy's
            estimators ``"auto"``, ``"fd"``, ``"doane"``, ``"scott"``, ``"stone"``,
            ``"rice"``, ``"sturges"``, ``"sqrt"`` (the width is numpy's, the counting
            histgpu's); an int, the number of equal-width bins over the values' range;
            or monotonic bin edges. ``layout="v2"``: the bucket count ``k`` (an int;
            the default ``"tensorflow"`` stands for TensorBoard's 30).
        walltime : float, optional
            Event time in seconds since the epoch; default ``time.time()`` at this call.
        max_bins : int, optional
            ``layout="torch"``: PyTorch's down-sampling: when there are more bins, each
            ``len(bins) // max_bins`` neighbours are summed into one.
        description : str, optional
            Markdown description shown in TensorBoard.
        nonfinite : {"omit", "raise"}, optional
            NaN and ±Inf are left out of the histogram (``min``, ``max``, ``num`` and the sums
            included), counted, warned about and logged as ``<tag>/nonfinite/*`` scalars
            (see :mod:`histgpu.summary`); ``"raise"`` raises ``ValueError`` instead. For
            asynchronous histograms that ``ValueError`` comes from the next
            ``add_*``/``flush``/``close`` call.
        layout : {"torch", "v2"}, optional
            ``"torch"`` (default): PyTorch's ``HistogramProto``. ``"v2"``: TensorBoard's v2
            bucket tensor (what ``bins=<int>`` wrote before histgpu followed PyTorch there).

        Raises
        ------
        TypeError
            ``tag`` is not a ``str`` (e.g. None), ``global_step`` is not an integer, ``bins``
            is a float or a bool, ``max_bins`` is not an integer.
        ValueError
            ``tag`` is empty; ``values`` holds no element (as in PyTorch); ``bins`` is an
            unknown string, a count below 1, edges that decrease or hold NaN; ``max_bins``
            is below 1; no value lies inside explicit bins; an option is out of range.
        OSError
            The event could not be written (e.g. a full disk); nothing of it is in the file.
        Exception
            Also what the background thread met since the previous call (see :meth:`flush`).
        """
        events = self._queue()
        _check_tag(tag)
        global_step = _check_step(global_step)
        spec = _histogram_spec(bins, max_bins, layout)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        if spec.v2 and _input_device.is_device_array(values):
            pending = _cuda_async.enqueue_histogram(values, spec.k)

            def job() -> event_pb2.Event:
                value = _gpu_value(tag, cast(histgpu.Histogram, pending.result()), description, mode)
                return _event(_summary([(tag, value)]), global_step, wall)

            events.put(_failing_in(f"{tag!r} at step {global_step}", job))
            return
        value = _host_value(tag, values, spec, description, mode)
        events.put_ready(_event(_summary([(tag, value)]), global_step, wall))

    def add_histogram_raw(
        self,
        tag: str,
        min: float,  # noqa: A002 - PyTorch's names
        max: float,  # noqa: A002
        num: int,
        sum: float,  # noqa: A002
        sum_squares: float,
        bucket_limits: Any,
        bucket_counts: Any,
        global_step: Optional[int] = None,
        walltime: Optional[float] = None,
    ) -> None:
        """Add a histogram given by its proto fields; PyTorch's ``add_histogram_raw``.

        Writes ``HistogramProto(min, max, num, sum, sum_squares, bucket_limit, bucket)`` as
        PyTorch does. ``bucket_limits`` are the right edges of the buckets (a list, numpy array
        or tensor), ``bucket_counts`` their counts, of the same length.

        Raises
        ------
        ValueError
            ``bucket_limits`` and ``bucket_counts`` differ in length (PyTorch's check).
        TypeError
            A field is not a number, or the buckets are not 1-D sequences of numbers.
        """
        events = self._queue()
        _check_tag(tag)
        global_step = _check_step(global_step)
        limits, counts = _raw_sequence(bucket_limits, "bucket_limits"), _raw_sequence(bucket_counts, "bucket_counts")
        if len(limits) != len(counts):
            raise ValueError(
                f"len(bucket_limits) != len(bucket_counts) ({len(limits)} != {len(counts)}): one count per bucket limit"
            )
        fields = {name: _raw_number(v, name) for name, v in
                  (("min", min), ("max", max), ("num", num), ("sum", sum), ("sum_squares", sum_squares))}
        proto = summary_pb2.HistogramProto(bucket_limit=limits, bucket=counts, **fields)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=proto)])
        wall = time.time() if walltime is None else float(walltime)
        events.put_ready(_event(summary, global_step, wall))

    def add_histograms(
        self,
        tensors: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]],
        global_step: Optional[int] = None,
        bins: Bins = "tensorflow",
        walltime: Optional[float] = None,
        max_bins: Optional[int] = None,
        *,
        nonfinite: str = "omit",
        layout: str = "torch",
    ) -> None:
        """Add one histogram per ``(tag, values)`` pair, all in a single event.

        Each histogram is the one :meth:`add_histogram` writes with the same options. With
        ``layout="v2"``, the GPU tensors among them are enqueued in one batch per GPU (a
        fixed number of kernel launches, whatever their number) and the event is written in
        the background; everything else is computed before the call returns. Like
        :meth:`add_histogram`, it may block while ``max_queue`` events are queued, and raises
        what the background thread met since the previous call.

        Parameters
        ----------
        tensors : mapping or iterable of (str, array_like)
            Tags and their values, e.g. ``dict(model.named_parameters())``.
        global_step, bins, walltime, max_bins, nonfinite, layout
            As in :meth:`add_histogram`, shared by all histograms.

        Raises
        ------
        TypeError, ValueError, OSError
            As :meth:`add_histogram`; every tag and option is checked before anything is computed.
        """
        events = self._queue()
        global_step = _check_step(global_step)
        spec = _histogram_spec(bins, max_bins, layout)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        pairs = _pairs(tensors)
        if not pairs:
            return
        tags = [tag for tag, _ in pairs]  # a job keeps the tags, never the tensors
        ndarray = np.ndarray
        on_device = [i for i, (_, v) in enumerate(pairs) if type(v) is not ndarray and _input_device.is_device_array(v)]
        on_gpu = on_device if spec.v2 else []  # PyTorch's layout is computed now, also on a GPU
        groups: Dict[Any, List[int]] = {}
        for i in on_gpu:
            groups.setdefault(_device_key(pairs[i][1]), []).append(i)
        # GPU batches first, so that the GPU works while the host tensors are counted here.
        pendings = [(idx, _cuda_async.enqueue_histograms([pairs[i][1] for i in idx], spec.k))
                    for idx in groups.values()]
        # Each histogram as the bytes it takes in the event's Summary (its value, then its
        # non-finite companions): host tensors in one batch over every core.
        done: Dict[int, bytes] = {}
        if not spec.v2:
            for i in on_device:
                done[i] = _framed(tags[i], _host_value(tags[i], pairs[i][1], spec, None, mode))
        device = set(on_device)
        host = [i for i in range(len(pairs)) if i not in device]
        if host:
            done.update(zip(host, _host_entries([tags[i] for i in host], [pairs[i][1] for i in host], spec, mode)))
        if not pendings:
            with _batch.phase("proto"):
                event = _proto.event_bytes(wall, global_step, [done[i] for i in range(len(tags))])
            events.put_ready(event)
            return

        def job() -> bytes:
            for idx, pending in pendings:
                for i, h in zip(idx, cast(List[histgpu.Histogram], pending.result())):
                    done[i] = _framed(tags[i], _gpu_value(tags[i], h, None, mode))
            return _proto.event_bytes(wall, global_step, [done[i] for i in range(len(tags))])

        events.put(_failing_in(f"{len(tags)} histograms at step {global_step}", job))

    def add_computed(
        self,
        histograms: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]],
        global_step: Optional[int] = None,
        walltime: Optional[float] = None,
    ) -> None:
        """Write histograms computed already, all in one event, with their non-finite companions.

        For histograms of sharded tensors (:mod:`histgpu.torch`, :mod:`histgpu.jax`,
        :mod:`histgpu.sharded`) and anything else that computed its results itself.

        Parameters
        ----------
        histograms : mapping or iterable of (str, result)
            Tags and results: a :class:`histgpu.Histogram` is written as TensorBoard's v2
            ``[k, 3]`` tensor, a :class:`histgpu.V1Histogram` as TensorFlow's collapsed
            ``HistogramProto``, and a ``HistogramProto`` as it is.
        global_step, walltime
            As in :meth:`add_histogram`.
        """
        events = self._queue()
        global_step = _check_step(global_step)
        wall = time.time() if walltime is None else float(walltime)
        items = list(histograms.items() if isinstance(histograms, Mapping) else histograms)
        values = []
        for tag, h in items:
            tag = _check_tag(tag)
            if isinstance(h, histgpu.Histogram):
                value = _proto.histogram_v2_value(tag, h.to_tensor())
                bad = (h.nan, h.posinf, h.neginf)
            elif isinstance(h, histgpu.V1Histogram):
                value = summary_pb2.Summary.Value(tag=tag, histo=_proto.v1_to_proto(h))
                bad = (h.nan, h.posinf, h.neginf)
            elif isinstance(h, summary_pb2.HistogramProto):
                value, bad = summary_pb2.Summary.Value(tag=tag, histo=h), (0, 0, 0)
            else:
                raise TypeError(f"add_computed takes histgpu.Histogram, histgpu.V1Histogram or HistogramProto "
                                f"values, not {type(h).__name__} (tag {tag!r})")
            values.append((tag, (value, bad)))
        if values:
            events.put_ready(_event(_summary(values), global_step, wall))

    def _add_value(
        self,
        tag: str,
        value: summary_pb2.Summary.Value,
        global_step: Optional[int],
        walltime: Optional[float] = None,
        nonfinite: Tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        """Write one summary value built elsewhere (histgpu.torch's PyTorch-layout protos of
        sharded tensors), with its companion non-finite scalars."""
        events = self._queue()
        _check_tag(tag)
        global_step = _check_step(global_step)
        wall = time.time() if walltime is None else float(walltime)
        events.put_ready(_event(_summary([(tag, (value, nonfinite))]), global_step, wall))

    def add_scalar(
        self,
        tag: str,
        scalar_value: float,
        global_step: Optional[int] = None,
        walltime: Optional[float] = None,
    ) -> None:
        """Add a scalar (``simple_value``, as PyTorch writes it) — handy next to histograms.

        Raises
        ------
        TypeError, ValueError, OSError
            As :meth:`add_histogram`.
        """
        events = self._queue()
        _check_tag(tag)
        global_step = _check_step(global_step)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(scalar_value))])
        wall = time.time() if walltime is None else float(walltime)
        events.put_ready(_event(summary, global_step, wall))
