"""PNG plots of one histogram series (matplotlib, Agg canvas; no pyplot global state).

* **ridge** -- TensorBoard's Histograms dashboard in "offset" mode: one density curve per
  logged step, older steps further back (higher), the newest in front;
* **bands** -- TensorBoard's Distributions dashboard: shaded bands between the quantiles
  of :data:`~histgpu.inspect.stats.BASIS_POINTS` over steps, the median and the mean; under
  it, the std and the largest magnitude on a log scale, where vanishing and exploding show.
  Steps with NaN/Inf values are marked in red.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np

from .diagnose import Diagnosis, Thresholds
from .stats import Buckets

__all__ = ["plot_series", "ridge_figure", "bands_figure", "rebin", "PLAIN_TEXT"]

_DPI = 100

# Run and tag names are drawn as they are: "$" would otherwise start matplotlib mathtext
# (a tag like "cost$\frac{" failed to draw) and a user's text.usetex would send them to LaTeX.
PLAIN_TEXT = {"parse_math": False, "usetex": False}


def _figure(width: float, height: float, **margins: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Fixed margins: constrained layout would double the drawing time of each plot.
    fig = Figure(figsize=(width, height), dpi=_DPI)
    fig.subplots_adjust(**{"left": 0.11, "right": 0.98, "top": 0.89, "bottom": 0.1, **margins})
    FigureCanvasAgg(fig)
    return fig


def _title(d: Diagnosis) -> str:
    flags = d.problem_text()
    run = "" if d.run == "." else f"{d.run} / "
    return f"{run}{d.tag}" + (f"   [{flags}]" if flags != "-" else "")


def rebin(b: Buckets, edges: np.ndarray) -> np.ndarray:
    """Counts of ``b`` on the bins ``edges`` (uniform inside each bucket).

    The Histograms dashboard re-bins every histogram onto one uniform grid the same way,
    which is what makes v1 histograms (exponential bucket widths) readable.
    """
    b = b.nonempty()
    if b.counts.size == 0:
        return np.zeros(edges.size - 1)
    width = (b.right - b.left)[:, None]
    x = edges[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(width > 0, np.clip((x - b.left[:, None]) / np.where(width > 0, width, 1.0), 0.0, 1.0),
                         (x >= b.left[:, None]).astype(np.float64))
    cdf = b.counts @ share
    cdf[-1] = b.total  # the last edge is the maximum: everything is at or below it
    return np.diff(cdf)


def _pick(n: int, limit: int) -> List[int]:
    if n <= limit:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


def ridge_figure(d: Diagnosis, buckets: Sequence[Buckets], max_lines: int = 40, bins: int = 60):
    """The offset ("ridge") view of a series; returns a matplotlib ``Figure``."""
    from matplotlib import colormaps

    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot()
    items = [(s, b) for s, b in zip(d.stats, buckets) if s.valid and b.edges_finite() and b.total > 0]
    ax.set_title(_title(d) + "\nhistograms over steps (offset view)", fontsize=9, **PLAIN_TEXT)
    if not items:
        ax.text(0.5, 0.5, "no finite values to draw", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    items = [items[i] for i in _pick(len(items), max_lines)]
    lo = min(float(b.nonempty().left[0]) for _, b in items)
    hi = max(float(b.nonempty().right[-1]) for _, b in items)
    if hi <= lo:  # every value of every step is equal
        lo, hi = lo - max(abs(lo), 1.0) * 0.5, hi + max(abs(hi), 1.0) * 0.5
    span = hi - lo
    edges = np.linspace(lo, hi, bins + 1)
    centers = 0.5 * (edges[:-1] + edges[1:])
    xs = np.concatenate([[lo], centers, [hi]])
    dens = [rebin(b, edges) / b.total for _, b in items]  # fraction of the values per bin
    peaks = np.array([d.max() for d in dens])
    # One height scale for all steps (like TensorBoard), set by the typical peak so that
    # one spike (e.g. gradients collapsing to zero) does not flatten every other step.
    ref = float(np.percentile(peaks, 75)) or 1.0
    spacing = 1.0
    scale = 2.5 * spacing / ref
    cmap = colormaps["Oranges"]
    n = len(items)
    for j, ((s, _), density) in enumerate(zip(items, dens)):
        base = (n - 1 - j) * spacing  # oldest at the top (back), newest at the bottom (front)
        ys = base + np.minimum(np.concatenate([[0.0], density, [0.0]]) * scale, 4.0 * spacing)
        color = cmap(0.3 + 0.65 * (j / max(n - 1, 1)))
        ax.fill_between(xs, base, ys, color="white", zorder=3 * j, linewidth=0)
        ax.fill_between(xs, base, ys, color=color, alpha=0.25, zorder=3 * j + 1, linewidth=0)
        ax.plot(xs, ys, color=color, linewidth=1.1, zorder=3 * j + 2)
        if s.has_nonfinite:
            ax.plot([lo], [base], marker="x", color="red", zorder=3 * n + 1)
    ticks = _pick(n, 8)
    ax.set_yticks([(n - 1 - j) * spacing for j in ticks], [str(items[j][0].step) for j in ticks])
    ax.set_ylabel("step")
    ax.set_xlabel("value")
    ax.set_xlim(lo - 0.02 * span, hi + 0.02 * span)
    ax.set_ylim(-0.3 * spacing, (n - 1) * spacing + 4.3 * spacing)
    ax.grid(axis="x", alpha=0.3)
    return fig


def bands_figure(d: Diagnosis, thresholds: Thresholds):
    """Quantile bands over steps (TensorBoard's Distributions view) plus a log-scale magnitude panel."""
    fig = _figure(7.5, 5.6, top=0.9, bottom=0.09, hspace=0.08)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    top.set_title(_title(d) + "\nquantiles over steps (distribution view)", fontsize=9, **PLAIN_TEXT)
    valid = [s for s in d.stats if s.valid]
    bad = [s.step for s in d.stats if s.has_nonfinite]
    if valid:
        steps = np.array([s.step for s in valid], dtype=np.float64)
        q = np.array([s.quantiles for s in valid])  # columns follow BASIS_POINTS
        n_q = q.shape[1]
        for i in range(n_q // 2):
            alpha = 0.15 + 0.17 * i
            top.fill_between(steps, q[:, i], q[:, n_q - 1 - i], color="tab:orange", alpha=alpha, linewidth=0,
                             label="min-max, +-1.5, +-1, +-0.5 std quantiles" if i == 0 else None)
        top.plot(steps, q[:, n_q // 2], color="saddlebrown", linewidth=1.5, label="median")
        top.plot(steps, [s.mean for s in valid], color="black", linestyle="--", linewidth=1, label="mean")
        top.legend(fontsize=7, loc="best")
        std = np.array([s.std for s in valid])
        mag = np.array([s.max_abs for s in valid])
        for ys, label, color in ((std, "std", "tab:blue"), (mag, "max |x|", "tab:purple")):
            pos = ys > 0
            if pos.any():
                bottom.semilogy(steps[pos], ys[pos], marker=".", label=label, color=color)
        if (std > 0).any() or (mag > 0).any():
            lo_y, hi_y = bottom.get_ylim()
            if d.kind == "gradient" and lo_y <= thresholds.explode_abs <= hi_y * 10:
                bottom.axhline(thresholds.explode_abs, color="red", linestyle=":", linewidth=1, label="--explode-abs")
            if d.kind == "gradient" and lo_y / 10 <= thresholds.vanish_abs <= hi_y:
                bottom.axhline(thresholds.vanish_abs, color="gray", linestyle=":", linewidth=1, label="--vanish-abs")
            bottom.legend(fontsize=7, loc="best")
        else:
            bottom.text(0.5, 0.5, "all values are zero", ha="center", va="center", transform=bottom.transAxes)
    else:
        top.text(0.5, 0.5, "no finite values to draw", ha="center", va="center", transform=top.transAxes)
    for step in bad:
        for ax in (top, bottom):
            ax.axvline(step, color="red", alpha=0.5, linewidth=1)
    if bad:
        top.text(0.01, 0.98, f"red: NaN/Inf at {len(bad)} step(s)", color="red", fontsize=7,
                 transform=top.transAxes, va="top")
    top.set_ylabel("value")
    bottom.set_ylabel("magnitude (log)")
    bottom.set_xlabel("step")
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3, which="both")
    return fig


def plot_series(d: Diagnosis, buckets: Sequence[Buckets], out_dir: str, stem: str, thresholds: Thresholds) -> List[str]:
    """Write ``<stem>_ridge.png`` and ``<stem>_bands.png`` under ``out_dir``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, fig in (("ridge", ridge_figure(d, buckets)), ("bands", bands_figure(d, thresholds))):
        path = os.path.join(out_dir, f"{stem}_{name}.png")
        fig.savefig(path, dpi=_DPI)
        paths.append(path)
    return paths


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
