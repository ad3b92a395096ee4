"""Every CPU kernel build (baseline, AVX2, AVX-512) gives the same bits, and each agrees with
the oracles: TensorBoard's ``_buckets`` for v2, ``np.searchsorted`` (TF's ``upper_bound``) and
``math.fsum`` for v1. The kernels are chosen per call with HISTGPU_CPU_ISA."""

import math

import numpy as np
import pytest

import histgpu
from histgpu import _cpu

from .oracles import ieee_buckets, tb_buckets

ISAS = list(_cpu.supported_isas())


def _data_sets():
    rng = np.random.default_rng(7)
    normal = rng.standard_normal(40_011).astype(np.float32)
    with_nonfinite = normal.copy()
    with_nonfinite[::997] = np.nan
    with_nonfinite[5::1999] = np.inf
    with_nonfinite[7::2003] = -np.inf
    lo, hi = np.float32(-3.0), np.float32(5.0)
    # every value that sits on a 30-bucket edge, and one ulp either side
    edges = (np.float64(lo) + (np.float64(hi) - np.float64(lo)) / 30 * np.arange(31)).astype(np.float32)
    boundary = np.concatenate([[lo, hi], edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    boundary = np.clip(boundary, lo, hi).astype(np.float32)
    return {
        "normal_f32": normal,
        "nonfinite_f32": with_nonfinite,
        "boundary_f32": np.tile(boundary, 50),
        "strided_f32": normal[::3],
        "f64": rng.standard_normal(30_001) * 1e3,
        "f16": rng.standard_normal(20_000).astype(np.float16),
        "i64": rng.integers(-(2**62), 2**62, size=10_000),
    }


DATA = _data_sets()


def _finite(x):
    x = np.asarray(x)
    return x[np.isfinite(x.astype(np.float64))] if x.dtype.kind == "f" else x


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", sorted(DATA))
@pytest.mark.parametrize("k", [1, 7, 30, 32, 33, 100])
def test_v2_every_isa_matches_tensorboard(monkeypatch, isa, name, k):
    monkeypatch.setenv("HISTGPU_CPU_ISA", isa)
    x = DATA[name]
    with pytest.warns(histgpu.NonFiniteWarning) if name == "nonfinite_f32" else _no_warning():
        got = histgpu.histogram(x, k)
    assert np.array_equal(got, tb_buckets(_finite(x).astype(np.float64), k))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_v1_every_isa_matches_upper_bound_and_fsum(monkeypatch, isa, name):
    monkeypatch.setenv("HISTGPU_CPU_ISA", isa)
    x = DATA[name]
    with pytest.warns(histgpu.NonFiniteWarning) if name == "nonfinite_f32" else _no_warning():
        h = histgpu.compute_v1(x)
    f = _finite(x).astype(np.float64)
    limits = histgpu.v1_limits()
    expected = np.bincount(
        np.minimum(np.searchsorted(limits, f, side="right"), limits.size - 1), minlength=limits.size
    )
    assert np.array_equal(h.counts, expected)
    assert h.num == f.size
    assert h.sum == math.fsum(f)
    assert (h.min, h.max) == (f.min(), f.max())


def test_v1_limits_and_their_neighbours_land_where_upper_bound_says():
    """The first guess comes from a table of key prefixes and is corrected by one step; values
    on every limit and one ulp either side, in float32 and float64, check that one step is
    always enough."""
    limits = histgpu.v1_limits()
    inner = limits[1:-1]
    for dtype in (np.float32, np.float64):
        v = inner.astype(dtype)
        v = v[np.isfinite(v)]
        probe = np.concatenate([v, np.nextafter(v, dtype(-np.inf)), np.nextafter(v, dtype(np.inf))])
        for isa in ISAS:
            h = _cpu_v1(probe, isa)
            f = probe.astype(np.float64)
            expected = np.bincount(
                np.minimum(np.searchsorted(limits, f, side="right"), limits.size - 1), minlength=limits.size
            )
            assert np.array_equal(h, expected), (dtype, isa)


def _cpu_v1(x, isa):
    from histgpu import _input

    view = _input.host_view(x)
    return _cpu.CpuEngine(threads=1, isa=isa).v1(view.engine_view()).counts


class _no_warning:
    """Context manager asserting that no NonFiniteWarning is raised."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", histgpu.NonFiniteWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k", [7, 30, 33, 1000, 70_000])
@pytest.mark.parametrize(
    "case",
    ["float32_range_overflows_float32", "float32_narrow_range", "float64_edges_and_ulps"],
)
def test_trusted_guess_never_misfiles(monkeypatch, isa, k, case):
    """The kernels trust the arithmetic guess when it is far enough inside its
    bucket (V2Plan::guess_tolerance) and check only the others against the thresholds. Values
    on every edge and one ulp either side, ranges whose difference overflows float32, narrow
    ranges and bucket counts beyond the trusted limit must all still match TensorBoard's
    formula (``ieee_buckets``, itself checked against TensorBoard in tests/core/test_reference.py;
    TensorBoard's own one_hot would need n * k * 8 bytes here)."""
    monkeypatch.setenv("HISTGPU_CPU_ISA", isa)
    rng = np.random.default_rng(k)
    if case == "float32_range_overflows_float32":
        x = rng.uniform(-3.3e38, 3.3e38, 20_000).astype(np.float32)
    elif case == "float32_narrow_range":
        x = (np.float32(1000.0) + rng.integers(0, 4000, 20_000).astype(np.float32) * np.float32(2**-14)).astype(np.float32)
    else:
        lo, hi = -7.25, 1e3
        edges = lo + (hi - lo) / k * np.arange(k + 1)
        x = np.concatenate([[lo, hi], edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
        x = np.clip(x, lo, hi)
    assert np.array_equal(histgpu.histogram(x, k), ieee_buckets(x.astype(np.float64), k))
