"""GPU benchmark: histgpu's CUDA engine side by side with its peers, in one run.

    python benchmarks/gpu/bench_gpu.py [--log2n 30] [--buckets 30] [--out DIR]

Measured (float32, 2^log2n values, `buckets` buckets; median wall time of several runs, each
ending with the result on the host, so every entry includes its own synchronisation):
  * histgpu v2 (histgpu.compute), histgpu v1 proto content with exact sums (compute_v1),
  * histgpu.histogram_many on 300 tensors totalling the same number of values,
  * torch.histc + torch.aminmax, cupy.histogram + cupy min/max, and cupy.histogram with CuPy's
    CUB accelerator (CUB's device histogram) + min/max,
  * the bandwidth ceiling: a device-to-device copy (bytes read + written per second),
  * the asynchronous path: how long enqueue_histograms keeps the calling (training) thread, and
    how long histgpu.writer.SummaryWriter.add_histograms keeps it while the GPU is still busy
    with earlier work, against the same call + flush() (synchronous); needs tensorboard.
Writes bench_gpu.md (a markdown table) and bench_gpu.json into --out.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import histgpu  # noqa: E402
from histgpu import _cuda_async  # noqa: E402

try:
    import torch
except Exception:  # noqa: BLE001
    torch = None
try:
    import cupy
except Exception:  # noqa: BLE001
    cupy = None


def sync():
    if torch is not None:
        torch.cuda.synchronize()
    if cupy is not None:
        cupy.cuda.runtime.deviceSynchronize()


def timeit(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts)


def busy_gpu(ms: float):
    """Enqueue about `ms` of GPU work (the rest of a training step, still running when it logs)."""
    if torch is not None:
        torch.cuda._sleep(int(ms * 1e-3 * 1.9e9))  # a spin kernel of that many clock cycles (~1.9 GHz)
    else:
        a = cupy.ones((4096, 4096), dtype=cupy.float32)
        b = cupy.empty_like(a)
        for _ in range(max(1, int(ms / 3))):  # a few ms per 4096^3 float32 matmul
            cupy.matmul(a, a, out=b)

def writer_step_wait(parts, k, reps, busy_ms=20.0):
    """Rows: how long SummaryWriter.add_histograms keeps a training step, asynchronously, against
    the same call followed by flush() (what a synchronous writer costs the step). Before each
    call about `busy_ms` of GPU work is enqueued, as a training step leaves it in flight."""
    import tempfile

    what = f"SummaryWriter.add_histograms ({len(parts)} tensors, bins={k})"
    try:
        from histgpu.writer import SummaryWriter  # needs the tensorboard package
    except ImportError as e:
        print("writer scenario skipped:", e, flush=True)
        return [{"what": what, "median_ms": float("nan"), "best_ms": float("nan"), "GB_per_s": float("nan"),
                 "note": f"skipped: {e}"}]
    busy = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        busy_gpu(busy_ms)
        sync()
        busy.append(time.perf_counter() - t0)
    in_flight = f"GPU busy {statistics.median(busy) * 1e3:.1f} ms with earlier work at each call"
    tensors = {f"t{i}": t for i, t in enumerate(parts)}
    waits, syncs = [], []
    with tempfile.TemporaryDirectory() as d, SummaryWriter(d) as w:
        w.add_histograms(tensors, 0, bins=k, layout="v2")  # warm-up (thread start, pools)
        w.flush()
        for step in range(reps):
            sync()
            busy_gpu(busy_ms)
            t0 = time.perf_counter()
            w.add_histograms(tensors, step, bins=k, layout="v2")
            waits.append(time.perf_counter() - t0)
            w.flush()
            sync()
            busy_gpu(busy_ms)
            t0 = time.perf_counter()
            w.add_histograms(tensors, step, bins=k, layout="v2")
            w.flush()
            syncs.append(time.perf_counter() - t0)
    out = []
    for name, ts, note in ((f"{what}: step waits (async)", waits, in_flight + "; the event is written by a thread"),
                           (f"{what} + flush(): step waits (synchronous equivalent)", syncs, in_flight)):
        med, best = statistics.median(ts), min(ts)
        out.append({"what": name, "median_ms": med * 1e3, "best_ms": best * 1e3, "GB_per_s": float("nan"),
                    "note": note})
        print(f"{name:55s} {med * 1e3:9.3f} ms  (best {best * 1e3:8.3f})  {note}", flush=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log2n", type=int, default=30)
    ap.add_argument("--buckets", type=int, default=30)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--tensors", type=int, default=300)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args(argv)
    if not histgpu.build_info()["cuda"]["device_available"]:
        print("no usable CUDA device; nothing to measure", file=sys.stderr)
        return 1
    if torch is None and cupy is None:
        print("needs PyTorch or CuPy", file=sys.stderr)
        return 1
    n = 1 << args.log2n
    k = args.buckets
    nbytes = 4 * n
    rows = []
    info = histgpu.build_info()["cuda"]
    dev = info["devices"][0]["name"] if info["devices"] else "?"

    if torch is not None:
        g = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(n, device="cuda", generator=g)
        lib = "torch"
    else:
        x = cupy.random.RandomState(0).standard_normal(n, dtype=cupy.float32)
        lib = "cupy"
    sync()

    def add(name, med, best, note=""):
        rows.append({"what": name, "median_ms": med * 1e3, "best_ms": best * 1e3,
                     "GB_per_s": nbytes / med / 1e9, "note": note})
        print(f"{name:55s} {med * 1e3:9.3f} ms  (best {best * 1e3:8.3f})  {nbytes / med / 1e9:8.1f} GB/s  {note}",
              flush=True)

    # bandwidth ceiling: device-to-device copy
    if torch is not None:
        y = torch.empty_like(x)
        med, best = timeit(lambda: (y.copy_(x), torch.cuda.synchronize()), args.reps)
    else:
        y = cupy.empty_like(x)
        med, best = timeit(lambda: (y.__setitem__(slice(None), x), cupy.cuda.runtime.deviceSynchronize()), args.reps)
    copy_bw = 2 * nbytes / best
    rows.append({"what": "device-to-device copy (ceiling)", "median_ms": med * 1e3, "best_ms": best * 1e3,
                 "GB_per_s": 2 * nbytes / med / 1e9, "note": "bytes read + written"})
    print(f"copy: {2 * nbytes / med / 1e9:.1f} GB/s (read+write), best {copy_bw / 1e9:.1f}", flush=True)
    y = None  # the copy's output is no longer needed
    floor_v2 = 2 * nbytes / copy_bw  # two reads at the copy's rate
    floor_v1 = nbytes / copy_bw

    med, best = timeit(lambda: histgpu.compute(x, k), args.reps)
    add("histgpu v2 (compute)", med, best, f"2 reads; floor {floor_v2 * 1e3:.3f} ms -> {floor_v2 / med:.0%} of ceiling")
    v2_med = med
    med, best = timeit(lambda: histgpu.compute_v1(x), args.reps)
    add("histgpu v1 + exact sums (compute_v1)", med, best, f"1 read; floor {floor_v1 * 1e3:.3f} ms -> {floor_v1 / med:.0%}")

    # many tensors totalling n values: sizes spread over 3 orders of magnitude
    rng = np.random.default_rng(1)
    w = np.exp(rng.uniform(0, np.log(1000), args.tensors))
    sizes = np.maximum(1, (w / w.sum() * n).astype(np.int64))
    sizes[-1] += n - sizes.sum()
    offs = np.concatenate([[0], np.cumsum(sizes)])
    parts = [x[int(offs[i]):int(offs[i + 1])] for i in range(args.tensors)]
    med, best = timeit(lambda: histgpu.histogram_many(parts, k), args.reps)
    add(f"histgpu.histogram_many ({args.tensors} tensors, same total)", med, best, f"{med / v2_med:.2f}x one tensor")

    # the asynchronous path: how long the training thread is held
    hold = []
    for _ in range(args.reps):
        sync()
        t0 = time.perf_counter()
        p = _cuda_async.enqueue_histograms(parts, k)
        hold.append(time.perf_counter() - t0)
        p.results()
    rows.append({"what": f"enqueue_histograms ({args.tensors} tensors): caller blocked", "median_ms":
                 statistics.median(hold) * 1e3, "best_ms": min(hold) * 1e3, "GB_per_s": float("nan"),
                 "note": "time until control returns; the work runs on the stream"})
    print(f"enqueue hold {statistics.median(hold) * 1e3:.3f} ms", flush=True)
    rows.extend(writer_step_wait(parts, k, args.reps))

    if torch is not None:
        def torch_hist():
            lo, hi = torch.aminmax(x)
            h = torch.histc(x, bins=k, min=float(lo), max=float(hi))
            return h.cpu()

        med, best = timeit(torch_hist, args.reps)
        add("torch.aminmax + torch.histc", med, best)
        try:
            def torch_histogram():
                h, _ = torch.histogram(x, bins=k)
                return h.cpu()

            med, best = timeit(torch_histogram, args.reps)
            add("torch.histogram", med, best)
        except Exception as e:  # noqa: BLE001 - torch.histogram has no CUDA kernel in many versions
            print("torch.histogram failed:", str(e).splitlines()[0])
            rows.append({"what": "torch.histogram", "median_ms": float("nan"), "best_ms": float("nan"),
                         "GB_per_s": float("nan"), "note": "not run: " + str(e).splitlines()[0][:80]})
    if cupy is not None:
        xc = x if lib == "cupy" else cupy.asarray(x)  # zero-copy through the CUDA Array Interface

        def cupy_hist():
            lo, hi = float(xc.min()), float(xc.max())
            h, _ = cupy.histogram(xc, bins=k, range=(lo, hi))
            return cupy.asnumpy(h)

        try:
            med, best = timeit(cupy_hist, args.reps)
            add("cupy min/max + cupy.histogram", med, best)
        except Exception as e:  # noqa: BLE001
            print("cupy.histogram failed:", e)
        try:
            from cupy._core import _accelerator

            old = _accelerator.get_routine_accelerators()
            _accelerator.set_routine_accelerators(["cub"])
            try:
                med, best = timeit(cupy_hist, args.reps)
                add("cupy min/max + cupy.histogram with CUB accelerator", med, best, "CUB device histogram")
            finally:
                _accelerator.set_routine_accelerators(old)
        except Exception as e:  # noqa: BLE001
            print("CUB accelerator not reachable:", e)

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench_gpu.json"), "w") as f:
        json.dump({"device": dev, "n": n, "buckets": k, "copy_GBps": copy_bw / 1e9, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "bench_gpu.md"), "w") as f:
        f.write(f"# GPU benchmark on {dev}: float32, 2^{args.log2n} values, {k} buckets\n\n")
        f.write(f"Ceiling (device-to-device copy, read+write): {copy_bw / 1e9:.0f} GB/s.\n\n")
        f.write("The last column is the input's GB/s as a fraction of that copy rate: 1.0 would read the\n"
                "input once at the speed a copy moves bytes (v2 needs two reads of it, v1 one).\n\n")
        f.write("| what | median ms | best ms | GB/s of input | fraction of copy |  note |\n"
                "|---|---:|---:|---:|---:|---|\n")
        for r in rows:
            frac = r["GB_per_s"] * 1e9 / copy_bw if r["GB_per_s"] == r["GB_per_s"] else float("nan")
            f.write(f"| {r['what']} | {r['median_ms']:.3f} | {r['best_ms']:.3f} | {r['GB_per_s']:.1f} | {frac:.2f} | "
                    f"{r['note']} |\n")
    print(open(os.path.join(args.out, "bench_gpu.md")).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
