"""The batched paths write exactly what the per-tensor paths write (issue 14).

* histgpu.proto's byte builders against protobuf's own serializers;
* ``SummaryWriter.add_histograms`` against an ``add_histogram`` loop: the one event's bytes
  against an event holding the loop's values (read back from both files, compared as bytes);
* ``histgpu._batch`` (tensors shared out over threads) against one engine call per tensor.

``histgpu.summary.histograms`` and the Keras callback: tests/tensorboard/test_batched_tf.py.
"""

from __future__ import annotations

import glob
import math
import struct
import warnings
from typing import Any, Callable, List

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2

import histgpu
from histgpu import _batch, _cpu, _engine
from histgpu import _input as _in
from histgpu import proto as P
from histgpu.writer import SummaryWriter

from . import faults

rng = np.random.default_rng(14)

# ------------------------------------------------------------------ byte builders


doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 5e-324, -1.0]))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_varint_is_protobufs(n):
    want = event_pb2.Event(step=n).SerializeToString()
    assert (b"\x10" + P.varint(n) if n else b"") == want


@settings(max_examples=300, deadline=None)
@given(doubles, doubles, doubles, doubles, doubles, st.lists(doubles, max_size=5), st.lists(doubles, max_size=5))
def test_histogram_proto_bytes_are_protobufs(mn, mx, num, total, squares, limits, counts):
    proto = summary_pb2.HistogramProto(min=mn, max=mx, num=num, sum=total, sum_squares=squares,
                                       bucket_limit=limits, bucket=counts)
    lb, cb = np.array(limits, "<f8").tobytes(), np.array(counts, "<f8").tobytes()
    assert P.histogram_proto_bytes(mn, mx, num, total, squares, lb, cb) == proto.SerializeToString()


def _torch_layout_oracle(tag: str, r: Any) -> bytes:
    """protobuf's bytes of the Summary holding PyTorch's bins="tensorflow" value of a V1Result."""
    limits = _engine.v1_limits()
    start = int(np.searchsorted(limits, r.stats.min, side="right"))
    end = int(np.searchsorted(limits, r.stats.max, side="right")) + 1
    proto = summary_pb2.HistogramProto(min=r.stats.min, max=r.stats.max, num=float(r.stats.num), sum=r.sum,
                                       sum_squares=r.sum_squares, bucket_limit=limits[start - 1:end].tolist(),
                                       bucket=r.counts[start - 1:end].astype(float).tolist())
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=proto)]).SerializeToString()


finite_doubles = st.floats(min_value=-1e19, max_value=1e19, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(finite_doubles, st.sampled_from([0.0, -0.0, 5e-324, 1e-300, -1e-13]),
                          st.sampled_from([math.nan, math.inf, -math.inf])), min_size=1, max_size=60),
       st.text(min_size=1, max_size=200))
def test_torch_layout_values_are_protobufs(values, tag):
    """The C++ builder of PyTorch-layout values (core/summary_bytes.cpp) against protobuf."""
    r = _engine.cpu_engine(1).v1(_batch.host_views([np.array(values)])[0].engine_view())
    got = _cpu.torch_layout_values([tag], [r])[0]
    if r.stats.num == 0:
        assert got is None  # no finite value: the general path's empty histogram
    else:
        assert got == _torch_layout_oracle(tag, r)


def test_torch_layout_values_leave_the_outer_limits_to_the_general_path():
    e = _engine.cpu_engine(1)
    big = [e.v1(_batch.host_views([np.array(v)])[0].engine_view()) for v in ([1e21, 1.0], [-1e21], [2.0, -3.0])]
    got = _cpu.torch_layout_values(["a", "b", "c"], big)
    assert got[0] is None and got[1] is None and got[2] == _torch_layout_oracle("c", big[2])
    with pytest.raises(ValueError, match="one tag per result"):
        _cpu.torch_layout_values(["a"], big)
    with pytest.raises((TypeError, ValueError)):
        _cpu.torch_layout_values(["a"], [None])


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False), st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
       st.binary(max_size=300))
def test_event_bytes_are_protobufs(wall, step, payload):
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="x", tensor={"string_val": [payload]})])
    event = event_pb2.Event(wall_time=wall, summary=summary)
    if step is not None:
        event.step = step
    serialized = summary.SerializeToString()
    assert P.event_bytes(wall, step, serialized) == event.SerializeToString()
    assert P.event_bytes(wall, step, [serialized[:3], serialized[3:]]) == event.SerializeToString()


def test_empty_summary_event_is_protobufs():
    assert P.event_bytes(0.0, 0, []) == event_pb2.Event(summary=summary_pb2.Summary()).SerializeToString()


