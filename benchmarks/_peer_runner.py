"""Runs ONE histogram method in its own process and prints one JSON line with its timings.

Used by bench_core.py (and examples/demo_core.py); not meant to be run by hand, though it can be:

    python benchmarks/_peer_runner.py histgpu --n 50000000 --buckets 30 --repeats 5

Memory: after the libraries are imported and warmed up and the data exists, the peak resident set
size is reset (Linux: writing "5" to /proc/self/clear_refs resets VmHWM), and the extra peak is
VmHWM after the runs minus VmRSS before them. Where that reset is unavailable, the fallback is
``ru_maxrss`` after minus ``ru_maxrss`` before (which can under-report).
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def make_data(n, seed, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n, dtype=np.float32 if dtype == "float32" else np.float64)


# ------------------------------------------------------------------------------------------------
# methods: setup(x, k) -> (run, finish); run() does the timed work, finish(result) -> numpy counts
# ------------------------------------------------------------------------------------------------
def setup_histgpu(x, k, threads=None):
    import histgpu

    histgpu.histogram(x[:1000], k, num_threads=threads)

    def run():
        return histgpu.histogram(x, k, num_threads=threads)

    return run, lambda r: np.asarray(r)[:, 2]


def setup_histgpu_1t(x, k):
    return setup_histgpu(x, k, threads=1)


def setup_histgpu_v1(x, k):
    import histgpu

    histgpu.compute_v1(x[:1000])

    def run():
        return histgpu.compute_v1(x)

    return run, lambda r: np.asarray(r.counts if hasattr(r, "counts") else r[1])


def setup_tensorboard(x, k):
    import tensorflow as tf
    from tensorboard.plugins.histogram import summary_v2

    with tf.device("/CPU:0"):
        summary_v2._buckets(tf.constant(x[:1000]), k).numpy()
        t = tf.constant(x)  # the tensor exists before the timed region, as in a training loop

    def run():
        with tf.device("/CPU:0"):
            return summary_v2._buckets(t, k).numpy()

    return run, lambda r: r[:, 2]


def setup_numpy(x, k):
    np.histogram(x[:1000], bins=k)

    def run():
        return np.histogram(x, bins=k)

    return run, lambda r: r[0]


def setup_fast_histogram(x, k):
    from fast_histogram import histogram1d

    lo, hi = float(x.min()), float(x.max())
    histogram1d(x[:1000], bins=k, range=(lo, hi))

    def run():
        return histogram1d(x, bins=k, range=(lo, hi))

    return run, lambda r: r


def setup_fast_histogram_minmax(x, k):
    from fast_histogram import histogram1d

    def run():
        lo, hi = float(x.min()), float(x.max())
        return histogram1d(x, bins=k, range=(lo, hi))

    run()
    return run, lambda r: r


def setup_boost_histogram(x, k):
    import boost_histogram as bh

    lo, hi = float(x.min()), float(x.max())
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def run():
        h = bh.Histogram(bh.axis.Regular(k, lo, hi))
        h.fill(x, threads=threads)
        return h

    return run, lambda r: r.values()


def setup_numpy_minmax(x, k):
    def run():
        return x.min(), x.max()

    return run, lambda r: np.asarray(r)


METHODS = {
    "histgpu": setup_histgpu,
    "histgpu_1t": setup_histgpu_1t,
    "histgpu_v1": setup_histgpu_v1,
    "tensorboard": setup_tensorboard,
    "numpy": setup_numpy,
    "fast_histogram": setup_fast_histogram,
    "fast_histogram_minmax": setup_fast_histogram_minmax,
    "boost_histogram": setup_boost_histogram,
    "numpy_minmax": setup_numpy_minmax,
}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("method", choices=sorted(METHODS))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--buckets", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--save", help="save the last result (as returned by the method) to this .npy file")
    a = p.parse_args(argv)

    # import + warm up the method on a little data first, so imports don't count as "extra" memory
    warm = make_data(1000, a.seed, a.dtype)
    METHODS[a.method](warm, a.buckets)

    t0 = time.perf_counter()
    x = make_data(a.n, a.seed, a.dtype)
    data_s = time.perf_counter() - t0
    run, finish = METHODS[a.method](x, a.buckets)

    exact = _reset_peak()
    rss0 = _status_kb("VmRSS") if exact else None
    maxrss0 = _maxrss_kb()
    times = []
    result = None
    for _ in range(a.repeats):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
    if exact and rss0 is not None and _status_kb("VmHWM") is not None:
        extra_kb = _status_kb("VmHWM") - rss0
        mem_method = "VmHWM reset"
    else:
        extra_kb = _maxrss_kb() - maxrss0
        mem_method = "ru_maxrss delta"
    out = finish(result)
    if a.save:
        np.save(a.save, np.asarray(result))
    print(
        json.dumps(
            {
                "method": a.method,
                "n": a.n,
                "buckets": a.buckets,
                "dtype": a.dtype,
                "bytes": int(x.nbytes),
                "times": times,
                "median_s": float(np.median(times)),
                "extra_peak_bytes": int(max(extra_kb, 0)) * 1024,
                "mem_method": mem_method,
                "data_s": data_s,
                "total_count": float(np.asarray(out, dtype=np.float64).sum()) if a.method != "numpy_minmax" else None,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
