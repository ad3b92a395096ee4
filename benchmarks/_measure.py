"""Measurement primitives shared by every scenario: timing loops, peak memory, load average.

Peak memory (Linux): writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` (the peak
resident set size) to the current resident size, so *extra peak* = ``VmHWM`` after the work
minus ``VmRSS`` just before it. Where the reset is unavailable, the fallback is the
``ru_maxrss`` difference, which under-reports when an earlier peak was higher.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
import os
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple


def _status_kb(fieldname: str) -> Optional[int]:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(fieldname + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def release_memory() -> None:
    """Collect garbage and hand freed heap memory back to the OS (glibc ``malloc_trim``).

    Without it, memory a previous case freed stays in this process's heap and a later case
    reusing it shows no extra peak; with it, every case starts from the same footing.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Extra peak resident memory of this process over a region of code.

    ::

        with PeakMemory() as pm:
            work()
        pm.extra_bytes, pm.method
    """

    def __init__(self) -> None:
        self.extra_bytes: int = 0
        self.method: str = ""
        self._rss0: Optional[int] = None
        self._maxrss0: int = 0

    def __enter__(self) -> "PeakMemory":
        exact = False
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            exact = _status_kb("VmHWM") is not None
        except OSError:
            pass
        self._rss0 = _status_kb("VmRSS") if exact else None
        self._maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: Any) -> None:
        hwm = _status_kb("VmHWM")
        if self._rss0 is not None and hwm is not None:
            extra_kb = hwm - self._rss0
            self.method = "VmHWM reset"
        else:
            extra_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._maxrss0
            self.method = "ru_maxrss delta"
        self.extra_bytes = max(int(extra_kb), 0) * 1024


@dataclass
class Timing:
    """Per-call times of one measured function (seconds)."""

    times: List[float] = field(default_factory=list)
    number: int = 1  # calls per sample (tiny inputs are timed in batches)
    warmup_s: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "median_s": self.median,
            "best_s": self.best,
            "runs": len(self.times),
            "calls_per_run": self.number,
            "warmup_s": self.warmup_s,
            "times": self.times,
        }


def time_calls(
    fn: Callable[[], Any],
    *,
    min_runs: int = 3,
    max_runs: int = 10,
    target_s: float = 0.3,
    min_sample_s: float = 2e-3,
) -> Timing:
    """Time ``fn`` like ``timeit``: one warm-up call, then ``min_runs``..``max_runs`` samples.

    Each sample times ``number`` back-to-back calls, with ``number`` chosen from the warm-up so
    that one sample lasts at least ``min_sample_s`` (so microsecond calls are not lost in timer
    noise); sampling stops once ``min_runs`` samples are in and ``target_s`` has been spent.
    The reported times are per call.
    """
    t0 = time.perf_counter()
    fn()
    warm = time.perf_counter() - t0
    number = 1 if warm >= min_sample_s else max(1, min(10_000, math.ceil(min_sample_s / max(warm, 1e-7))))
    timing = Timing(number=number, warmup_s=warm)
    spent = 0.0
    while len(timing.times) < max_runs and (len(timing.times) < min_runs or spent < target_s):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t
        spent += dt
        timing.times.append(dt / number)
    return timing


def loadavg() -> Optional[Tuple[float, float, float]]:
    """``os.getloadavg()`` rounded, or None where unavailable."""
    try:
        return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]
    except (OSError, AttributeError):
        return None


def usable_cores() -> int:
    """CPU cores this process may run on (affinity-aware)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def mem_available_bytes() -> Optional[int]:
    """``MemAvailable`` from ``/proc/meminfo``, or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
