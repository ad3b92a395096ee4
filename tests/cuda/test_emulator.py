"""The emulator's own checks, and the review's defects (D1-D6 of issue 11) shown where the
emulated CUDA engine can show them: the same host code and kernels the GPU engine runs.
"""

import re
import threading

import numpy as np
import pytest

import histgpu
from histgpu import _cpu, _cuda_async, _input

from .engines import CPU, EMULATED_SHAPES, same_v1, same_v2


def _view(x):
    return _input.host_view(x).engine_view()


# ------------------------------------------------------------------------------------------------
# what the emulator checks
# ------------------------------------------------------------------------------------------------


def test_a_barrier_some_threads_skip_is_reported():
    got = _cpu._emulator_probe("divergent_barrier")
    assert got.startswith("raised:") and "exited while other threads wait at a barrier" in got


def test_a_collective_half_a_warp_reaches_is_reported():
    got = _cpu._emulator_probe("divergent_collective")
    assert got.startswith("raised:") and "deadlock" in got


def test_lanes_in_different_collectives_are_reported():
    got = _cpu._emulator_probe("mismatched_collective")
    assert got.startswith("raised:") and "different warp collectives" in got


def test_reading_past_shared_memory_is_an_illegal_address():
    got = _cpu._emulator_probe("past_shared_memory")
    assert got.startswith("raised:") and "illegal address" in got
    assert re.search(r"dynamic shared memory, offset 8208 of the 8192 bytes", got), got


def test_unwritten_shared_memory_holds_garbage():
    # 0xA5 in every byte: a kernel that forgets to initialise shared memory gives wrong results
    assert _cpu._emulator_probe("reads_shared_memory_unwritten") == f"ok: {0xA5A5A5A5} 0"


def test_shuffles_and_barriers_compute_what_a_gpu_computes():
    assert _cpu._emulator_probe("shuffles_and_barriers") == f"ok: {sum(range(128))} {sum(range(128))}"


def test_emulated_kernels_run_many_fibers():
    before = _cpu.emulator_counters()
    _cpu.EmulatedCudaEngine().v2(_view(np.arange(100000, dtype=np.float32)), 30)
    after = _cpu.emulator_counters()
    assert after[0] > before[0] and after[1] - before[1] >= 256 and after[2] > after[1] - before[1]


# ------------------------------------------------------------------------------------------------
# D1: the v1 guess table's shift comes from core; the table is indexed inside its bounds
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["float32", "float64"])
def test_d1_v1_of_narrow_weights_equals_the_cpu(dt):
    """200k N(0, 0.02) values, the review's replay: with the old shift half the lookups read past
    the table (here: an illegal-address error) and the rest land in wrong buckets."""
    x = np.random.default_rng(1).normal(0, 0.02, 200000).astype(dt)
    same_v1(_cpu.EmulatedCudaEngine().v1(_view(x)), CPU.v1(_view(x)), "N(0, 0.02)")


# ------------------------------------------------------------------------------------------------
# D2: concurrent callers with different shared-memory needs
# ------------------------------------------------------------------------------------------------


def test_d2_concurrent_threads_with_different_launches():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(30000).astype(np.float32) for _ in range(6)]
    ks = [3, 300, 3000, 30, 1000, 9000]  # every count mode, so every shared-memory size
    refs = [CPU.v2(_view(x), k) for x, k in zip(xs, ks)]
    errors = []

    def work(i):
        try:
            e = _cpu.EmulatedCudaEngine()
            for _ in range(3):
                same_v2(e.v2(_view(xs[i]), ks[i]), refs[i], f"thread {i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


# ------------------------------------------------------------------------------------------------
# D3: v1 on float64 and integer data fits sm_86's 99 KiB opt-in shared memory
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [np.float64, np.int64, np.uint32], ids=["float64", "int64", "uint32"])
def test_d3_v1_of_64_bit_kernels_fits_99_kib(dt):
    e = _cpu.EmulatedCudaEngine(**EMULATED_SHAPES["emulated-sm86"])
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(50000) * 1e6).astype(dt)
    same_v1(e.v1(_view(x)), CPU.v1(_view(x)), np.dtype(dt).name)
    smem = [int(m.group(1)) for t in e.trace() if (m := re.search(r"launch pass=2 .*smem=(\d+)", t))]
    assert smem and max(smem) <= 99 * 1024 - 1024, smem


