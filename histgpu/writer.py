"""A TensorFlow-free ``SummaryWriter`` for histograms, PyTorch-style.

::

    from histgpu.writer import SummaryWriter

    with SummaryWriter("runs/exp1") as w:
        w.add_histogram("fc1/weight", fc1.weight, global_step=step)          # v1 proto
        w.add_histogram("fc1/grad", fc1.weight.grad, step, bins=30)          # v2 [k, 3] tensor
        w.add_histograms({"a": a, "b": b}, global_step=step)

Nothing here imports TensorFlow: the protos come from ``tensorboard.compat.proto`` and the
records are framed as TensorFlow frames them (length, CRC-32C of the length, data, CRC-32C of
the data), with the checksum computed by histgpu's C++ core. (TensorBoard's ``EventFileWriter``
is not used because it resolves ``tf.io.gfile`` and so imports TensorFlow whenever it is
installed; its TF-free ``RecordWriter`` computes the checksum in pure Python, which took longer
than the histograms of a large model.)

Asynchronous logging of GPU tensors
-----------------------------------
A v2 histogram (``bins=<int>``) of a tensor in GPU memory never makes the caller wait for
the GPU: ``add_histogram``/``add_histograms`` enqueue the kernels on the producer's stream
(PyTorch's or CuPy's current stream, ...) together with an asynchronous copy of the O(k)
result into pinned host memory, and return. A background thread (one per writer, started by
the first such call) waits for that copy, builds the event and appends it to the file. So a
training step pays for the enqueue only; the histogram is of the values the tensor holds at
that point of the stream, even if an optimizer updates the tensor in place right after.

* The queue is bounded by ``max_queue`` events (each ``add_*`` call is one event): when
  that many are waiting, the next ``add_*`` call blocks until the oldest is written.
* :meth:`SummaryWriter.flush` and :meth:`SummaryWriter.close` wait until everything queued
  is written. A writer that is garbage collected, or still open when the interpreter exits
  normally, is drained and closed by a finaliser (``weakref.finalize``, which runs at exit).
* An error in the background (a failed CUDA call, ``nonfinite="raise"`` meeting NaN) is
  raised to the caller by the next ``add_*``, ``flush`` or ``close`` call; that event is not
  written. One the program never collects is printed to stderr when the writer is finalised.
  ``NonFiniteWarning`` of such histograms is issued from the background thread.
* Host data (numpy arrays, CPU tensors) is computed synchronously in the caller, as before.
  While GPU events are queued, the host events go through the same queue (as finished
  events), so the file holds events in call order. When nothing is queued, each ``add_*`` call
  is written and flushed before it returns, so TensorBoard sees it at once.
* ``bins="tensorflow"`` (the v1 proto) has no asynchronous kernel path and is computed
  synchronously, for GPU tensors too: a later computation in the background would no longer be
  ordered on the producer's stream, and could read values already updated in place.
"""

from __future__ import annotations

import collections
import numbers
import os
import socket
import struct
import sys
import threading
import time
import traceback
import weakref
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Type, Union

from tensorboard.compat.proto import event_pb2, summary_pb2

import histgpu
from histgpu import _cpu, _cuda_async, _input_device, _options
from histgpu import proto as _proto

__all__ = ["SummaryWriter"]

_file_counter = 0
_file_counter_lock = threading.Lock()


