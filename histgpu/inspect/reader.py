"""Read every histogram series of a TensorBoard logdir with TensorBoard's own reader.

Runs are found with ``io_wrapper.GetLogdirSubdirectories`` and read by
``event_accumulator.EventAccumulator`` -- the stack behind ``tensorboard --logdir``, so
restarts are purged the same way. Both histogram formats are understood:

* v2 ``[k, 3]`` bucket tensors with the ``histograms`` plugin (``tf.summary.histogram``,
  Keras, :mod:`histgpu.summary`, ``histgpu.SummaryWriter(bins=k)``);
* v1 ``HistogramProto`` (``tf.compat.v1.summary.histogram``, PyTorch, tensorboardX,
  ``histgpu.SummaryWriter()``), whose exact ``sum``/``sum_squares`` are kept.

histgpu's companion scalars ``<tag>/nonfinite/{nan,posinf,neginf}`` (see
:mod:`histgpu.summary`) are attached to their histogram as counts of left-out values.

TensorBoard stops reading an event file at a truncated or corrupted record and says so
only in a debug log line; :func:`read_logdir` captures that line (and checks the record
framing itself) so the problem is reported, while the rest of the logdir is read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Pattern, Tuple

import numpy as np

from .stats import Buckets, StepStats, step_stats

__all__ = ["HistogramSeries", "ReadProblem", "LogdirData", "read_logdir", "scan_records", "NONFINITE_RE"]

# histgpu.summary / histgpu.writer companion scalars (histgpu.proto.NONFINITE_SUFFIXES).
NONFINITE_RE: Pattern[str] = re.compile(r"^(?P<stem>.+)/nonfinite/(?P<kind>nan|posinf|neginf)$")


@dataclass
class HistogramSeries:
    """All logged histograms of one run and tag, in step order.

    Attributes
    ----------
    run : str
        Run name (the run directory relative to the logdir; ``"."`` for the logdir itself).
    tag : str
        Summary tag.
    fmt : str
        ``"v2"`` (bucket tensor), ``"v1"`` (``HistogramProto``) or ``"v1+v2"``.
    buckets : list of Buckets
        The histogram at each step.
    stats : list of StepStats
        Statistics at each step (same order).
    """

    run: str
    tag: str
    fmt: str
    buckets: List[Buckets] = field(default_factory=list, repr=False)
    stats: List[StepStats] = field(default_factory=list, repr=False)

    @property
    def steps(self) -> List[int]:
        return [s.step for s in self.stats]


@dataclass
class ReadProblem:
    """Something that could not be read; the rest of the logdir still is."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class LogdirData:
    """What :func:`read_logdir` found."""

    logdir: str
    runs: List[str]
    series: List[HistogramSeries]
    problems: List[ReadProblem]
    event_files: int
    events: int
    seconds: float


ProgressFn = Callable[[str, dict], None]


# --------------------------------------------------------------- record framing


def scan_records(path: str) -> Tuple[int, int, int]:
    """Walk the TFRecord framing of an event file without decoding anything.

    Each record is ``uint64 length, uint32 crc, data[length], uint32 crc``. Only the
    length headers are read, so this is cheap; CRCs are TensorBoard's job.

    Returns
    -------
    tuple of int
        ``(records, end_of_last_complete_record, file_size)``; the last two differ when
        the file ends inside a record (truncated, or still being written).
    """
    size = os.path.getsize(path)
    records = 0
    offset = 0
    with open(path, "rb") as f:
        while offset + 12 <= size:
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + 12 + length + 4
            if end > size:
                break
            offset = end
            records += 1
    return records, offset, size


# ------------------------------------------------------- TensorBoard's accumulator


def _make_accumulator(path: str, keep: Callable[[str], bool], on_event: Callable[[], None]):
    """An ``EventAccumulator`` for ``path`` that keeps only what ``inspect`` needs.

    The overrides only *drop* data (tags not wanted, images, audio, non-histogram tensors)
    and skip TensorBoard's per-histogram compression, which keeps memory and time bounded
    on big logdirs; if a TensorBoard release renames these hooks they simply stop taking
    effect and the full accumulator runs instead.
    """
    from tensorboard.backend.event_processing import event_accumulator as ea

    class _Accumulator(ea.EventAccumulator):
        def _ProcessEvent(self, event):  # noqa: N802 - TensorBoard's name
            on_event()
            super()._ProcessEvent(event)

        def _ProcessHistogram(self, tag, wall_time, step, histo):  # noqa: N802
            if keep(tag):
                popo = self._ConvertHistogramProtoToPopo(histo)
                self.histograms.AddItem(tag, ea.HistogramEvent(wall_time, step, popo))

        def _ProcessTensor(self, tag, wall_time, step, tensor):  # noqa: N802
            md = self.summary_metadata.get(tag)
            plugin = md.plugin_data.plugin_name if md is not None else ""
            if plugin in ("histograms", "scalars") and keep(tag):
                super()._ProcessTensor(tag, wall_time, step, tensor)

        def _ProcessImage(self, *args):  # noqa: N802
            pass

        def _ProcessAudio(self, *args):  # noqa: N802
            pass

    size_guidance = {
        ea.SCALARS: 1,
        ea.HISTOGRAMS: 0,  # 0 = keep every event
        ea.COMPRESSED_HISTOGRAMS: 1,
        ea.IMAGES: 1,
        ea.AUDIO: 1,
        ea.TENSORS: 0,
    }
    return _Accumulator(path, size_guidance=size_guidance, purge_orphaned_data=True)


