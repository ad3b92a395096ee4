"""histgpu: TensorBoard-exact histograms of huge tensors, computed where they live.

>>> import histgpu
>>> histgpu.histogram([1.0, 2.0, 3.0], buckets=2)
array([[1., 2., 1.],
       [2., 3., 2.]])
"""
from ._api import __version__, build_info, compute, compute_v1, histogram, v1_limits
from ._options import NonFiniteWarning
from ._result import Histogram, V1Histogram

__all__ = [
    "__version__",
    "build_info",
    "compute",
    "compute_v1",
    "histogram",
    "v1_limits",
    "Histogram",
    "V1Histogram",
    "NonFiniteWarning",
]
