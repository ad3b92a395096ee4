"""histgpu.writer.SummaryWriter under faults (issue 16): full disks, read-only log directories,
bad tags, and the process ending (os._exit, SIGTERM).

A full disk is simulated at the ``os.write`` boundary (``faults.FullDisk``, runs everywhere)
and, where ``mount`` is permitted, made real with a small tmpfs. Every event file is read back
strictly: a partial or corrupt record anywhere fails the test. The asynchronous (GPU) path
under the same faults is tested in test_writer_async.py.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import histgpu
from histgpu.writer import SummaryWriter

from . import faults
from . import tb_helpers as H

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

rng = np.random.default_rng(16)
GUARD_S = 120  # bound of every subprocess in these tests


def _event_fd(w: SummaryWriter) -> int:
    return w._events.file._records._fd


def _fill_until_refused(w: SummaryWriter, refusals: int, start: int = 0):
    """add_* calls (v1 histograms and scalars) until `refusals` of them raised OSError.

    Returns the (step, tag) of every call that returned, and the errors of those that raised."""
    ok, errors = [], []
    step = start
    while len(errors) < refusals:
        assert step < start + 10_000, "the disk never filled up"
        tag = "loss" if step % 3 == 2 else "w"
        try:
            if tag == "loss":
                w.add_scalar(tag, 0.5, step)
            else:
                w.add_histogram(tag, rng.standard_normal(2000), step)
        except OSError as e:
            errors.append(e)
        else:
            ok.append((step, tag))
        step += 1
    return ok, errors, step


# ----------------------------------------------------------------------- full disk, synchronous


def test_full_disk_leaves_exactly_the_calls_that_returned(tmp_path, monkeypatch):
    """Issue 16: 5 add_* calls returned and 4 raised, yet 7 events were readable later.

    Here a refused call must leave nothing (not even a part of its record), the file must
    stay readable to its last byte, and once there is room again writing goes on."""
    logdir = str(tmp_path / "run")
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=40_000)
    w = SummaryWriter(logdir)
    ok, errors, step = _fill_until_refused(w, refusals=4)
    assert all(e.errno == errno.ENOSPC for e in errors)
    assert len(ok) >= 3
    assert faults.summary_steps(logdir) == ok  # whole records only, and only those that returned
    disk.free(1_000_000)  # someone deleted a file
    for i in range(3):
        w.add_histogram("w", rng.standard_normal(100), step + i)
        ok.append((step + i, "w"))
    w.close()
    assert faults.summary_steps(logdir) == ok


def test_short_writes_are_cut_back(tmp_path, monkeypatch):
    """A write that fits only in part (a short write, then ENOSPC) is truncated away."""
    logdir = str(tmp_path / "run")
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=10**9)
    w = SummaryWriter(logdir)
    w.add_histogram("w", rng.standard_normal(1000), 0)
    size = os.path.getsize(w.file_path)
    disk.free(100)  # room for the first 100 bytes of a record of a few KB
    with pytest.raises(OSError) as info:
        w.add_histogram("w", rng.standard_normal(1000), 1)
    assert info.value.errno == errno.ENOSPC
    assert os.path.getsize(w.file_path) == size  # the 100 bytes written were removed
    disk.free(10**6)
    w.add_histogram("w", rng.standard_normal(1000), 2)
    w.close()
    assert faults.summary_steps(logdir) == [(0, "w"), (2, "w")]


def test_full_disk_on_a_real_tmpfs(tmp_path):
    """The issue's case on a real filesystem: a 64 KiB tmpfs, half of it taken by another file."""
    with faults.tmpfs(str(tmp_path / "disk")) as disk:
        other = os.path.join(disk, "other")
        with open(other, "wb") as f:
            f.write(b"x" * 32 * 1024)
        logdir = os.path.join(disk, "run")
        w = SummaryWriter(logdir)
        path, fd = w.file_path, _event_fd(w)
        ok, errors, step = _fill_until_refused(w, refusals=4)
        assert all(e.errno == errno.ENOSPC for e in errors)
        assert faults.summary_steps(logdir) == ok
        os.unlink(other)  # the disk is freed
        w.add_histogram("w", rng.standard_normal(100), step)
        ok.append((step, "w"))
        w.close()
        assert not faults.open_in_this_process(path, fd)
        assert faults.summary_steps(logdir) == ok


