"""``histgpu inspect``: read histogram logs, diagnose training, and show it as pictures.

>>> from histgpu.inspect import inspect_logdir
>>> result = inspect_logdir("logs/histogram_example")          # doctest: +SKIP
>>> for d in result.diagnoses:                                  # doctest: +SKIP
...     print(d.run, d.tag, d.trend_text(), d.problem_text())

Modules: :mod:`.reader` (TensorBoard's event processing, both histogram formats) over
:mod:`.records` (bounded record reading) and :mod:`.payloads` (checked payloads),
:mod:`.patterns` (time-bounded user regexes), :mod:`.stats`
(count/mean/std/quantiles), :mod:`.diagnose` (flags and thresholds), :mod:`.plots` (PNG),
:mod:`.report` (terminal table, JSON, HTML). The command line is :mod:`histgpu.cli`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .diagnose import PROBLEMS, THRESHOLD_DOCS, TRENDS, Diagnosis, Flag, Thresholds, diagnose
from .reader import HistogramSeries, LogdirData, ReadProblem, read_logdir
from .stats import BASIS_POINTS, Buckets, StepStats

__all__ = [
    "inspect_logdir",
    "write_report",
    "InspectResult",
    "Thresholds",
    "THRESHOLD_DOCS",
    "PROBLEMS",
    "TRENDS",
    "Diagnosis",
    "Flag",
    "HistogramSeries",
    "LogdirData",
    "ReadProblem",
    "Buckets",
    "StepStats",
    "BASIS_POINTS",
    "read_logdir",
    "diagnose",
]


@dataclass
class InspectResult:
    """A read logdir and the diagnosis of each of its series (same order)."""

    data: LogdirData
    diagnoses: List[Diagnosis]
    thresholds: Thresholds
    plots: Dict[Tuple[str, str], List[str]] = field(default_factory=dict)

    @property
    def has_problems(self) -> bool:
        return any(d.problems for d in self.diagnoses)


def inspect_logdir(
    logdir: str,
    *,
    tags: Optional[str] = None,
    runs: Optional[str] = None,
    thresholds: Optional[Thresholds] = None,
    progress: Optional[Callable[[str, dict], None]] = None,
) -> InspectResult:
    """Read ``logdir`` and diagnose every histogram series in it.

    Parameters
    ----------
    logdir : str
        TensorBoard logdir.
    tags, runs : str, optional
        Regular expressions selecting tags / runs (``re.search``).
    thresholds : Thresholds, optional
        Diagnosis thresholds (defaults: :data:`THRESHOLD_DOCS`).
    progress : callable, optional
        See :func:`histgpu.inspect.reader.read_logdir`.
    """
    th = thresholds or Thresholds()
    data = read_logdir(logdir, tags=tags, runs=runs, progress=progress)
    diags = [diagnose(s.run, s.tag, s.stats, s.buckets, th) for s in data.series]
    return InspectResult(data, diags, th)


def _stem(run: str, tag: str) -> str:
    """A file-name-safe, collision-free name for a run/tag pair."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{run}__{tag}".strip("./_"))[:80] or "series"
    digest = hashlib.sha1(f"{run}\0{tag}".encode()).hexdigest()[:8]
    return f"{base}_{digest}"


def write_report(
    result: InspectResult,
    out_dir: str,
    *,
    plots: bool = True,
    embed: bool = False,
    progress: Optional[Callable[[str, dict], None]] = None,
) -> Dict[str, str]:
    """Write PNG plots (``plots/``), ``report.json`` and ``index.html`` under ``out_dir``.

    Parameters
    ----------
    result : InspectResult
        From :func:`inspect_logdir`.
    out_dir : str
        Created if missing.
    plots : bool, optional
        Draw the PNG plots (needs matplotlib; skipped with a note when it is absent).
    embed : bool, optional
        Put the plots into the HTML as ``data:`` URIs (one movable file).
    progress : callable, optional
        Called as ``progress("plot", {"index", "total", "run", "tag"})``.

    Returns
    -------
    dict
        Paths: ``html``, ``json``, ``plots`` (directory) and, when plots were skipped,
        ``note`` with the reason.
    """
    from . import plots as _plots
    from .report import write_html, write_json

    os.makedirs(out_dir, exist_ok=True)
    out: Dict[str, str] = {}
    plot_dir = os.path.join(out_dir, "plots")
    if plots and result.diagnoses:
        if _plots.matplotlib_available():
            by_key = {(s.run, s.tag): s for s in result.data.series}
            for i, d in enumerate(result.diagnoses):
                if progress:
                    progress("plot", {"index": i, "total": len(result.diagnoses), "run": d.run, "tag": d.tag})
                series = by_key[(d.run, d.tag)]
                result.plots[(d.run, d.tag)] = _plots.plot_series(
                    d, series.buckets, plot_dir, _stem(d.run, d.tag), result.thresholds
                )
            out["plots"] = plot_dir
        else:
            out["note"] = "matplotlib is not installed: no plots (pip install 'histgpu[inspect]')"
    out["json"] = write_json(result, out_dir)
    out["html"] = write_html(result, out_dir, embed=embed)
    return out
