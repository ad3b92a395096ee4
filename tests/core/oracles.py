"""Oracles of the core tests: TensorBoard's own v2 bucketing, its IEEE float64 formula where
TensorBoard flushes subnormals, and the helpers that place adversarial values.

The oracle for the v2 bucket tensor is TensorBoard's own code,
``tensorboard.plugins.histogram.summary_v2._buckets``, run eagerly on TensorFlow (CPU); the
rules it implements are written down in docs/semantics.md.
"""

import numpy as np

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - ml_dtypes is a runtime dependency of histgpu
    ml_dtypes = None

# ------------------------------------------------------------------------------------------------
# dtypes
# ------------------------------------------------------------------------------------------------
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
NATIVE_FLOAT_DTYPES = [np.float16, np.float32, np.float64]
ML_FLOAT_DTYPES = (
    [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2] if ml_dtypes is not None else []
)
FLOAT_DTYPES = NATIVE_FLOAT_DTYPES + ML_FLOAT_DTYPES
ALL_DTYPES = [np.bool_] + INT_DTYPES + FLOAT_DTYPES


def dtype_id(dt):
    return np.dtype(dt).name


def is_ml_dtype(dt):
    return any(np.dtype(dt) == np.dtype(m) for m in ML_FLOAT_DTYPES)


class _FloatInfo:
    """The limits of a float type as Python floats.

    ml_dtypes >= 0.5 returns its limits as scalars of the small type itself, and comparing
    one with a Python float casts the float to that type (513.25 becomes NaN in float8_e4m3fn,
    so ``finfo.max < 513.25`` is False); plain floats compare as numbers."""

    def __init__(self, info):
        for name in ("max", "min", "tiny", "smallest_subnormal", "eps"):
            setattr(self, name, float(getattr(info, name)))
        self.bits = int(info.bits)


def finfo(dt):
    """np.finfo that also understands the ml_dtypes float types (limits as Python floats)."""
    if is_ml_dtype(dt):
        return _FloatInfo(ml_dtypes.finfo(dt))
    return _FloatInfo(np.finfo(dt))



# ------------------------------------------------------------------------------------------------
# TensorFlow / TensorBoard oracle
# ------------------------------------------------------------------------------------------------
_TF = None


def _tf():
    global _TF
    if _TF is None:
        import tensorflow as tf

        _TF = tf
    return _TF



def tb_buckets(data, buckets=None):
    """TensorBoard's own v2 bucketing of ``data`` (``summary_v2._buckets``), as a numpy array.

    ``data`` is anything numpy can turn into an array.  The ml_dtypes float types (bfloat16, fp8)
    are cast to float64 with numpy first: the cast is exact, and ``_buckets`` casts to float64
    before doing anything else, so the result is what TensorBoard gives for those tensors.
    ``buckets`` is passed as a Python int (``_buckets`` asserts an int32 scalar).
    """
    tf = _tf()
    from tensorboard.plugins.histogram import summary_v2

    arr = np.asarray(data)
    if is_ml_dtype(arr.dtype):
        arr = arr.astype(np.float64)
    k = None if buckets is None else int(buckets)
    with tf.device("/CPU:0"):
        out = summary_v2._buckets(tf.constant(arr), k)
    return np.asarray(out.numpy())


# ------------------------------------------------------------------------------------------------
# Subnormals: where TensorBoard is not a function of the values
# ------------------------------------------------------------------------------------------------
# TensorFlow runs its CPU kernels with denormals flushed to zero (FTZ/DAZ), and not consistently:
# tf.cast(float64 -> float64) flushes a subnormal, float32 -> float64 flushes float32 subnormals,
# but reductions return either a flushed zero or the raw subnormal depending on ties and size
# (e.g. _buckets([8.65e-310], 100) keeps 8.65e-310 as the edge, _buckets([1e-310, 1e-310], 1)
# gives 0.0, and [5e-324, -0.0, 0.0, ...] can give -5e-324, a value that is not in the data).
# When (max - min) / k is subnormal it drops every count. So wherever a subnormal can enter,
# the reference is the formula of docs/semantics.md §1.1.5 evaluated in IEEE float64
# (ieee_buckets, see §1.5), which tests/core/test_reference.py checks against TensorBoard on
# data where TensorBoard never flushes.
DBL_MIN = float(np.finfo(np.float64).tiny)
FLT_MIN = float(np.finfo(np.float32).tiny)


