"""Hostile event files: crafted lengths, checksums and payloads are reported, never a crash.

The files are built by ``crafted.py`` in each test. Where a regression would kill the
process (an allocation of the declared length), the reader runs in a subprocess.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from histgpu import cli
from histgpu.inspect import inspect_logdir
from histgpu.inspect.records import RecordFile

from . import crafted as C


def _cli_subprocess(*argv: str, timeout: float = 240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "histgpu", "inspect", *argv, "-q"], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _problems(res) -> dict:
    return {p.path: p.message for p in res.data.problems}


# ------------------------------------------------------------ declared lengths


def test_issue_reproducer_42_bytes_declaring_2_pow_40(tmp_path):
    # The issue's file: a header declaring 2**40 bytes with a valid length checksum, then 30 bytes.
    h = struct.pack("<Q", 2**40)
    path = C.write(str(tmp_path / "run"), [h + struct.pack("<I", C.masked_crc32c(h)) + b"abc" * 10],
                   name="events.out.tfevents.1.x")
    assert os.path.getsize(path) == 42
    proc = _cli_subprocess(str(tmp_path))
    assert proc.returncode >= 0, f"killed by {signal.Signals(-proc.returncode).name}: {proc.stderr[-2000:]}"
    assert proc.returncode == 1, proc.stdout + proc.stderr  # no histograms, a reported problem
    assert "Traceback" not in proc.stderr
    assert "events.out.tfevents.1.x: truncated event file" in proc.stdout
    assert "declares 1099511627776 bytes of data, 26 are left" in proc.stdout
    assert "nothing could be read from this file" in proc.stdout


def test_huge_lengths_after_good_records_keep_them(tmp_path):
    lengths = [2**33, 2**40, 2**63, 2**64 - 1, 10**6]
    ends = {}
    for i, length in enumerate(lengths):  # one run per length, read by one subprocess
        good = C.good_run(str(tmp_path / f"run{i}"), steps=4)
        ends[i] = os.path.getsize(good)
        h = struct.pack("<Q", length)
        open(good, "ab").write(h + struct.pack("<I", C.masked_crc32c(h)) + b"\0" * 64)
    proc = _cli_subprocess(str(tmp_path))
    assert proc.returncode == 0, f"rc {proc.returncode}: {proc.stdout}{proc.stderr[-2000:]}"
    for i, length in enumerate(lengths):
        (line,) = [ln for ln in proc.stdout.splitlines() if f"run{i}{os.sep}events" in ln]
        assert f"which ends at byte {ends[i]}; the record declares {length} bytes of data" in line
        assert "the events before it were read" in line
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("run") and " w " in ln]
    assert sorted((r[0], r[2]) for r in rows) == [(f"run{i}", "4") for i in range(len(lengths))]


def test_record_file_does_not_read_a_declared_length(tmp_path):
    h = struct.pack("<Q", 2**62)
    path = C.write(str(tmp_path), [C.record(C.version_event()), h + struct.pack("<I", C.masked_crc32c(h)) + b"x"])
    reads = []

    def opener(p):
        f = open(p, "rb")
        real_read = f.read

        class Spy:
            def read(self, n=-1):
                reads.append(n)
                return real_read(n)

            seek, close = f.seek, f.close

        return Spy(), os.path.getsize(p)

    rf = RecordFile(path, opener=opener)
    assert [off for off, _ in rf] == [0]
    assert rf.error is not None and rf.error.kind == "truncated" and rf.error.offset == rf.offset
    assert max(reads) <= os.path.getsize(path)  # never asked for the declared 2**62 bytes


# --------------------------------------------------------------- checksums


def test_bad_length_and_data_checksums(tmp_path):
    ev = C.version_event()
    bad_len = C.write(str(tmp_path / "len"), [C.record(ev), C.record(ev, length_crc=0)])
    bad_data = C.write(str(tmp_path / "data"), [C.record(ev), C.record(ev), C.record(ev, data_crc=1), C.record(ev)])
    C.good_run(str(tmp_path / "good"))
    res = inspect_logdir(str(tmp_path))
    problems = _problems(res)
    first = len(C.record(ev))
    assert problems[bad_len].startswith(f"corrupted record at byte {first} (checksum mismatch: the checksum of "
                                        "the record length")
    assert problems[bad_data].startswith(f"corrupted record at byte {2 * first} (checksum mismatch: the checksum "
                                         "of the record data")
    assert [(d.run, d.tag) for d in res.diagnoses] == [("good", "w")]


def test_valid_checksums_around_a_non_event_payload(tmp_path):
    rng = np.random.default_rng(1)
    t = C.table(rng.normal(0, 1, 100))
    junk = b"\xff\xff\xff\xff\xff"  # not a protobuf message
    path = C.write(str(tmp_path / "run"), [C.record(C.version_event()), C.record(C.v2_event("w", t, 0)),
                                           C.record(junk), C.record(C.v2_event("w", t, 1))])
    res = inspect_logdir(str(tmp_path))
    assert "skipped 1 record(s) with valid checksums that are not TensorBoard events" in _problems(res)[path]
    assert res.data.series[0].steps == [0, 1]  # the record after the junk is read too


# ------------------------------------------------------------ payloads


def _tensor_value(tag, tensor):
    from tensorboard.plugins.histogram import metadata as hm

    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=hm.create_summary_metadata(None, None))
    return event_pb2.Event(wall_time=3.0, step=7, summary=summary_pb2.Summary(value=[value])).SerializeToString()


def _malformed_events(t):
    shape = C._shape
    return {
        "bytes for a [2, 3] shape": C.v2_event("w", t, 7, dims=[2, 3]),
        "a 1-D tensor": C.v2_event("w", t, 7, dims=[t.size]),
        "a [k, 2] tensor": C.v2_event("w", t, 7, dims=[t.size // 2, 2]),
        "a string tensor": _tensor_value("w", tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING,
                                                                     tensor_shape=shape([1, 3]),
                                                                     string_val=[b"1", b"2", b"3"])),
        # One stored value "filled" over a shape: TensorBoard's make_ndarray allocates the whole
        # shape (2**31 rows would be 48 GiB); past MAX_FILLED_ELEMENTS it is refused.
        "a filled 2**20 x 3 shape": _tensor_value("w", tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE,
                                                                              tensor_shape=shape([2**20, 3]),
                                                                              double_val=[1.0])),
        "an unknown dimension": _tensor_value("w", tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE,
                                                                          tensor_shape=shape([-1, 3]),
                                                                          double_val=[1.0, 2.0, 3.0])),
        "negative counts": C.v2_event("w", np.array([[0.0, 1.0, -5.0], [1.0, 2.0, 3.0]]), 7),
        "NaN counts": C.v2_event("w", np.array([[0.0, 1.0, np.nan], [1.0, 2.0, 3.0]]), 7),
    }


@pytest.mark.parametrize("case", list(_malformed_events(np.zeros((10, 3)))))
def test_one_malformed_v2_tensor_is_skipped_with_a_warning(tmp_path, case):
    rng = np.random.default_rng(2)
    t = C.table(rng.normal(0, 1, 300))
    bad = _malformed_events(t)[case]
    events = [C.version_event()] + [C.v2_event("w", t, s) for s in range(3)] + [bad]
    events += [C.v2_event("w", t, s) for s in range(8, 10)]
    C.write(str(tmp_path / "run"), [C.record(e) for e in events])
    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(["inspect", str(tmp_path), "-q"], stdout=out, stderr=err)
    assert rc == 0, out.getvalue() + err.getvalue()
    text = out.getvalue()
    assert "could not read this run" not in text
    assert "tag 'w': skipped 1 malformed event(s), first at step 7" in text
    assert "the other events were read" in text
    res = inspect_logdir(str(tmp_path))
    assert res.data.series[0].steps == [0, 1, 2, 8, 9]


def test_malformed_v1_histogram_is_skipped(tmp_path):
    good = summary_pb2.HistogramProto(min=0, max=2, num=3, sum=3, sum_squares=5, bucket_limit=[1, 2], bucket=[1, 2])
    bad = summary_pb2.HistogramProto(min=0, max=2, num=3, sum=3, sum_squares=5, bucket_limit=[1, 2, 3], bucket=[3])

    def ev(h, step):
        return event_pb2.Event(step=step, wall_time=1.0,
                               summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="v1", histo=h)]))

    C.write(str(tmp_path / "run"), [C.record(C.version_event())] +
            [C.record(ev(h, s).SerializeToString()) for s, h in enumerate([good, bad, good])])
    res = inspect_logdir(str(tmp_path))
    assert res.data.series[0].steps == [0, 2]
    (msg,) = _problems(res).values()
    assert "tag 'v1': skipped 1 malformed event(s), first at step 1 (v1 histogram with 3 bucket limits and 1 counts)" in msg


def test_event_tensorboard_cannot_process_is_skipped(tmp_path):
    rng = np.random.default_rng(3)
    t = C.table(rng.normal(0, 1, 100))
    # TensorBoard parses a meta_graph_def itself; an undecodable one raised out of Reload().
    broken = event_pb2.Event(wall_time=1.0, step=1, meta_graph_def=b"\xff\xff\xff").SerializeToString()
    C.write(str(tmp_path / "run"), [C.record(e) for e in (C.version_event(), C.v2_event("w", t, 0), broken,
                                                          C.v2_event("w", t, 2))])
    res = inspect_logdir(str(tmp_path))
    assert res.data.series[0].steps == [0, 2]
    (msg,) = _problems(res).values()
    assert "skipped 1 malformed event(s), first at step 1 (DecodeError" in msg
