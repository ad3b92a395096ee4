"""Non-finite values (docs/semantics.md §1.2): excluded from the range and the buckets, counted separately,
reported by a warning (nonfinite="omit", the default) or an error (nonfinite="raise").

The finite part's histogram must equal TensorBoard's ``_buckets`` on the finite values alone.
"""

import re
import warnings

import numpy as np
import pytest

from .oracles import FLOAT_DTYPES, assert_same_buckets, dtype_id, finite_part, tb_buckets


def _with_nonfinite(rng, dt, n, n_nan, n_pinf, n_ninf):
    dt = np.dtype(dt)
    x = (rng.standard_normal(n) * 3).astype(dt)
    specials = np.concatenate([np.full(n_nan, np.nan), np.full(n_pinf, np.inf), np.full(n_ninf, -np.inf)])
    x = np.concatenate([x, specials.astype(dt)])
    return x[rng.permutation(x.size)]


def _counts(dt, n_nan, n_pinf, n_ninf):
    """Expected (nan, posinf, neginf): float8_e4m3fn has no infinities (inf casts to NaN)."""
    if np.dtype(dt) == np.dtype("float8_e4m3fn"):
        return n_nan + n_pinf + n_ninf, 0, 0
    return n_nan, n_pinf, n_ninf


def _has_all_numbers(msg, numbers):
    found = {int(s) for s in re.findall(r"\d+", msg)}
    return all(n in found for n in numbers if n)


@pytest.mark.parametrize("k", [1, 7, 30])
@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=dtype_id)
def test_nonfinite_are_omitted_counted_and_warned(histgpu, rng, dt, k):
    n_nan, n_pinf, n_ninf = 3, 5, 7
    x = _with_nonfinite(rng, dt, 5000, n_nan, n_pinf, n_ninf)
    fin = finite_part(x)
    expected = tb_buckets(fin, k)
    e_nan, e_pinf, e_ninf = _counts(dt, n_nan, n_pinf, n_ninf)

    with pytest.warns(histgpu.NonFiniteWarning) as rec:
        h = histgpu.compute(x, k)
    assert_same_buckets(h.to_tensor(), expected, f"{dtype_id(dt)} finite part k={k}")
    assert (h.nan, h.posinf, h.neginf) == (e_nan, e_pinf, e_ninf)
    assert h.num == fin.size
    assert h.min == fin.astype(np.float64).min() and h.max == fin.astype(np.float64).max()
    msgs = [str(w.message) for w in rec if issubclass(w.category, histgpu.NonFiniteWarning)]
    assert any(_has_all_numbers(m, (e_nan, e_pinf, e_ninf)) for m in msgs), f"counts not in warning: {msgs}"

    with pytest.warns(histgpu.NonFiniteWarning):
        got = histgpu.histogram(x, k)
    assert_same_buckets(got, expected, f"histogram() {dtype_id(dt)} k={k}")

    with pytest.warns(histgpu.NonFiniteWarning):
        got = histgpu.histogram(x, k, nonfinite="omit")
    assert_same_buckets(got, expected, f"explicit omit {dtype_id(dt)} k={k}")


def test_warning_class():
    import histgpu

    assert issubclass(histgpu.NonFiniteWarning, RuntimeWarning)


@pytest.mark.parametrize("kind", ["nan", "posinf", "neginf"])
def test_each_kind_alone(histgpu, rng, kind):
    x = rng.standard_normal(1000)
    value = {"nan": np.nan, "posinf": np.inf, "neginf": -np.inf}[kind]
    x[[3, 500, 999]] = value
    with pytest.warns(histgpu.NonFiniteWarning):
        h = histgpu.compute(x, 30)
    assert getattr(h, kind) == 3
    assert h.nan + h.posinf + h.neginf == 3
    assert_same_buckets(h.to_tensor(), tb_buckets(finite_part(x), 30), f"{kind} omitted")


@pytest.mark.parametrize("k", [0, 1, 30])
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64, "bfloat16"], ids=str)
def test_all_nonfinite(histgpu, dt, k):
    for x in ([np.nan] * 10, [np.inf, -np.inf, np.nan], [np.inf], [-np.inf, -np.inf]):
        arr = np.array(x, dtype=np.float64).astype(dt)
        with pytest.warns(histgpu.NonFiniteWarning):
            h = histgpu.compute(arr, k)
        assert h.num == 0
        assert (h.nan, h.posinf, h.neginf) == (
            int(np.isnan(arr.astype(np.float64)).sum()),
            int((arr.astype(np.float64) == np.inf).sum()),
            int((arr.astype(np.float64) == -np.inf).sum()),
        )
        assert_same_buckets(h.to_tensor(), tb_buckets(np.zeros(0), k), f"all non-finite {x} k={k}")
        with pytest.warns(histgpu.NonFiniteWarning):
            got = histgpu.histogram(arr, k)
        assert_same_buckets(got, tb_buckets(np.zeros(0), k), f"histogram all non-finite {x} k={k}")


