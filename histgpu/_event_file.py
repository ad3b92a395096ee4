"""The event file behind :class:`histgpu.writer.SummaryWriter`: record framing, the file, and
the background queue that writes events whose data is still on a GPU.

The split follows TensorBoard's ``record_writer.py`` / ``event_file_writer.py``: nothing here
knows about histograms or summaries, only about ``Event`` protos and bytes on disk. What the
file guarantees on a full disk and at process exit is described in ``docs/writer.md``.
"""

from __future__ import annotations

import collections
import errno
import os
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Callable, Deque, List, Optional, Tuple, Union

from tensorboard.compat.proto import event_pb2

from histgpu import _batch, _cpu, _sigterm

__all__ = ["masked_crc32c", "record_parts", "frame_record", "RecordFile", "EventFile", "EventData", "EventJob",
           "EventQueue", "finalize_queue"]

# An event: the proto, or its serialized bytes (histgpu.proto builds a step's event as bytes).
EventData = Union[event_pb2.Event, bytes]

_file_counter = 0
_file_counter_lock = threading.Lock()

# Unbuffered, so that a record is on its way to the kernel when write() returns and no
# buffer can complete a failed record later; not inherited by child processes.
_OPEN_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)


# Records up to this size are joined and written with one os.write; larger ones by os.writev.
_JOIN_BELOW = 1 << 16


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of a record's length or data."""
    crc = _cpu.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record_parts(data: bytes) -> Tuple[bytes, bytes, bytes]:
    """(head, data, tail) of one TFRecord: the length (uint64) and the masked CRC-32C of the
    length (uint32), the data, the masked CRC-32C of the data (uint32), little-endian."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)), data, struct.pack("<I", masked_crc32c(data))


def frame_record(data: bytes) -> bytes:
    """One TFRecord, as the bytes that go into the file (:func:`record_parts` joined)."""
    return b"".join(record_parts(data))


class RecordFile:
    """A TFRecord file in which every record is either complete or absent.

    Each record goes to the kernel through an unbuffered file descriptor. When a write fails
    part way (``ENOSPC`` leaves a short write), the file is truncated back to the end of the
    last complete record, so a call that raised leaves nothing behind, and nothing buffered
    completes it later. Should that truncation fail too, the file refuses every later write
    rather than append records behind a torn one.

    Parameters
    ----------
    path : str
        File to create (an existing one is truncated).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = os.open(path, _OPEN_FLAGS, 0o666)
        self._end = 0  # offset just past the last complete record
        self._torn: Optional[OSError] = None  # why the file could not be repaired, if it could not

    def write(self, data: bytes) -> None:
        """Append one record holding `data`; on any error the file is as it was before.

        Raises
        ------
        OSError
            What the operating system reported (``ENOSPC``, ``EIO``, ...).
        ValueError
            The file is closed.
        """
        fd = self._fd
        if fd is None:
            raise ValueError(f"record file {self.path!r} is closed")
        if self._torn is not None:
            raise OSError(
                self._torn.errno,
                f"event file holds a partial record that could not be removed ({self._torn.strerror}); "
                "nothing more is written to it",
                self.path,
            ) from self._torn
        with _batch.phase("checksum"):
            parts = record_parts(data)
        size = len(data) + 16
        end = self._end + size
        try:
            with _batch.phase("file I/O"):
                # One writev: the record's three parts go to the kernel without being joined
                # (a copy of a large event). What a short write leaves goes by os.write.
                done = os.writev(fd, parts) if size > _JOIN_BELOW and hasattr(os, "writev") else 0
                if done < size:
                    rest = memoryview(b"".join(parts))[done:]
                    while rest:
                        n = os.write(fd, rest)
                        if n <= 0:  # a regular file never does this; never loop on it
                            raise OSError(errno.EIO, "write() wrote nothing", self.path)
                        rest = rest[n:]
            self._end = end
        except BaseException:  # KeyboardInterrupt too: a torn record must never stay
            if self._end != end:
                self._roll_back(fd)
            raise

    def _roll_back(self, fd: int) -> None:
        """Cut the file back to its last complete record."""
        try:
            os.ftruncate(fd, self._end)
            os.lseek(fd, self._end, os.SEEK_SET)
        except OSError as e:
            self._torn = e

    def flush(self) -> None:
        """Nothing to do: records are handed to the kernel by :meth:`write` (no ``fsync``,
        as TensorBoard's writer; data in the kernel survives the process, not a power cut)."""

    def close(self) -> None:
        """Release the file descriptor; idempotent. It is released even when this raises."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the descriptor is gone afterwards, even if close() reports an error

    @property
    def closed(self) -> bool:
        return self._fd is None


def _next_file_id() -> int:
    global _file_counter
    with _file_counter_lock:
        _file_counter += 1
        return _file_counter


def _logdir_error(e: OSError, logdir: str, what: str) -> OSError:
    """`e`, said in terms of the user's ``log_dir`` (same errno, so the same OSError subclass)."""
    return OSError(
        e.errno, f"histgpu.SummaryWriter: cannot {what} in log_dir {logdir!r}: {e.strerror}", e.filename
    )