def _as_f64(data):
    arr = np.asarray(data)
    return arr.astype(np.float64).reshape(-1)


def tb_is_ieee(data, buckets=None):
    """True when no subnormal enters TensorBoard's computation (so its result is the IEEE one)."""
    arr = np.asarray(data)
    x = _as_f64(arr)
    x = x[np.isfinite(x)]
    k = 30 if buckets is None else max(int(buckets), 0)
    if x.size == 0 or k == 0:
        return True
    nz = np.abs(x[x != 0])
    limit = FLT_MIN if arr.dtype in (np.dtype(np.float32), np.dtype("bfloat16")) else DBL_MIN
    if nz.size and nz.min() < limit:
        return False
    lo, hi = x.min(), x.max()
    rng = hi - lo
    if rng == 0:
        return True
    if not np.isfinite(rng) or rng / k < DBL_MIN:
        return False
    edges = lo + (rng / k) * np.arange(k + 1, dtype=np.float64)
    e = np.abs(edges[edges != 0])
    return bool(e.size == 0 or e.min() >= DBL_MIN)


def ieee_width_is_zero(data, buckets=None):
    """True when max > min but (max - min) / k underflows to 0: no formula defines the buckets."""
    x = _as_f64(data)
    x = x[np.isfinite(x)]
    k = 30 if buckets is None else max(int(buckets), 0)
    if x.size == 0 or k == 0:
        return False
    rng = x.max() - x.min()
    return bool(rng > 0 and rng / k == 0)


def ieee_buckets(data, buckets=None):
    """The formula of docs/semantics.md §1.1.5 in IEEE float64 (numpy), as TensorBoard writes it:
    width = (max-min)/k; bucket = min(floor((x-min)/width), k-1); edges = min + width*i, last = max;
    all-equal data: every edge = the value, all counts in the last bucket."""
    x = _as_f64(data)
    k = 30 if buckets is None else max(int(buckets), 0)
    if x.size == 0 or k == 0:
        return np.zeros((k, 3), dtype=np.float64)
    lo, hi = x.min(), x.max()
    rng = hi - lo
    if rng == 0:
        counts = np.zeros(k)
        counts[-1] = x.size
        return np.stack([np.full(k, hi), np.full(k, hi), counts], axis=1)
    width = rng / np.float64(k)
    assert width > 0 and np.isfinite(width), "no IEEE reference when the width underflows or overflows"
    idx = np.minimum(np.floor((x - lo) / width), k - 1).astype(np.int64)
    counts = np.bincount(idx, minlength=k).astype(np.float64)
    edges = lo + width * np.arange(k + 1, dtype=np.float64)
    edges[0] = lo
    edges[-1] = hi
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def expected_buckets(data, buckets=None):
    """TensorBoard's _buckets where TensorBoard is IEEE-consistent, else ieee_buckets (see above)."""
    if tb_is_ieee(data, buckets):
        return tb_buckets(data, buckets)
    return ieee_buckets(data, buckets)


def finite_part(data):
    """The finite values of ``data``, flattened, in its own dtype."""
    arr = np.asarray(data).reshape(-1)
    if arr.dtype.kind in "biu":
        return arr
    return arr[np.isfinite(arr.astype(np.float64))]