def test_shared_memory_beyond_the_device_is_refused():
    e = _cpu.EmulatedCudaEngine(smem_per_block=48 * 1024, smem_per_multiprocessor=64 * 1024)
    with pytest.raises(RuntimeError, match="shared memory"):
        e.v1(_view(np.ones(10, np.float32)))


# ------------------------------------------------------------------------------------------------
# D4: one batch is ordered after every producer stream, and they after its reads
# ------------------------------------------------------------------------------------------------


def test_d4_a_batch_waits_for_every_producer_stream_and_they_for_it():
    e = _cpu.EmulatedCudaEngine()
    xs = [np.random.default_rng(i).standard_normal(1000).astype(np.float32) for i in range(3)]
    views = [_view(x) for x in xs]
    pending = e.enqueue_v2(views, [30, 30, 30], producers=[5, 7, 5])  # the batch runs on stream 0
    for got, x in zip(pending.results(), xs):
        same_v2(got, CPU.v2(_view(x), 30), "producers")
    trace = e.trace()
    recorded = {m.group(1): m.group(2) for t in trace if (m := re.match(r"record s=(\d+) e=(\d+)", t))}
    first_launch = next(i for i, t in enumerate(trace) if t.startswith("launch"))
    waits_before = [t for t in trace[:first_launch] if t.startswith("wait")]
    # the batch's stream (0) waits on an event of each producer (5 and 7), before any kernel
    assert sorted(waits_before) == sorted([f"wait s=0 e={recorded['5']}", f"wait s=0 e={recorded['7']}"])
    done = recorded["0"]  # recorded on the batch's stream after its results
    waits_after = [t for t in trace[first_launch:] if t.startswith("wait")]
    assert sorted(waits_after) == sorted([f"wait s=5 e={done}", f"wait s=7 e={done}"])


def test_d4_one_batch_per_gpu():
    class FakeView(_input.DeviceView):
        pass

    a = FakeView(None, 1024, 11, (4,), (4,), 1, 4, device=0, stream=0)
    b = FakeView(None, 2048, 11, (4,), (4,), 1, 4, device=1, stream=0)
    with pytest.raises(ValueError, match="one GPU"):
        _cuda_async.enqueue_views([a, b], [3, 3])


# ------------------------------------------------------------------------------------------------
# D5 / D6: nothing blocks or leaks when results are dropped or a batch fails
# ------------------------------------------------------------------------------------------------


def test_d5_dropping_unread_results_never_waits_and_returns_the_pinned_buffer():
    e = _cpu.EmulatedCudaEngine()
    x = np.random.default_rng(5).standard_normal(5000).astype(np.float32)
    pending = e.enqueue_v2([_view(x)], [30])
    held = e.pinned_bytes()
    del pending  # unread
    trace = e.trace()
    assert not any(t.startswith("synchronize") for t in trace), trace  # nobody waited
    assert any(t.startswith("when_done") for t in trace)  # the buffer returns after the copy
    assert e.pinned_bytes() > held


def test_d6_a_failing_batch_returns_its_pinned_buffer():
    e = _cpu.EmulatedCudaEngine(memory_limit=1024)
    x = np.random.default_rng(6).standard_normal(100000).astype(np.float32)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="out of device memory"):
            e.v2(_view(x), 30)
    held = e.pinned_bytes()
    assert held > 0  # returned to the pool, and reused: three failures hold one buffer
    with pytest.raises(RuntimeError, match="out of device memory"):
        e.v2(_view(x), 30)
    assert e.pinned_bytes() == held


def test_device_planner_checked_against_core_for_every_k():
    e = _cpu.EmulatedCudaEngine(verify_plan=True)
    x = np.random.default_rng(7).standard_normal(3000).astype(np.float32)
    for k in (1, 7, 5000, 70000):
        same_v2(e.v2(_view(x), k), CPU.v2(_view(x), k), f"verified k={k}")


def test_public_api_with_device_cuda_emulated():
    x = np.random.default_rng(8).standard_normal(777).astype(np.float32)
    assert np.array_equal(histgpu.histogram(x, 30, device="cuda-emulated"), histgpu.histogram(x, 30))
    assert "cuda-emulated" in histgpu.build_info()["backends"]
    with pytest.raises(ValueError, match="device must be one of"):
        histgpu.compute(x, device="gpu")
