"""Faults for the writer tests: a full disk (simulated, or a real tmpfs), a strict reader of
TFRecord files, and a check of whether a file is still open in this process.

The simulated disk works at the operating-system boundary that histgpu's event file uses
(``os.open``/``os.write``/``os.writev``), so it runs everywhere; the tmpfs needs ``mount`` (root) and skips
with the reason where that is not permitted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import subprocess
from typing import Iterator, List, Optional

import pytest


class FullDisk:
    """A filesystem of `capacity` bytes under `root`, enforced on ``os.write`` and ``os.writev``.

    Files opened under `root` through ``os.open`` count against the capacity (by their size on
    disk, so truncation frees space). A write that does not fit writes what does (a short
    write, as Linux does) and the next one fails with ``ENOSPC``. Other files are untouched.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: str, capacity: int) -> None:
        self.root = os.path.abspath(root)
        self.capacity = capacity
        self.paths: List[str] = []
        self.fds: dict = {}
        self.enospc = 0  # writes refused
        self._real_open = os.open
        self._real_write = os.write
        monkeypatch.setattr(os, "open", self._open)
        monkeypatch.setattr(os, "write", self._write)
        if hasattr(os, "writev"):
            monkeypatch.setattr(os, "writev", self._writev)

    def used(self) -> int:
        return sum(os.path.getsize(p) for p in self.paths if os.path.exists(p))

    def free(self, nbytes: int) -> None:
        """Make room for `nbytes` more bytes (someone deleted a file)."""
        self.capacity = self.used() + nbytes

    def fill(self) -> None:
        """No room left at all."""
        self.capacity = self.used()

    def _open(self, path, flags, mode=0o777, *, dir_fd=None):
        fd = self._real_open(path, flags, mode, dir_fd=dir_fd)
        full = os.path.abspath(os.fspath(path))
        if full.startswith(self.root + os.sep):
            self.paths.append(full)
            self.fds[fd] = full
        return fd

    def _write(self, fd, data):
        if fd not in self.fds:
            return self._real_write(fd, data)
        room = self.capacity - self.used()
        if room <= 0:
            self.enospc += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self._real_write(fd, bytes(data[:room]))

    def _writev(self, fd, buffers):
        return self._write(fd, b"".join(bytes(b) for b in buffers))


@contextlib.contextmanager
def tmpfs(where: str, size: str = "64k", read_only: bool = False) -> Iterator[str]:
    """A real tmpfs of `size` mounted at `where`; skips the test where mounting is not permitted."""
    os.makedirs(where, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", where],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs ({e}); the simulated-disk tests cover this case")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); "
                    "the simulated-disk tests cover this case")
    try:
        yield where
    finally:
        if subprocess.run(["umount", where], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", where], capture_output=True, timeout=30)


def strict_records(path: str) -> List[bytes]:
    """Payloads of a TFRecord file, checking every length and CRC with TensorBoard's own
    checksum; fails on a partial or corrupt record anywhere, the last one included."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    blob = open(path, "rb").read()
    out: List[bytes] = []
    pos = 0
    while pos < len(blob):
        assert len(blob) - pos >= 12, f"{path}: a partial record header at offset {pos}"
        header = blob[pos:pos + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", blob[pos + 8:pos + 12])[0] == masked_crc32c(header), f"bad length CRC at {pos}"
        assert len(blob) - pos - 12 >= n + 4, f"{path}: a partial record at offset {pos}"
        data = blob[pos + 12:pos + 12 + n]
        assert struct.unpack("<I", blob[pos + 12 + n:pos + 16 + n])[0] == masked_crc32c(data), f"bad CRC at {pos}"
        out.append(data)
        pos += 16 + n
    return out


def strict_events(path: str) -> list:
    """The events of one event file (or of the only one in a directory), read strictly."""
    from tensorboard.compat.proto import event_pb2

    if os.path.isdir(path):
        (name,) = [f for f in os.listdir(path) if f.startswith("events.out.tfevents.")]
        path = os.path.join(path, name)
    return [event_pb2.Event.FromString(r) for r in strict_records(path)]


def summary_steps(path: str) -> List[tuple]:
    """``(step, first tag)`` of every summary event, in file order."""
    return [(e.step, e.summary.value[0].tag) for e in strict_events(path) if e.HasField("summary")]


def open_in_this_process(path: str, fd: Optional[int] = None) -> bool:
    """Whether a descriptor of this process refers to `path` (by /proc where there is one,
    else by whether `fd` is still open)."""
    path = os.path.realpath(path)
    if os.path.isdir("/proc/self/fd"):
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}") == path:
                    return True
            except OSError:
                pass
        return False
    if fd is None:
        raise AssertionError("no /proc here: pass the descriptor to check")
    try:
        os.fstat(fd)
    except OSError as e:
        return e.errno != errno.EBADF
    return True