def _masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of a record's length or data."""
    crc = _cpu.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class _RecordFile:
    """A TFRecord file: each record is length (uint64), masked CRC-32C of the length (uint32),
    data, masked CRC-32C of the data (uint32), little-endian."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb")

    def write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(
            header + struct.pack("<I", _masked_crc32c(header)) + data + struct.pack("<I", _masked_crc32c(data))
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


def _next_file_id() -> int:
    global _file_counter
    with _file_counter_lock:
        _file_counter += 1
        return _file_counter


class _EventFile:
    """One ``events.out.tfevents.*`` file, written synchronously under a lock."""

    def __init__(self, logdir: str, filename_suffix: str = ""):
        os.makedirs(logdir, exist_ok=True)
        name = "events.out.tfevents.%010d.%s.%s.%s%s" % (
            time.time(),
            socket.gethostname(),
            os.getpid(),
            _next_file_id(),
            filename_suffix,
        )
        self.path = os.path.join(logdir, name)
        self._lock = threading.Lock()
        self._records = _RecordFile(self.path)
        header = event_pb2.Event(
            wall_time=time.time(),
            file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="histgpu.writer"),
        )
        self.write(header)
        self.flush()

    def write(self, event: event_pb2.Event) -> None:
        with self._lock:
            self._records.write(event.SerializeToString())

    def flush(self) -> None:
        with self._lock:
            if not self._records.closed:
                self._records.flush()

    def close(self) -> None:
        with self._lock:
            if not self._records.closed:
                self._records.flush()
                self._records.close()


# An event still to be built: called by the background thread, it waits for GPU results.
EventJob = Callable[[], event_pb2.Event]


class _EventQueue:
    """An event file and the background thread that writes events whose data is on its way.

    It holds no reference to its :class:`SummaryWriter`, so that a finaliser of the writer
    can drain it (and so that queued events do not keep the writer alive).

    Invariant: ``_jobs`` holds every event submitted and not yet written, oldest first; the
    head stays in it while the thread builds and writes it. So ``not _jobs`` means that the
    file holds everything submitted, and the caller may then write directly.
    """

    def __init__(self, file: _EventFile, max_queue: int):
        self.file = file
        self._max = max_queue
        self._cv = threading.Condition()
        self._jobs: Deque[EventJob] = collections.deque()
        self._errors: List[BaseException] = []
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._pid = os.getpid()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("SummaryWriter is closed")

    def put_ready(self, event: event_pb2.Event) -> None:
        """Write a finished event now, or behind the queued ones when there are any."""
        with self._cv:
            self._check_open()
            if not self._jobs:
                # Idle: the synchronous path, written and flushed before the call returns.
                self.file.write(event)
                self.file.flush()
                return
        self.put(lambda: event)

    def put(self, job: EventJob) -> None:
        """Queue `job`; blocks while ``max_queue`` events are already waiting."""
        with self._cv:
            self._check_open()
            while len(self._jobs) >= self._max:
                self._cv.wait()
                self._check_open()
            self._jobs.append(job)
            if self._thread is None:
                # A daemon thread, so that a forgotten writer cannot hang the interpreter;
                # the finaliser (run at exit, while daemon threads still run) drains it.
                self._thread = threading.Thread(target=self._run, name="histgpu-writer", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def pending(self) -> int:
        """Events submitted and not yet written."""
        with self._cv:
            return len(self._jobs)

    def wait(self) -> None:
        """Block until every event submitted so far is written; then flush the file."""
        with self._cv:
            while self._jobs:
                self._cv.wait()
        self.file.flush()

    def take_error(self) -> Optional[BaseException]:
        """The first background error not yet reported (and forget them all), or None."""
        with self._cv:
            errors, self._errors = self._errors, []
        if not errors:
            return None
        first = errors[0]
        if len(errors) > 1 and hasattr(first, "add_note"):
            first.add_note(f"histgpu.writer: {len(errors) - 1} later event(s) failed as well and were not written")
        return first

    def close(self) -> None:
        """Write everything queued, stop the thread and close the file (idempotent)."""
        if os.getpid() != self._pid:
            return  # a forked child's copy (its finaliser at exit): the parent owns file and thread
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is threading.current_thread():
            return  # a finaliser run by the garbage collector on the worker: it closes when drained
        if thread is not None:
            thread.join()
        self.file.close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:  # closed and drained
                    break
                job: Optional[EventJob] = self._jobs[0]
            try:
                self.file.write(job())  # type: ignore[misc]
            except BaseException as e:  # noqa: BLE001 - handed to the caller by take_error()
                with self._cv:
                    self._errors.append(e)
            job = None  # let the results (and the event) go now, not at the next wake-up
            with self._cv:
                self._jobs.popleft()
                idle = not self._jobs
                self._cv.notify_all()
            if idle:  # one flush per burst, not per event
                self.file.flush()
        self.file.close()


def _finalize(events: _EventQueue) -> None:
    """Finaliser of a writer that was not closed: drain, close, and report what failed."""
    try:
        events.close()
    except Exception:  # noqa: BLE001 - never raise from a finaliser
        traceback.print_exc(file=sys.stderr)
    err = events.take_error()
    if err is not None:  # nobody is left to raise it to; never drop it silently
        print("histgpu.writer: an event queued for writing could not be written:", file=sys.stderr)
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)


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


def _event(summary: summary_pb2.Summary, global_step: Optional[int], wall_time: float) -> event_pb2.Event:
    event = event_pb2.Event(wall_time=wall_time, summary=summary)
    if global_step is not None:
        event.step = int(global_step)
    return event


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
    histogram logging. v2 histograms of GPU tensors are written asynchronously (see the
    module docstring): the caller waits for the enqueue only.

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
        next ``add_*`` call blocks until the oldest queued event is written. The pinned host memory held meanwhile is O(buckets) per
        histogram, never the tensors' size; the tensors themselves are kept alive until
        their histograms are computed.
    flush_secs : int, optional
        Accepted for compatibility. Every event is flushed to disk as soon as it is written
        (queued events: once the queue runs empty).
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
        self.log_dir = os.fspath(log_dir)
        self.max_queue = int(max_queue)
        self.flush_secs = flush_secs
        self._events: Optional[_EventQueue] = _EventQueue(_EventFile(self.log_dir, filename_suffix), self.max_queue)
        # Drains the queue when the writer is garbage collected or at interpreter exit
        # (weakref.finalize runs the finalisers of live objects from an atexit hook).
        self._finalizer = weakref.finalize(self, _finalize, self._events)
        if purge_step is not None:
            self._events.put_ready(
                event_pb2.Event(step=int(purge_step), session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
            )

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

    def _queue(self) -> _EventQueue:
        """The open queue; first raises what the background thread failed with, if anything."""
        events = self._events
        if events is None:
            raise RuntimeError("SummaryWriter is closed")
        err = events.take_error()
        if err is not None:
            raise err
        return events

    def flush(self) -> None:
        """Wait until every queued event is written, and flush the file to disk.

        Raises
        ------
        Exception
            The first error the background thread met since the last ``add_*``/``flush``
            call (that event was not written).
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
            As :meth:`flush`; the file is closed all the same.
        """
        events, self._events = self._events, None
        if events is None:
            return
        self._finalizer.detach()
        events.close()
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
        on the producer's stream; the event is written in the background (see the module
        docstring). Otherwise the histogram is computed before the call returns.
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
        Exception
            Also what the background thread met since the previous call (see :meth:`flush`).
        """
        events = self._queue()
        if max_bins is not None:
            raise ValueError("max_bins is not supported by histgpu's SummaryWriter")
        k = _v2_buckets(bins)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        if k is not None and _input_device.is_device_array(values):
            pending = _cuda_async.enqueue_histogram(values, k)

            def job() -> event_pb2.Event:
                value = _gpu_value(tag, pending.result(), description, mode)
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
        """
        events = self._queue()
        k = _v2_buckets(bins)
        mode = _options.nonfinite_mode(nonfinite)
        wall = time.time() if walltime is None else float(walltime)
        pairs = list(tensors.items() if isinstance(tensors, Mapping) else tensors)
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
                for i, h in zip(idx, pending.result()):
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
        """Add a scalar (``simple_value``, as PyTorch writes it) — handy next to histograms."""
        events = self._queue()
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(scalar_value))])
        wall = time.time() if walltime is None else float(walltime)
        events.put_ready(_event(summary, global_step, wall))
