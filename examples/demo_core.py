"""histgpu demo: one large float32 tensor, bucketed by histgpu and by TensorBoard's own code.

    python examples/demo_core.py [--n 20000000] [--buckets 30]

Both run on the same data (same seed), each in its own process so that its peak memory can be
measured cleanly: extra peak memory = peak resident memory during the calls minus resident memory
just before them (Linux: /proc/self/clear_refs resets the peak, VmHWM reads it; elsewhere the
ru_maxrss difference is used). Times are the median of several calls (TensorBoard: fewer). The two
[k, 3] outputs are then compared with numpy.array_equal.

TensorBoard's `summary_v2._buckets` (what `tf.summary.histogram` writes) builds a one_hot matrix of
n * k * 8 bytes (4.5 GiB at the default 2e7 values and 30 buckets; its first call also pays for
faulting that memory in, which is why its runs are listed one by one); when the machine has too
little free memory, the demo shrinks n and says so. The default n keeps the demo near a minute on
a 2-core machine.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


# ------------------------------------------------------------------------------------------------
# worker: runs in a child process
# ------------------------------------------------------------------------------------------------
def _status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def worker(method, n, k, seed, repeats, out_path):
    if method == "histgpu":
        import histgpu

        histgpu.histogram(np.zeros(10, np.float32), k)  # import and warm up

        def run(x):
            return histgpu.histogram(x, k)

    else:
        import tensorflow as tf
        from tensorboard.plugins.histogram import summary_v2

        with tf.device("/CPU:0"):
            summary_v2._buckets(tf.constant(np.zeros(10, np.float32)), k).numpy()  # import and warm up
        holder = {}

        def run(x):
            if "t" not in holder:
                raise RuntimeError("tensor not prepared")
            with tf.device("/CPU:0"):
                return summary_v2._buckets(holder["t"], k).numpy()

    x = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    if method == "tensorboard":
        with tf.device("/CPU:0"):
            holder["t"] = tf.constant(x)  # the tensor exists before the call, as in training
    exact = _reset_peak()
    rss0 = _status_kb("VmRSS") if exact else None
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = run(x)
        times.append(time.perf_counter() - t)
    if exact:
        extra = (_status_kb("VmHWM") - rss0) * 1024
        how = "VmHWM"
    else:
        extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss0) * 1024
        how = "ru_maxrss"
    np.save(out_path, np.asarray(result))
    print(json.dumps({"times": times, "extra": max(extra, 0), "how": how}))


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------
def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _fmt_bytes(b):
    if b < 2**20:
        return f"{b / 2**10:.0f} KiB"
    if b < 2**30:
        return f"{b / 2**20:.0f} MiB"
    return f"{b / 2**30:.2f} GiB"


def _spawn(method, n, k, seed, repeats, out_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--n", str(n), "--buckets", str(k),
           "--seed", str(seed), "--repeats", str(repeats), "--out", out_path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        raise SystemExit(f"{method} worker failed (exit {r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _nan_story(k):
    """One NaN in the data: what TensorBoard and histgpu each make of it (small data)."""
    import warnings

    import tensorflow as tf
    from tensorboard.plugins.histogram import summary_v2

    import histgpu

    x = np.random.default_rng(1).standard_normal(100_000, dtype=np.float32)
    x[12345] = np.nan
    tb = summary_v2._buckets(tf.constant(x), k).numpy()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        h = histgpu.compute(x, k)
    same_finite = np.array_equal(h.to_tensor(), summary_v2._buckets(tf.constant(x[np.isfinite(x)]), k).numpy())
    return tb, h, same_finite


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000_000, help="number of float32 values (default 2e7)")
    p.add_argument("--buckets", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", choices=["histgpu", "tensorboard"], help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a.worker, a.n, a.buckets, a.seed, a.repeats, a.out)
        return 0

    import histgpu

    n, k = a.n, a.buckets
    # TensorBoard needs about n * (k * 8 + 40) bytes (one_hot, float64 copies, indices) plus the data.
    need = lambda m: m * (k * 8 + 40) + 2**30  # noqa: E731
    avail = _mem_available()
    note = ""
    if avail is not None and need(n) > 0.8 * avail:
        n_fit = int((0.8 * avail - 2**30) / (k * 8 + 40))
        n_new = max(10**6, (n_fit // 10**6) * 10**6)
        note = (f"(only {_fmt_bytes(avail)} of memory is free and TensorBoard would need about "
                f"{_fmt_bytes(need(n))} at n={n:,}; using n={n_new:,} for both)")
        n = n_new

    info = histgpu.build_info()
    print(f"histgpu {info['version']} demo: {n:,} float32 standard-normal values (seed {a.seed}), {k} buckets")
    if note:
        print(note)
    print(f"CPU engine: {info['cpu'].get('isa')}, {info['default_num_threads']} threads; "
          f"each method runs in its own process on the same data.\n")

    with tempfile.TemporaryDirectory() as tmp:
        print("running histgpu.histogram ...", flush=True)
        hg = _spawn("histgpu", n, k, a.seed, 5, os.path.join(tmp, "histgpu.npy"))
        print(f"running TensorBoard's _buckets (needs ~{_fmt_bytes(n * k * 8)} for its one_hot) ...", flush=True)
        tb = _spawn("tensorboard", n, k, a.seed, 2, os.path.join(tmp, "tb.npy"))
        out_hg = np.load(os.path.join(tmp, "histgpu.npy"))
        out_tb = np.load(os.path.join(tmp, "tb.npy"))

    t_hg, t_tb = float(np.median(hg["times"])), float(np.median(tb["times"]))
    gbs = lambda t: n * 4 / t / 1e9  # noqa: E731
    print()
    print(f"{'':28}{'time':>12}{'GB/s':>9}{'extra peak memory':>20}")
    print(f"{'histgpu.histogram':28}{t_hg * 1e3:>10.1f}ms{gbs(t_hg):>9.2f}{_fmt_bytes(hg['extra']):>20}"
          f"   (median of {len(hg['times'])})")
    print(f"{'TensorBoard _buckets':28}{t_tb * 1e3:>10.1f}ms{gbs(t_tb):>9.2f}{_fmt_bytes(tb['extra']):>20}"
          f"   (median of {len(tb['times'])}; runs: {', '.join(f'{t:.2f}s' for t in tb['times'])})")
    identical = out_hg.shape == out_tb.shape and np.array_equal(out_hg, out_tb)
    print()
    print(f"outputs identical (numpy.array_equal, shape {out_hg.shape}): {identical}")
    print(f"histgpu is {t_tb / t_hg:.0f}x faster; extra memory {_fmt_bytes(hg['extra'])} vs "
          f"{_fmt_bytes(tb['extra'])} (measured as {hg['how']}: peak resident memory during the calls minus before).")
    if not identical:
        bad = np.argwhere(out_hg != out_tb)
        print(f"first differing entries: {bad[:5].tolist()}")

    tb_nan, h, same_finite = _nan_story(k)
    print()
    print("one NaN among 100,000 values:")
    print(f"  TensorBoard: edges all NaN: {bool(np.isnan(tb_nan[:, :2]).all())}, "
          f"counts sum {tb_nan[:, 2].sum():.0f}")
    print(f"  histgpu:     nan={h.nan}, {h.num} finite values bucketed, equal to TensorBoard on the finite "
          f"values: {same_finite} (and a NonFiniteWarning)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
