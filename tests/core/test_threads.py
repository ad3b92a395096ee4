"""Threads: output never depends on the thread count; calls from many Python threads at once are safe
and release the GIL; 64-bit counts past 2**32 in one bucket; zero-stride and strided views are read in
place (no copy proportional to the input)."""

import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

from .oracles import assert_same_buckets, tb_buckets

THREADS = [1, 2, 3, 8]


def _fields(h):
    return (
        np.asarray(h.edges).tobytes(),
        np.asarray(h.counts).tobytes(),
        h.min, h.max, h.num, h.nan, h.posinf, h.neginf,
    )


@pytest.fixture(scope="module")
def big_normal():
    rng = np.random.default_rng(1234)
    return rng.standard_normal(4_000_037, dtype=np.float32)


@pytest.mark.parametrize("k", [1, 3, 30, 1000])
def test_same_output_for_any_thread_count(histgpu, big_normal, k):
    x = big_normal
    ref = histgpu.compute(x, k, num_threads=1)
    for t in THREADS[1:]:
        h = histgpu.compute(x, k, num_threads=t)
        assert _fields(h) == _fields(ref), f"num_threads={t} differs from num_threads=1 (k={k})"
        assert np.array_equal(histgpu.histogram(x, k, num_threads=t), ref.to_tensor())


@pytest.mark.parametrize("k", [7, 30])
def test_threads_match_tensorboard(histgpu, k):
    rng = np.random.default_rng(99)
    x = rng.standard_normal(1_000_003)
    expected = tb_buckets(x, k)
    for t in THREADS:
        assert_same_buckets(histgpu.histogram(x, k, num_threads=t), expected, f"num_threads={t} k={k}")


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.standard_normal((2000, 999), dtype=np.float32)[::-1, ::2],
        lambda r: r.standard_normal((700, 1500)).T,
        lambda r: np.broadcast_to(r.standard_normal(1000, dtype=np.float32), (3000, 1000)),
        lambda r: r.integers(-(2**40), 2**40, 2_000_000, dtype=np.int64),
        lambda r: r.standard_normal(2_000_000).astype(np.float16),
        lambda r: r.standard_normal(2_000_000).astype("bfloat16"),
    ],
    ids=["f32_neg_strided", "f64_transposed", "broadcast", "int64", "f16", "bf16"],
)
def test_thread_count_invariance_layouts(histgpu, make):
    x = make(np.random.default_rng(5))
    ref = histgpu.compute(x, 30, num_threads=1)
    for t in (2, 8):
        assert _fields(histgpu.compute(x, 30, num_threads=t)) == _fields(ref), f"num_threads={t}"


def test_thread_count_invariance_tiny_inputs(histgpu):
    """More threads than values."""
    for x in (np.array([1.0]), np.array([3.0, 1.0]), np.arange(7, dtype=np.float32), np.zeros(0)):
        ref = histgpu.histogram(x, 5, num_threads=1)
        assert_same_buckets(ref, tb_buckets(x, 5), f"{x}")
        for t in (2, 8, 64):
            assert np.array_equal(histgpu.histogram(x, 5, num_threads=t), ref)


def test_env_num_threads(histgpu, monkeypatch, big_normal):
    ref = histgpu.compute(big_normal, 30, num_threads=1)
    for t in ("1", "2", "8"):
        monkeypatch.setenv("HISTGPU_NUM_THREADS", t)
        assert _fields(histgpu.compute(big_normal, 30)) == _fields(ref), f"HISTGPU_NUM_THREADS={t}"


def test_default_num_threads_in_build_info(histgpu, monkeypatch):
    monkeypatch.delenv("HISTGPU_NUM_THREADS", raising=False)
    info = histgpu.build_info()
    n = info["default_num_threads"]
    assert isinstance(n, int) and n >= 1
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert n == usable, f"default_num_threads={n}, usable cores={usable}"


# ------------------------------------------------------------------------------------------------
# concurrency
# ------------------------------------------------------------------------------------------------
def test_concurrent_calls_from_python_threads(histgpu):
    rng = np.random.default_rng(2024)
    arrays = [
        rng.standard_normal(300_000, dtype=np.float32),
        rng.uniform(-5, 5, 300_000),
        rng.integers(-1000, 1000, 300_000).astype(np.int32),
        rng.standard_normal(300_000).astype(np.float16),
        np.broadcast_to(rng.standard_normal(1000), (300, 1000)),
        rng.standard_normal((600, 500), dtype=np.float32).T,
    ]
    ks = [1, 7, 30, 100]
    jobs = [(i, k, t) for i in range(len(arrays)) for k in ks for t in (1, 2)]
    expected = {(i, k, t): _fields(histgpu.compute(arrays[i], k, num_threads=t)) for (i, k, t) in jobs}

    def run(job):
        i, k, t = job
        return job, _fields(histgpu.compute(arrays[i], k, num_threads=t))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs * 3))
    assert len(results) == 3 * len(jobs)
    for job, got in results:
        assert got == expected[job], f"concurrent result differs for array {job[0]}, k={job[1]}, threads={job[2]}"


def test_concurrent_same_array(histgpu):
    x = np.random.default_rng(3).standard_normal(1_000_000, dtype=np.float32)
    ref = histgpu.histogram(x, 30)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outs = list(pool.map(lambda _: histgpu.histogram(x, 30), range(16)))
    for o in outs:
        assert np.array_equal(o, ref)


def _windows(base, rows, width):
    """Overlapping windows: a large view with no zero stride over a small buffer (nothing to collapse)."""
    return as_strided(base, shape=(rows, width), strides=(base.itemsize, base.itemsize), writeable=False)


