"""v2 histograms of GPU tensors in batches, completing asynchronously on the producer's stream.

A batch is one fixed set of kernel launches whatever the number of tensors; only the O(k)
results travel back, into pinned host memory, and nothing waits until :meth:`Pending.result`.
The writer logs GPU tensors through :func:`enqueue_histograms`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

from . import _engine, _input_device, _options
from . import _input as _in
from ._result import Histogram, histogram_from


class Pending:
    """v2 histograms being computed on a GPU stream; nothing here blocks until `result()`.

    The kernels and one copy of the O(k) results into pinned host memory were enqueued on the
    producer's stream; `done()` polls the completion event. The inputs are kept alive until
    the results are in."""

    def __init__(self, handle: Any, owners: list, single: bool):
        self._handle = handle
        self._owners = owners
        self._single = single
        self._results: Optional[List[Histogram]] = None

    def done(self) -> bool:
        """Whether the results have reached host memory (never blocks)."""
        if self._results is not None:
            return True
        return bool(self._handle.done())

    def wait(self) -> None:
        """Block until the results have reached host memory."""
        if self._results is None:
            self._handle.wait()

    def results(self) -> List[Histogram]:
        """Every histogram of the batch (waits for the copy to land)."""
        if self._results is None:
            self._results = [histogram_from(r) for r in self._handle.results()]
            self._owners = []
            self._handle = None
        return self._results

    def result(self) -> Union[Histogram, List[Histogram]]:
        """The histogram (or, for enqueue_histograms, the list of them)."""
        r = self.results()
        return r[0] if self._single else r


def by_device(indices: Sequence[int], views: Sequence[_in.View]) -> List[List[int]]:
    """`indices` grouped by the GPU their views live on (one batch per GPU), in order."""
    groups: Dict[int, List[int]] = {}
    for i in indices:
        groups.setdefault(getattr(views[i], "device", -1), []).append(i)
    return list(groups.values())


def enqueue_views(views: Sequence[_in.View], ks: Sequence[int], *, stream: Any = None, single: bool = False) -> Pending:
    """Enqueue v2 histograms of device views on one GPU; see :func:`enqueue_histograms`.

    The batch runs on `stream` (default: the first view's producer stream), after the work
    every view's producer stream has enqueued so far, and before what they enqueue next.
    """
    mod = _engine.cuda_module()
    devices = {v.device for v in views if v.size and getattr(v, "device", -1) >= 0}  # type: ignore[attr-defined]
    if len(devices) > 1:
        raise ValueError("histgpu: one batch must live on one GPU; enqueue one batch per device")
    device = devices.pop() if devices else -1
    producers = [int(getattr(v, "stream", 0)) for v in views]
    s = _input_device.stream_handle(stream) if stream is not None else (producers[0] if producers else 0)
    handle = mod.enqueue_v2_many([v.engine_view() for v in views], list(ks), s, device, producers)  # type: ignore[union-attr]
    return Pending(handle, [v.owner for v in views], single)


def enqueue_histograms(tensors: Sequence[Any], buckets: Any = None, *, stream: Any = None) -> Pending:
    """Enqueue v2 histograms of GPU tensors (all on one device) and return at once.

    A fixed number of kernel launches, whatever the number of tensors; the work is ordered on
    the producer's stream (or `stream`). ``Pending.result()`` gives the list of
    :class:`histgpu.Histogram`, bit-identical to :func:`histgpu.compute` of each tensor."""
    views = [_engine.place(_in.classify(t), "cuda", 1)[1] for t in tensors]
    return enqueue_views(views, _options.bucket_counts(buckets, len(views)), stream=stream)


def enqueue_histogram(data: Any, buckets: Optional[int] = None, *, stream: Any = None) -> Pending:
    """Enqueue the v2 histogram of one GPU tensor; ``Pending.result()`` is a Histogram."""
    view = _engine.place(_in.classify(data), "cuda", 1)[1]
    return enqueue_views([view], [_options.bucket_count(buckets)], stream=stream, single=True)


__all__ = ["Pending", "by_device", "enqueue_histogram", "enqueue_histograms", "enqueue_views"]
