"""A PyTorch-style ``SummaryWriter`` for histograms that needs no TensorFlow.

``add_histogram(tag, values, step)`` writes TensorFlow's v1 ``HistogramProto``, or with
``bins=k`` TensorBoard's v2 ``[k, 3]`` bucket tensor; v2 histograms of GPU tensors are logged
without waiting for the GPU. The event file and the background queue are in
:mod:`histgpu._event_file`. Manual (asynchronous logging, errors, full disks, process exit):
``docs/writer.md``.
"""

from __future__ import annotations

import numbers
import operator
import os
import socket
import time
import weakref
from datetime import datetime
from types import TracebackType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Type, Union, cast

from tensorboard.compat.proto import event_pb2, summary_pb2

import histgpu
from histgpu import _cuda_async, _input_device, _options
from histgpu import proto as _proto
from histgpu._event_file import EventFile, EventJob, EventQueue, finalize_queue

__all__ = ["SummaryWriter"]

# ------------------------------------------------------------------------------ helpers

Bins = Union[str, int]
_Value = Tuple[summary_pb2.Summary.Value, Tuple[int, int, int]]


def _v2_buckets(bins: Bins) -> Optional[int]:
    """None for ``bins="tensorflow"`` (the v1 proto), else the v2 bucket count."""
    if isinstance(bins, str):
        if bins != "tensorflow":
            raise ValueError(
                f"bins={bins!r}: histgpu supports bins='tensorflow' (TensorFlow's v1 HistogramProto) "
                "or an int k (TensorBoard's v2 [k, 3] bucket tensor)"
            )
        return None
    if isinstance(bins, bool):
        raise TypeError("bins must be 'tensorflow' or an int, not a bool")
    return _options.bucket_count(bins)


def _host_value(tag: str, values: Any, k: Optional[int], description: Optional[str], nonfinite: str) -> _Value:
    """Summary value of `values`, computed now (host data, or the v1 proto of any data)."""
    if k is None:
        h1 = histgpu.compute_v1(values, nonfinite=nonfinite)
        value = summary_pb2.Summary.Value(tag=tag, histo=_proto.v1_to_proto(h1))
        if description:
            value.metadata.CopyFrom(summary_pb2.SummaryMetadata(summary_description=description))
        return value, (h1.nan, h1.posinf, h1.neginf)
    h = histgpu.compute(values, k, nonfinite=nonfinite)
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
    ) -> None:
        """Add a histogram of ``values``; PyTorch's ``add_histogram`` signature.

        With ``bins=<int>`` and ``values`` on a GPU this returns once the work is enqueued
        on the producer's stream; the event is written in the background (see
        ``docs/writer.md``). Otherwise the histogram is computed before the call returns.
        It may block when ``max_queue`` events are waiting already.

        Parameters
        ----------
        tag : str
            Data identifier.
        values : array_like
            numpy array, PyTorch/TensorFlow/JAX tensor (on any device histgpu can read),
            list or scalar; any shape, castable to ``float64``.
        global_step : int, optional
            Step to record.
        bins : "tensorflow" or int, optional
            ``"tensorflow"`` (default, like PyTorch): TensorFlow's v1 ``HistogramProto``,
            equal to ``tf.compat.v1.summary.histogram``'s. An int ``k``: TensorBoard's v2
            ``[k, 3]`` bucket tensor, equal to ``tf.summary.histogram(..., buckets=k)``'s.
            numpy's bin-estimator strings are not supported.
        walltime : float, optional
            Event time in seconds since the epoch; default ``time.time()`` at this call.
        max_bins : None
            PyTorch's down-sampling option; not supported (must be None).
        description : str, optional
            Markdown description shown in TensorBoard.
        nonfinite : {"omit", "raise"}, optional
            See :mod:`histgpu.summary`. For asynchronous histograms the ``ValueError`` of
            ``"raise"`` comes from the next ``add_*``/``flush``/``close`` call.

        Raises
        ------
        TypeError
            ``tag`` is not a ``str`` (e.g. None), or ``global_step`` is not an integer.
        ValueError
            ``tag`` is empty, or an option is out of range.
        OSError
            The event could not be written (e.g. a full disk); nothing of it is in the file.
        Exception
            Also what the background thread met since the previous call (see :meth:`flush`).
        """
        events = self._queue()
        _check_tag(tag)
        global_step = _check_step(global_step)
        if max_bins is not None:
            raise ValueError("max_bins is not supported by histgpu's SummaryWriter")
        k = _v2_buckets(bins)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        if k is not None and _input_device.is_device_array(values):
            pending = _cuda_async.enqueue_histogram(values, k)

            def job() -> event_pb2.Event:
                value = _gpu_value(tag, cast(histgpu.Histogram, pending.result()), description, mode)
                return _event(_summary([(tag, value)]), global_step, wall)

            events.put(_failing_in(f"{tag!r} at step {global_step}", job))
            return
        value = _host_value(tag, values, k, description, mode)
        events.put_ready(_event(_summary([(tag, value)]), global_step, wall))

    def add_histograms(
        self,
        tensors: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]],
        global_step: Optional[int] = None,
        bins: Bins = "tensorflow",
        walltime: Optional[float] = None,
        *,
        nonfinite: str = "omit",
    ) -> None:
        """Add one histogram per ``(tag, values)`` pair, all in a single event.

        With ``bins=<int>``, the GPU tensors among them are enqueued in one batch per GPU (a
        fixed number of kernel launches, whatever their number) and the event is written in
        the background; host tensors are computed before the call returns. Like
        :meth:`add_histogram`, it may block while ``max_queue`` events are queued, and raises
        what the background thread met since the previous call.

        Parameters
        ----------
        tensors : mapping or iterable of (str, array_like)
            Tags and their values, e.g. ``dict(model.named_parameters())``.
        global_step, bins, walltime, nonfinite
            As in :meth:`add_histogram`, shared by all histograms.

        Raises
        ------
        TypeError, ValueError, OSError
            As :meth:`add_histogram`; every tag is checked before anything is computed.
        """
        events = self._queue()
        global_step = _check_step(global_step)
        k = _v2_buckets(bins)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        pairs = _pairs(tensors)
        if not pairs:
            return
        on_gpu = [i for i, (_, v) in enumerate(pairs) if k is not None and _input_device.is_device_array(v)]
        groups: Dict[Any, List[int]] = {}
        for i in on_gpu:
            groups.setdefault(_device_key(pairs[i][1]), []).append(i)
        # GPU batches first, so that the GPU works while the host tensors are counted here.
        pendings = [(idx, _cuda_async.enqueue_histograms([pairs[i][1] for i in idx], k)) for idx in groups.values()]
        done: Dict[int, _Value] = {}
        gpu = set(on_gpu)
        for i, (tag, v) in enumerate(pairs):
            if i not in gpu:
                done[i] = _host_value(tag, v, k, None, mode)
        tags = [tag for tag, _ in pairs]  # the job keeps the tags, never the tensors
        if not pendings:
            events.put_ready(_event(_summary((tags[i], done[i]) for i in range(len(tags))), global_step, wall))
            return

        def job() -> event_pb2.Event:
            for idx, pending in pendings:
                for i, h in zip(idx, cast(List[histgpu.Histogram], pending.result())):
                    done[i] = _gpu_value(tags[i], h, None, mode)
            return _event(_summary((tags[i], done[i]) for i in range(len(tags))), global_step, wall)

        events.put(_failing_in(f"{len(tags)} histograms at step {global_step}", job))

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
