"""CPU scenario: histgpu against every peer over sizes, dtypes and bucket counts.

Every method runs in its own process (all its cases in sequence; a crash costs one case) on
the same data: standard-normal float64 values from one seed, cast to the dtype. Per case: one
warm-up call, then the median of several timed calls; extra peak memory over the warm-up and
timed calls (the data and the library's own tensor exist before). Writes ``cpu.md``,
``cpu.json``, ``cpu_throughput.png`` (log-log GB/s vs size, float32) and ``cpu_dtypes.png``
(every dtype) into the results folder (``cpu_full.*`` for the full sweep).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from benchmarks import _report as rep
from benchmarks._context import Context
from benchmarks._measure import PeakMemory, mem_available_bytes, release_memory, time_calls
from benchmarks._runner import run_method
from benchmarks.scenarios.cpu_methods import METHODS, CpuMethod, counted

NAME = "cpu"
TITLE = "CPU histograms: histgpu side by side with its peers"

DTYPES = ("float32", "float16", "bfloat16", "float64")
SIZES_REDUCED = (10**3, 10**5, 10**7)
SIZES_FULL = (10**3, 10**4, 10**5, 10**6, 10**7, 10**8)
BUCKETS = (30, 1000)
SEED = 0

#: Timing settings: (min runs, max runs, seconds to aim for per case, per-case budget seconds).
TIMING_REDUCED = dict(min_runs=3, max_runs=10, target_s=0.3, case_budget_s=20.0)
TIMING_FULL = dict(min_runs=5, max_runs=30, target_s=1.0, case_budget_s=90.0)

Key = Tuple[str, int, str, Optional[int]]  # method, n, dtype, buckets


# ------------------------------------------------------------------------------ in the worker


def make_data(n: int, dtype: str, seed: int = SEED) -> np.ndarray:
    """``n`` standard-normal values (float64 from ``seed``) cast to ``dtype``: the same data for all."""
    x = np.random.default_rng(seed).standard_normal(n)
    if dtype == "bfloat16":
        import ml_dtypes

        return x.astype(ml_dtypes.bfloat16)
    return x.astype(np.dtype(dtype), copy=False)


_UNSUPPORTED_HINTS = ("not implemented", "not supported", "unsupported", "could not find", "no registered",
                      "cannot be converted", "can't convert", "not understood")


def _classify(exc: BaseException) -> Dict[str, Any]:
    msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:240]
    if isinstance(exc, ImportError):
        return {"status": "failed", "note": f"not installed: {msg}"}
    low = msg.lower()
    if isinstance(exc, (TypeError, NotImplementedError)) or any(h in low for h in _UNSUPPORTED_HINTS):
        return {"status": "unsupported", "note": f"unsupported: {msg}"}
    return {"status": "failed", "note": f"failed: {msg}"}


def _measure_case(method: CpuMethod, x: np.ndarray, k: Optional[int], settings: Dict[str, Any]) -> Dict[str, Any]:
    box: List[Any] = [None]
    with tempfile.TemporaryDirectory(prefix="histgpu-bench-case-") as tmp:
        try:
            run = method.setup(x, k, tmp)
        except Exception as e:  # noqa: BLE001 - recorded as a result
            return _classify(e)

        def timed() -> None:
            box[0] = run()  # noqa: F821 - bound above; ruff misreads the try

        release_memory()
        try:
            with PeakMemory() as pm:
                timing = time_calls(
                    timed,
                    min_runs=int(settings["min_runs"]),
                    max_runs=int(settings["max_runs"]),
                    target_s=float(settings["target_s"]),
                )
        except Exception as e:  # noqa: BLE001
            return _classify(e)
        del run
    total = None
    try:
        total = counted(box[0])
    except Exception:  # noqa: BLE001 - the check is informative only
        pass
    out = {"status": "ok", **timing.as_dict(), "extra_peak_bytes": pm.extra_bytes, "mem_method": pm.method,
           "bytes": int(x.nbytes), "gbps": x.nbytes / timing.median / 1e9, "counted": total}
    return out


def run_worker(method_name: str, cases: List[Dict[str, Any]], settings: Dict[str, Any],
               emit: Callable[[Dict[str, Any]], None]) -> None:
    """Run ``cases`` of one method in this process (see :mod:`benchmarks._worker`)."""
    method = METHODS[method_name]
    data_key: Optional[Tuple[int, str]] = None
    data: Optional[np.ndarray] = None
    per_call: Dict[Tuple[str, Optional[int]], Tuple[int, float]] = {}  # (dtype, k) -> (n, median s)
    budget = float(settings["case_budget_s"])
    for case in cases:
        emit({"event": "start", "id": case["id"]})
        n, dtype, k = int(case["n"]), case["dtype"], case["buckets"]
        prev = per_call.get((dtype, k))
        est = prev[1] * n / prev[0] if prev else None
        if est is not None and est * (1 + int(settings["min_runs"])) > budget:
            res: Dict[str, Any] = {"status": "skipped",
                                   "note": f"skipped: estimated {rep.fmt_time(est)} per call (case budget "
                                           f"{budget:.0f} s)"}
        else:
            if data_key != (n, dtype):
                data = None
                release_memory()
                data, data_key = make_data(n, dtype, int(settings.get("seed", SEED))), (n, dtype)
            res = _measure_case(method, data, k, settings)  # type: ignore[arg-type]
            if res["status"] == "ok":
                per_call[(dtype, k)] = (n, res["median_s"])
        release_memory()
        emit({"event": "result", "id": case["id"], **res})


# ------------------------------------------------------------------------------ in the parent


def _available(m: CpuMethod) -> bool:
    try:
        return importlib.util.find_spec(m.module) is not None
    except (ImportError, ValueError):
        return False


def plan(ctx: Context) -> Tuple[List[CpuMethod], List[int], List[str], List[int]]:
    """Methods, sizes, dtypes and bucket counts of this run (defaults or command-line overrides)."""
    names = ctx.option("methods") or list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(f"unknown CPU method(s) {unknown}; choose from {', '.join(METHODS)}")
    methods = [METHODS[n] for n in names]
    sizes = [int(s) for s in (ctx.option("sizes") or (SIZES_FULL if ctx.full else SIZES_REDUCED))]
    dtypes = list(ctx.option("dtypes") or DTYPES)
    buckets = [int(b) for b in (ctx.option("buckets") or BUCKETS)]
    return methods, sorted(sizes), dtypes, buckets


def memory_cap(ctx: Context) -> int:
    """Bytes a single case may need before it is skipped (``--mem-cap-gib``; default: half the
    available memory, at most 8 GiB — the machine is shared)."""
    cap = ctx.option("mem_cap_gib")
    if cap is not None:
        return int(float(cap) * 2**30)
    avail = mem_available_bytes() or 16 * 2**30
    return int(min(8 * 2**30, avail // 2))


def run(ctx: Context) -> Dict[str, Any]:
    """Run the scenario; write its markdown, JSON and plots; return a summary for the index."""
    clock = rep.ScenarioClock()
    methods, sizes, dtypes, buckets = plan(ctx)
    timing = dict(TIMING_FULL if ctx.full else TIMING_REDUCED)
    timing["seed"] = SEED
    cap = memory_cap(ctx)
    results: Dict[Key, Dict[str, Any]] = {}
    total = sum(len(dtypes) * len(sizes) * (1 if m.v1 else len(buckets)) for m in methods)
    done = [0]

    def record(m: CpuMethod, case: Dict[str, Any], res: Dict[str, Any]) -> None:
        key = (m.name, case["n"], case["dtype"], case["buckets"])
        results[key] = res
        done[0] += 1
        ctx.progress(NAME, f"{m.name:16s} {case['dtype']:8s} k={str(case['buckets'] or 'v1'):4s} "
                           f"n={rep.fmt_n(case['n']):4s}: {_progress_text(res)}", f"{done[0]:3d}/{total}")

    for m in methods:
        cases: List[Dict[str, Any]] = []
        for dtype in dtypes:
            for n in sizes:
                for k in ([None] if m.v1 else buckets):
                    case = {"id": f"{m.name}:{dtype}:{k}:{n}", "n": n, "dtype": dtype, "buckets": k}
                    need = m.memory_needed(n, k)
                    if need is not None and need > cap:
                        record(m, case, {"status": "skipped",
                                         "note": f"skipped: would need {rep.fmt_bytes(need)} (cap "
                                                 f"{rep.fmt_bytes(cap)})"})
                    elif not _available(m):
                        record(m, case, {"status": "skipped", "note": f"skipped: {m.module} is not installed"})
                    else:
                        cases.append(case)
        budget = float(timing["case_budget_s"])
        for group in _process_groups(m, cases):
            run_method(
                NAME, m.name, group, timing,
                case_timeout_s=lambda c: 4 * budget + 60 + c["n"] * 4e-8,  # noqa: B023 - used in this loop
                on_result=lambda c, r, m=m: record(m, c, r),
                skip_after_timeout=lambda bad, c: (c["dtype"], c["buckets"]) == (bad["dtype"], bad["buckets"])
                and c["n"] >= bad["n"],
            )

    _add_ratios(results)
    _add_roofline(results)
    clock.stop()
    out = Path(ctx.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"cpu{ctx.suffix}"
    payload = {
        "scenario": NAME, "full": ctx.full, "clock": clock.as_dict(), "machine": ctx.info,
        "settings": {**timing, "sizes": sizes, "dtypes": dtypes, "buckets": buckets, "mem_cap_bytes": cap},
        "methods": {m.name: {"label": m.label, "baseline": m.baseline, "v1": m.v1} for m in methods},
        "results": [{"method": k[0], "n": k[1], "dtype": k[2], "buckets": k[3], **v} for k, v in results.items()],
    }
    rep.write_json(out / f"{stem}.json", payload)
    plots = []
    if ctx.option("plots", True):
        plots = plot(results, methods, sizes, dtypes, buckets, out, stem)
    text = render(results, methods, sizes, dtypes, buckets, ctx, clock, cap, plots)
    (out / f"{stem}.md").write_text(text)
    return {"name": NAME, "title": TITLE, "markdown": f"{stem}.md", "plots": plots,
            "written": [f"{stem}.md", f"{stem}.json"] + plots,
            "headline": headline_table(results, methods, sizes, buckets), "seconds": clock.seconds}


def _process_groups(m: CpuMethod, cases: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """The worker processes of one method: one for all its cases, or (``pooled`` allocators)
    one per dtype with the cases in increasing order of the memory they need, so that each
    case's peak is not hidden by memory an earlier, bigger case left in the pool."""
    if not m.pooled:
        return [cases] if cases else []
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for c in cases:
        groups.setdefault(c["dtype"], []).append(c)
    need = lambda c: (m.memory_needed(c["n"], c["buckets"]) or c["n"], c["n"], c["buckets"] or 0)  # noqa: E731
    return [sorted(g, key=need) for g in groups.values()]


