"""The event file behind :class:`histgpu.writer.SummaryWriter`: record framing, the file, and
the background queue that writes events whose data is still on a GPU.

The split follows TensorBoard's ``record_writer.py`` / ``event_file_writer.py``: nothing here
knows about histograms or summaries, only about ``Event`` protos and bytes on disk.
"""

from __future__ import annotations

import collections
import os
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Callable, Deque, List, Optional

from tensorboard.compat.proto import event_pb2

from histgpu import _cpu

__all__ = ["masked_crc32c", "RecordFile", "EventFile", "EventJob", "EventQueue", "finalize_queue"]

_file_counter = 0
_file_counter_lock = threading.Lock()


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of a record's length or data."""
    crc = _cpu.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class RecordFile:
    """A TFRecord file: each record is length (uint64), masked CRC-32C of the length (uint32),
    data, masked CRC-32C of the data (uint32), little-endian."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb")

    def write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._file.write(
            header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
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


class EventFile:
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
        self._records = RecordFile(self.path)
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


class EventQueue:
    """An event file and the background thread that writes events whose data is on its way.

    It holds no reference to its :class:`SummaryWriter`, so that a finaliser of the writer
    can drain it (and so that queued events do not keep the writer alive).

    Invariant: ``_jobs`` holds every event submitted and not yet written, oldest first; the
    head stays in it while the thread builds and writes it. So ``not _jobs`` means that the
    file holds everything submitted, and the caller may then write directly.
    """

    def __init__(self, file: EventFile, max_queue: int):
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


def finalize_queue(events: EventQueue) -> None:
    """Finaliser of a writer that was not closed: drain, close, and report what failed."""
    try:
        events.close()
    except Exception:  # noqa: BLE001 - never raise from a finaliser
        traceback.print_exc(file=sys.stderr)
    err = events.take_error()
    if err is not None:  # nobody is left to raise it to; never drop it silently
        print("histgpu.writer: an event queued for writing could not be written:", file=sys.stderr)
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
