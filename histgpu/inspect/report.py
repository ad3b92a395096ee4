"""The report: a terminal table, a JSON dump, and one self-contained HTML page.

``report.json`` is strict JSON: NaN and infinite numbers are written as ``null``.
The HTML page needs nothing from the network (inline CSS, no scripts); it links the
PNG plots next to it (``plots/``), or carries them inline as ``data:`` URIs with
``embed=True`` so the single file can be mailed around.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .diagnose import THRESHOLD_DOCS, Diagnosis
from .stats import BASIS_POINTS

__all__ = ["format_table", "format_findings", "write_json", "write_html", "fmt_number", "strict_json_value"]


def fmt_number(x: float) -> str:
    """Compact number: 4 significant digits, ``nan`` for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e7:
        return str(int(x))
    return f"{x:.4g}"


def _row(d: Diagnosis) -> List[str]:
    s = d.latest
    if s is None:
        return [d.run, d.tag, "0", "-", "-", "-", "-", "-", "-", d.trend_text(), d.problem_text()]
    return [
        d.run,
        d.tag,
        str(len(d.stats)),
        str(d.stats[-1].step),
        fmt_number(s.count),
        fmt_number(s.mean),
        fmt_number(s.std),
        fmt_number(s.min),
        fmt_number(s.max),
        d.trend_text(),
        d.problem_text(),
    ]


HEADER = ["run", "tag", "steps", "last", "count", "mean", "std", "min", "max", "trend", "flags"]
_RIGHT = {"steps", "last", "count", "mean", "std", "min", "max"}


def format_table(diagnoses: Sequence[Diagnosis], color: bool = False) -> str:
    """One row per run/tag: latest statistics, trend and problem flags in plain words."""
    rows = [_row(d) for d in diagnoses]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(HEADER)]

    def line(cells: List[str], flagged: bool = False) -> str:
        out = []
        for h, c, w in zip(HEADER, cells, widths):
            out.append(c.rjust(w) if h in _RIGHT else c.ljust(w))
        text = "  ".join(out).rstrip()
        if color and flagged:
            # Colour only the flags column (last): red for problems.
            head, _, _ = text.rpartition(cells[-1])
            text = head + f"\033[1;31m{cells[-1]}\033[0m"
        return text

    lines = [line(HEADER), line(["-" * w for w in widths])]
    lines += [line(r, flagged=bool(d.problems)) for r, d in zip(rows, diagnoses)]
    return "\n".join(lines)


def format_findings(diagnoses: Sequence[Diagnosis], trends: bool = False) -> str:
    """Evidence lines: every problem flag (and trends with ``trends=True``)."""
    lines = []
    for d in diagnoses:
        flags = d.problems + (d.trends if trends else [])
        if flags:
            lines.append(f"  {d.run}  {d.tag}")
            lines += [f"    {f.label}: {f.evidence}" for f in flags]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- JSON


def _finite(x: float) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(x) else None


def report_dict(result) -> Dict:
    """Everything the report shows, as plain JSON-able data."""
    series = []
    for d, s in zip(result.diagnoses, result.data.series):
        series.append({
            "run": d.run,
            "tag": d.tag,
            "kind": d.kind,
            "format": s.fmt,
            "trend": d.trend_text(),
            "problems": [{"label": f.label, "evidence": f.evidence, "step": f.step} for f in d.problems],
            "trends": [{"label": f.label, "evidence": f.evidence} for f in d.trends],
            "plots": result.plots.get((d.run, d.tag), []),
            "steps": [
                {
                    "step": st.step,
                    "wall_time": st.wall_time,
                    "count": st.count,
                    "mean": _finite(st.mean),
                    "std": _finite(st.std),
                    "min": _finite(st.min),
                    "max": _finite(st.max),
                    "exact_moments": st.exact,
                    "quantiles": {str(bp): _finite(v) for bp, v in zip(BASIS_POINTS, st.quantiles.tolist())},
                    "nonfinite": st.nonfinite,
                    "nonfinite_note": st.nonfinite_note,
                }
                for st in d.stats
            ],
        })
    return {
        "logdir": result.data.logdir,
        "runs": result.data.runs,
        "event_files": result.data.event_files,
        "events": result.data.events,
        "thresholds": {name: getattr(result.thresholds, name) for name, *_ in THRESHOLD_DOCS},
        "read_problems": [{"path": p.path, "message": p.message} for p in result.data.problems],
        "series": series,
    }


