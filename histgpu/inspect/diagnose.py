"""Flags, with evidence, for one histogram series.

Two kinds of flag:

* **trends** describe how the distribution moves -- ``shifting right``/``shifting left``
  (the mean drifts), ``narrowing`` (converging), ``widening``;
* **problems** call for attention -- ``not learning`` (unchanged from the first to the
  last step), ``vanishing`` (gradients piled up at zero or collapsed),
  ``exploding`` (gradients of huge magnitude or runaway growth; NaN/Inf in any tag).

A tag is a gradient when it matches ``Thresholds.grad_regex`` (default: contains "grad").

Every rule and its default threshold is listed in :data:`THRESHOLD_DOCS`, which the CLI
options and the README table are generated from. "first" and "last" below are medians
over the first and last ``window`` fraction of the logged steps, so one noisy step does
not make a trend.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field, fields
from typing import List, Optional, Sequence

import numpy as np

from .patterns import BoundedRegex
from .stats import Buckets, StepStats, fraction_within

__all__ = ["Thresholds", "Flag", "Diagnosis", "diagnose", "THRESHOLD_DOCS", "PROBLEMS", "TRENDS"]

PROBLEMS = ("exploding", "vanishing", "not learning")
TRENDS = ("shifting right", "shifting left", "narrowing", "widening")


def _t(default, option: str, meaning: str):
    return field(default=default, metadata={"option": option, "help": meaning})


@dataclass
class Thresholds:
    """Adjustable thresholds of :func:`diagnose` (CLI: ``histgpu inspect --help``)."""

    window: float = _t(
        0.2, "--window",
        "fraction of the logged steps whose median is 'first' / 'last' when comparing the start and the end of a run",
    )
    shift_sigma: float = _t(
        0.5, "--shift-sigma",
        "shifting: the mean moved by at least this many standard deviations (the larger of first/last std)",
    )
    width_ratio: float = _t(
        1.5, "--width-ratio",
        "widening / narrowing: the std grew / shrank by at least this factor",
    )
    frozen_tol: float = _t(
        1e-4, "--frozen-tol",
        "not learning: no quantile moved by more than this fraction of the value range between the first "
        "and the last step",
    )
    vanish_abs: float = _t(
        1e-6, "--vanish-abs",
        "vanishing (gradients): values with |x| <= this count as zero",
    )
    vanish_frac: float = _t(
        0.9, "--vanish-frac",
        "vanishing (gradients): at least this fraction of the last step's values is zero (see --vanish-abs)",
    )
    vanish_decay: float = _t(
        1e3, "--vanish-decay",
        "vanishing (gradients): the RMS magnitude fell by at least this factor from first to last",
    )
    explode_abs: float = _t(
        1e3, "--explode-abs",
        "exploding (gradients): some value has |x| >= this at any step",
    )
    explode_growth: float = _t(
        1e2, "--explode-growth",
        "exploding (gradients): the RMS magnitude grew by at least this factor from first to last",
    )
    grad_regex: str = _t(
        r"grad", "--grad-tags",
        "regular expression (case-insensitive) telling gradient tags from weights; the vanishing and "
        "exploding magnitude rules apply to gradients only (NaN/Inf is 'exploding' for every tag)",
    )

    def __post_init__(self) -> None:
        if not 0 < self.window <= 1:
            raise ValueError(f"--window must be in (0, 1], got {self.window}")
        for name in ("width_ratio", "vanish_decay", "explode_growth"):
            if not getattr(self, name) > 1:
                raise ValueError(f"--{name.replace('_', '-')} must be > 1, got {getattr(self, name)}")
        for name in ("shift_sigma", "frozen_tol", "vanish_abs", "vanish_frac", "explode_abs"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        re.compile(self.grad_regex)

    def is_gradient(self, tag: str) -> bool:
        """Whether ``tag`` matches :attr:`grad_regex` (time-bounded: :mod:`.patterns`).

        Raises
        ------
        histgpu.inspect.patterns.RegexTimeoutError
            If the pattern takes too long on ``tag``.
        """
        return _grad_matcher(self.grad_regex).search(tag)


@functools.lru_cache(maxsize=8)
def _grad_matcher(pattern: str) -> BoundedRegex:
    # Cached by pattern (not kept on Thresholds, which stays a plain copyable dataclass).
    return BoundedRegex(pattern, re.IGNORECASE, what="--grad-tags")


# (field name, CLI option, default, meaning): one source for --help and the README.
THRESHOLD_DOCS = [(f.name, f.metadata["option"], f.default, f.metadata["help"]) for f in fields(Thresholds)]


@dataclass
class Flag:
    """One finding: its plain-word ``label`` and the ``evidence`` for it."""

    label: str
    evidence: str
    problem: bool
    step: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.label}: {self.evidence}"


@dataclass
class Diagnosis:
    """Flags of one series plus the summary numbers shown in the report."""

    run: str
    tag: str
    kind: str  # "gradient" or "weights"
    stats: List[StepStats] = field(repr=False)
    trends: List[Flag] = field(default_factory=list)
    problems: List[Flag] = field(default_factory=list)

    @property
    def flags(self) -> List[Flag]:
        return self.problems + self.trends

    @property
    def latest(self) -> Optional[StepStats]:
        """The last step with finite values (else the last step)."""
        valid = [s for s in self.stats if s.valid]
        return valid[-1] if valid else (self.stats[-1] if self.stats else None)

    def trend_text(self) -> str:
        if sum(s.valid for s in self.stats) < 2:
            return "single step" if self.stats else "no data"
        return ", ".join(f.label for f in self.trends) or "stable"

    def problem_text(self) -> str:
        return ", ".join(dict.fromkeys(f.label for f in self.problems)) or "-"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def _steps_text(steps: Sequence[int], limit: int = 5) -> str:
    head = ", ".join(str(s) for s in steps[:limit])
    return head + (f", ... ({len(steps)} steps)" if len(steps) > limit else "")


def diagnose(
    run: str,
    tag: str,
    stats: Sequence[StepStats],
    buckets: Sequence[Buckets],
    thresholds: Optional[Thresholds] = None,
) -> Diagnosis:
    """Trends and problems of one series.

    Parameters
    ----------
    run, tag : str
        Which series.
    stats, buckets : sequence
        Per-step statistics and histograms, in step order (from :mod:`.reader`).
    thresholds : Thresholds, optional
        Defaults as documented in :data:`THRESHOLD_DOCS`.

    Returns
    -------
    Diagnosis
    """
    th = thresholds or Thresholds()
    grad = th.is_gradient(tag)
    d = Diagnosis(run, tag, "gradient" if grad else "weights", list(stats))
    valid = [(s, b) for s, b in zip(stats, buckets) if s.valid]

    _check_nonfinite(d, stats)
    if not valid:
        return d
    if grad:
        # Magnitude rules are for gradients only: some weights are legitimately large
        # (e.g. BatchNorm's moving variance of raw inputs).
        _check_magnitude(d, valid, th)
        _check_vanishing(d, valid, th)
    if len(valid) < 2:
        return d
    w = max(1, int(round(th.window * len(valid))))
    first, last = [s for s, _ in valid[:w]], [s for s, _ in valid[-w:]]
    _check_trends(d, first, last, th)
    if grad:
        _check_growth(d, first, last, th)
    _check_unchanged(d, valid, th)
    return d


def _span(first: Sequence[StepStats], last: Sequence[StepStats]) -> str:
    return f"from step {first[0].step} to {last[-1].step}"


def _check_trends(d: Diagnosis, first: Sequence[StepStats], last: Sequence[StepStats], th: Thresholds) -> None:
    """shifting right/left, widening, narrowing: medians of the first vs the last window."""
    span = _span(first, last)
    mean0, mean1 = _median([s.mean for s in first]), _median([s.mean for s in last])
    std0, std1 = _median([s.std for s in first]), _median([s.std for s in last])
    scale = max(std0, std1)
    drift = mean1 - mean0
    if drift != 0 and (scale == 0 or abs(drift) >= th.shift_sigma * scale):
        sig = f" ({drift / scale:+.2g} std)" if scale > 0 else " (the values were constant)"
        d.trends.append(Flag(
            "shifting right" if drift > 0 else "shifting left",
            f"mean {_g(mean0)} -> {_g(mean1)}{sig} {span} (threshold {th.shift_sigma:g} std)",
            False,
        ))
    if std0 == 0 and std1 > 0:
        d.trends.append(Flag("widening", f"std 0 -> {_g(std1)} {span} (started constant)", False))
    elif std0 > 0:
        ratio = std1 / std0
        if ratio >= th.width_ratio:
            d.trends.append(Flag("widening", f"std {_g(std0)} -> {_g(std1)} (x{ratio:.3g}) {span} "
                                             f"(threshold x{th.width_ratio:g})", False))
        elif ratio <= 1.0 / th.width_ratio:
            d.trends.append(Flag("narrowing", f"std {_g(std0)} -> {_g(std1)} (x{ratio:.3g}) {span} "
                                              f"(threshold x{1 / th.width_ratio:.3g})", False))


def _check_growth(d: Diagnosis, first: Sequence[StepStats], last: Sequence[StepStats], th: Thresholds) -> None:
    """Gradients whose typical magnitude (RMS) ran away (exploding) or collapsed (vanishing)."""
    span = _span(first, last)
    rms0, rms1 = _median([s.rms for s in first]), _median([s.rms for s in last])
    if rms0 <= 0:
        return  # no scale to compare with
    if rms1 / rms0 >= th.explode_growth:
        d.problems.append(Flag("exploding", f"RMS magnitude {_g(rms0)} -> {_g(rms1)} (x{rms1 / rms0:.3g}) {span} "
                                            f"(threshold x{th.explode_growth:g})", True, last[-1].step))
    if rms1 == 0 or rms0 / rms1 >= th.vanish_decay:
        fell = f"x{rms1 / rms0:.3g}" if rms1 > 0 else "to 0"
        d.problems.append(Flag("vanishing", f"RMS magnitude {_g(rms0)} -> {_g(rms1)} ({fell}) {span} "
                                            f"(threshold x{1 / th.vanish_decay:.3g})", True, last[-1].step))


def _check_nonfinite(d: Diagnosis, stats: Sequence[StepStats]) -> None:
    bad = [s for s in stats if s.has_nonfinite]
    if not bad:
        return
    counted = sum(s.nonfinite for s in bad)
    notes = sorted({s.nonfinite_note for s in bad if s.nonfinite_note})
    what = f"{counted} NaN/Inf values left out" if counted else "NaN/Inf values"
    if notes:
        what += ("; " if counted else " (") + "; ".join(notes) + ("" if counted else ")")
    d.problems.append(Flag("exploding", f"{what} at step {_steps_text([s.step for s in bad])}", True, bad[0].step))


def _check_magnitude(d: Diagnosis, valid, th: Thresholds) -> None:
    big = [s for s, _ in valid if s.max_abs >= th.explode_abs]
    if big:
        worst = max(big, key=lambda s: s.max_abs)
        d.problems.append(Flag(
            "exploding",
            f"max |x| = {_g(worst.max_abs)} at step {worst.step}; |x| >= {th.explode_abs:g} at step "
            f"{_steps_text([s.step for s in big])}",
            True,
            big[0].step,
        ))


def _check_vanishing(d: Diagnosis, valid, th: Thresholds) -> None:
    s, b = valid[-1]
    frac = fraction_within(b, -th.vanish_abs, th.vanish_abs)
    if frac >= th.vanish_frac:
        d.problems.append(Flag(
            "vanishing",
            f"{frac:.1%} of values within +-{th.vanish_abs:g} at step {s.step} "
            f"(threshold {th.vanish_frac:.0%}); RMS {_g(s.rms)}",
            True,
            s.step,
        ))


def _check_unchanged(d: Diagnosis, valid, th: Thresholds) -> None:
    (s0, _), (s1, _) = valid[0], valid[-1]
    if s0.step == s1.step:
        return
    range0 = s0.max - s0.min
    scale = range0 if range0 > 0 else max(abs(s0.quantile(5000)), 1e-300)
    moved = float(np.max(np.abs(s1.quantiles - s0.quantiles)))
    if not math.isfinite(moved) or moved > th.frozen_tol * scale:
        return
    shape = ""
    if range0 > 0:
        # A uniform distribution has std = range / sqrt(12) = 0.289 * range.
        flatness = s0.std / range0
        shape = "; flat (uniform-like) shape" if abs(flatness - 1 / math.sqrt(12)) < 0.03 else ""
    evidence = (
        f"unchanged from step {s0.step} to {s1.step}: quantiles moved at most {_g(moved)} "
        f"({moved / scale:.2g} of the range; threshold {th.frozen_tol:g}); std {_g(s1.std)}{shape}"
    )
    d.problems.append(Flag("not learning", evidence, True, s1.step))
