"""What the training scenarios share: the reference read, histgpu's profile, step summaries.

The goals of issue 14 are ratios against **one threaded read of the same parameters**: ``np.max``
of every tensor, the tensors shared out over one thread per core (bfloat16 tensors are read as
the ``uint16`` they are stored in: numpy has no vectorised bfloat16 ``max``, and a read should
cost what reading the bytes costs). It is measured in the same process, right after each
logging step, on the same memory, so that load and caches treat both alike.

The profile comes from histgpu itself: with ``histgpu._batch.PROFILE`` set, the batched paths
add up the seconds of each phase (input conversion, compute, proto building, checksum, file
I/O, TensorFlow's own writer); what the logging step took beyond them is the framework's
(the callback, Python, TensorFlow's op dispatch).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Sequence

#: (key in histgpu._batch.PROFILE, column name), in the order of a logging step.
PHASES = (
    ("input", "input conversion"),
    ("compute", "compute"),
    ("proto", "proto building"),
    ("checksum", "checksum"),
    ("file I/O", "file I/O"),
    ("TensorFlow writer", "TensorFlow's writer"),
)
FRAMEWORK = "framework"


def usable_cores() -> int:
    from benchmarks._measure import usable_cores as cores

    return max(1, cores())


class Reader:
    """One threaded read of `arrays` (numpy arrays over the parameters' memory); call it to time one.

    The reference read maps ``np.max`` over the tensors on a thread pool (one task per tensor,
    as issue 14 describes it). :meth:`chunked` is a leaner read of the same memory: one task per
    core, each looping over its share of the tensors (balanced by bytes), without the pool's
    per-tensor cost; the pages report the ratios against it too.
    """

    def __init__(self, arrays: Sequence[Any]):
        import ml_dtypes
        import numpy as np

        bf16 = np.dtype(ml_dtypes.bfloat16)
        self.arrays = [a.view(np.uint16) if a.dtype == bf16 else a for a in arrays]
        self.np_max = np.max
        cores = usable_cores()
        self.pool = ThreadPoolExecutor(cores, thread_name_prefix="bench-read")
        shares: List[List[Any]] = [[] for _ in range(cores)]
        loads = [0] * cores
        for a in sorted(self.arrays, key=lambda a: a.nbytes, reverse=True):
            i = loads.index(min(loads))
            shares[i].append(a)
            loads[i] += a.nbytes
        self.shares = [s for s in shares if s]
        self()  # threads started
        self.chunked()

    def __call__(self) -> float:
        t = time.perf_counter()
        list(self.pool.map(self.np_max, self.arrays))
        return time.perf_counter() - t

    def chunked(self) -> float:
        np_max = self.np_max
        t = time.perf_counter()
        list(self.pool.map(lambda share: [np_max(a) for a in share], self.shares))
        return time.perf_counter() - t

    def close(self) -> None:
        self.pool.shutdown()


def torch_arrays(tensors: Sequence[Any]) -> List[Any]:
    """numpy views of CPU torch tensors (bfloat16 as its bytes, viewed through ml_dtypes)."""
    import ml_dtypes
    import torch

    out = []
    for t in tensors:
        t = t.detach()
        out.append(t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy())
    return out


@contextlib.contextmanager
def profiled(on: bool = True) -> Iterator[Dict[str, float]]:
    """``with profiled() as phases:``: histgpu's per-phase seconds of the block (empty when off)."""
    phases: Dict[str, float] = {}
    if not on:
        yield phases
        return
    from histgpu import _batch

    _batch.PROFILE = phases
    try:
        yield phases
    finally:
        _batch.PROFILE = None


def summarize(log_times: List[float], read_times: List[float], phases: List[Dict[str, float]],
              peaks: List[int], train_step_times: List[float], n_params: int, n_tensors: int,
              n_bytes: int, chunked_times: Optional[List[float]] = None) -> Dict[str, Any]:
    """A variant's result: medians over the logging steps after the first (a warm-up)."""
    measured = log_times[1:] or log_times
    reads = read_times[1:] or read_times
    profile = phases[1:] or phases
    train = train_step_times[1:] or train_step_times
    res: Dict[str, Any] = {
        "status": "ok",
        "median_s": statistics.median(measured),
        "best_s": min(measured),
        "times": log_times,
        "warmup_s": log_times[0] if log_times else None,
        "steps_measured": len(measured),
        "extra_peak_bytes": max(peaks) if peaks else 0,  # every step, the first included (pooling allocators)
        "train_step_s": statistics.median(train) if train else None,
        "params": n_params,
        "tensors": n_tensors,
        "bytes": n_bytes,
        "gbps": n_bytes / statistics.median(measured) / 1e9,
    }
    if reads:
        res["read_s"] = statistics.median(reads)
        res["read_times"] = read_times
    chunked = (chunked_times or [])[1:] or (chunked_times or [])
    if chunked:
        res["chunked_read_s"] = statistics.median(chunked)
        res["chunked_read_times"] = chunked_times
    if any(profile):
        keys = sorted({k for p in profile for k in p})
        res["profile_s"] = {k: statistics.median(p.get(k, 0.0) for p in profile) for k in keys}
        total = statistics.median(measured)
        res["profile_s"][FRAMEWORK] = max(0.0, total - sum(res["profile_s"].values()))
    return res


def profile_rows(results: Dict[str, Dict[str, Any]], labels: Dict[str, str]) -> List[List[str]]:
    """Rows of the profile table: one per variant that has a profile, each phase's median time."""
    from benchmarks import _report as rep

    rows = []
    for name, res in results.items():
        prof = res.get("profile_s") if res.get("status") == "ok" else None
        if not prof:
            continue
        cells = [rep.fmt_time(prof[k]) if k in prof else "-" for k, _ in PHASES]
        rows.append([labels[name], *cells, rep.fmt_time(prof.get(FRAMEWORK)), rep.fmt_time(res["median_s"])])
    return rows


PROFILE_HEAD = ["integration", *[label for _, label in PHASES], "framework (the rest)", "logging step"]


def ratio(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    return value / ref if value is not None and ref else None
