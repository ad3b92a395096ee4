"""Read every histogram series of a TensorBoard logdir with TensorBoard's event processing.

Runs are found with ``io_wrapper.GetLogdirSubdirectories`` and read by
``event_accumulator.EventAccumulator`` -- the stack behind ``tensorboard --logdir``, so
files are taken in the same order and restarts are purged the same way; only the record
reading underneath is histgpu's own (below). Both histogram formats are understood:

* v2 ``[k, 3]`` bucket tensors with the ``histograms`` plugin (``tf.summary.histogram``,
  Keras, :mod:`histgpu.summary`, ``histgpu.SummaryWriter(bins=k)``);
* v1 ``HistogramProto`` (``tf.compat.v1.summary.histogram``, PyTorch, tensorboardX,
  ``histgpu.SummaryWriter()``), whose exact ``sum``/``sum_squares`` are kept.

histgpu's companion scalars ``<tag>/nonfinite/{nan,posinf,neginf}`` (see
:mod:`histgpu.summary`) are attached to their histogram as counts of left-out values.

Nothing in an event file is trusted. Records are read by
:class:`~histgpu.inspect.records.RecordFile`, which checks every length against the bytes
left in the file before reading it (TensorFlow's reader, which TensorBoard uses when
TensorFlow is installed, allocates whatever a header declares: a crafted 42-byte file
killed the process); payloads are converted by :mod:`~histgpu.inspect.payloads`. A
truncated or corrupted record ends that file, a malformed event is skipped; each is
reported as a :class:`ReadProblem`, and the rest of the logdir is read.
"""

from __future__ import annotations

import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Pattern, Tuple

import numpy as np