def assert_same_buckets(got, expected, what=""):
    """Bit-for-bit equality of two [k, 3] bucket tensors (``np.array_equal``: -0.0 == +0.0)."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    assert got.dtype == np.float64, f"{what}: dtype {got.dtype}, expected float64"
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    if not np.array_equal(got, expected):
        bad = np.argwhere(got != expected)
        rows = sorted({int(i) for i, _ in bad})[:5]
        lines = [f"{what}: {len(bad)} mismatching entries; first rows:"]
        for r in rows:
            lines.append(f"  row {r}: got {got[r].tolist()!r}  expected {expected[r].tolist()!r}")
        raise AssertionError("\n".join(lines))


def assert_bucket_properties(got, data, what=""):
    """For results no formula pins down (width underflows to 0, range overflows): edges finite and
    monotone from min to max, every finite value counted once, min in the first bucket and max in
    the last."""
    got = np.asarray(got)
    x = _as_f64(data)
    x = x[np.isfinite(x)]
    k = got.shape[0]
    assert got.dtype == np.float64 and got.shape == (k, 3), what
    edges = np.concatenate([got[:, 0], got[-1:, 1]])
    counts = got[:, 2]
    assert np.all(np.isfinite(edges)), f"{what}: non-finite edges"
    assert np.array_equal(got[1:, 0], got[:-1, 1]), f"{what}: right edge != next left edge"
    assert np.all(np.diff(edges) >= 0), f"{what}: edges not monotone"
    assert edges[0] == x.min() and edges[-1] == x.max(), f"{what}: first/last edge {edges[0]}, {edges[-1]}"
    assert counts.sum() == x.size, f"{what}: counts sum {counts.sum()} != {x.size}"
    assert counts[0] >= (x == x.min()).sum(), f"{what}: min not in the first bucket"
    assert counts[-1] >= (x == x.max()).sum(), f"{what}: max not in the last bucket"


def check_histogram(histgpu, data, buckets, what=""):
    """histgpu.histogram(data, buckets) against expected_buckets (or the properties where no formula
    defines the result)."""
    got = histgpu.histogram(data, buckets)
    if ieee_width_is_zero(data, buckets):
        assert_bucket_properties(got, data, what + " (width underflows)")
    else:
        assert_same_buckets(got, expected_buckets(data, buckets), what)
    return got


def ulp_neighbours(values, dtype, steps=1):
    """``values`` cast to ``dtype`` plus their neighbours up to ``steps`` ulps either side (finite only)."""
    dt = np.dtype(dtype)
    base = np.asarray(values, dtype=np.float64).astype(dt)
    out = [base]
    up = base.copy()
    down = base.copy()
    if is_ml_dtype(dt):
        # ml_dtypes has no nextafter: step through the ordered bit patterns of float64 values instead.
        grid = _ml_sorted_grid(dt)
        idx = np.searchsorted(grid, base.astype(np.float64))
        for s in range(1, steps + 1):
            out.append(grid[np.clip(idx + s, 0, len(grid) - 1)].astype(dt))
            out.append(grid[np.clip(idx - s, 0, len(grid) - 1)].astype(dt))
    else:
        for _ in range(steps):
            up = np.nextafter(up, dt.type(np.inf))
            down = np.nextafter(down, dt.type(-np.inf))
            out += [up.copy(), down.copy()]
    res = np.concatenate([np.asarray(o, dtype=dt).reshape(-1) for o in out])
    return res[np.isfinite(res.astype(np.float64))]


def _ml_sorted_grid(dt):
    """Every finite value of a small float type (8 or 16 bits), sorted, as float64."""
    bits = np.dtype(dt).itemsize * 8
    raw = np.arange(2**bits, dtype=np.uint32).astype(np.uint16 if bits == 16 else np.uint8)
    vals = raw.view(dt).astype(np.float64)
    vals = np.unique(vals[np.isfinite(vals)])
    return vals


def tb_edges(lo, hi, k):
    """Bucket edges as docs/semantics.md §1.1.5 states them, used only to *place* adversarial values."""
    lo = np.float64(lo)
    hi = np.float64(hi)
    width = (hi - lo) / np.float64(k)
    return lo + width * np.arange(k + 1, dtype=np.float64)