@pytest.mark.parametrize("k", [0, 1, 2, 30, 200])
@pytest.mark.parametrize("description", [None, "", "*markdown* é"])
def test_framed_v2_values_are_protobufs(k, description):
    tables = [np.sort(rng.standard_normal((k, 3)), axis=0) for _ in range(4)]
    blob = b"".join(np.ascontiguousarray(t, "<f8").tobytes() for t in tables)
    tags = ["a", "b/c", "é" * 70, "x" * 200]  # tags of one- and two-byte lengths
    got = P.framed_v2_values([t.encode() for t in tags], k, blob, P.histogram_metadata_bytes(description))
    for tag, table, framed in zip(tags, tables, got):
        value = P.histogram_v2_value(tag, table, description)
        assert framed == summary_pb2.Summary(value=[value]).SerializeToString()


def test_nonfinite_summaries_are_one_value_each():
    assert P.nonfinite_summaries("t", 0, 0, 0) == []
    whole = summary_pb2.Summary()
    P.add_nonfinite_values(whole, "t", 2, 0, 1)
    got = P.nonfinite_summaries("t", 2, 0, 1)
    assert [summary_pb2.Summary.FromString(b).value[0] for b in got] == list(whole.value)
    assert b"".join(got) == whole.SerializeToString()


# ------------------------------------------------------------- writer: batch vs loop


def _records(write: Callable[[SummaryWriter], Any], tmp_path, name: str) -> List[bytes]:
    d = tmp_path / name
    n = 0
    while d.exists():  # one directory per call
        n += 1
        d = tmp_path / f"{name}{n}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", histgpu.NonFiniteWarning)
        w = SummaryWriter(str(d))
        try:
            write(w)
        finally:
            w.close()
    (path,) = glob.glob(str(d / "events.out.tfevents.*"))
    return faults.strict_records(path)[1:]  # after the file-version header


def _loop_event(loop: List[bytes], wall: float, step: Any) -> bytes:
    """One event holding every value the per-tensor events hold, in order."""
    values = [v for r in loop for v in event_pb2.Event.FromString(r).summary.value]
    event = event_pb2.Event(wall_time=wall, summary=summary_pb2.Summary(value=values))
    if step is not None:
        event.step = step
    return event.SerializeToString()


def assert_batch_is_loop(tmp_path, pairs, step=7, **kw) -> bytes:
    wall = 1234.5
    loop = _records(lambda w: [w.add_histogram(t, v, step, walltime=wall, **kw) for t, v in pairs], tmp_path, "loop")
    batch = _records(lambda w: w.add_histograms(pairs, step, walltime=wall, **kw), tmp_path, "batch")
    assert len(loop) == len(pairs) and len(batch) == 1
    assert batch[0] == _loop_event(loop, wall, step)
    return batch[0]


def _mixed() -> List[tuple]:
    """Every kind of tensor the batch meets: sizes, dtypes, layouts, special values."""
    bf16 = (rng.standard_normal(5000) * 3).astype(ml_dtypes.bfloat16)
    strided = rng.standard_normal((40, 60)).astype(np.float32)[::3, ::-2]
    values = [
        rng.standard_normal(1000).astype(np.float32),
        (rng.standard_normal((256, 256)) * 0.05).astype(np.float32),  # over the parallel threshold with the rest
        np.zeros(448, np.float32),  # every field of the proto zero but num
        np.ones(448, np.float32),
        np.array([-0.0, -0.0]),  # min = max = -0.0 (written: protobuf tests bits)
        np.array([0.0, -0.0, 1e-300]),
        np.arange(-5, 20, dtype=np.int64),
        np.array([True, False, True]),
        np.full(3, 7, np.uint8),
        bf16,
        rng.standard_normal(100).astype(np.float16),
        strided,
        np.broadcast_to(np.float32(2.5), (50, 50)),
        np.array(3.0),
        [0.5, 1.5, -2.0],
        rng.standard_normal(33) * 1e15,
        np.array([5e-324, -5e-324, 1e-13]),
    ]
    return [(f"layer{i}/w é", v) for i, v in enumerate(values)]


@pytest.mark.parametrize("kw", [{}, {"layout": "v2"}, {"layout": "v2", "bins": 7}, {"layout": "v2", "bins": 1},
                                {"layout": "v2", "bins": 0}, {"max_bins": 16}, {"bins": 12}, {"bins": "auto"},
                                {"bins": [-1.0, 0.0, 0.5, 1.0, 100.0]}])
def test_add_histograms_writes_the_loops_values(tmp_path, kw):
    pairs = _mixed()
    if kw.get("bins") == [-1.0, 0.0, 0.5, 1.0, 100.0]:
        pairs = [(t, v) for t, v in pairs if np.any((np.asarray(v, np.float64) >= -1) & (np.asarray(v, np.float64) <= 100))]
    assert_batch_is_loop(tmp_path, pairs, **kw)


