"""histgpu.writer's asynchronous path for GPU tensors (issue 4, item 5), with a fake GPU.

No GPU is needed: ``_input_device.is_device_array`` is patched to recognise :class:`FakeGpu`, and
``_cuda_async.enqueue_histogram(s)`` to return :class:`FakePending` objects whose results
arrive only when the test opens their gate, like a GPU stream still busy with a training step.
Every wait is bounded, so a regression fails instead of hanging.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable, List, Optional

import numpy as np
import pytest

import histgpu
from histgpu import _cuda_async, _input_device
from histgpu.writer import SummaryWriter

from . import faults
from . import tb_helpers as H

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

GUARD_S = 20.0  # upper bound of every wait in these tests
rng = np.random.default_rng(11)


def _data(n: int = 2000) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


class FakeGpu:
    """Stands for a tensor in GPU memory of device `device` (its values are kept on the host)."""

    def __init__(self, values: np.ndarray, device: int = 0):
        self.values = values
        self.device = device

    def __dlpack_device__(self):
        return (2, self.device)  # kDLCUDA


class FakePending:
    """Like ``_cuda_async.Pending``: results (``histgpu.Histogram``) arrive when the gate opens."""

    def __init__(self, tensors: List[np.ndarray], k: int, single: bool, fail: Optional[BaseException] = None,
                 nan: int = 0):
        self.gate = threading.Event()
        self.tensors = tensors
        self.k = k
        self.single = single
        self.fail = fail
        self.nan = nan
        self.reader: Optional[str] = None  # the thread that waited for the result

    def release(self) -> None:
        self.gate.set()

    def done(self) -> bool:
        return self.gate.is_set()

    def result(self) -> Any:
        self.reader = threading.current_thread().name
        if not self.gate.wait(GUARD_S):
            raise TimeoutError("the test never released this fake GPU result")
        if self.fail is not None:
            raise self.fail
        hs = [dataclasses.replace(histgpu.compute(t, self.k), nan=self.nan) for t in self.tensors]
        return hs[0] if self.single else hs


class FakeEngine:
    """Patched-in ``enqueue_histogram(s)``; remembers every Pending in call order."""

    def __init__(self) -> None:
        self.pendings: List[FakePending] = []
        self.batches: List[int] = []  # tensors per enqueue_histograms call
        self.fail: Optional[BaseException] = None
        self.nan = 0

    def enqueue_histogram(self, data: FakeGpu, buckets: Optional[int] = None, *, stream: Any = None) -> FakePending:
        p = FakePending([data.values], buckets, True, self.fail, self.nan)
        self.pendings.append(p)
        return p

    def enqueue_histograms(self, tensors, buckets=None, *, stream: Any = None) -> FakePending:
        tensors = list(tensors)
        assert len({t.device for t in tensors}) == 1, "one batch must live on one GPU"
        self.batches.append(len(tensors))
        p = FakePending([t.values for t in tensors], buckets, False, self.fail, self.nan)
        self.pendings.append(p)
        return p


@pytest.fixture
def gpu(monkeypatch) -> FakeEngine:
    engine = FakeEngine()
    monkeypatch.setattr(_input_device, "is_device_array", lambda x: isinstance(x, FakeGpu))
    monkeypatch.setattr(_cuda_async, "enqueue_histogram", engine.enqueue_histogram)
    monkeypatch.setattr(_cuda_async, "enqueue_histograms", engine.enqueue_histograms)
    yield engine
    for p in engine.pendings:  # never leave a background thread waiting on a closed gate
        p.release()


def written(path: str) -> List[tuple]:
    """``(step, [tags])`` of every summary event in the run, in file order."""
    return [(e.step, [v.tag for v in e.summary.value]) for e in H.read_events(path) if e.HasField("summary")]


def wait_until(predicate: Callable[[], Any], timeout: float = GUARD_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def release_later(pending: FakePending, delay: float) -> threading.Timer:
    t = threading.Timer(delay, pending.release)
    t.daemon = True
    t.start()
    return t


# ----------------------------------------------------------------------------------- tests


def test_add_histogram_returns_before_the_result(tmp_path, gpu):
    path = str(tmp_path / "run")
    x = _data()
    w = SummaryWriter(path)
    before = time.time()
    w.add_histogram("grad", FakeGpu(x), 3, bins=12, layout="v2")  # the gate is closed: this must not wait
    after = time.time()
    (p,) = gpu.pendings
    assert not p.done() and written(path) == []
    p.release()
    wait_until(lambda: written(path))  # written and flushed by the thread, no flush() needed
    assert written(path) == [(3, ["grad"])]
    assert p.reader == "histgpu-writer"
    (event,) = [e for e in H.read_events(path) if e.HasField("summary")]
    assert before <= event.wall_time <= after  # the time of the call, not of the write
    w.close()
    [(step, table)] = H.TBReader(path).histogram_series(".", "grad")
    assert step == 3 and np.array_equal(table, histgpu.histogram(x, 12))


def test_flush_and_close_wait_for_queued_events(tmp_path, gpu):
    path = str(tmp_path / "run")
    x, y = _data(), _data(777)
    w = SummaryWriter(path)
    w.add_histogram("a", FakeGpu(x), 0, bins=5, layout="v2")
    release_later(gpu.pendings[0], 0.2)
    w.flush()
    assert gpu.pendings[0].done() and written(path) == [(0, ["a"])]
    w.add_histograms({"b": FakeGpu(y)}, 1, bins=6, layout="v2")
    release_later(gpu.pendings[1], 0.2)
    w.close()
    assert gpu.pendings[1].done() and written(path) == [(0, ["a"]), (1, ["b"])]
    r = H.TBReader(path)
    assert np.array_equal(r.histogram_series(".", "a")[0][1], histgpu.histogram(x, 5))
    assert np.array_equal(r.histogram_series(".", "b")[0][1], histgpu.histogram(y, 6))


def test_file_order_is_call_order(tmp_path, gpu):
    """Host events queued behind GPU ones, and GPU results arriving out of order, keep call order."""
    path = str(tmp_path / "run")
    xs = [_data(300 + i) for i in range(6)]
    with SummaryWriter(path) as w:
        w.add_histogram("h", xs[0], 0, bins=5, layout="v2")  # nothing queued: written at once
        assert written(path) == [(0, ["h"])]
        w.add_histogram("g", FakeGpu(xs[1]), 1, bins=5, layout="v2")  # A
        w.add_histogram("h", xs[2], 1, bins=5, layout="v2")  # host, behind A
        w.add_scalar("loss", 0.5, 1)
        w.add_histograms({"a": FakeGpu(xs[3]), "b": xs[4]}, 2, bins=7, layout="v2")  # B: GPU and host in one event
        w.add_histogram("v1", xs[5], 2)  # bins="tensorflow", host
        a, b = gpu.pendings
        b.release()  # B finishes first, but must wait for A
        time.sleep(0.2)
        assert written(path) == [(0, ["h"])]
        a.release()
    assert written(path) == [(0, ["h"]), (1, ["g"]), (1, ["h"]), (1, ["loss"]), (2, ["a", "b"]), (2, ["v1"])]
    r = H.TBReader(path)
    assert [s for s, _ in r.histogram_series(".", "h")] == [0, 1]
    for tag, x, k in [("g", xs[1], 5), ("a", xs[3], 7), ("b", xs[4], 7)]:
        assert np.array_equal(r.histogram_series(".", tag)[0][1], histgpu.histogram(x, k)), tag
    (v1,) = [v for e in H.read_events(path) for v in e.summary.value if v.tag == "v1"]
    from histgpu import _torch_layout

    assert v1.histo == _torch_layout.local_proto(xs[5], _torch_layout.parse_bins("tensorflow"), None, "omit")[0]


def test_add_histograms_one_batch_per_gpu(tmp_path, gpu):
    path = str(tmp_path / "run")
    xs = [_data(100 * (i + 1)) for i in range(5)]
    tensors = {"d0/a": FakeGpu(xs[0], 0), "host": xs[1], "d1/b": FakeGpu(xs[2], 1), "d0/c": FakeGpu(xs[3], 0),
               "d1/d": FakeGpu(xs[4], 1)}
    with SummaryWriter(path) as w:
        w.add_histograms(tensors, 4, bins=9, layout="v2")
        assert gpu.batches == [2, 2]
        for p in gpu.pendings:
            p.release()
    assert written(path) == [(4, list(tensors))]
    r = H.TBReader(path)
    for tag, x in zip(tensors, xs):
        assert np.array_equal(r.histogram_series(".", tag)[0][1], histgpu.histogram(x, 9)), tag


def test_queue_bound_blocks(tmp_path, gpu):
    path = str(tmp_path / "run")
    w = SummaryWriter(path, max_queue=2)
    w.add_histogram("g", FakeGpu(_data()), 0, bins=4, layout="v2")
    w.add_histogram("g", FakeGpu(_data()), 1, bins=4, layout="v2")
    third = threading.Thread(target=w.add_histogram, args=("g", FakeGpu(_data()), 2), kwargs={"bins": 4, "layout": "v2"},
                             daemon=True)
    third.start()
    third.join(0.3)
    assert third.is_alive(), "the third add_histogram should block while two events are queued"
    assert len(gpu.pendings) == 3  # it blocks after its enqueue, waiting for room in the queue
    gpu.pendings[0].release()
    third.join(GUARD_S)
    assert not third.is_alive()
    for p in gpu.pendings:
        p.release()
    w.close()
    assert written(path) == [(0, ["g"]), (1, ["g"]), (2, ["g"])]


def test_background_error_surfaces_on_next_call(tmp_path, gpu):
    path = str(tmp_path / "run")
    w = SummaryWriter(path)
    gpu.fail = RuntimeError("device lost")
    w.add_histogram("bad", FakeGpu(_data()), 0, bins=4, layout="v2")
    gpu.fail = None
    gpu.pendings[0].release()
    wait_until(lambda: w._events.pending() == 0)
    with pytest.raises(RuntimeError, match="device lost") as info:
        w.add_histogram("next", _data(), 1, bins=4, layout="v2")
    if sys.version_info >= (3, 11):
        assert any("'bad' at step 0" in n for n in info.value.__notes__)
    w.add_histogram("next", _data(), 2, bins=4, layout="v2")  # reported once; the writer goes on
    w.close()
    assert written(path) == [(2, ["next"])]  # neither the failed event nor the refused call


def test_background_error_surfaces_on_flush_and_close(tmp_path, gpu):
    path = str(tmp_path / "run")
    w = SummaryWriter(path)
    gpu.fail = RuntimeError("copy failed")
    w.add_histogram("bad", FakeGpu(_data()), 0, bins=4, layout="v2")
    release_later(gpu.pendings[-1], 0.1)
    with pytest.raises(RuntimeError, match="copy failed"):
        w.flush()
    w.flush()  # reported once
    w.add_histogram("bad", FakeGpu(_data()), 1, bins=4, layout="v2")
    gpu.fail = None
    w.add_histogram("good", FakeGpu(_data()), 2, bins=4, layout="v2")
    for p in gpu.pendings:
        p.release()
    with pytest.raises(RuntimeError, match="copy failed"):
        w.close()
    with pytest.raises(RuntimeError, match="closed"):  # closed all the same
        w.add_histogram("late", _data(), 3, bins=4, layout="v2")
    w.close()
    assert written(path) == [(2, ["good"])]


def test_nonfinite_on_gpu(tmp_path, gpu):
    path = str(tmp_path / "run")
    x = _data()
    gpu.nan = 3  # the fake GPU reports three NaN left out
    with SummaryWriter(path) as w:
        with pytest.warns(histgpu.NonFiniteWarning):  # issued from the background thread
            w.add_histogram("w", FakeGpu(x), 0, bins=8, layout="v2")
            gpu.pendings[0].release()
            w.flush()
        w.add_histogram("w", FakeGpu(x), 1, bins=8, layout="v2", nonfinite="raise")
        gpu.pendings[1].release()
        with pytest.raises(ValueError, match="nonfinite='raise'"):
            w.flush()
    assert written(path) == [(0, ["w", "w/nonfinite/nan", "w/nonfinite/posinf", "w/nonfinite/neginf"])]
    assert H.TBReader(path).scalar_series(".", "w/nonfinite/nan") == [(0, 3.0)]


def test_host_data_stays_synchronous(tmp_path, gpu):
    path = str(tmp_path / "run")
    threads = threading.active_count()
    with SummaryWriter(path) as w:
        w.add_histogram("a", _data(), 0, bins=3, layout="v2")
        w.add_histograms({"b": _data(), "c": _data()}, 1, bins=3, layout="v2")
        w.add_histogram("d", _data(), 2)
        assert written(path) == [(0, ["a"]), (1, ["b", "c"]), (2, ["d"])]  # on disk before flush()
        assert w._events._thread is None and threading.active_count() == threads
    assert gpu.pendings == []


def test_v1_of_gpu_data_is_computed_in_the_caller(tmp_path, gpu, monkeypatch):
    """PyTorch's layout has no asynchronous kernel path: it is computed before add_* returns."""
    from histgpu import _torch_layout

    readers = []
    local_proto = _torch_layout.local_proto

    def fake_local_proto(values, *args, **kw):
        readers.append(threading.current_thread().name)
        return local_proto(values.values if isinstance(values, FakeGpu) else values, *args, **kw)

    monkeypatch.setattr(_torch_layout, "local_proto", fake_local_proto)
    path = str(tmp_path / "run")
    x = _data()
    with SummaryWriter(path) as w:
        w.add_histogram("v1", FakeGpu(x), 0)
        w.add_histograms({"v1b": FakeGpu(x)}, 1)
        assert readers == [threading.current_thread().name] * 2 and gpu.pendings == []
        assert written(path) == [(0, ["v1"]), (1, ["v1b"])]


