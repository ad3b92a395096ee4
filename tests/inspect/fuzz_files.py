"""Hypothesis strategies for hostile event files, and a reference reader to judge them.

:func:`event_files` draws whole files: records whose length field, length checksum and
data checksum are each right or wrong, around payloads that are real events (v2 and v1
histograms, companion scalars, odd tags, steps and wall times, malformed tensors) or
arbitrary bytes, optionally cut short or followed by junk. :func:`reference_read` is a
plain whole-file reader of the format (with TensorBoard's pure-Python CRC-32C) that says
what any correct reader must find in such a file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from . import crafted as C

# Lengths a crafted header may declare: small, around the file, and absurd.
LENGTHS = st.one_of(st.integers(0, 300), st.sampled_from([2**31 - 1, 2**32, 2**33, 2**40, 2**62, 2**63, 2**64 - 1]),
                    st.integers(0, 2**64 - 1))
TAGS = st.one_of(st.sampled_from(["w", "dense/kernel_grad", "cost$\\frac{", "w/nonfinite/nan", "$", "", "a" * 300]),
                 st.text(max_size=20))
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
STEPS = st.integers(-(2**63), 2**63 - 1)
# Bucket counts: all valid (most draws), or anything at all.
COUNTS = st.sampled_from([st.integers(0, 10**6).map(float)] * 3 + [FLOATS])
DTYPES = st.sampled_from([types_pb2.DT_DOUBLE, types_pb2.DT_FLOAT, types_pb2.DT_INT32, types_pb2.DT_INT64,
                          types_pb2.DT_HALF, types_pb2.DT_STRING, types_pb2.DT_BOOL, types_pb2.DT_COMPLEX64, 999])


@st.composite
def tensors(draw) -> tensor_pb2.TensorProto:
    """A tensor proto that may or may not hold what its shape and dtype say."""
    dims = draw(st.lists(st.one_of(st.integers(-2, 12), st.sampled_from([2**20, 2**31, 2**40])), max_size=3))
    t = tensor_pb2.TensorProto(dtype=draw(DTYPES), tensor_shape=C._shape(dims))
    how = draw(st.sampled_from(["content", "double_val", "float_val", "int64_val", "empty"]))
    if how == "content":
        t.tensor_content = draw(st.binary(max_size=400))
    elif how == "double_val":
        t.double_val.extend(draw(st.lists(FLOATS, max_size=40)))
    elif how == "float_val":
        t.float_val.extend(draw(st.lists(st.floats(width=32), max_size=40)))
    elif how == "int64_val":
        t.int64_val.extend(draw(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40)))
    return t


@st.composite
def tables(draw) -> np.ndarray:
    """A ``[k, 3]`` float64 table: edges anything (NaN, Inf, unordered, huge); counts mostly
    valid (so the statistics and flags run on odd histograms), sometimes anything."""
    k = draw(st.integers(0, 12))
    edges = draw(st.lists(FLOATS, min_size=2 * k, max_size=2 * k))
    counts = draw(st.lists(draw(COUNTS), min_size=k, max_size=k))
    t = np.zeros((k, 3))
    if k:
        t[:, :2] = np.array(edges, dtype=np.float64).reshape(k, 2)
        t[:, 2] = counts
    return t


def _event(draw, value: summary_pb2.Summary.Value) -> bytes:
    ev = event_pb2.Event(wall_time=draw(FLOATS), step=draw(STEPS), summary=summary_pb2.Summary(value=[value]))
    return ev.SerializeToString()


@st.composite
def payloads(draw) -> bytes:
    """One record's data: an event of some kind, or bytes that are not an event."""
    from tensorboard.plugins.histogram import metadata as hm
    from tensorboard.plugins.scalar import metadata as sm

    kind = draw(st.sampled_from(["version", "v2", "v2-raw", "v1", "scalar", "metagraph", "bytes"]))
    tag = draw(TAGS)
    if kind == "version":
        return C.version_event()
    if kind == "v2":
        return C.v2_event(tag, draw(tables()), draw(STEPS), wall_time=draw(FLOATS))
    if kind == "v2-raw":
        return _event(draw, summary_pb2.Summary.Value(tag=tag, tensor=draw(tensors()),
                                                      metadata=hm.create_summary_metadata(None, None)))
    if kind == "v1":
        n = draw(st.integers(0, 8))
        histo = summary_pb2.HistogramProto(
            min=draw(FLOATS), max=draw(FLOATS), num=draw(FLOATS), sum=draw(FLOATS), sum_squares=draw(FLOATS),
            bucket_limit=draw(st.lists(FLOATS, min_size=n, max_size=n + draw(st.integers(0, 1)))),
            bucket=draw(st.lists(draw(COUNTS), min_size=n, max_size=n)),
        )
        return _event(draw, summary_pb2.Summary.Value(tag=tag, histo=histo))
    if kind == "scalar":
        return _event(draw, summary_pb2.Summary.Value(tag=tag + "/nonfinite/nan", tensor=draw(tensors()),
                                                      metadata=sm.create_summary_metadata(None, None)))
    if kind == "metagraph":
        return event_pb2.Event(step=draw(STEPS), meta_graph_def=draw(st.binary(max_size=50))).SerializeToString()
    return draw(st.binary(max_size=200))


