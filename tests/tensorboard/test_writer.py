"""histgpu.writer.SummaryWriter: TensorFlow-free, PyTorch-shaped, TensorFlow-identical content."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from histgpu.writer import SummaryWriter

from . import tb_helpers as H

pytestmark = pytest.mark.filterwarnings("ignore:html5lib's sanitizer is deprecated:DeprecationWarning")

rng = np.random.default_rng(7)
X = rng.standard_normal(5000).astype(np.float32)


def test_no_tensorflow_import(tmp_path):
    """Importing and using the writer (both formats) never imports TensorFlow."""
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from histgpu.writer import SummaryWriter
        with SummaryWriter({str(tmp_path / "run")!r}) as w:
            w.add_histogram("v1", np.arange(100.0), global_step=0)
            w.add_histogram("v2", np.arange(100.0), global_step=0, bins=10, layout="v2")
            w.add_histograms({{"a": np.ones(3), "b": np.arange(4)}}, global_step=1)
            w.add_scalar("s", 1.0, global_step=1)
        bad = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
        print("TF-MODULES", bad)
        sys.exit(1 if bad else 0)
        """
    )
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TF-MODULES []" in r.stdout


def _values(path):
    return H.summary_values(path)


def test_v2_value_identical_to_tf_summary_histogram(tmp_path):
    tf = pytest.importorskip("tensorflow")
    cases = [(X, 30), (X, 1), (X, 0), (np.arange(10, dtype=np.int64), 4), (np.zeros(0), 5), (np.full(9, 2.0), 3)]
    with SummaryWriter(str(tmp_path / "mine")) as w:
        for i, (data, k) in enumerate(cases):
            w.add_histogram(f"h{i}", data, global_step=i, bins=k, layout="v2")
    ref = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with ref.as_default():
        for i, (data, k) in enumerate(cases):
            tf.summary.histogram(f"h{i}", data, step=i, buckets=k)
    ref.close()
    got, want = _values(str(tmp_path / "mine")), _values(str(tmp_path / "tf"))
    assert [(s, H.comparable(v)) for s, v in got] == [(s, H.comparable(v)) for s, v in want]


def test_v1_proto_matches_tf_op():
    """TensorFlow's collapsed v1 layout lives on in histgpu.histogram_proto (the writer's default
    is PyTorch's layout now: tests/tensorboard/test_torch_writer.py)."""
    pytest.importorskip("tensorflow")
    from histgpu.proto import histogram_proto

    data = {"normal": X, "ints": np.arange(-50, 50), "empty": np.zeros(0), "one": np.array([1e-5])}
    for values in data.values():
        want = H.tf_v1_histo(values)
        h = histogram_proto(values)
        assert list(h.bucket_limit) == list(want.bucket_limit) and list(h.bucket) == list(want.bucket)
        assert (h.min, h.max, h.num) == (want.min, want.max, want.num)
        assert h.sum == H.exact_sum(values) and h.sum_squares == H.exact_sum_squares(values)


def test_add_histograms_one_event_and_walltime(tmp_path):
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w:
        w.add_histograms({"a": X, "b": X[:10]}, global_step=3, walltime=1234.5)
        w.add_histograms([("c", X), ("d", np.arange(5))], global_step=4, bins=8, layout="v2")
        w.add_histograms({}, global_step=5)  # nothing to write
    events = [e for e in H.read_events(path) if e.HasField("summary")]
    assert [(e.step, [v.tag for v in e.summary.value]) for e in events] == [(3, ["a", "b"]), (4, ["c", "d"])]
    assert events[0].wall_time == 1234.5
    assert events[0].summary.value[0].HasField("histo") and events[1].summary.value[0].HasField("tensor")


def test_default_walltime_and_header(tmp_path):
    path = str(tmp_path / "run")
    before = time.time()
    with SummaryWriter(path, filename_suffix=".histgpu") as w:
        w.add_histogram("a", X, 0)
        assert w.get_logdir() == path and w.file_path.endswith(".histgpu")
    events = H.read_events(path)
    assert events[0].file_version == "brain.Event:2"
    assert before <= events[1].wall_time <= time.time()