def test_gil_released_while_counting(histgpu):
    """A long call in one thread must let another Python thread run meanwhile."""
    base = np.random.default_rng(4).standard_normal(200_000 + 4096, dtype=np.float32)
    x = _windows(base, 200_000, 4096)  # 8.2e8 values read from 0.8 MB
    done = threading.Event()
    result = {}

    def work():
        result["h"] = histgpu.compute(x, 30, num_threads=1)
        done.set()

    ticks = 0
    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        time.sleep(0.001)
        ticks += 1
    elapsed = time.perf_counter() - start
    t.join()
    assert result["h"].num == x.size
    # with the GIL released the main thread wakes about every ms; held, it would not run at all
    assert elapsed < 0.05 or ticks >= elapsed / 0.01, f"main thread ran {ticks} times in {elapsed:.2f}s: GIL held?"


# ------------------------------------------------------------------------------------------------
# 64-bit counts and zero-stride views
# ------------------------------------------------------------------------------------------------
def test_count_beyond_2_32_in_one_bucket(histgpu):
    """4.4e9 values from a zero-stride view (no copy); one bucket gets more than 2**32 of them.

    Expected counts: TensorBoard's buckets for one row, times the number of rows (counts scale
    exactly; edges depend only on min, max and k)."""
    row = np.array([0.0] + [1.5] * 62 + [3.0], dtype=np.float32)
    rows = 2**32 // 62 + 1000
    x = np.broadcast_to(row, (rows, row.size))
    assert x.strides == (0, 4)
    expected = tb_buckets(row, 30)
    expected[:, 2] *= rows
    h = histgpu.compute(x, 30)
    counts = np.asarray(h.counts)
    assert counts.dtype == np.uint64
    big = int(counts.max())
    assert big == 62 * rows and big > 2**32
    assert h.num == rows * row.size > 2**32
    assert int(counts.sum()) == rows * row.size
    assert_same_buckets(h.to_tensor(), expected, "2**32+ counts")


def test_count_beyond_2_32_without_zero_strides(histgpu):
    """4.4e9 values really read (overlapping windows, no zero stride), all but 2 of them in one bucket."""
    rows, width = 2**16 + 1024, 2**16
    base = np.full(rows + width - 1, 1.5, dtype=np.float32)
    base[0], base[-1] = 0.0, 3.0  # each appears in exactly one window position
    x = _windows(base, rows, width)
    n = rows * width
    distinct = np.array([0.0, 1.5, 3.0], np.float32)
    expected = tb_buckets(distinct, 30)  # one count in each of the three values' buckets
    expected[:, 2] *= 0
    which = tb_buckets(distinct, 30)[:, 2] == 1
    expected[np.flatnonzero(which), 2] = [1, n - 2, 1]
    h = histgpu.compute(x, 30)
    assert h.num == n and int(np.asarray(h.counts).max()) == n - 2 > 2**32
    assert_same_buckets(h.to_tensor(), expected, "overlapping windows, 2**32+ counts")


def test_single_value_count_beyond_2_32(histgpu):
    x = np.broadcast_to(np.float32(1.5), (2**32 + 3,))
    h = histgpu.compute(x, 4)
    assert h.num == 2**32 + 3
    assert [int(c) for c in np.asarray(h.counts)] == [0, 0, 0, 2**32 + 3]


def test_zero_stride_rows(histgpu):
    base = np.random.default_rng(8).standard_normal((3, 1, 5))
    x = np.broadcast_to(base, (3, 100_000, 5))
    expected = tb_buckets(base, 30)
    expected[:, 2] *= 100_000
    assert_same_buckets(histgpu.histogram(x, 30), expected, "broadcast middle axis")


# ------------------------------------------------------------------------------------------------
# no copy proportional to the input
# ------------------------------------------------------------------------------------------------
def _layouts():
    rng = np.random.default_rng(10)
    base32 = rng.standard_normal((2000, 2000), dtype=np.float32)
    return {
        "contiguous f32": base32,
        "transposed f32": base32.T,
        "negative stride f32": base32[::-1, ::-3],
        "broadcast f32": np.broadcast_to(base32[0], (4000, 2000)),
        "contiguous f64": rng.standard_normal(3_000_000),
        "contiguous f16": base32.astype(np.float16),
        "strided f16": base32.astype(np.float16)[:, ::2],
        "contiguous bf16": base32.astype("bfloat16"),
        "contiguous fp8": base32.astype("float8_e4m3fn"),
        "contiguous int64": rng.integers(0, 1000, 2_000_000),
        "strided int8": rng.integers(-100, 100, (2000, 2000)).astype(np.int8)[::2],
        "contiguous uint16": rng.integers(0, 60000, 2_000_000).astype(np.uint16),
        "contiguous bool": rng.integers(0, 2, 4_000_000).astype(bool),
    }


@pytest.mark.parametrize(
    "name",
    [
        "contiguous f32", "transposed f32", "negative stride f32", "broadcast f32", "contiguous f64",
        "contiguous f16", "strided f16", "contiguous bf16", "contiguous fp8", "contiguous int64",
        "strided int8", "contiguous uint16", "contiguous bool",
    ],
)
def test_no_copy_of_the_input(histgpu, name):
    """Python-side allocations during the call stay far below the input's size (tracemalloc sees
    numpy's buffers, so a conversion or copy of the input would show up)."""
    x = _layouts()[name]
    histgpu.histogram(x, 30)  # warm-up: lazy imports, caches
    nbytes = x.size * x.dtype.itemsize
    tracemalloc.start()
    try:
        histgpu.histogram(x, 30)
        histgpu.compute(x, 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < min(nbytes // 8, 1 << 20), f"{name}: {peak} bytes allocated for a {nbytes}-byte input"
