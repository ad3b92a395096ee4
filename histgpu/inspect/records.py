"""Bounded reading of TFRecord-framed event files.

Each record of an event file is::

    uint64 length | uint32 masked CRC-32C of those 8 bytes | data[length] | uint32 masked CRC-32C of data

(little-endian; TensorFlow's ``core/lib/io/record_reader``). TensorBoard reads records with
TensorFlow's C++ reader whenever TensorFlow is installed, and that reader allocates the
length a header declares before reading it: a 42-byte file declaring 2**40 bytes (with a
valid checksum of the length) kills the process with SIGSEGV. :class:`RecordFile` checks a
declared length against the bytes left in the file *before* reading, so it never holds
more than one record that is really there, and reports every framing fault as a
:class:`RecordError` instead of raising.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from histgpu import _cpu

__all__ = ["RecordError", "RecordFile", "masked_crc32c", "HEADER_BYTES", "FOOTER_BYTES"]

HEADER_BYTES = 12  # uint64 length + uint32 CRC of the length
FOOTER_BYTES = 4  # uint32 CRC of the data
_MASK_DELTA = 0xA282EAD8
_REMOTE = re.compile(r"^[a-z0-9]+://")


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C (``crc32c::Mask``) of ``data``."""
    crc = _cpu.crc32c(data if isinstance(data, bytes) else bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class RecordError:
    """Why reading stopped before the end of an event file.

    Attributes
    ----------
    kind : str
        ``"truncated"`` (the file ends inside a record: cut, or still being written) or
        ``"corrupted"`` (a checksum does not match).
    offset : int
        Byte offset of the record that could not be read (the end of the last good one).
    size : int
        File size when it was read.
    detail : str
        What exactly was wrong, in words.
    """

    kind: str
    offset: int
    size: int
    detail: str


def _open(path: str) -> Tuple[BinaryIO, int]:
    """Open ``path`` for reading and return it with its size (local or, via TensorBoard, remote)."""
    if _REMOTE.match(path):
        from tensorboard.compat import tf

        return tf.io.gfile.GFile(path, "rb"), int(tf.io.gfile.stat(path).length)
    f = open(path, "rb")
    return f, os.fstat(f.fileno()).st_size


class RecordFile:
    """The records of one event file, read without trusting its length fields.

    Iterating yields ``(offset, data)`` for each intact record and stops at the first
    record that is truncated or fails a checksum; :attr:`error` then says why. A later
    iteration resumes at that record (so a file still being written is picked up where
    it was left, like TensorBoard's reader does), reading what was appended meanwhile.

    Parameters
    ----------
    path : str
        Event file path (local, or any URL TensorBoard's ``tf.io.gfile`` can open).
    opener : callable, optional
        ``path -> (binary file, size)``; defaults to plain ``open`` for local paths.

    Attributes
    ----------
    offset : int
        End of the last intact record read so far.
    records : int
        Intact records read so far.
    error : RecordError or None
        Why the last iteration stopped early, or None when it reached the end of the file.
    """

    def __init__(self, path: str, opener: Optional[Callable[[str], Tuple[BinaryIO, int]]] = None):
        self.path = path
        self._opener = opener or _open
        self.offset = 0
        self.records = 0
        self.error: Optional[RecordError] = None

    def __iter__(self) -> Iterator[Tuple[int, bytes]]:
        f, size = self._opener(self.path)
        try:
            self.error = None
            f.seek(self.offset)
            while self.offset < size:
                item = self._next(f, size)
                if item is None:
                    return
                yield item
        finally:
            f.close()

    def _stop(self, kind: str, size: int, detail: str) -> None:
        self.error = RecordError(kind, self.offset, size, detail)

    def _next(self, f: BinaryIO, size: int) -> Optional[Tuple[int, bytes]]:
        start, left = self.offset, size - self.offset
        if left < HEADER_BYTES:
            self._stop("truncated", size, f"{left} bytes, less than a record header ({HEADER_BYTES})")
            return None
        header = f.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES:  # the file shrank while being read
            self._stop("truncated", size, "the file ended early while being read")
            return None
        (length,) = struct.unpack("<Q", header[:8])
        (length_crc,) = struct.unpack("<I", header[8:])
        if masked_crc32c(header[:8]) != length_crc:
            self._stop("corrupted", size, "the checksum of the record length does not match")
            return None
        # The check that keeps memory bounded: never read (or allocate) past the file's end.
        if length > left - HEADER_BYTES - FOOTER_BYTES:
            self._stop("truncated", size, f"the record declares {length} bytes of data, "
                                          f"{max(0, left - HEADER_BYTES - FOOTER_BYTES)} are left")
            return None
        data = f.read(length)
        footer = f.read(FOOTER_BYTES)
        if len(data) < length or len(footer) < FOOTER_BYTES:  # the file shrank while being read
            self._stop("truncated", size, "the file ended early while being read")
            return None
        (data_crc,) = struct.unpack("<I", footer)
        if masked_crc32c(data) != data_crc:
            self._stop("corrupted", size, "the checksum of the record data does not match")
            return None
        self.offset = start + HEADER_BYTES + length + FOOTER_BYTES
        self.records += 1
        return start, data
