"""Helpers of the tests/jax suites: meshes over the host devices, bit-for-bit comparisons."""
from __future__ import annotations

import numpy as np


def mesh(cpus, shape, names, explicit=True):
    """A mesh over the first prod(shape) host devices, with Explicit (JAX's default for
    jax.make_mesh) or Auto axes."""
    import jax
    from jax.sharding import Mesh

    devs = np.array(cpus[: int(np.prod(shape))]).reshape(shape)
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is None:
        return Mesh(devs, names)
    kind = axis_type.Explicit if explicit else axis_type.Auto
    return Mesh(devs, names, axis_types=(kind,) * len(names))


def same_v2(got, want) -> bool:
    """Bit-for-bit equality of two histgpu.Histogram (the [k, 3] tensor, min/max bits, counts)."""
    def bits(x):
        return np.float64(x).view(np.int64)

    return (
        np.array_equal(got.to_tensor().view(np.int64), want.to_tensor().view(np.int64))
        and np.array_equal(got.edges.view(np.int64), want.edges.view(np.int64))
        and np.array_equal(got.counts, want.counts)
        and bits(got.min) == bits(want.min) and bits(got.max) == bits(want.max)
        and (got.num, got.nan, got.posinf, got.neginf) == (want.num, want.nan, want.posinf, want.neginf)
    )


def same_v1(got, want) -> bool:
    """Bit-for-bit equality of two histgpu.V1Histogram (counts, min/max/sums bits, value counts)."""
    def bits(x):
        return np.float64(x).view(np.int64)

    return (
        np.array_equal(got.counts, want.counts) and np.array_equal(got.limits, want.limits)
        and all(bits(getattr(got, f)) == bits(getattr(want, f)) for f in ("min", "max", "sum", "sum_squares"))
        and (got.num, got.nan, got.posinf, got.neginf) == (want.num, want.nan, want.posinf, want.neginf)
    )