class _RecordErrors(logging.Filter):
    """Captures TensorBoard's "Truncated record in <file> (<error>)" debug lines.

    TensorBoard swallows the ``DataLossError`` of a bad record and logs it at DEBUG only.
    Other DEBUG lines are dropped here so raising the logger's level prints nothing new.
    """

    def __init__(self, threshold: int):
        super().__init__()
        self.threshold = threshold
        self.errors: Dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Truncated record in") and len(record.args or ()) >= 2:
            self.errors[os.path.normpath(str(record.args[0]))] = str(record.args[1])
            return False
        return record.levelno >= self.threshold


@contextlib.contextmanager
def _capture_record_errors() -> Iterator[_RecordErrors]:
    from tensorboard.util import tb_logging

    logger = tb_logging.get_logger()
    old_level = logger.level
    capture = _RecordErrors(logger.getEffectiveLevel())
    logger.addFilter(capture)
    logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        logger.setLevel(old_level)
        logger.removeFilter(capture)


# ------------------------------------------------------------------------ reading


def _event_files(run_dir: str) -> List[str]:
    from tensorboard.backend.event_processing import io_wrapper

    return sorted(p for p in io_wrapper.ListDirectoryAbsolute(run_dir) if io_wrapper.IsTensorFlowEventsFile(p))


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _check_files(files: List[str], errors: Dict[str, str]) -> List[ReadProblem]:
    """Turn TensorBoard's swallowed record errors, and truncated framing, into messages."""
    problems = []
    last = files[-1] if files else None
    for path in files:
        err = errors.get(os.path.normpath(path), "")
        framing = None
        if os.path.isfile(path):
            try:
                framing = scan_records(path)
            except OSError as e:
                problems.append(ReadProblem(path, f"cannot read: {e}"))
                continue
        truncated = framing is not None and framing[1] != framing[2]
        if not err and not truncated:
            continue
        at = re.search(r"\bat (\d+)", err)
        if err and "corrupt" in err.lower():
            where = f" at byte {at.group(1)}" if at else ""
            msg = f"corrupted record{where} (checksum mismatch)"
        elif truncated:
            records, end, size = framing
            msg = (f"truncated event file: it ends inside a record ({size - end} bytes after the last complete "
                   f"record, which ends at byte {end})")
        else:
            msg = f"unreadable record ({err.strip()})"
        at_start = (at is not None and at.group(1) == "0") or (truncated and framing[1] == 0)
        if at_start:
            msg += "; nothing could be read from this file (is it an event file?)"
        else:
            msg += "; the events before it were read, the rest of this file is skipped"
        if path == last and truncated and "corrupt" not in err.lower():
            msg += " (expected only while a writer is still writing this file)"
        problems.append(ReadProblem(path, msg))
    return problems


def _tensor_array(tensor_proto) -> np.ndarray:
    from tensorboard.util import tensor_util

    return np.asarray(tensor_util.make_ndarray(tensor_proto))


def _plugin_tags(acc, plugin: str) -> Dict[str, bytes]:
    try:
        return dict(acc.PluginTagToContent(plugin))
    except KeyError:  # no summary of that plugin in this run
        return {}


def _series_from_accumulator(run: str, acc) -> List[HistogramSeries]:
    tags = acc.Tags()
    hist_tags = set(tags.get("histograms", []))
    plugin_tags = _plugin_tags(acc, "histograms")
    scalar_tags = _plugin_tags(acc, "scalars")
    tensor_tags = set(tags.get("tensors", []))

    # Non-finite companion scalars: (stem, step) -> count.
    nonfinite: Dict[Tuple[str, int], int] = {}
    for tag in tensor_tags:
        m = NONFINITE_RE.match(tag)
        if not m or tag not in scalar_tags:
            continue
        for ev in acc.Tensors(tag):
            try:
                v = float(_tensor_array(ev.tensor_proto).reshape(-1)[0])
            except (ValueError, IndexError, TypeError):
                continue
            key = (m.group("stem"), ev.step)
            nonfinite[key] = nonfinite.get(key, 0) + (int(v) if np.isfinite(v) else 0)

    points: Dict[str, List[Tuple[int, float, str, Buckets, Optional[dict]]]] = {}
    for tag in hist_tags:
        for ev in acc.Histograms(tag):
            h = ev.histogram_value
            v1 = {"min": h.min, "max": h.max, "num": h.num, "sum": h.sum, "sum_squares": h.sum_squares}
            b = Buckets.from_v1(h.min, h.max, h.bucket_limit, h.bucket)
            points.setdefault(tag, []).append((ev.step, ev.wall_time, "v1", b, v1))
    for tag in tensor_tags:
        if tag not in plugin_tags:
            continue
        for ev in acc.Tensors(tag):
            arr = _tensor_array(ev.tensor_proto)
            if arr.size and (arr.ndim != 2 or arr.shape[1] != 3):
                continue  # not a [k, 3] bucket tensor
            points.setdefault(tag, []).append((ev.step, ev.wall_time, "v2", Buckets.from_table(arr), None))

    out = []
    for tag, pts in points.items():
        pts.sort(key=lambda p: (p[0], p[1]))
        fmts = sorted({p[2] for p in pts})
        series = HistogramSeries(run, tag, "+".join(fmts))
        for step, wall, _, b, v1 in pts:
            series.buckets.append(b)
            series.stats.append(step_stats(step, wall, b, v1=v1, nonfinite=nonfinite.pop((tag, step), 0)))
        out.append(series)
    return out