def test_close_releases_the_file_even_when_it_raises(tmp_path, monkeypatch):
    """Issue 16: after close() raised, the event file's descriptor was still open."""
    logdir = str(tmp_path / "run")
    w = SummaryWriter(logdir)
    w.add_histogram("w", rng.standard_normal(100), 0)
    path, fd = w.file_path, _event_fd(w)
    real_close = os.close

    def failing_close(n):
        real_close(n)
        if n == fd:
            raise OSError(errno.EIO, "I/O error reported at close (as NFS does)")

    monkeypatch.setattr(os, "close", failing_close)
    with pytest.raises(OSError, match="I/O error"):
        w.close()
    monkeypatch.undo()
    assert not faults.open_in_this_process(path, fd)
    w.close()  # closed: nothing left to do
    with pytest.raises(RuntimeError, match="closed"):
        w.add_histogram("w", rng.standard_normal(100), 1)
    assert faults.summary_steps(logdir) == [(0, "w")]


def test_close_on_a_full_disk_releases_the_file(tmp_path, monkeypatch):
    logdir = str(tmp_path / "run")
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=10**9)
    w = SummaryWriter(logdir)
    w.add_histogram("w", rng.standard_normal(100), 0)
    path, fd = w.file_path, _event_fd(w)
    disk.fill()
    with pytest.raises(OSError):
        w.add_histogram("w", rng.standard_normal(100), 1)
    w.close()  # nothing is buffered, so nothing is left to fail here
    assert not faults.open_in_this_process(path, fd)
    assert faults.summary_steps(logdir) == [(0, "w")]


def test_no_room_for_the_header(tmp_path, monkeypatch):
    """A writer that cannot write its file header raises at construction and leaves nothing."""
    logdir = str(tmp_path / "run")
    os.makedirs(logdir)
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=0)
    with pytest.raises(OSError) as info:
        SummaryWriter(logdir)
    assert info.value.errno == errno.ENOSPC and "log_dir" in str(info.value) and logdir in str(info.value)
    assert os.listdir(logdir) == []
    assert disk.fds and not any(faults.open_in_this_process(p, fd) for fd, p in disk.fds.items())


# ---------------------------------------------------------------------------- read-only logdirs


def test_read_only_logdir_simulated(tmp_path, monkeypatch):
    logdir = str(tmp_path / "run")
    os.makedirs(logdir)
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if os.fspath(path).startswith(logdir):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError) as info:
        SummaryWriter(logdir)
    assert info.value.errno == errno.EROFS
    assert "cannot create an event file in log_dir" in str(info.value) and logdir in str(info.value)


def test_logdir_that_is_a_file(tmp_path):
    logdir = tmp_path / "run"
    logdir.write_text("not a directory")
    with pytest.raises(FileExistsError, match="log_dir"):
        SummaryWriter(str(logdir))
    with pytest.raises(NotADirectoryError, match="log_dir"):
        SummaryWriter(str(logdir / "sub"))


def test_read_only_logdir_on_a_read_only_mount(tmp_path):
    with faults.tmpfs(str(tmp_path / "ro"), read_only=True) as ro:
        for logdir in (ro, os.path.join(ro, "run")):  # existing, and to be created
            with pytest.raises(OSError) as info:
                SummaryWriter(logdir)
            assert info.value.errno == errno.EROFS, info.value
            assert "log_dir" in str(info.value) and logdir in str(info.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes through permission bits; the read-only mount test covers root")
def test_read_only_logdir_by_permissions(tmp_path):
    logdir = tmp_path / "run"
    logdir.mkdir()
    logdir.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="log_dir"):
            SummaryWriter(str(logdir))
    finally:
        logdir.chmod(0o755)