@pytest.mark.parametrize("step", [None, 0, -3, 2**63 - 1])
def test_add_histograms_steps(tmp_path, step):
    assert_batch_is_loop(tmp_path, _mixed()[:3], step=step)
    assert_batch_is_loop(tmp_path, _mixed()[:3], step=step, layout="v2")


@pytest.mark.parametrize("layout", ["torch", "v2"])
def test_add_histograms_nonfinite_companions(tmp_path, layout):
    bad = rng.standard_normal(500).astype(np.float32)
    bad[:4] = np.nan
    bad[4:6] = np.inf
    bad[6] = -np.inf
    pairs = [("a", bad), ("b", np.array([np.nan, np.nan])), ("c", np.ones(5)), ("d", np.array([np.inf, 1.0]))]
    event = event_pb2.Event.FromString(assert_batch_is_loop(tmp_path, pairs, layout=layout))
    tags = [v.tag for v in event.summary.value]
    assert tags[:4] == ["a", "a/nonfinite/nan", "a/nonfinite/posinf", "a/nonfinite/neginf"]
    assert "c/nonfinite/nan" not in tags


def test_add_histograms_one_warning_per_batch(tmp_path):
    bad = np.array([np.nan, 1.0])
    with SummaryWriter(str(tmp_path)) as w:
        with pytest.warns(histgpu.NonFiniteWarning, match="2 NaN") as record:
            w.add_histograms({"a": bad, "b": bad, "c": np.ones(3)}, 1)
    assert len([r for r in record if issubclass(r.category, histgpu.NonFiniteWarning)]) == 1
    assert record[0].filename == __file__  # points at the caller


@pytest.mark.parametrize("layout", ["torch", "v2"])
def test_add_histograms_raise_writes_nothing(tmp_path, layout):
    with SummaryWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError, match="nonfinite='raise'"):
            w.add_histograms({"a": np.ones(3), "b": np.array([1.0, np.inf])}, 1, nonfinite="raise", layout=layout)
        path = w.file_path
    assert not [e for e in faults.strict_events(path) if e.HasField("summary")]


@pytest.mark.parametrize("values, match", [
    (np.zeros(0, np.float32), "no element"),
    (np.array([-1e30, -2e25]), "no value lies inside the bins"),  # below PyTorch's first edge
    (np.array([-1e25, 1e25]), "no value lies inside the bins"),  # on both sides of the edges
])
def test_add_histograms_errors_like_the_loop(tmp_path, values, match):
    pairs = [("ok", np.ones(3)), ("bad", values)]
    with SummaryWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError, match=match):
            w.add_histogram("bad", values, 1)
        with pytest.raises(ValueError, match=match):
            w.add_histograms(pairs, 1)
        path = w.file_path
    assert not [e for e in faults.strict_events(path) if e.HasField("summary")]


def test_add_histograms_values_beyond_the_default_edges(tmp_path):
    # v1's last bucket (>= PyTorch's last edge) and its first: the general path takes them.
    last = float(histgpu.v1_limits()[-2])
    pairs = [("at_last_edge", np.array([1.0, last])), ("beyond", np.array([1.0, 1e300])),
             ("below", np.array([-1e300, 1.0])), ("both", np.array([-1e25, 3.0, 1e25]))]
    assert_batch_is_loop(tmp_path, pairs)


def test_add_histograms_torch_tensors(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 3))
    pairs = list(model.named_parameters()) + [("bf16", torch.randn(300).to(torch.bfloat16)),
                                              ("half", torch.randn(300).half()), ("int", torch.arange(9))]
    assert_batch_is_loop(tmp_path, pairs)
    assert_batch_is_loop(tmp_path, pairs, layout="v2", bins=17)


def test_add_histograms_many_large_tensors(tmp_path, monkeypatch):
    # Tensors counted on every thread (one larger than a fair share), the rest shared out.
    monkeypatch.setenv("HISTGPU_NUM_THREADS", "3")
    pairs = [("big", rng.standard_normal(600_000).astype(np.float32))]
    pairs += [(f"t{i}", (rng.standard_normal(int(rng.integers(1, 20_000))) * i).astype(np.float32)) for i in range(60)]
    assert_batch_is_loop(tmp_path, pairs)
    assert_batch_is_loop(tmp_path, pairs, layout="v2")


# ----------------------------------------------------------------------- _batch