class EventFile:
    """One ``events.out.tfevents.*`` file, written synchronously under a lock.

    The constructor creates `logdir` when needed, creates the file and writes its header
    event; any of these failing (read-only or full filesystem, a file in the way) raises an
    ``OSError`` naming the log directory, and leaves no file or descriptor behind.
    """

    def __init__(self, logdir: str, filename_suffix: str = ""):
        try:
            os.makedirs(logdir, exist_ok=True)
        except OSError as e:
            raise _logdir_error(e, logdir, "create the directory") from e
        name = "events.out.tfevents.%010d.%s.%s.%s%s" % (
            time.time(),
            socket.gethostname(),
            os.getpid(),
            _next_file_id(),
            filename_suffix,
        )
        self.path = os.path.join(logdir, name)
        self._lock = threading.Lock()
        try:
            self._records = RecordFile(self.path)
        except OSError as e:
            raise _logdir_error(e, logdir, "create an event file") from e
        header = event_pb2.Event(
            wall_time=time.time(),
            file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="histgpu.writer"),
        )
        try:
            self.write(header)
        except OSError as e:
            self._records.close()
            try:
                os.unlink(self.path)  # an event file without its header is of no use to anyone
            except OSError:
                pass
            raise _logdir_error(e, logdir, "write an event file") from e

    def write(self, event: "EventData") -> None:
        """Append one event: an ``Event`` proto, or the bytes of one serialized already."""
        data = event if isinstance(event, bytes) else event.SerializeToString()
        with self._lock:
            self._records.write(data)

    def flush(self) -> None:
        with self._lock:
            if not self._records.closed:
                self._records.flush()

    def close(self) -> None:
        with self._lock:
            self._records.close()


# An event still to be built: called by the background thread, it waits for GPU results.
EventJob = Callable[[], "EventData"]