# ---------------------------------------------------------------------------------------- tags


@pytest.mark.parametrize("bad", [None, 3, b"w", ("w",)])
def test_tags_must_be_strings(tmp_path, bad):
    """Issue 16: add_histogram(None, ...) was accepted."""
    logdir = str(tmp_path / "run")
    x = rng.standard_normal(10)
    with SummaryWriter(logdir) as w:
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histogram(bad, x, 0)
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histogram(bad, x, 0, bins=5, layout="v2")
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_scalar(bad, 1.0, 0)
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histograms({"ok": x, bad: x}, 0)
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histograms([("ok", x), (bad, x)], 0, bins=5, layout="v2")
        w.add_histogram("good", x, 1)
    assert faults.summary_steps(logdir) == [(1, "good")]  # the refused calls wrote nothing


def test_empty_and_unencodable_tags(tmp_path):
    x = rng.standard_normal(10)
    with SummaryWriter(str(tmp_path / "run")) as w:
        for bad in ("", "w\ud800"):
            with pytest.raises(ValueError, match="tag"):
                w.add_histogram(bad, x, 0)
            with pytest.raises(ValueError, match="tag"):
                w.add_scalar(bad, 1.0, 0)
            with pytest.raises(ValueError, match="tag"):
                w.add_histograms({bad: x}, 0)


def test_bad_pairs_and_steps(tmp_path):
    x = rng.standard_normal(10)
    with SummaryWriter(str(tmp_path / "run")) as w:
        with pytest.raises(TypeError, match="pairs"):
            w.add_histograms([("a", x, 1)], 0)
        with pytest.raises(TypeError, match="mapping or an iterable"):
            w.add_histograms(5, 0)
        for step in (1.5, "3", True):
            with pytest.raises(TypeError, match="global_step"):
                w.add_histogram("a", x, step)
        with pytest.raises(ValueError, match="int64"):
            w.add_scalar("a", 1.0, 2**63)
        w.add_histogram("a", x, np.int64(7))  # numpy integers are integers
    assert faults.summary_steps(str(tmp_path / "run")) == [(7, "a")]


# ------------------------------------------------------------------------------- process exit

_SYNC_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from histgpu.writer import SummaryWriter
    w = SummaryWriter(sys.argv[1])
    for step in range(3):
        w.add_histogram("w", np.arange(100.0) * step, step)
        w.add_scalar("loss", 1.0 / (step + 1), step)
    if sys.argv[2] == "os._exit":
        os._exit(0)
    print("READY", flush=True)
    time.sleep(60)
    """
)


def _python(script: str, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def _expect_line(proc: subprocess.Popen, line: str) -> None:
    got = proc.stdout.readline().strip()
    if got != line:
        proc.kill()
        out, err = proc.communicate(timeout=GUARD_S)
        raise AssertionError(f"expected {line!r}, got {got!r}\n{out}\n{err}")


@pytest.mark.parametrize("how", ["os._exit", "SIGTERM"])
def test_synchronous_events_survive_the_process(tmp_path, how):
    logdir = str(tmp_path / "run")
    proc = _python(_SYNC_SCRIPT, logdir, how)
    try:
        if how == "SIGTERM":
            _expect_line(proc, "READY")
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == (0 if how == "os._exit" else -signal.SIGTERM), err
    assert faults.summary_steps(logdir) == [(s, t) for s in range(3) for t in ("w", "loss")]


_ASYNC_SIGTERM_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import histgpu
    from histgpu import _cuda_async, _input_device
    from histgpu.writer import SummaryWriter

    logdir, release = sys.argv[1], sys.argv[2]

    class Gpu:
        def __init__(self, values):
            self.values = values

    class Pending:  # the result arrives once the parent has sent SIGTERM (and made `release`)
        def __init__(self, data, k):
            self.data, self.k = data, k
        def result(self):
            deadline = time.monotonic() + 60
            while not os.path.exists(release):
                assert time.monotonic() < deadline, "never released"
                time.sleep(0.01)
            return histgpu.compute(self.data.values, self.k)

    _input_device.is_device_array = lambda x: isinstance(x, Gpu)
    _cuda_async.enqueue_histogram = lambda x, k=None, stream=None: Pending(x, k)
    w = SummaryWriter(logdir)
    w.add_histogram("host", np.arange(10.0), 0, bins=5, layout="v2")
    w.add_histogram("gpu", Gpu(np.linspace(-1.0, 1.0, 1001)), 1, bins=9, layout="v2")
    w.add_histogram("behind", np.arange(10.0), 2, bins=5, layout="v2")  # a host event queued behind it
    print("QUEUED", w._events.pending(), flush=True)
    time.sleep(60)
    print("NOT-TERMINATED", flush=True)
    """
)