def _run_name(logdir: str, run_dir: str) -> str:
    rel = os.path.relpath(run_dir, logdir) if not re.match(r"^[a-z0-9]+://", run_dir) else run_dir[len(logdir) :]
    return rel.replace(os.sep, "/").strip("/") or "."


def read_logdir(
    logdir: str,
    *,
    tags: Optional[str] = None,
    runs: Optional[str] = None,
    progress: Optional[ProgressFn] = None,
) -> LogdirData:
    """Read every histogram series under ``logdir``.

    Parameters
    ----------
    logdir : str
        A TensorBoard logdir (a directory of runs, or a run directory itself).
    tags, runs : str, optional
        Regular expressions (``re.search``) selecting tags / run names. A tag's non-finite
        companion scalars follow the tag.
    progress : callable, optional
        Called as ``progress(kind, info)`` with kind ``"start"`` (``runs``, ``files``,
        ``bytes``), ``"run"`` (``index``, ``run``, ``files``, ``bytes``), ``"events"``
        (``run``, ``events``; at most a few times a second) and ``"done"``.

    Returns
    -------
    LogdirData
        Series sorted by run and tag, plus any read problems.

    Raises
    ------
    FileNotFoundError
        If ``logdir`` does not exist.
    """
    from tensorboard.backend.event_processing import io_wrapper

    t0 = time.monotonic()
    notify = progress or (lambda kind, info: None)
    is_remote = bool(re.match(r"^[a-z0-9]+://", logdir))
    if not is_remote and not os.path.isdir(logdir):
        raise FileNotFoundError(f"no such directory: {logdir}")
    tag_re = re.compile(tags) if tags else None
    run_re = re.compile(runs) if runs else None

    def keep(tag: str) -> bool:
        if tag_re is None:
            return True
        m = NONFINITE_RE.match(tag)
        return bool(tag_re.search(tag) or (m and tag_re.search(m.group("stem"))))

    run_dirs = sorted(io_wrapper.GetLogdirSubdirectories(logdir))
    named = [(_run_name(logdir, d), d) for d in run_dirs]
    named = [(n, d) for n, d in named if run_re is None or run_re.search(n)]
    files_by_run = {d: _event_files(d) for _, d in named}
    total_files = sum(len(f) for f in files_by_run.values())
    total_bytes = sum(_file_size(p) for f in files_by_run.values() for p in f)
    notify("start", {"runs": len(named), "files": total_files, "bytes": total_bytes})

    series: List[HistogramSeries] = []
    problems: List[ReadProblem] = []
    events = 0
    for index, (name, run_dir) in enumerate(named):
        files = files_by_run[run_dir]
        notify("run", {"index": index, "runs": len(named), "run": name, "files": len(files),
                       "bytes": sum(_file_size(p) for p in files)})
        counter = {"n": 0, "t": time.monotonic()}

        def on_event(counter=counter, name=name) -> None:
            counter["n"] += 1
            if counter["n"] % 256 == 0 and time.monotonic() - counter["t"] > 0.5:
                counter["t"] = time.monotonic()
                notify("events", {"run": name, "events": counter["n"]})

        with _capture_record_errors() as capture:
            try:
                acc = _make_accumulator(run_dir, keep, on_event)
                acc.Reload()
                series.extend(_series_from_accumulator(name, acc))
            except Exception as e:  # noqa: BLE001 - one bad run must not hide the others
                problems.append(ReadProblem(run_dir, f"could not read this run: {type(e).__name__}: {e}"))
        problems.extend(_check_files(files, capture.errors))
        events += counter["n"]
        notify("events", {"run": name, "events": counter["n"], "final": True})

    series.sort(key=lambda s: (s.run, s.tag))
    data = LogdirData(logdir, [n for n, _ in named], series, problems, total_files, events, time.monotonic() - t0)
    notify("done", {"series": len(series), "events": events, "seconds": data.seconds})
    return data