from .patterns import BoundedRegex, RegexTimeoutError
from .payloads import MalformedPayload, scalar_value, v1_buckets, v2_buckets
from .records import FOOTER_BYTES, HEADER_BYTES, RecordFile
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
    """Walk the TFRecord framing of an event file without decoding or checking anything.

    Each record is ``uint64 length, uint32 crc, data[length], uint32 crc``. Only the
    length headers are read, so this is cheap (:class:`~histgpu.inspect.records.RecordFile`
    is what reads and checks the records).

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
        while offset + HEADER_BYTES <= size:
            f.seek(offset)
            (length,) = struct.unpack("<Q", f.read(8))
            end = offset + HEADER_BYTES + length + FOOTER_BYTES
            if end > size:
                break
            offset = end
            records += 1
    return records, offset, size


class _EventFileLoader:
    """Events of one file for TensorBoard's ``DirectoryWatcher``, read by :class:`RecordFile`.

    It stands in for TensorBoard's ``LegacyEventFileLoader`` (same ``Load`` contract:
    each call yields the events not yielded yet), but never raises on bad input: a
    framing fault stops this file (``records.error``), a record that is not an ``Event``
    proto is counted and skipped (its framing is intact, so the next one is still found),
    and a file that cannot be opened is noted.
    """

    def __init__(self, path: str):
        self.path = path
        self.records = RecordFile(path)
        self.open_error: Optional[str] = None
        self.undecodable = 0
        self.first_undecodable: Optional[Tuple[int, str]] = None

    def Load(self) -> Iterator[object]:  # noqa: N802 - TensorBoard's name
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2

        try:
            for offset, data in self.records:
                try:
                    event = event_pb2.Event.FromString(data)
                except (DecodeError, ValueError, RuntimeError) as e:
                    self.undecodable += 1
                    if self.first_undecodable is None:
                        self.first_undecodable = (offset, str(e) or type(e).__name__)
                    continue
                yield event
        except OSError as e:
            self.open_error = str(e)

    def problems(self, last_file: bool) -> List["ReadProblem"]:
        """What went wrong in this file, in words (empty when it was read cleanly)."""
        out = []
        if self.open_error is not None:
            out.append(ReadProblem(self.path, f"cannot read: {self.open_error}"))
        err = self.records.error
        if err is not None:
            if err.kind == "corrupted":
                msg = f"corrupted record at byte {err.offset} (checksum mismatch: {err.detail})"
            else:
                msg = (f"truncated event file: it ends inside a record ({err.size - err.offset} bytes after the "
                       f"last complete record, which ends at byte {err.offset}; {err.detail})")
            if self.records.records == 0:
                msg += "; nothing could be read from this file (is it an event file?)"
            else:
                msg += "; the events before it were read, the rest of this file is skipped"
            if last_file and err.kind == "truncated":
                msg += " (expected only while a writer is still writing this file)"
            out.append(ReadProblem(self.path, msg))
        if self.undecodable:
            assert self.first_undecodable is not None  # set with the first undecodable record
            offset, why = self.first_undecodable
            out.append(ReadProblem(self.path, f"skipped {self.undecodable} record(s) with valid checksums that are "
                                              f"not TensorBoard events (first at byte {offset}: {why})"))
        return out


class _Skipped:
    """Events skipped because their payload was malformed, counted per tag and reason."""

    def __init__(self) -> None:
        self.by_tag: Dict[Tuple[str, str], List] = {}

    def add(self, tag: str, step: int, why: str) -> None:
        entry = self.by_tag.setdefault((tag, why), [0, step])
        entry[0] += 1

    def problems(self, run_dir: str) -> List["ReadProblem"]:
        out = []
        for (tag, why), (count, step) in sorted(self.by_tag.items()):
            what = f"tag {tag!r}: " if tag else ""
            out.append(ReadProblem(run_dir, f"{what}skipped {count} malformed event(s), first at step {step} ({why}); "
                                            "the other events were read"))
        return out


# ------------------------------------------------------- TensorBoard's accumulator


def _make_accumulator(path: str, keep: Callable[[str], bool], on_event: Callable[[], None],
                      skipped: _Skipped) -> Tuple[Any, Dict[str, _EventFileLoader]]:
    """An ``EventAccumulator`` for ``path`` that keeps only what ``inspect`` needs.

    Its records are read by :class:`_EventFileLoader` (not TensorFlow's reader, which
    trusts length fields), in TensorBoard's order (its ``DirectoryWatcher``). An event
    TensorBoard cannot process is skipped and counted in ``skipped``. The other overrides
    only *drop* data (tags not wanted, images, audio, non-histogram tensors) and skip
    TensorBoard's per-histogram compression, which keeps memory and time bounded on big
    logdirs.

    Returns
    -------
    tuple
        The accumulator and the loaders it created, by event file path.
    """
    from tensorboard.backend.event_processing import directory_watcher, io_wrapper
    from tensorboard.backend.event_processing import event_accumulator as ea

    class _Accumulator(ea.EventAccumulator):
        def _ProcessEvent(self, event):  # noqa: N802 - TensorBoard's name
            on_event()
            try:
                super()._ProcessEvent(event)
            except RegexTimeoutError:
                raise  # the user's pattern, not this event, is at fault
            except Exception as e:  # noqa: BLE001 - one crafted event must not hide the run
                skipped.add("", int(getattr(event, "step", 0)), f"{type(e).__name__}: {e}")

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
    acc = _Accumulator(path, size_guidance=size_guidance, purge_orphaned_data=True)
    loaders: Dict[str, _EventFileLoader] = {}

    def loader(file_path: str) -> _EventFileLoader:
        loaders[file_path] = _EventFileLoader(file_path)
        return loaders[file_path]

    if not hasattr(acc, "_generator"):  # a TensorBoard release that reads differently: refuse, never crash
        raise RuntimeError("this TensorBoard release's EventAccumulator has no _generator to replace")
    acc._generator = directory_watcher.DirectoryWatcher(path, loader, io_wrapper.IsSummaryEventsFile)
    return acc, loaders


# ------------------------------------------------------------------------ reading


def _event_files(run_dir: str) -> List[str]:
    from tensorboard.backend.event_processing import io_wrapper

    return sorted(p for p in io_wrapper.ListDirectoryAbsolute(run_dir) if io_wrapper.IsTensorFlowEventsFile(p))


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _plugin_tags(acc, plugin: str) -> Dict[str, bytes]:
    try:
        return dict(acc.PluginTagToContent(plugin))
    except KeyError:  # no summary of that plugin in this run
        return {}


def _series_from_accumulator(run: str, acc, skipped: _Skipped) -> List[HistogramSeries]:
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
                v = scalar_value(ev.tensor_proto)
            except MalformedPayload as e:
                skipped.add(tag, ev.step, str(e))
                continue
            key = (m.group("stem"), ev.step)
            nonfinite[key] = nonfinite.get(key, 0) + (int(v) if np.isfinite(v) and v > 0 else 0)

    points: Dict[str, List[Tuple[int, float, str, Buckets, Optional[dict]]]] = {}
    for tag in hist_tags:
        for ev in acc.Histograms(tag):
            h = ev.histogram_value
            try:
                b = v1_buckets(h)
            except MalformedPayload as e:
                skipped.add(tag, ev.step, str(e))
                continue
            v1: Optional[dict] = {"min": h.min, "max": h.max, "num": h.num, "sum": h.sum, "sum_squares": h.sum_squares}
            points.setdefault(tag, []).append((ev.step, ev.wall_time, "v1", b, v1))
    for tag in tensor_tags:
        if tag not in plugin_tags:
            continue
        for ev in acc.Tensors(tag):
            try:
                b = v2_buckets(ev.tensor_proto)
            except MalformedPayload as e:
                skipped.add(tag, ev.step, str(e))
                continue
            points.setdefault(tag, []).append((ev.step, ev.wall_time, "v2", b, None))

    out = []
    for tag, pts in points.items():
        # NaN wall times (crafted or broken clocks) sort as 0 so the order is well defined.
        pts.sort(key=lambda p: (p[0], p[1] if p[1] == p[1] else 0.0))
        fmts = sorted({p[2] for p in pts})
        series = HistogramSeries(run, tag, "+".join(fmts))
        for step, wall, _, b, v1_fields in pts:
            with np.errstate(all="ignore"):  # absurd but finite numbers overflow to inf/NaN stats
                stats = step_stats(step, wall, b, v1=v1_fields, nonfinite=nonfinite.pop((tag, step), 0))
            series.buckets.append(b)
            series.stats.append(stats)
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
        companion scalars follow the tag. Matching is time-bounded per string (see
        :mod:`histgpu.inspect.patterns`).
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
    re.error
        If ``tags`` or ``runs`` is not a regular expression.
    histgpu.inspect.patterns.RegexTimeoutError
        If ``tags`` or ``runs`` took more than
        :data:`~histgpu.inspect.patterns.DEFAULT_TIMEOUT_S` seconds on one tag or run name.
    """
    t0 = time.monotonic()
    notify = progress or (lambda kind, info: None)
    is_remote = bool(re.match(r"^[a-z0-9]+://", logdir))
    if not is_remote and not os.path.isdir(logdir):
        raise FileNotFoundError(f"no such directory: {logdir}")
    # User patterns are matched with a time bound (histgpu.inspect.patterns).
    tag_re = BoundedRegex(tags, what="--tags") if tags else None
    run_re = BoundedRegex(runs, what="--runs") if runs else None
    try:
        return _read(logdir, tag_re, run_re, notify, t0)
    finally:
        for rx in (tag_re, run_re):
            if rx is not None:
                rx.close()