def test_sigterm_writes_the_queued_events(tmp_path):
    """Issue 16: with events queued on the asynchronous path, SIGTERM lost them all.

    The queued GPU histogram is released only after the signal was sent, so it is in the file
    only if the handler waited for it; the exit status shows that SIGTERM's default action
    still ended the process."""
    logdir, release = str(tmp_path / "run"), str(tmp_path / "release")
    proc = _python(_ASYNC_SIGTERM_SCRIPT, logdir, release)
    try:
        _expect_line(proc, "QUEUED 2")
        proc.send_signal(signal.SIGTERM)
        open(release, "w").close()
        out, err = proc.communicate(timeout=GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, out + err
    assert "NOT-TERMINATED" not in out
    assert faults.summary_steps(logdir) == [(0, "host"), (1, "gpu"), (2, "behind")]
    [(step, table)] = H.TBReader(logdir).histogram_series(".", "gpu")
    assert step == 1 and np.array_equal(table, histgpu.histogram(np.linspace(-1.0, 1.0, 1001), 9))


_HANDLER_SCRIPT = textwrap.dedent(
    """
    import signal, sys
    import numpy as np
    from histgpu import _cuda_async, _input_device, _sigterm
    from histgpu.writer import SummaryWriter
    import histgpu

    class Gpu:
        pass

    class Ready:
        def result(self):
            return histgpu.compute(np.arange(10.0), 4)

    _input_device.is_device_array = lambda x: isinstance(x, Gpu)
    _cuda_async.enqueue_histogram = lambda x, k=None, stream=None: Ready()

    def name(h):
        return {signal.SIG_DFL: "default", _sigterm._on_sigterm: "histgpu"}.get(h, "user")

    def users_own(signum, frame):
        pass

    for first in ("default", "user"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL if first == "default" else users_own)
        w = SummaryWriter(sys.argv[1] + "/" + first)
        w.add_histogram("host", np.arange(10.0), 0, bins=4, layout="v2")
        seen = [name(signal.getsignal(signal.SIGTERM))]
        w.add_histogram("gpu", Gpu(), 1, bins=4, layout="v2")
        seen.append(name(signal.getsignal(signal.SIGTERM)))
        w.close()
        seen.append(name(signal.getsignal(signal.SIGTERM)))
        print(first, *seen)
    """
)


def test_sigterm_handler_only_while_events_are_queued(tmp_path):
    """The handler is installed with the first queued event, only over SIGTERM's default action
    (never over the user's own handler), and removed when the writer closes."""
    proc = _python(_HANDLER_SCRIPT, str(tmp_path))
    try:
        out, err = proc.communicate(timeout=GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.split("\n")[:2] == ["default default histgpu default", "user user user user"], out + err
