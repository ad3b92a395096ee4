"""The vector v1 kernels guess a float32 value's TensorFlow bucket arithmetically (a polynomial
for log_1.1(|x| / 1e-12), csrc/cpu/kernels/v1.cpp) and trust the guess only where it is far
from a bucket limit. Every float32 near every limit, every exponent, and both signs must still
land where ``std::upper_bound`` (``np.searchsorted``) puts them, in every kernel build.

``HISTGPU_EXHAUSTIVE=1`` also sweeps all 2^32 bit patterns in runs of 2^16 consecutive floats
(minutes per build; run by hand when the kernel changes)."""

import os

import numpy as np
import pytest

import histgpu
from histgpu import _cpu, _input

ISAS = list(_cpu.supported_isas())
LIMITS = histgpu.v1_limits()


def _expected(x):
    f = x.astype(np.float64)
    f = f[np.isfinite(f)]
    return np.bincount(np.minimum(np.searchsorted(LIMITS, f, side="right"), LIMITS.size - 1), minlength=LIMITS.size)


def _counts(x, isa):
    e = _cpu.CpuEngine(threads=1, isa=isa)
    return np.asarray(e.v1(_input.host_view(x).engine_view()).counts)


def _around_every_limit(ulps):
    inner = LIMITS[1:-1]
    f32 = inner.astype(np.float32)
    f32 = f32[np.isfinite(f32)]
    keys = f32.view(np.int32).astype(np.int64)
    offsets = np.arange(-ulps, ulps + 1)
    near = (keys[:, None] + offsets[None, :]).reshape(-1)
    near = near[(near >= -(2**31)) & (near < 2**31)].astype(np.int32).view(np.float32)
    return near[np.isfinite(near)]


@pytest.mark.parametrize("isa", ISAS)
def test_every_float32_near_every_limit(isa):
    """2 * 1024 + 1 consecutive floats around each of the 1,549 inner limits (both signs: the
    negative limits are the positive ones mirrored)."""
    x = _around_every_limit(1024)
    for chunk in np.array_split(x, 64):  # small runs: a misfiled value cannot hide behind another
        assert np.array_equal(_counts(chunk, isa), _expected(chunk))


@pytest.mark.parametrize("isa", ISAS)
def test_every_exponent_both_signs(isa):
    rng = np.random.default_rng(11)
    fields = np.repeat(np.arange(0, 255, dtype=np.uint32), 4096)
    mant = rng.integers(0, 2**23, fields.size, dtype=np.uint32)
    sign = rng.integers(0, 2, fields.size, dtype=np.uint32) << 31
    x = (sign | (fields << 23) | mant).view(np.float32)
    x = np.concatenate([x, np.float32([0.0, -0.0, np.finfo(np.float32).tiny, -np.finfo(np.float32).max])])
    for chunk in np.array_split(x, 255):
        assert np.array_equal(_counts(chunk, isa), _expected(chunk))


@pytest.mark.skipif(os.environ.get("HISTGPU_EXHAUSTIVE") != "1", reason="set HISTGPU_EXHAUSTIVE=1 (minutes)")
@pytest.mark.parametrize("isa", ISAS)
def test_all_float32_bit_patterns(isa):
    run = 2**16
    for start in range(0, 2**32, run):
        x = np.arange(start, start + run, dtype=np.uint64).astype(np.uint32).view(np.float32)
        assert np.array_equal(_counts(x, isa), _expected(x)), hex(start)