class EventQueue:
    """An event file and the background thread that writes events whose data is on its way.

    It holds no reference to its :class:`SummaryWriter`, so that a finaliser of the writer
    can drain it (and so that queued events do not keep the writer alive).

    Invariant: ``_jobs`` holds every event submitted and not yet written, oldest first; the
    head stays in it while the thread builds and writes it. So ``not _jobs`` means that the
    file holds everything submitted, and the caller may then write directly.

    An event that fails (its job raises, or the disk is full) is recorded and raised by
    :meth:`take_error`; the thread goes on with the next one. Should the thread itself end
    unexpectedly, the events still queued are dropped with that error, and every wait ends:
    :meth:`wait` returns (its caller then raises the error), and :meth:`put` raises.
    """

    def __init__(self, file: EventFile, max_queue: int):
        self.file = file
        self._max = max_queue
        self._cv = threading.Condition()
        self._jobs: Deque[EventJob] = collections.deque()
        self._errors: List[BaseException] = []
        self._thread: Optional[threading.Thread] = None
        self._died: Optional[BaseException] = None  # what ended the thread, if it did not finish
        self._closed = False
        self._pid = os.getpid()

    # ------------------------------------------------------------------------------ checks

    @property
    def in_owner_process(self) -> bool:
        """False in a forked child of the process that created the queue."""
        return os.getpid() == self._pid

    def _check_process(self) -> None:
        """Refuse a forked child, before it touches a lock: the parent's thread may have held it
        at the fork, no thread writes the queue there, and the file offset is the parent's."""
        if not self.in_owner_process:
            raise RuntimeError(
                f"this SummaryWriter belongs to process {self._pid}; a forked child can neither write to it "
                "nor wait for its queued events (create a SummaryWriter in the child)"
            )

    def _check_usable(self) -> None:
        """Raise unless events can be written now (called with ``_cv`` held)."""
        if self._closed:
            raise RuntimeError("SummaryWriter is closed")
        if self._jobs:
            self._thread_alive()
        if self._died is not None:
            raise RuntimeError(
                "histgpu.writer: the background thread that writes queued events died (see the cause); "
                "this writer cannot write any more events (create a new SummaryWriter)"
            ) from self._died

    def _thread_alive(self) -> bool:
        """Whether a thread is there to write the queued events; records its death if not."""
        if self._died is not None:
            return False
        if self._thread is None or self._thread.is_alive():
            return True
        self._thread_died(RuntimeError("histgpu.writer: the background thread ended unexpectedly"))
        return False

    def _thread_died(self, error: BaseException) -> None:
        """Drop what is queued (nobody will write it), remember why, and wake every waiter."""
        lost = len(self._jobs)
        self._jobs.clear()
        self._died = error
        if lost and hasattr(error, "add_note"):
            error.add_note(f"histgpu.writer: {lost} queued event(s) were not written")
        self._errors.append(error)
        self._cv.notify_all()

    # ------------------------------------------------------------------------ the producer

    def put_ready(self, event: EventData) -> None:
        """Write a finished event now, or behind the queued ones when there are any."""
        self._check_process()
        with self._cv:
            self._check_usable()
            if not self._jobs:
                # Idle: the synchronous path, in the kernel before the call returns.
                self.file.write(event)
                self.file.flush()
                return
        self.put(lambda: event)

    def put(self, job: EventJob) -> None:
        """Queue `job`; blocks while ``max_queue`` events are already waiting."""
        self._check_process()
        with self._cv:
            self._check_usable()
            while len(self._jobs) >= self._max:
                self._cv.wait()
                self._check_usable()
            self._jobs.append(job)
            if self._thread is None:
                # A daemon thread, so that a forgotten writer cannot hang the interpreter;
                # the finaliser (run at exit, while daemon threads still run) drains it.
                self._thread = threading.Thread(target=self._run, name="histgpu-writer", daemon=True)
                self._thread.start()
            _sigterm.watch(self)  # so that SIGTERM writes this event out instead of losing it
            self._cv.notify_all()

    def pending(self) -> int:
        """Events submitted and not yet written."""
        self._check_process()
        with self._cv:
            return len(self._jobs)

    def drain(self, deadline: Optional[float] = None) -> None:
        """Block until every event submitted so far is written or dropped.

        Parameters
        ----------
        deadline : float, optional
            ``time.monotonic()`` at which to stop waiting (the SIGTERM handler's bound).
        """
        self._check_process()
        with self._cv:
            while self._jobs and self._died is None:
                if not self._thread_alive():
                    break
                if deadline is None:
                    self._cv.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    self._cv.wait(left)

    def wait(self) -> None:
        """:meth:`drain`, then flush the file."""
        self.drain()
        self.file.flush()

    def take_error(self) -> Optional[BaseException]:
        """The first background error not yet reported (and forget them all), or None."""
        self._check_process()
        with self._cv:
            errors, self._errors = self._errors, []
        if not errors:
            return None
        first = errors[0]
        if len(errors) > 1 and hasattr(first, "add_note"):
            first.add_note(f"histgpu.writer: {len(errors) - 1} later event(s) failed as well and were not written")
        return first

    def close(self) -> None:
        """Write everything queued, stop the thread and close the file (idempotent).

        The file is closed even when closing it raises.
        """
        if not self.in_owner_process:
            return  # a forked child's copy (its finaliser at exit): the parent owns file and thread
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        _sigterm.forget(self)
        if thread is threading.current_thread():
            return  # a finaliser run by the garbage collector on the worker: it closes when drained
        if thread is not None:
            thread.join()
        self.file.close()

    # -------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            self._write_until_closed()
        except BaseException as e:  # noqa: BLE001 - a bug here must not leave waiters hanging
            with self._cv:
                self._thread_died(e)
        finally:
            if self._closed:  # closed (maybe by a finaliser on this very thread): release the file
                try:
                    self.file.close()
                except OSError as e:
                    with self._cv:
                        self._errors.append(e)

    def _write_until_closed(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:  # closed and drained
                    return
                job: Optional[EventJob] = self._jobs[0]
            try:
                self.file.write(job())  # type: ignore[misc]
            except BaseException as e:  # noqa: BLE001 - handed to the caller by take_error()
                with self._cv:
                    self._errors.append(e)
            job = None  # let the results (and the event) go now, not at the next wake-up
            with self._cv:
                if self._jobs:  # (emptied only by _thread_died, never while this thread runs)
                    self._jobs.popleft()
                idle = not self._jobs
                self._cv.notify_all()
            if idle:  # one flush per burst, not per event
                try:
                    self.file.flush()
                except OSError as e:
                    with self._cv:
                        self._errors.append(e)


def finalize_queue(events: EventQueue) -> None:
    """Finaliser of a writer that was not closed: drain, close, and report what failed."""
    if not events.in_owner_process:
        return  # a forked child's copy (its finaliser at exit): the parent owns file and thread
    try:
        events.close()
    except Exception:  # noqa: BLE001 - never raise from a finaliser
        traceback.print_exc(file=sys.stderr)
    err = events.take_error()
    if err is not None:  # nobody is left to raise it to; never drop it silently
        print("histgpu.writer: an event queued for writing could not be written:", file=sys.stderr)
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