def strict_json_value(value: Any) -> Any:
    """``value`` with every NaN/+-Inf float replaced by ``None`` (JSON ``null``), recursively.

    Strict JSON (RFC 8259) has no NaN or Infinity; Python's ``json`` would write the bare
    tokens ``NaN``/``Infinity``, which other parsers reject. A missing or non-finite number
    (e.g. an event with ``wall_time=nan``, or a threshold set to ``inf``) is written as
    ``null``. numpy scalars become Python numbers.
    """
    if isinstance(value, dict):
        return {str(k): strict_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def write_json(result, out_dir: str) -> str:
    """Write ``report.json`` (strict JSON: non-finite numbers are ``null``); return its path."""
    path = os.path.join(out_dir, "report.json")
    text = json.dumps(strict_json_value(report_dict(result)), indent=1, allow_nan=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return path


# -------------------------------------------------------------------------------- HTML

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1600px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 6px; border-top: 1px solid #ddd; padding-top: 14px; }
.meta { color: #666; }
table { border-collapse: collapse; margin: 10px 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f6f6; }
.flag { display: inline-block; padding: 0 7px; border-radius: 9px; margin: 1px 2px; font-size: 12px; }
.problem { background: #fde2e1; color: #a01818; border: 1px solid #f5b5b3; }
.trend { background: #e8f0fb; color: #1d4f91; border: 1px solid #bcd0ee; }
.ok { color: #2b7a2b; }
.readproblem { background: #fff4e5; border: 1px solid #f0c27b; padding: 8px 12px; border-radius: 6px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots a { flex: 1 1 560px; max-width: 760px; }
.plots img { width: 100%; height: auto; border: 1px solid #ddd; }
ul.evidence { margin: 4px 0; }
code { background: #f3f3f3; padding: 0 3px; }
"""


def _badges(d: Diagnosis) -> str:
    parts = [f'<span class="flag problem">{html.escape(lbl)}</span>' for lbl in dict.fromkeys(f.label for f in d.problems)]
    parts += [f'<span class="flag trend">{html.escape(f.label)}</span>' for f in d.trends]
    return " ".join(parts) or '<span class="ok">ok</span>'


def _img_src(path: str, out_dir: str, embed: bool) -> str:
    if embed:
        with open(path, "rb") as f:
            return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")
    return os.path.relpath(path, out_dir).replace(os.sep, "/")


def write_html(result, out_dir: str, embed: bool = False) -> str:
    """Write ``index.html`` under ``out_dir`` (plots must already be written); return its path."""
    e = html.escape
    data = result.data
    diags = result.diagnoses
    n_problem = sum(1 for d in diags if d.problems)
    out: List[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>histgpu inspect: {e(data.logdir)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>histgpu inspect</h1>",
        f'<p class="meta">logdir <code>{e(data.logdir)}</code> &middot; {len(data.runs)} run(s), '
        f"{data.event_files} event file(s), {data.events} events, {len(diags)} histogram series &middot; "
        f"{n_problem} series with problems &middot; generated "
        f"{e(datetime.datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>",
    ]
    if data.problems:
        out.append('<div class="readproblem"><b>Read problems</b> (the rest of the logdir was read):<ul>')
        out += [f"<li><code>{e(p.path)}</code>: {e(p.message)}</li>" for p in data.problems]
        out.append("</ul></div>")

    out.append("<h2>Summary</h2><table><tr>")
    out += [f"<th>{h}</th>" for h in ("run", "tag", "steps", "last step", "count", "mean", "std", "min", "max", "trend / flags")]
    out.append("</tr>")
    for i, d in enumerate(diags):
        s = d.latest
        nums = [len(d.stats), d.stats[-1].step if d.stats else "-"]
        nums += [fmt_number(x) for x in (s.count, s.mean, s.std, s.min, s.max)] if s else ["-"] * 5
        out.append(
            f'<tr><td>{e(d.run)}</td><td><a href="#s{i}">{e(d.tag)}</a></td>'
            + "".join(f'<td class="num">{e(str(x))}</td>' for x in nums)
            + f"<td>{_badges(d)}</td></tr>"
        )
    out.append("</table>")
    out.append('<p class="meta">Latest step with finite values. Mean and std are exact for v1 histograms '
               "(from <code>sum</code>/<code>sum_squares</code>), otherwise estimated from the buckets.</p>")

    for i, d in enumerate(diags):
        run = "" if d.run == "." else f"{e(d.run)} / "
        out.append(f'<h2 id="s{i}">{run}{e(d.tag)} <small class="meta">({d.kind})</small> {_badges(d)}</h2>')
        if d.flags:
            out.append('<ul class="evidence">')
            out += [f"<li><b>{e(f.label)}</b>: {e(f.evidence)}</li>" for f in d.flags]
            out.append("</ul>")
        plots = result.plots.get((d.run, d.tag), [])
        if plots:
            out.append('<div class="plots">')
            for p in plots:
                src = _img_src(p, out_dir, embed)
                href = os.path.relpath(p, out_dir).replace(os.sep, "/")
                alt = f"{d.run}/{d.tag} {os.path.basename(p)}"
                out.append(f'<a href="{e(href)}"><img src="{e(src)}" alt="{e(alt)}"></a>')
            out.append("</div>")

    out.append("<h2>Thresholds</h2><table><tr><th>option</th><th>value</th><th>meaning</th></tr>")
    for name, option, _default, meaning in THRESHOLD_DOCS:
        out.append(f"<tr><td><code>{e(option)}</code></td><td>{e(str(getattr(result.thresholds, name)))}</td>"
                   f"<td>{e(meaning)}</td></tr>")
    out.append("</table></body></html>")

    path = os.path.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return path
