"""histgpu: TensorBoard-exact histograms of huge tensors, computed where they live.

>>> import histgpu
>>> histgpu.histogram([1.0, 2.0, 3.0], buckets=2)
array([[1., 2., 1.],
       [2., 3., 2.]])

``histogram`` / ``compute`` give TensorBoard's v2 histogram (the ``[k, 3]`` tensor of
``tf.summary.histogram``); ``compute_v1`` / ``histogram_proto`` TensorFlow's v1
``HistogramProto`` (what ``tf.compat.v1.summary.histogram``, PyTorch and tensorboardX write).
``numpy_histogram`` is ``numpy.histogram`` counted by histgpu's engines. Shards of one tensor:
:mod:`histgpu.sharded`; PyTorch (DTensor, FSDP2, the writer's layout): :mod:`histgpu.torch`.
The rules: docs/semantics.md.
"""
from ._api import build_info, compute, compute_v1, histogram, histogram_many
from ._engine import v1_limits
from ._numpy_bins import numpy_histogram
from ._options import NonFiniteWarning
from ._result import Histogram, V1Histogram, merge
from ._version import __version__

__all__ = [
    "__version__",
    "build_info",
    "compute",
    "compute_v1",
    "histogram",
    "histogram_many",
    "numpy_histogram",
    "v1_limits",
    "merge",
    "Histogram",
    "V1Histogram",
    "NonFiniteWarning",
    "histogram_proto",
    "SummaryWriter",
]

# Modules that need TensorBoard or TensorFlow are imported on first use, so `import histgpu`
# stays light (and TensorFlow-free) for PyTorch/JAX users and for the CPU engine alone.
_LAZY_MODULES = ("summary", "keras", "writer", "proto", "distribute", "inspect", "sharded", "jax", "torch")
_LAZY_NAMES = {"histogram_proto": "proto", "SummaryWriter": "writer"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
