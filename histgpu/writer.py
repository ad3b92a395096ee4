"""A TensorFlow-free ``SummaryWriter`` for histograms, PyTorch-style.

::

    from histgpu.writer import SummaryWriter

    with SummaryWriter("runs/exp1") as w:
        w.add_histogram("fc1/weight", fc1.weight, global_step=step)          # v1 proto
        w.add_histogram("fc1/grad", fc1.weight.grad, step, bins=30)          # v2 [k, 3] tensor
        w.add_histograms({"a": a, "b": b}, global_step=step)

Nothing here imports TensorFlow: the event records are framed by TensorBoard's own
``RecordWriter`` and the protos come from ``tensorboard.compat.proto``. (TensorBoard's
``EventFileWriter`` is not used because it resolves ``tf.io.gfile`` and so imports
TensorFlow whenever it is installed.) Each ``add_*`` call is flushed to disk before it
returns, so TensorBoard sees the data at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Any, Iterable, Mapping, Optional, Tuple, Type, Union

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

import histgpu
from histgpu import proto as _proto

__all__ = ["SummaryWriter"]

_file_counter = 0
_file_counter_lock = threading.Lock()


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
        self._records = RecordWriter(open(self.path, "wb"))
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


Bins = Union[str, int]


class SummaryWriter:
    """Write histogram summaries to TensorBoard event files without TensorFlow.

    The constructor and :meth:`add_histogram` take the parameters of PyTorch's
    ``torch.utils.tensorboard.SummaryWriter``, so swapping the import is enough for
    histogram logging.

    Parameters
    ----------
    log_dir : str or os.PathLike, optional
        Run directory. Default: ``runs/<date>_<time>_<hostname><comment>`` like PyTorch.
    comment : str, optional
        Suffix of the default ``log_dir``; ignored when ``log_dir`` is given.
    purge_step : int, optional
        Like PyTorch: write a ``SessionLog.START`` at this step, so TensorBoard drops
        events with a step >= ``purge_step`` written by an earlier, crashed run.
    max_queue, flush_secs : int, optional
        Accepted for compatibility. Every ``add_*`` call is flushed before it returns.
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
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
    ):
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self._file: Optional[_EventFile] = _EventFile(self.log_dir, filename_suffix)
        if purge_step is not None:
            self._write_event(
                event_pb2.Event(step=int(purge_step), session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START))
            )
            self.flush()

    # ---------------------------------------------------------------- plumbing

    def get_logdir(self) -> str:
        """The run directory events are written to."""
        return self.log_dir

    @property
    def file_path(self) -> str:
        """Path of the event file this writer appends to."""
        if self._file is None:
            raise RuntimeError("SummaryWriter is closed")
        return self._file.path

    def _write_event(self, event: event_pb2.Event) -> None:
        if self._file is None:
            raise RuntimeError("SummaryWriter is closed")
        self._file.write(event)

    def _write_summary(self, summary: summary_pb2.Summary, global_step: Optional[int], walltime: Optional[float]) -> None:
        event = event_pb2.Event(wall_time=time.time() if walltime is None else float(walltime), summary=summary)
        if global_step is not None:
            event.step = int(global_step)
        self._write_event(event)

    def flush(self) -> None:
        """Flush pending events to disk."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close the event file; later ``add_*`` calls raise ``RuntimeError``."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "SummaryWriter":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:  # best effort, like PyTorch's writer
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    # -------------------------------------------------------------- histograms

    @staticmethod
    def _histogram_values(
        tag: str, values: Any, bins: Bins, description: Optional[str], nonfinite: str
    ) -> Tuple[summary_pb2.Summary.Value, Tuple[int, int, int]]:
        if isinstance(bins, str):
            if bins != "tensorflow":
                raise ValueError(
                    f"bins={bins!r}: histgpu supports bins='tensorflow' (TensorFlow's v1 HistogramProto) "
                    "or an int k (TensorBoard's v2 [k, 3] bucket tensor)"
                )
            h = histgpu.compute_v1(values, nonfinite=nonfinite)
            md = summary_pb2.SummaryMetadata(summary_description=description) if description else None
            value = summary_pb2.Summary.Value(tag=tag, histo=_proto.v1_to_proto(h))
            if md is not None:
                value.metadata.CopyFrom(md)
        else:
            if isinstance(bins, bool):
                raise TypeError("bins must be 'tensorflow' or an int, not a bool")
            h = histgpu.compute(values, bins, nonfinite=nonfinite)
            value = _proto.histogram_v2_value(tag, h.to_tensor(), description)
        return value, (h.nan, h.posinf, h.neginf)

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
            Event time in seconds since the epoch; default ``time.time()``.
        max_bins : None
            PyTorch's down-sampling option; not supported (must be None).
        description : str, optional
            Markdown description shown in TensorBoard.
        nonfinite : {"omit", "raise"}, optional
            See :mod:`histgpu.summary`.
        """
        if max_bins is not None:
            raise ValueError("max_bins is not supported by histgpu's SummaryWriter")
        value, bad = self._histogram_values(tag, values, bins, description, nonfinite)
        summary = summary_pb2.Summary(value=[value])
        _proto.add_nonfinite_values(summary, tag, *bad)
        self._write_summary(summary, global_step, walltime)
        self.flush()

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

        Parameters
        ----------
        tensors : mapping or iterable of (str, array_like)
            Tags and their values, e.g. ``dict(model.named_parameters())``.
        global_step, bins, walltime, nonfinite
            As in :meth:`add_histogram`, shared by all histograms.
        """
        items = tensors.items() if isinstance(tensors, Mapping) else tensors
        summary = summary_pb2.Summary()
        for tag, values in items:
            value, bad = self._histogram_values(tag, values, bins, None, nonfinite)
            summary.value.append(value)
            _proto.add_nonfinite_values(summary, tag, *bad)
        if summary.value:
            self._write_summary(summary, global_step, walltime)
            self.flush()

    def add_scalar(
        self,
        tag: str,
        scalar_value: float,
        global_step: Optional[int] = None,
        walltime: Optional[float] = None,
    ) -> None:
        """Add a scalar (``simple_value``, as PyTorch writes it) — handy next to histograms."""
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(scalar_value))])
        self._write_summary(summary, global_step, walltime)
        self.flush()
