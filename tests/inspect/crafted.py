"""Crafted event files for the reader tests: TFRecord framing and events built by hand.

The checksums come from TensorBoard's own pure-Python CRC-32C (its TensorFlow stub), so
the files do not depend on histgpu's writer or checksum code.
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, Optional, Sequence

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.histogram import metadata as histogram_metadata

FILE_NAME = "events.out.tfevents.1.crafted"


def record(data: bytes, *, length: Optional[int] = None, length_crc: Optional[int] = None,
           data_crc: Optional[int] = None) -> bytes:
    """One TFRecord; every field can be overridden (the length CRC follows a given length)."""
    header = struct.pack("<Q", len(data) if length is None else length)
    lcrc = masked_crc32c(header) if length_crc is None else length_crc
    dcrc = masked_crc32c(data) if data_crc is None else data_crc
    return header + struct.pack("<I", lcrc) + data + struct.pack("<I", dcrc)


def version_event() -> bytes:
    return event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()


def _shape(dims: Sequence[int]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])


def v2_event(tag: str, table: np.ndarray, step: int, *, wall_time: float = 2.0, dims: Optional[Sequence[int]] = None,
             content: Optional[bytes] = None) -> bytes:
    """A v2 histogram event (``histograms`` plugin, float64 ``[k, 3]`` tensor); ``dims`` and
    ``content`` override the shape and the raw bytes, to craft malformed tensors."""
    table = np.asarray(table, dtype=np.float64)
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_DOUBLE,
        tensor_shape=_shape(table.shape if dims is None else dims),
        tensor_content=table.tobytes() if content is None else content,
    )
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor,
                                      metadata=histogram_metadata.create_summary_metadata(None, None))
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value])).SerializeToString()


def table(values: np.ndarray, k: int = 10) -> np.ndarray:
    """A well-formed ``[k, 3]`` table of ``values`` (numpy's edges; only the layout matters)."""
    counts, edges = np.histogram(values, bins=k)
    return np.stack([edges[:-1], edges[1:], counts.astype(np.float64)], axis=1)


def write(run_dir: str, records: Iterable[bytes], name: str = FILE_NAME) -> str:
    os.makedirs(run_dir, exist_ok=True)
    path = os.path.join(run_dir, name)
    with open(path, "wb") as f:
        for r in records:
            f.write(r)
    return path


def good_run(run_dir: str, tag: str = "w", steps: int = 3) -> str:
    """A clean event file of ``steps`` v2 histograms."""
    rng = np.random.default_rng(0)
    evs = [version_event()] + [v2_event(tag, table(rng.normal(0, 1, 200)), s) for s in range(steps)]
    return write(run_dir, [record(e) for e in evs])
