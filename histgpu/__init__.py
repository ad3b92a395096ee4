"""histgpu: TensorBoard-exact histograms of huge tensors, computed where they live.

>>> import histgpu
>>> histgpu.histogram([1.0, 2.0, 3.0], buckets=2)
array([[1., 2., 1.],
       [2., 3., 2.]])
"""
from ._api import __version__, build_info, compute, compute_v1, histogram, v1_limits
from ._cuda_backend import histogram_many
from ._options import NonFiniteWarning
from ._result import Histogram, V1Histogram
from .sharded import (
    RangeInfo,
    V1Partial,
    histogram_from_counts,
    local_counts,
    local_histogram,
    local_range,
    local_v1,
    merge,
    merge_ranges,
    merge_v1,
)

__all__ = [
    "__version__",
    "build_info",
    "compute",
    "compute_v1",
    "histogram",
    "histogram_many",
    "v1_limits",
    "Histogram",
    "V1Histogram",
    "NonFiniteWarning",
    "histogram_proto",
    "SummaryWriter",
    "RangeInfo",
    "V1Partial",
    "local_range",
    "merge_ranges",
    "local_counts",
    "local_histogram",
    "histogram_from_counts",
    "merge",
    "local_v1",
    "merge_v1",
]

# Modules that need TensorBoard or TensorFlow are imported on first use, so `import histgpu`
# stays light (and TensorFlow-free) for PyTorch/JAX users and for the CPU engine alone.
_LAZY_MODULES = ("summary", "keras", "writer", "proto", "distribute", "inspect")
_LAZY_NAMES = {"histogram_proto": "proto", "SummaryWriter": "writer"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
