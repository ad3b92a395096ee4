"""histgpu core benchmark (CPU): histgpu vs TensorBoard's own bucketing, numpy, fast-histogram.

    python benchmarks/bench_core.py --quick      # reduced sizes (make bench)
    python benchmarks/bench_core.py --full       # 5e7 float32 values (make bench FULL=1)

Every method runs in its own subprocess (benchmarks/_peer_runner.py) on the same data (same seed),
so its extra peak memory is measured cleanly. Median of several runs. Writes a markdown table to
benchmarks/results/core_cpu.md (--full) or core_cpu_quick.md (--quick), and a PNG plot when
matplotlib is installed.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "_peer_runner.py"

LABELS = {
    "histgpu": "histgpu.histogram (all cores)",
    "histgpu_1t": "histgpu.histogram (num_threads=1)",
    "histgpu_v1": "histgpu.compute_v1 (v1 buckets + exact sums)",
    "tensorboard": "TensorBoard `summary_v2._buckets`",
    "numpy": "numpy.histogram",
    "fast_histogram": "fast_histogram.histogram1d (range given)",
    "fast_histogram_minmax": "fast_histogram.histogram1d + min/max",
    "boost_histogram": "boost_histogram fill (all cores, range given)",
    "numpy_minmax": "reference: numpy min + max (two reads, 1 thread)",
}


def _have(module):
    r = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return r.returncode == 0


def machine_info():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    code = (
        "import json, os; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\n"
        "import numpy; d={'numpy': numpy.__version__}\n"
        "try:\n import histgpu; b=histgpu.build_info(); d['histgpu']=b['version']; d['isa']=b['cpu'].get('isa')\n"
        "except Exception as e: d['histgpu']='unavailable: %s' % e\n"
        "for m in ('tensorflow','tensorboard','fast_histogram','boost_histogram'):\n"
        " try:\n  d[m]=__import__(m).__version__\n except Exception: pass\n"
        "print(json.dumps(d))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        versions = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        versions = {}
    mem_gib = None
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": model, "cores": cores, "mem_gib": mem_gib, "python": platform.python_version(), "load1": load,
            **versions}


def run_method(method, n, k, repeats, seed, timeout):
    cmd = [sys.executable, str(RUNNER), method, "--n", str(n), "--buckets", str(k), "--repeats", str(repeats),
           "--seed", str(seed)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        tail = (r.stderr or "").strip().splitlines()[-3:]
        return {"method": method, "n": n, "error": " | ".join(tail) or f"exit {r.returncode}", "wall_s": wall}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    return res


def fmt_bytes(b):
    if b is None:
        return "-"
    if b < 2**20:
        return f"{b / 2**10:.0f} KiB"
    if b < 2**30:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**30:.2f} GiB"


def fmt_n(n):
    return f"{n:.0e}".replace("e+0", "e")


def render(results, info, args):
    base = next((r for r in results if r["method"] == "histgpu" and "error" not in r), None)
    base_rate = base["bytes"] / base["median_s"] if base else None
    lines = [
        "# histgpu core benchmark (CPU)",
        "",
        f"float32 standard-normal values (seed {args.seed}), {args.buckets} buckets; "
        f"median of the runs shown; every method in its own process on the same data.",
        f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} with `{' '.join(['bench_core.py'] + args.argv)}`.",
        "",
        f"Machine: {info.get('cpu')}, {info.get('cores')} usable cores"
        + (f", {info['mem_gib']:.0f} GiB RAM" if info.get("mem_gib") else "")
        + f"; Python {info.get('python')}, numpy {info.get('numpy', '?')}, TensorFlow {info.get('tensorflow', '?')}, "
        f"TensorBoard {info.get('tensorboard', '?')}, fast-histogram {info.get('fast_histogram', '-')}"
        + (f", boost-histogram {info['boost_histogram']}" if info.get("boost_histogram") else "")
        + f"; histgpu {info.get('histgpu', '?')} (CPU ISA: {info.get('isa', '?')})."
        + (f" Load average when the run started: {info['load1']:.1f} (other work on the machine skews figures)."
           if info.get("load1") is not None else ""),
        "",
        "| method | values | runs | median time | GB/s of input | histgpu is × faster | extra peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for r in results:
        label = LABELS.get(r["method"], r["method"])
        if "error" in r:
            lines.append(f"| {label} | {fmt_n(r['n'])} | - | failed | - | - | - |")
            notes.append(f"{label} failed: {r['error']}")
            continue
        rate = r["bytes"] / r["median_s"]
        ratio = f"{base_rate / rate:.1f}" if base_rate else "-"
        if r["method"] == "histgpu":
            ratio = "1.0"
        n_cell = fmt_n(r["n"]) + (" *" if r["n"] != args.n else "")
        lines.append(
            f"| {label} | {n_cell} | {len(r['times'])} | {r['median_s'] * 1e3:.1f} ms | {rate / 1e9:.3f} | {ratio} | "
            f"{fmt_bytes(r['extra_peak_bytes'])} |"
        )
    lines.append("")
    if any(r["n"] != args.n for r in results):
        lines.append(
            f"- \\* TensorBoard runs on {fmt_n(args.tb_n)} values, not {fmt_n(args.n)}: its `one_hot` allocates "
            f"n × k × 8 bytes ({args.n * args.buckets * 8 / 2**30:.1f} GiB at {fmt_n(args.n)} values, "
            f"{args.tb_n * args.buckets * 8 / 2**30:.1f} GiB at {fmt_n(args.tb_n)}), and it is slow. Its GB/s and "
            "the ratio are per byte of input, so they compare fairly."
        )
    lines += [
        "- Extra peak memory: peak resident memory during the runs minus resident memory just before them "
        "(data, imports and warm-up excluded; Linux `clear_refs`/`VmHWM`).",
        "- “histgpu is × faster” compares GB/s of input (so rows with fewer values compare fairly).",
        "- `fast_histogram` is single-threaded and is given the range; `numpy.histogram` finds it itself.",
    ]
    short = [LABELS.get(r["method"], r["method"]) for r in results
             if "error" not in r and r.get("total_count") is not None and r["total_count"] != r["n"]]
    if short:
        lines.append(
            "- Counts that do not add up to n (a half-open range drops the maximum value): " + "; ".join(short) + "."
        )
    lines += [f"- Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ok = [r for r in results if "error" not in r]
    labels = [LABELS.get(r["method"], r["method"]).replace("`", "") for r in ok]
    rates = [r["bytes"] / r["median_s"] / 1e9 for r in ok]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ok) + 1.2))
    colors = ["tab:green" if r["method"].startswith("histgpu") else "tab:gray" for r in ok]
    ax.barh(range(len(ok)), rates, color=colors)
    ax.set_yticks(range(len(ok)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("GB/s of float32 input (log scale)")
    ax.set_xlim(right=max(rates) * 4)
    for i, v in enumerate(rates):
        ax.text(v, i, f" {v:.2f}", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="reduced sizes (default)")
    g.add_argument("--full", action="store_true", help="5e7 values, 7 runs")
    p.add_argument("--n", type=int, help="number of float32 values")
    p.add_argument("--tb-n", type=int, help="number of values for TensorBoard (its memory grows as n*k*8 bytes)")
    p.add_argument("--buckets", type=int, default=30)
    p.add_argument("--repeats", type=int)
    p.add_argument("--tb-repeats", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", help="comma-separated subset of: " + ",".join(LABELS))
    p.add_argument("--out", help="markdown output path")
    p.add_argument("--timeout", type=float, default=1800, help="per-method timeout in seconds")
    args = p.parse_args(argv)
    args.argv = argv
    full = args.full
    args.n = args.n or (50_000_000 if full else 10_000_000)
    args.tb_n = min(args.tb_n or (10_000_000 if full else 2_000_000), args.n)
    args.repeats = args.repeats or (7 if full else 5)
    args.tb_repeats = args.tb_repeats or (3 if full else 2)
    out = Path(args.out) if args.out else HERE / "results" / ("core_cpu.md" if full else "core_cpu_quick.md")

    methods = args.methods.split(",") if args.methods else list(LABELS)
    optional = {"fast_histogram": "fast_histogram", "fast_histogram_minmax": "fast_histogram",
                "boost_histogram": "boost_histogram", "tensorboard": "tensorflow"}
    for m in list(methods):
        if m not in LABELS:
            p.error(f"unknown method {m}")
        if m in optional and not _have(optional[m]):
            print(f"skipping {m}: {optional[m]} is not installed", file=sys.stderr)
            methods.remove(m)

    info = machine_info()
    print(f"machine: {info}", file=sys.stderr)
    results = []
    for i, m in enumerate(methods, 1):
        n = args.tb_n if m == "tensorboard" else args.n
        reps = args.tb_repeats if m == "tensorboard" else args.repeats
        print(f"[{i}/{len(methods)}] {m}: {fmt_n(n)} values x {reps} runs ...", file=sys.stderr, flush=True)
        try:
            r = run_method(m, n, args.buckets, reps, args.seed, args.timeout)
        except subprocess.TimeoutExpired:
            r = {"method": m, "n": n, "error": f"timed out after {args.timeout:.0f} s"}
        if "error" in r:
            print(f"      failed: {r['error']}", file=sys.stderr, flush=True)
        else:
            print(
                f"      median {r['median_s'] * 1e3:.1f} ms, {r['bytes'] / r['median_s'] / 1e9:.3f} GB/s, "
                f"extra peak {fmt_bytes(r['extra_peak_bytes'])} (process {r['wall_s']:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        results.append(r)

    text = render(results, info, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps({"machine": info, "results": results}, indent=1) + "\n")
    png = out.with_suffix(".png")
    if plot(results, png):
        print(f"wrote {png}", file=sys.stderr)
    print(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