def test_nonfinite_with_single_finite_value(histgpu):
    x = np.array([np.nan, 2.5, np.inf, 2.5, -np.inf])
    with pytest.warns(histgpu.NonFiniteWarning):
        got = histgpu.histogram(x, 4)
    assert_same_buckets(got, tb_buckets(np.array([2.5, 2.5]), 4), "one finite value")


def test_nonfinite_in_views(histgpu, rng):
    a = rng.standard_normal((300, 200)).astype(np.float32)
    a[::7, ::11] = np.nan
    a[5, :] = np.inf
    a[:, 3] = -np.inf
    for v in (a.T, a[::-1, ::3], np.asfortranarray(a), np.broadcast_to(a[17], (50, 200))):
        fin = finite_part(v)
        vv = np.asarray(v, np.float64)
        with pytest.warns(histgpu.NonFiniteWarning):
            h = histgpu.compute(v, 30)
        assert (h.nan, h.posinf, h.neginf) == (
            int(np.isnan(vv).sum()),
            int((vv == np.inf).sum()),
            int((vv == -np.inf).sum()),
        )
        assert_same_buckets(h.to_tensor(), tb_buckets(fin, 30), "view with non-finite")


def test_nonfinite_large_threaded(histgpu, rng):
    """Non-finite values spread through a large array (every thread and SIMD block sees some)."""
    x = rng.standard_normal(2_000_000, dtype=np.float32)
    idx = rng.choice(x.size, 3000, replace=False)
    x[idx[:1000]] = np.nan
    x[idx[1000:2500]] = np.inf
    x[idx[2500:]] = -np.inf
    fin = finite_part(x)
    for threads in (1, 2, 8):
        with pytest.warns(histgpu.NonFiniteWarning):
            h = histgpu.compute(x, 30, num_threads=threads)
        assert (h.nan, h.posinf, h.neginf) == (1000, 1500, 500)
        assert h.num == fin.size
        assert_same_buckets(h.to_tensor(), tb_buckets(fin, 30), f"large non-finite threads={threads}")


def test_nonfinite_with_huge_finite_values(histgpu):
    """Infinities next to the largest finite values: only the finite ones define the range."""
    fmax = np.finfo(np.float32).max
    x = np.array([np.inf, fmax, -fmax, -np.inf, 0.0, np.nan], np.float32)
    with pytest.warns(histgpu.NonFiniteWarning):
        got = histgpu.histogram(x, 30)
    assert_same_buckets(got, tb_buckets(finite_part(x), 30), "inf next to float32 max")


def test_no_warning_for_finite_data(histgpu, rng):
    x = rng.standard_normal(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        histgpu.histogram(x, 30)
        histgpu.compute(x, 30)
        histgpu.histogram(x, 30, nonfinite="raise")
        histgpu.histogram(np.arange(10), 3, nonfinite="raise")
        histgpu.histogram(np.zeros(0), 3)


# ------------------------------------------------------------------------------------------------
# nonfinite="raise"
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64, "bfloat16", "float8_e5m2"], ids=str)
def test_raise_mode(histgpu, rng, dt):
    x = _with_nonfinite(rng, dt, 1000, 3, 5, 7)
    e_nan, e_pinf, e_ninf = _counts(dt, 3, 5, 7)
    for fn in (histgpu.histogram, histgpu.compute):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # raise mode must not also warn
            with pytest.raises(ValueError) as exc:
                fn(x, 30, nonfinite="raise")
        msg = str(exc.value)
        assert _has_all_numbers(msg, (e_nan, e_pinf, e_ninf)), f"counts missing in {msg!r}"


def test_raise_mode_single_nan(histgpu):
    with pytest.raises(ValueError, match="1"):
        histgpu.histogram(np.array([1.0, np.nan, 2.0]), 5, nonfinite="raise")


def test_raise_mode_fp8_e4m3fn_nan(histgpu):
    x = np.array([1.0, np.nan, 2.0, np.nan]).astype("float8_e4m3fn")
    with pytest.raises(ValueError, match="2"):
        histgpu.compute(x, 5, nonfinite="raise")


@pytest.mark.parametrize("bad", ["ignore", "Omit", "RAISE", "", None, 0, True])
def test_bad_nonfinite_value(histgpu, bad):
    with pytest.raises(ValueError, match="nonfinite"):
        histgpu.histogram(np.array([1.0, 2.0]), 3, nonfinite=bad)
    with pytest.raises(ValueError, match="nonfinite"):
        histgpu.compute(np.array([1.0, 2.0]), 3, nonfinite=bad)