def _read(logdir: str, tag_re: Optional[BoundedRegex], run_re: Optional[BoundedRegex], notify: ProgressFn,
          t0: float) -> LogdirData:
    from tensorboard.backend.event_processing import io_wrapper

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
        counter: Dict[str, Any] = {"n": 0, "t": time.monotonic()}

        def on_event(counter=counter, name=name) -> None:
            counter["n"] += 1
            if counter["n"] % 256 == 0 and time.monotonic() - counter["t"] > 0.5:
                counter["t"] = time.monotonic()
                notify("events", {"run": name, "events": counter["n"]})

        skipped = _Skipped()
        loaders: Dict[str, _EventFileLoader] = {}
        try:
            acc, loaders = _make_accumulator(run_dir, keep, on_event, skipped)
            acc.Reload()
            series.extend(_series_from_accumulator(name, acc, skipped))
        except RegexTimeoutError:
            raise  # the user's pattern, not this run, is at fault
        except Exception as e:  # noqa: BLE001 - one bad run must not hide the others
            problems.append(ReadProblem(run_dir, f"could not read this run: {type(e).__name__}: {e}"))
        last = max(loaders) if loaders else None
        for path in sorted(loaders):
            problems.extend(loaders[path].problems(last_file=path == last))
        problems.extend(skipped.problems(run_dir))
        events += counter["n"]
        notify("events", {"run": name, "events": counter["n"], "final": True})

    series.sort(key=lambda s: (s.run, s.tag))
    data = LogdirData(logdir, [n for n, _ in named], series, problems, total_files, events, time.monotonic() - t0)
    notify("done", {"series": len(series), "events": events, "seconds": data.seconds})
    return data