def test_nonfinite_companions(tmp_path):
    import histgpu

    bad = X.copy()
    bad[:4] = np.nan
    bad[4:6] = -np.inf
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w, pytest.warns(histgpu.NonFiniteWarning):
        w.add_histogram("w", bad, 1, bins=12, layout="v2")
    [(_, h), *companions] = _values(path)
    finite = bad[np.isfinite(bad)]
    assert np.array_equal(H.TBReader(path).histogram_series(".", "w")[0][1], histgpu.histogram(finite, 12))
    assert [(v.tag, v.tensor.tensor_content) for _, v in companions] == [
        ("w/nonfinite/nan", np.float32(4).tobytes()),
        ("w/nonfinite/posinf", np.float32(0).tobytes()),
        ("w/nonfinite/neginf", np.float32(2).tobytes()),
    ]
    with SummaryWriter(str(tmp_path / "r2")) as w, pytest.raises(ValueError):
        w.add_histogram("w", bad, 1, nonfinite="raise")


def test_errors_and_close(tmp_path):
    w = SummaryWriter(str(tmp_path / "run"))
    with pytest.raises(ValueError, match="bins"):
        w.add_histogram("a", X, 0, bins="nope")
    with pytest.raises(ValueError, match="max_bins"):
        w.add_histogram("a", X, 0, max_bins=0)
    with pytest.raises(ValueError, match="max_bins"):
        w.add_histogram("a", X, 0, bins=10, max_bins=3, layout="v2")
    with pytest.raises(ValueError, match="layout"):
        w.add_histogram("a", X, 0, layout="v1")
    with pytest.raises(TypeError):
        w.add_histogram("a", X, 0, bins=True)
    w.close()
    w.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        w.add_histogram("a", X, 0)


def test_default_logdir_and_purge_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SummaryWriter(comment="_exp", purge_step=17) as w:
        logdir = w.get_logdir()
    assert logdir.startswith("runs" + os.sep) and logdir.endswith("_exp")
    events = H.read_events(str(tmp_path / logdir))
    starts = [e for e in events if e.HasField("session_log")]
    assert len(starts) == 1 and starts[0].step == 17


def test_reads_back_through_tensorboard(tmp_path):
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w:
        for step in range(3):
            w.add_histogram("v2", X * (step + 1), step, bins=10, layout="v2")
    reader = H.TBReader(path)
    series = reader.histogram_series(".", "v2")
    import histgpu

    assert [s for s, _ in series] == [0, 1, 2]
    for step, table in series:
        assert np.array_equal(table, histgpu.histogram(X * (step + 1), 10))


def test_torch_tensors(tmp_path):
    import torch

    t = torch.randn(1000)
    path = str(tmp_path / "run")
    with SummaryWriter(path) as w:
        w.add_histogram("t", t, 0, bins=30, layout="v2")
    import histgpu

    assert np.array_equal(H.TBReader(path).histogram_series(".", "t")[0][1], histgpu.histogram(t.numpy(), 30))


def test_record_framing_is_tensorboards(tmp_path):
    """histgpu frames records itself (the checksum in C++); the bytes must be exactly those of
    TensorBoard's own RecordWriter, whose readers check the CRC-32C of every record."""
    import io
    import os

    from tensorboard.summary.writer.record_writer import RecordWriter

    from histgpu._event_file import RecordFile

    payloads = [b"", b"x", os.urandom(7), os.urandom(8), os.urandom(100_003)]
    ours = tmp_path / "ours"
    f = RecordFile(str(ours))
    for p in payloads:
        f.write(p)
    f.close()
    theirs = io.BytesIO()
    w = RecordWriter(theirs)
    for p in payloads:
        w.write(p)
    assert ours.read_bytes() == theirs.getvalue()