def test_max_queue_must_be_positive(tmp_path):
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_queue"):
            SummaryWriter(str(tmp_path / "run"), max_queue=bad)


_EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import histgpu
    from histgpu import _cuda_async, _input_device
    from histgpu.writer import SummaryWriter

    class Gpu:
        def __init__(self, values, fail=False, delay=0.3):
            self.values, self.fail, self.delay = values, fail, delay

    class Pending:  # released later by a daemon timer, which does not keep the interpreter alive
        def __init__(self, data, k):
            self.data, self.k, self.gate = data, k, threading.Event()
            t = threading.Timer(data.delay, self.gate.set)
            t.daemon = True
            t.start()
        def done(self):
            return self.gate.is_set()
        def result(self):
            assert self.gate.wait(20)
            if self.data.fail:
                raise RuntimeError("fake device failure")
            print("RESULT-READY", flush=True)
            return histgpu.compute(self.data.values, self.k)

    _input_device.is_device_array = lambda x: isinstance(x, Gpu)
    _cuda_async.enqueue_histogram = lambda x, k=None, stream=None: Pending(x, k)
    logdir = sys.argv[1]
    x = np.linspace(-1.0, 1.0, 1001)
    kept = SummaryWriter(logdir + "/kept")  # still open at exit: drained by the finaliser
    kept.add_histogram("kept", Gpu(x, delay=2.0), 1, bins=9, layout="v2")  # ready well after MAIN-DONE
    bad = SummaryWriter(logdir + "/bad")
    bad.add_histogram("bad", Gpu(x, fail=True), 1, bins=9, layout="v2")
    dropped = SummaryWriter(logdir + "/dropped")
    dropped.add_histogram("dropped", Gpu(x), 2, bins=9, layout="v2")
    del dropped  # garbage collected: drained and closed right here
    print("MAIN-DONE", flush=True)
    """
)


def test_pending_events_are_written_at_exit(tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    r = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.split()
    # dropped: written before the script went on; kept: only in the drain at exit
    assert lines == ["RESULT-READY", "MAIN-DONE", "RESULT-READY"], r.stdout + r.stderr
    want = histgpu.histogram(np.linspace(-1.0, 1.0, 1001), 9)
    for run, step in (("kept", 1), ("dropped", 2)):
        assert written(str(tmp_path / run)) == [(step, [run])]
        [(s, table)] = H.TBReader(str(tmp_path / run)).histogram_series(".", run)
        assert s == step and np.array_equal(table, want)
    assert written(str(tmp_path / "bad")) == []
    assert "could not be written" in r.stderr and "fake device failure" in r.stderr  # not dropped silently


# ------------------------------------------------- faults on the asynchronous path (issue 16)


def bounded(fn: Callable[[], Any]) -> Any:
    """Run `fn` in a thread; fail the test (instead of hanging it) if it does not end in time.

    Returns what `fn` returned, or the exception it raised."""
    box: List[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(GUARD_S)
    assert not t.is_alive(), f"{fn} did not return within {GUARD_S} s: a wait on the background hangs"
    return box[0]


def _auto_release(gpu: FakeEngine, monkeypatch) -> None:
    """Fake GPU results that are ready at once."""

    def enqueue(data, buckets=None, *, stream=None):
        p = gpu.enqueue_histogram(data, buckets, stream=stream)
        p.release()
        return p

    monkeypatch.setattr(_cuda_async, "enqueue_histogram", enqueue)


def _full_disk_in_the_background(w: SummaryWriter, fill: Callable[[], None], free: Callable[[], None]) -> List[tuple]:
    """Issue 16's hang: the thread died on ENOSPC, then flush() waited forever for the next event.

    Returns the ``(step, tag)`` the file must hold."""
    w.add_histogram("a", FakeGpu(_data()), 0, bins=4, layout="v2")
    assert bounded(w.flush) is None
    want = [(0, "a")]
    fill()
    queued = []
    for step in range(1, 200):  # the filesystem may still take a few small records
        err = bounded(lambda step=step: w.add_histogram("b", FakeGpu(_data()), step, bins=4, layout="v2"))
        if err is not None:  # raised by the call after the event that failed; this one queued nothing
            assert isinstance(err, OSError) and err.errno == errno.ENOSPC, err
            break
        queued.append(step)
        wait_until(lambda: w._events.pending() == 0)
    else:
        raise AssertionError("the disk never filled up")
    want += [(s, "b") for s in queued[:-1]]  # every event before the one that failed
    w.add_histogram("c", FakeGpu(_data()), 500, bins=4, layout="v2")  # queued to a thread that must still be there
    err = bounded(w.flush)
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC, err
    free()
    w.add_histogram("d", FakeGpu(_data()), 501, bins=4, layout="v2")
    assert bounded(w.flush) is None
    assert bounded(w.close) is None
    return want + [(501, "d")]


def test_full_disk_in_the_background_simulated(tmp_path, gpu, monkeypatch):
    path = str(tmp_path / "run")
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=10**9)
    _auto_release(gpu, monkeypatch)
    w = SummaryWriter(path, max_queue=1)
    want = _full_disk_in_the_background(w, disk.fill, lambda: disk.free(10**6))
    assert want == [(0, "a"), (501, "d")]  # the simulated disk takes nothing once full
    assert faults.summary_steps(path) == want


def test_full_disk_in_the_background_on_a_real_tmpfs(tmp_path, gpu, monkeypatch):
    with faults.tmpfs(str(tmp_path / "disk")) as disk:
        path = os.path.join(disk, "run")
        other = os.path.join(disk, "other")
        _auto_release(gpu, monkeypatch)
        w = SummaryWriter(path, max_queue=1)

        def fill() -> None:
            with open(other, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"x" * 4096)
                except OSError as e:
                    assert e.errno == errno.ENOSPC

        want = _full_disk_in_the_background(w, fill, lambda: os.unlink(other))
        assert faults.summary_steps(path) == want


def test_a_blocked_add_ends_when_the_event_fails(tmp_path, gpu, monkeypatch):
    """With max_queue events waiting and the disk full, add_* waits for room, never forever."""
    path = str(tmp_path / "run")
    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=10**9)
    w = SummaryWriter(path, max_queue=1)
    disk.fill()
    w.add_histogram("b", FakeGpu(_data()), 1, bins=4, layout="v2")
    blocked = threading.Thread(target=w.add_histogram, args=("c", FakeGpu(_data()), 2), kwargs={"bins": 4, "layout": "v2"},
                               daemon=True)
    blocked.start()
    wait_until(lambda: len(gpu.pendings) == 2)  # enqueued: it is in put() now, or about to be
    blocked.join(0.3)
    assert blocked.is_alive(), "the second add_histogram should wait for room in the queue"
    gpu.pendings[0].release()  # b fails on the full disk: that makes room
    blocked.join(GUARD_S)
    assert not blocked.is_alive()
    gpu.pendings[1].release()
    err = bounded(w.flush)
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC
    if sys.version_info >= (3, 11):
        assert any("1 later event(s) failed" in n for n in err.__notes__)
    w.close()
    assert faults.summary_steps(path) == []


def test_every_wait_ends_when_the_thread_dies(tmp_path, gpu, monkeypatch):
    """Should the background thread die (a bug), waiting callers get its error, not a hang."""
    from histgpu import _event_file

    gate = threading.Event()

    def dies(self) -> None:
        assert gate.wait(GUARD_S)
        raise MemoryError("injected death of the writer thread")

    monkeypatch.setattr(_event_file.EventQueue, "_write_until_closed", dies)
    path = str(tmp_path / "run")
    w = SummaryWriter(path, max_queue=1)
    w.add_histogram("a", FakeGpu(_data()), 0, bins=4, layout="v2")
    gpu.pendings[0].release()
    box: List[Any] = []
    blocked = threading.Thread(target=lambda: box.append(bounded(
        lambda: w.add_histogram("b", FakeGpu(_data()), 1, bins=4, layout="v2"))), daemon=True)
    blocked.start()
    wait_until(lambda: len(gpu.pendings) == 2)  # enqueued: it is in put() now, or about to be
    blocked.join(0.3)
    assert blocked.is_alive(), "add_histogram should wait for room in the queue"
    gate.set()  # the thread dies now, with one event queued and one caller waiting for room
    blocked.join(GUARD_S)
    assert not blocked.is_alive()
    (err,) = box
    assert isinstance(err, RuntimeError) and "died" in str(err)
    assert isinstance(err.__cause__, MemoryError)
    err = bounded(w.flush)  # the thread's own error, reported once
    assert isinstance(err, MemoryError)
    if sys.version_info >= (3, 11):
        assert any("1 queued event(s) were not written" in n for n in err.__notes__)
    with pytest.raises(RuntimeError, match="died"):
        w.add_histogram("c", _data(), 2, bins=4, layout="v2")
    file = w.file_path
    assert bounded(w.close) is None
    assert not faults.open_in_this_process(file)
    assert faults.summary_steps(path) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() of a process with threads
def test_a_forked_child_cannot_wait_for_the_parents_thread(tmp_path, gpu):
    """A forked child has no background thread: its waits raise instead of hanging, and it
    never writes into the parent's file."""
    path = str(tmp_path / "run")
    w = SummaryWriter(path)
    w.add_histogram("parent", FakeGpu(_data()), 0, bins=4, layout="v2")  # queued; the child inherits it
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 0
        for call in (w.flush, lambda: w.add_histogram("child", _data(), 1, bins=4, layout="v2")):
            try:
                call()
                code |= 1
            except RuntimeError as e:
                code |= 0 if "forked child" in str(e) else 2
            except BaseException:  # noqa: BLE001
                code |= 4
        os._exit(code)
    deadline = time.monotonic() + GUARD_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child hung waiting for the parent's writer thread")
        time.sleep(0.02)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    gpu.pendings[0].release()
    w.close()
    assert written(path) == [(0, ["parent"])]


def test_bad_tag_enqueues_nothing(tmp_path, gpu):
    with SummaryWriter(str(tmp_path / "run")) as w:
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histogram(None, FakeGpu(_data()), 0, bins=4, layout="v2")
        with pytest.raises(TypeError, match="tag must be a str"):
            w.add_histograms({"a": FakeGpu(_data()), None: FakeGpu(_data())}, 0, bins=4, layout="v2")
    assert gpu.pendings == []