def _same_v2(a, b) -> bool:
    return (np.array_equal(a.edges, b.edges) and np.array_equal(a.counts, b.counts)
            and (a.stats.min, a.stats.max, a.stats.num, a.stats.nan) == (b.stats.min, b.stats.max, b.stats.num,
                                                                         b.stats.nan))


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_batch_results_equal_one_call_per_tensor(threads):
    values = [rng.standard_normal(int(n)).astype(np.float32) for n in rng.integers(1, 300_000, 25)]
    values += [np.array([np.nan, 2.0]), np.zeros(0), rng.standard_normal(2_000_000)]
    views = _batch.host_views(values)
    engine = _engine.engine_for("cpu", None, 1)
    v2 = _batch.v2_results(views, 30, threads)
    v1 = _batch.v1_results(views, threads)
    for view, a, b in zip(views, v2, v1):
        assert _same_v2(a, engine.v2(view.engine_view(), 30))
        one = engine.v1(view.engine_view())
        assert np.array_equal(b.counts, one.counts) and (b.sum, b.sum_squares) == (one.sum, one.sum_squares)


def test_batch_profile_phases(tmp_path):
    _batch.PROFILE = {}
    try:
        with SummaryWriter(str(tmp_path)) as w:
            w.add_histograms({f"t{i}": rng.standard_normal(50_000) for i in range(4)}, 1)
        prof = dict(_batch.PROFILE)
    finally:
        _batch.PROFILE = None
    assert {"input", "compute", "proto", "checksum", "file I/O"} <= set(prof)
    assert all(t >= 0 for t in prof.values())


def test_host_views_keep_their_memory():
    views = _batch.host_views([np.arange(10.0)[::2], [1.0, 2.0]])
    assert [v.size for v in views] == [5, 2]
    assert isinstance(views[0], _in.HostView) and views[0].owner is not None


# ------------------------------------------------------------ the record, by writev


def test_large_records_are_the_same_bytes(tmp_path):
    from tensorboard.summary.writer.record_writer import RecordWriter

    from histgpu._event_file import RecordFile

    payloads = [b"", b"x", bytes(range(256)) * 300, b"y" * (1 << 17)]
    rf = RecordFile(str(tmp_path / "a"))
    for p in payloads:
        rf.write(p)
    rf.close()
    with open(tmp_path / "b", "wb") as f:
        tb = RecordWriter(f)
        for p in payloads:
            tb.write(p)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_large_record_on_a_full_disk_leaves_whole_records(tmp_path, monkeypatch):
    from histgpu._event_file import RecordFile

    disk = faults.FullDisk(monkeypatch, str(tmp_path), capacity=200_000)
    rf = RecordFile(str(tmp_path / "f"))
    rf.write(b"a" * 100_000)
    with pytest.raises(OSError):
        rf.write(b"b" * 150_000)  # a short writev, then ENOSPC
    disk.free(200_000)
    rf.write(b"c" * 70_000)
    rf.close()
    assert faults.strict_records(str(tmp_path / "f")) == [b"a" * 100_000, b"c" * 70_000]


def test_struct_sanity():
    assert struct.pack("<d", -0.0) != bytes(8) and not -0.0 and math.copysign(1, -0.0) < 0


def test_host_views_are_classifys_views():
    torch = pytest.importorskip("torch")
    values = [np.arange(12.0).reshape(3, 4), np.arange(12.0).reshape(3, 4)[:, ::2], np.ones((1, 5, 1), np.float32),
              np.array(2.5), np.zeros(0), np.arange(5, dtype=">i4"), np.broadcast_to(np.ones(3), (4, 3)),
              (rng.standard_normal(7)).astype(ml_dtypes.bfloat16), [1, 2, 3], 4.0, np.array([True, False]),
              torch.arange(6.0).reshape(2, 3), torch.ones(4, dtype=torch.bfloat16),
              torch.nn.Parameter(torch.randn(3, 4)), torch.arange(12.0).reshape(3, 4).t(),
              torch.arange(10, dtype=torch.int16)[2:7], torch.ones(3, dtype=torch.bool), torch.tensor(1.5),
              torch.arange(8.0, dtype=torch.float64).reshape(2, 2, 2)[:, 1]]
    for value, view in zip(values, _batch.host_views(values)):
        want = _in.classify(value)
        fields = ("code", "shape", "strides", "multiplicity", "size")
        assert [getattr(view, f) for f in fields] == [getattr(want, f) for f in fields], value
        if isinstance(value, np.ndarray) and value.dtype.isnative:
            assert view.ptr == want.ptr
        if isinstance(value, torch.Tensor):
            assert view.ptr == want.ptr == value.data_ptr(), value  # in place, storage offset included
            assert histgpu.compute(value).counts.tolist() == histgpu.compute(_in.host_array(value)).counts.tolist()
    with pytest.raises(TypeError):
        _batch.host_views([np.array(["a"])])