def _progress_text(res: Dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return res.get("note", res.get("status", "?"))
    return (f"{rep.fmt_time(res['median_s'])}/call, {rep.fmt_rate(res['gbps'])} GB/s, "
            f"extra peak {rep.fmt_bytes(res['extra_peak_bytes'])}, {res['runs']} runs")


def _add_ratios(results: Dict[Key, Dict[str, Any]]) -> None:
    """``ratio``: how many times longer than its histgpu counterpart each method took."""
    for (name, n, dtype, k), res in results.items():
        base = METHODS[name].baseline
        if res.get("status") != "ok" or base is None:
            continue
        ref = results.get((base, n, dtype, None if METHODS[base].v1 else k))
        if ref and ref.get("status") == "ok":
            res["ratio"] = res["median_s"] / ref["median_s"]


#: 8- and 16-bit dtypes take the raw-pattern path (one read) from this many values on
#: (``CpuEngine.pattern_min16``; 8-bit dtypes always do).
PATTERN_MIN16 = 1 << 16


def _reads(name: str, n: int, dtype: str) -> int:
    """How many reads of the data a histgpu method needs: the multiple of the read ceiling."""
    if METHODS[name].v1:
        return 1
    itemsize = 2 if dtype in ("float16", "bfloat16") else np.dtype(dtype).itemsize
    return 1 if itemsize <= 2 and n >= PATTERN_MIN16 else 2


def _add_roofline(results: Dict[Key, Dict[str, Any]]) -> None:
    """``roofline`` of every histgpu row: its ceiling (reads x one read of the same data, measured
    in this run by ``histgpu_read``) / its median time."""
    for (name, n, dtype, _k), res in results.items():
        if METHODS[name].baseline is not None or name == "histgpu_read" or res.get("status") != "ok":
            continue
        read = results.get(("histgpu_read", n, dtype, None))
        if read and read.get("status") == "ok":
            res["roofline"] = _reads(name, n, dtype) * read["median_s"] / res["median_s"]


def _cpu_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def _lookup(results: Dict[Key, Dict[str, Any]], m: CpuMethod, n: int, dtype: str, k: int) -> Dict[str, Any]:
    return results.get((m.name, n, dtype, None if m.v1 else k), {"status": "missing"})


def _short_status(res: Dict[str, Any]) -> str:
    note = res.get("note", "")
    st = res.get("status", "missing")
    if st == "skipped" and "would need" in note:
        return "skipped: needs " + note.split("would need ", 1)[1].split(" (")[0]
    if st == "skipped" and "estimated" in note:
        return "skipped: too slow"
    return {"unsupported": "unsupported", "failed": "failed", "missing": "-"}.get(st, st)


#: A case whose median exceeds its best run by this factor is marked noisy (†).
NOISY = 2.0


def _noisy(res: Dict[str, Any]) -> bool:
    return res.get("status") == "ok" and res["median_s"] > NOISY * res["best_s"]


def _cell(res: Dict[str, Any]) -> str:
    if res.get("status") != "ok":
        return _short_status(res)
    text = rep.fmt_rate(res["gbps"]) + ("†" if _noisy(res) else "")
    return text + (f" ({rep.fmt_ratio(res['ratio'])})" if "ratio" in res else "")


def _label(m: CpuMethod) -> str:
    return f"**{m.label}**" if m.baseline is None else m.label


def headline_table(results: Dict[Key, Dict[str, Any]], methods: Sequence[CpuMethod], sizes: Sequence[int],
                   buckets: Sequence[int], dtype: str = "float32") -> List[str]:
    """Markdown: the largest size, float32, every bucket count, one row per method."""
    n = max(sizes)
    lines: List[str] = []
    for k in buckets:
        rows = []
        for m in methods:
            r = _lookup(results, m, n, dtype, k)
            if r.get("status") == "ok":
                rows.append([_label(m), rep.fmt_time(r["median_s"]) + ("†" if _noisy(r) else ""),
                             rep.fmt_time(r["best_s"]), rep.fmt_rate(r["gbps"]),
                             f"{r['roofline']:.2f}" if "roofline" in r else "—",
                             rep.fmt_ratio(r.get("ratio")) if m.baseline else "—",
                             rep.fmt_bytes(r["extra_peak_bytes"]), str(r["runs"])])
            else:
                rows.append([_label(m), _short_status(r), "-", "-", "-", "-", "-", "-"])
        lines += [f"{dtype}, {rep.fmt_n(n)} values, {k} buckets (v1 methods: TensorFlow's fixed limits):", ""]
        lines += rep.table(["method", "median time", "best", "GB/s", "roofline", "histgpu is × faster",
                            "extra peak memory", "runs"], rows)
        lines.append("")
    return lines


def render(results: Dict[Key, Dict[str, Any]], methods: Sequence[CpuMethod], sizes: Sequence[int],
           dtypes: Sequence[str], buckets: Sequence[int], ctx: Context, clock: rep.ScenarioClock, cap: int,
           plots: Sequence[str]) -> str:
    """The scenario's markdown page."""
    lines = rep.header(TITLE, ctx.info, clock, ctx.command)
    lines += [
        f"Standard-normal values (float64 from seed {SEED}, cast to each dtype), the same for every method; each "
        "method in its own process; per case one warm-up call, then the median of "
        f"{'5–30' if ctx.full else '3–10'} timed calls. GB/s = input bytes / median time. Bold: histgpu. "
        "“histgpu is × faster” = the method's median time / its histgpu counterpart's (same data): "
        "`tf.summary.histogram` against `histgpu.summary.histogram` (both write the event), TF's v1 op against "
        "`histgpu.compute_v1`, everything else against `histgpu.histogram`.",
        "",
        "**Roofline** (histgpu rows): the ceiling / the median time, where the ceiling is the number of reads "
        "of the data the algorithm needs (two for v2 of 32- and 64-bit data: range, then counts; one for v1, and "
        "for 8/16-bit data on the raw-pattern path) times one read of the same data by every default thread, "
        "measured in this run (`one read of the data`). CPU kernels of the default rows: "
        f"{ctx.info.get('histgpu', {}).get('isa', '?')}; the `AVX2 build` rows force `HISTGPU_CPU_ISA=avx2`"
        + (" (on this AVX-512 CPU: the AVX2 build, not an AVX2-only CPU)." if _cpu_has_avx512() else "."),
        "",
        "## Headline",
        "",
    ]
    lines += headline_table(results, methods, sizes, buckets)
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    lines += ["## Throughput by dtype and bucket count", "",
              "GB/s of input (in brackets: how many times faster histgpu's counterpart was), and the extra peak "
              f"memory at {rep.fmt_n(max(sizes))} values.", ""]
    for dtype in dtypes:
        for k in buckets:
            lines += [f"### {dtype}, {k} buckets", ""]
            rows = []
            for m in methods:
                big = _lookup(results, m, max(sizes), dtype, k)
                mem = rep.fmt_bytes(big["extra_peak_bytes"]) if big.get("status") == "ok" else "-"
                rows.append([_label(m)] + [_cell(_lookup(results, m, n, dtype, k)) for n in sizes] + [mem])
            lines += rep.table(["method"] + [f"n = {rep.fmt_n(n)}" for n in sizes]
                               + [f"extra peak @ {rep.fmt_n(max(sizes))}"], rows)
            lines.append("")
    lines += _notes(results, methods, cap)
    lines += ["## Every measurement", "", "<details><summary>One row per case (click)</summary>", ""]
    rows = []
    for (name, n, dtype, k), r in sorted(results.items(), key=lambda kv: (kv[0][2], kv[0][3] or 0, kv[0][1],
                                                                           list(METHODS).index(kv[0][0]))):
        if r.get("status") == "ok":
            rows.append([METHODS[name].label, dtype, str(k or "v1"), rep.fmt_n(n), rep.fmt_time(r["median_s"]),
                         rep.fmt_time(r["best_s"]), f"{r['runs']}×{r['calls_per_run']}", rep.fmt_rate(r["gbps"]),
                         f"{r['roofline']:.2f}" if "roofline" in r else "",
                         rep.fmt_ratio(r.get("ratio")), rep.fmt_bytes(r["extra_peak_bytes"])])
        else:
            rows.append([METHODS[name].label, dtype, str(k or "v1"), rep.fmt_n(n), r.get("note", r.get("status")),
                         "", "", "", "", "", ""])
    lines += rep.table(["method", "dtype", "buckets", "n", "median", "best", "runs×calls", "GB/s", "roofline",
                        "histgpu ×", "extra peak"], rows, "llrrrrrrrrr")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def _notes(results: Dict[Key, Dict[str, Any]], methods: Sequence[CpuMethod], cap: int) -> List[str]:
    lines = ["## Notes", ""]
    lines.append(
        "- Extra peak memory: peak resident memory over the warm-up and timed calls minus resident memory just "
        "before them (the data and the library's tensor already exist; Linux `clear_refs` + `VmHWM`).")
    lines.append(
        "- TensorBoard's bucketing (`_buckets`, used by `tf.summary.histogram`) builds an n × k float64 `one_hot` "
        f"matrix; cases needing more than the cap ({cap / 2**30:.1f} GiB, `--mem-cap-gib`) are recorded as skipped "
        "with the memory they would need, and a case whose estimated time per call (from the previous size) "
        "exceeds the case budget is skipped as too slow.")
    lines.append(
        f"- † The median was more than {NOISY:g}× the best run: another process held a core during some runs "
        "(libraries whose threads wait at barriers, like PyTorch's, suffer most). Compare the best times in the "
        "last table; ratios in such cells are inflated.")
    lines.append(
        "- `fast_histogram` and `boost_histogram` need a range: they get min/max computed by numpy inside the timed "
        "call, as TensorBoard's semantics require. Their ranges are half-open, so the maximum value falls outside "
        "(`fast_histogram` drops it; `boost_histogram` puts it in the overflow bin).")
    lines.append(
        "- `tf.summary.histogram` and `histgpu.summary.histogram` are timed as a whole call on a TF tensor, inside "
        "`writer.as_default()`, followed by `writer.flush()` to a temporary logdir.")
    odd = sorted({(METHODS[k[0]].label, k[1]) for k, r in results.items() if r.get("status") == "ok"
                  and r.get("counted") is not None and abs(r["counted"] - k[1]) > 0.5})
    if odd:
        labels = sorted({lab for lab, _ in odd})
        lines.append("- Counts not adding up to n (half-open range or lost precision): " + ", ".join(labels) + ".")
    notes = sorted({(METHODS[k[0]].label, r.get("note", "")) for k, r in results.items()
                    if r.get("status") in ("failed", "unsupported") and r.get("note")})
    for label, note in notes:
        lines.append(f"- {label}: {note}")
    lines.append("")
    return lines


# ------------------------------------------------------------------------------------ plots

_COLORS = {
    "histgpu": "#1a9850", "histgpu_1t": "#91cf60", "histgpu_v1": "#006837", "histgpu_summary": "#66bd63",
    "tf_summary": "#d73027", "tb_buckets": "#f46d43", "tf_v1_op": "#a50026", "numpy": "#4575b4",
    "fast_histogram": "#74add1", "boost_histogram": "#313695", "torch_histc": "#8073ac", "torch_histogram": "#b2abd2",
}

_STYLES = {"histgpu": "-", "histgpu_1t": ":", "histgpu_v1": "-.", "histgpu_summary": (0, (6, 1.5))}


def _series(results: Dict[Key, Dict[str, Any]], m: CpuMethod, sizes: Sequence[int], dtype: str,
            k: int) -> Tuple[List[int], List[float]]:
    xs, ys = [], []
    for n in sizes:
        r = _lookup(results, m, n, dtype, k)
        if r.get("status") == "ok":
            xs.append(n)
            ys.append(r["gbps"])
    return xs, ys


def _panel(ax: Any, results: Dict[Key, Dict[str, Any]], methods: Sequence[CpuMethod], sizes: Sequence[int],
           dtype: str, k: int, title: str) -> None:
    for m in methods:
        xs, ys = _series(results, m, sizes, dtype, k)
        if not xs:
            continue
        mine = m.baseline is None
        ax.plot(xs, ys, marker="o", ms=4 if mine else 3, lw=2.4 if mine else 1.2,
                ls=_STYLES.get(m.name, "--"), color=_COLORS.get(m.name), label=m.label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)


def plot(results: Dict[Key, Dict[str, Any]], methods: Sequence[CpuMethod], sizes: Sequence[int],
         dtypes: Sequence[str], buckets: Sequence[int], out: Path, stem: str) -> List[str]:
    """Write the log-log throughput plots; return their file names."""
    plt = rep.pyplot()
    if plt is None or len(sizes) < 1:
        return []
    written = []
    main_dtype = "float32" if "float32" in dtypes else dtypes[0]
    fig, axes = plt.subplots(1, len(buckets), figsize=(6.2 * len(buckets), 4.8), squeeze=False)
    for ax, k in zip(axes[0], buckets):
        _panel(ax, results, methods, sizes, main_dtype, k, f"{main_dtype}, {k} buckets")
        ax.set_xlabel("values (log)")
    axes[0][0].set_ylabel("GB/s of input (log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Histogram throughput vs size (higher is better; thick green = histgpu)", fontsize=11)
    fig.tight_layout(rect=(0, 0.13, 1, 0.97))
    name = f"{stem}_throughput.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    written.append(name)
    if len(dtypes) > 1:
        fig, axes = plt.subplots(len(buckets), len(dtypes), figsize=(3.6 * len(dtypes), 3.2 * len(buckets)),
                                 squeeze=False, sharex=True, sharey=True)
        for i, k in enumerate(buckets):
            for j, dtype in enumerate(dtypes):
                _panel(axes[i][j], results, methods, sizes, dtype, k, f"{dtype}, {k} buckets")
        for ax in axes[-1]:
            ax.set_xlabel("values (log)")
        for row in axes:
            row[0].set_ylabel("GB/s (log)")
        seen: Dict[str, Any] = {}
        for row in axes:
            for ax in row:
                for h, lab in zip(*ax.get_legend_handles_labels()):
                    seen.setdefault(lab, h)
        fig.legend(list(seen.values()), list(seen), loc="lower center", ncol=4, fontsize=8, frameon=False)
        fig.suptitle("Throughput by dtype and bucket count (thick green = histgpu)", fontsize=11)
        fig.tight_layout(rect=(0, 0.1, 1, 0.97))
        name = f"{stem}_dtypes.png"
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        written.append(name)
    return written