@st.composite
def records(draw) -> bytes:
    """A record, mostly well framed (so that payloads reach the event processing), else with
    a wrong length (its checksum right), a wrong length checksum or a wrong data checksum."""
    data = draw(payloads())
    fault = draw(st.sampled_from(["none"] * 5 + ["length", "length_crc", "data_crc"]))
    length = draw(LENGTHS) if fault == "length" else None
    length_crc = draw(st.integers(0, 2**32 - 1)) if fault == "length_crc" else None
    data_crc = draw(st.integers(0, 2**32 - 1)) if fault == "data_crc" else None
    return C.record(data, length=length, length_crc=length_crc, data_crc=data_crc)


@st.composite
def event_files(draw) -> bytes:
    """A whole event file: records, maybe cut anywhere, maybe followed by junk."""
    body = b"".join(draw(st.lists(records(), max_size=10)))
    if body and draw(st.sampled_from([False, False, True])):
        body = body[: draw(st.integers(0, len(body)))]
    return body + draw(st.one_of(st.just(b""), st.binary(max_size=30)))


@dataclass
class Reference:
    """What a correct reader finds in a file."""

    records: List[Tuple[int, bytes]]  # (offset, data) of the intact records, in order
    end: int  # end of the last intact record
    fault: Optional[str]  # None, "truncated" or "corrupted"
    events: int  # intact records that parse as an Event
    undecodable: int  # intact records that do not


def reference_read(data: bytes) -> Reference:
    """Read ``data`` as a TFRecord file, whole and in memory (it is small), checking everything."""
    out: List[Tuple[int, bytes]] = []
    off, fault = 0, None
    while off < len(data):
        if len(data) - off < 12:
            fault = "truncated"
            break
        (length,) = struct.unpack_from("<Q", data, off)
        (lcrc,) = struct.unpack_from("<I", data, off + 8)
        if C.masked_crc32c(data[off : off + 8]) != lcrc:
            fault = "corrupted"
            break
        if off + 16 + length > len(data):
            fault = "truncated"
            break
        payload = data[off + 12 : off + 12 + length]
        (dcrc,) = struct.unpack_from("<I", data, off + 12 + length)
        if C.masked_crc32c(payload) != dcrc:
            fault = "corrupted"
            break
        out.append((off, payload))
        off += 16 + length
    events = 0
    for _, payload in out:
        try:
            event_pb2.Event.FromString(payload)
            events += 1
        except Exception:  # noqa: BLE001 - any parse failure makes it "not an event"
            pass
    return Reference(out, off, fault, events, len(out) - events)
