"""histgpu for PyTorch: exact histograms of sharded tensors (DTensor, FSDP2, tensor parallel).

:func:`histogram` and :func:`histogram_v1` give the histogram of the **global** tensor that a
``DTensor`` stands for, on every rank, bit for bit equal to ``histgpu.compute`` /
``histgpu.compute_v1`` of ``full_tensor()``, without gathering any data: each rank counts its
local shard and only O(k) int64 arrays cross ``torch.distributed`` (all-reduce with MIN and
SUM over each mesh dimension's process group: Gloo on CPU, NCCL on GPU). Copies along
``Replicate()`` mesh dimensions are counted once (the rank at coordinate 0 of those dimensions
counts, the others contribute nothing). A plain tensor with ``group=`` is one shard of a
tensor split over that group's ranks. :func:`log_histograms` logs every parameter (and
gradient) of a module, FSDP2 (``fully_shard``) and tensor-parallel modules included.

Every rank must call these functions together, in the same order, with the same arguments
(they run collectives). The machinery is :mod:`histgpu.sharded` (docs/sharded.md).
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from tensorboard.compat.proto import summary_pb2

from . import _api, _engine, _options
from . import _torch_layout as _tl
from . import sharded as _hs
from ._result import Histogram, V1Histogram

__all__ = ["histogram", "histogram_v1", "histogram_proto", "log_histograms"]

Reduce = Callable[[np.ndarray, Any], np.ndarray]


def _is_dtensor(t: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - every torch histgpu supports has it
        return False
    return isinstance(t, DTensor)


def _collective_device(group: Any, local: Any) -> torch.device:
    """Where the int64 arrays must live for `group`'s backend: on the GPU for NCCL, else the host."""
    backend = str(dist.get_backend(group)).lower()
    on_gpu = isinstance(local, torch.Tensor) and local.is_cuda
    if "nccl" in backend and (on_gpu or "gloo" not in backend):
        return local.device if on_gpu else torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _reducer(groups: Sequence[Any], local: Any) -> Reduce:
    """All-reduce of an int64 numpy array over every group in turn: over all the ranks they span
    together (for the groups of a mesh's dimensions, the whole mesh)."""
    devices = [_collective_device(g, local) for g in groups]

    def reduce(a: np.ndarray, op: Any) -> np.ndarray:
        out = np.ascontiguousarray(a, dtype=np.int64)
        if out.size == 0:
            return out
        for g, dev in zip(groups, devices):
            t = torch.from_numpy(out.copy()).to(dev)
            dist.all_reduce(t, op=op, group=g)
            out = t.cpu().numpy()
        return out

    return reduce


def _shard(t: Any, group: Any) -> Tuple[Optional[Any], Optional[Reduce], Tuple[int, ...]]:
    """(what this rank counts, the reduction over the ranks holding the tensor, its global shape).

    The local part is None on ranks whose copy is counted by another rank (replicas); the
    reduction is None when no collective is needed (a plain tensor without `group`)."""
    if _is_dtensor(t):
        if group is not None:
            raise ValueError("group= is for plain tensors; a DTensor's device mesh says which ranks hold it")
        mesh = t.device_mesh
        coord = mesh.get_coordinate()
        if coord is None:
            raise ValueError("this rank is not part of the DTensor's device mesh")
        counted = True
        for dim, placement in enumerate(t.placements):
            if placement.is_partial():
                raise ValueError(
                    f"a DTensor with a Partial() placement (mesh dim {dim}) holds partial sums, not values: "
                    "redistribute it to Shard/Replicate first"
                )
            if placement.is_replicate() and coord[dim] != 0:
                counted = False  # the copy at coordinate 0 of this dimension is counted instead
        local = t.to_local() if counted else None
        groups = [mesh.get_group(d) for d in range(mesh.ndim)]
        return local, _reducer(groups, t.to_local()), tuple(t.shape)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor or DTensor, not {type(t).__name__}")
    if group is None:
        return t, None, tuple(t.shape)
    return t, _reducer([group], t), tuple(t.shape)


def histogram(t: Any, buckets: Optional[int] = None, *, nonfinite: str = "omit", group: Any = None,
              num_threads: Optional[int] = None) -> Histogram:
    """TensorBoard's v2 histogram of the global tensor, on every rank.

    Parameters
    ----------
    t : torch.Tensor or DTensor
        A ``DTensor`` (any 1-D or N-D device mesh, ``Shard(d)`` and ``Replicate()``
        placements), or a plain tensor: with ``group`` one shard of a tensor split over the
        group's ranks, without it the whole tensor.
    buckets : int, optional
        ``k`` (default 30), as in :func:`histgpu.compute`.
    nonfinite : {"omit", "raise"}
        As in :func:`histgpu.compute`, applied to the global non-finite counts (every rank
        warns or raises alike).
    group : torch.distributed.ProcessGroup, optional
        For a plain tensor: the ranks whose shards make up the tensor.

    Returns
    -------
    histgpu.Histogram
        Equal to ``histgpu.compute(full_tensor, buckets)``, bit for bit, on every rank: two
        all-reduces of 2 + 4 int64, then one of ``k`` int64, per mesh dimension.
    """
    k = _options.bucket_count(buckets)
    mode = _options.nonfinite_mode(nonfinite)
    local, reduce, _ = _shard(t, group)
    if reduce is None:
        return _api.compute(local, k, nonfinite=mode, num_threads=num_threads)
    mine = _hs.local_range(local, num_threads=num_threads) if local is not None else _hs.RangeInfo(0.0, 0.0, 0)
    lo, n = mine.to_collective()
    g = _hs.RangeInfo.from_collective(reduce(lo, dist.ReduceOp.MIN), reduce(n, dist.ReduceOp.SUM))
    if local is not None and k:
        counts = _hs.local_counts(local, g, k, local=mine, num_threads=num_threads)
    else:
        counts = np.zeros(k, np.int64)
    return _hs.histogram_from_counts(g, reduce(counts, dist.ReduceOp.SUM), nonfinite=mode)


def _merged_v1(local: Optional[Any], reduce: Reduce, num_threads: Optional[int]) -> Tuple[_hs.V1Partial, _hs.V1Partial]:
    """(this rank's v1 partial, the partial of the global tensor): one all-reduce round."""
    part = _hs.local_v1(local if local is not None else np.zeros(0), num_threads=num_threads)
    mins, sums = part.to_collective()
    merged = _hs.V1Partial.from_collective(reduce(mins, dist.ReduceOp.MIN), reduce(sums, dist.ReduceOp.SUM))
    return part, merged


def histogram_v1(t: Any, *, nonfinite: str = "omit", group: Any = None,
                 num_threads: Optional[int] = None) -> V1Histogram:
    """TensorFlow's v1 histogram of the global tensor (exact sums), on every rank.

    Equal to ``histgpu.compute_v1(full_tensor)`` bit for bit, ``sum`` and ``sum_squares``
    included (the exact sums' digits add up as int64). Parameters as in :func:`histogram`;
    one all-reduce round of 2 + 1,843 int64 per mesh dimension.
    """
    mode = _options.nonfinite_mode(nonfinite)
    local, reduce, _ = _shard(t, group)
    if reduce is None:
        return _api.compute_v1(local, nonfinite=mode, num_threads=num_threads)
    return _merged_v1(local, reduce, num_threads)[1].finish(nonfinite=mode)


def histogram_proto(t: Any, bins: Any = "tensorflow", max_bins: Optional[int] = None, *, nonfinite: str = "omit",
                    group: Any = None, num_threads: Optional[int] = None
                    ) -> Tuple[summary_pb2.HistogramProto, Tuple[int, int, int]]:
    """PyTorch's ``add_histogram`` proto of the global tensor, on every rank, and its
    ``(nan, posinf, neginf)`` counts (left out of the histogram, as in histgpu's writer).

    ``bins`` and ``max_bins`` as in ``SummaryWriter.add_histogram``, except numpy's estimator
    names, which need all the values in one place (``ValueError`` for a sharded tensor). One
    all-reduce round of 2 + 1,843 int64, plus one of ``len(bins)`` int64 for int bins and edges.

    Raises
    ------
    ValueError
        The global tensor has no element; an estimator for a sharded tensor; bad bins.
    """
    spec = _tl.parse_bins(bins)
    mb = _tl.check_max_bins(max_bins)
    mode = _options.nonfinite_mode(nonfinite)
    local, reduce, shape = _shard(t, group)
    if reduce is None:
        return _tl.local_proto(local, spec, mb, mode, num_threads=num_threads)
    if spec.kind == "estimator":
        raise ValueError(
            f"bins={spec.name!r}: numpy's estimators need all the values in one place; for a sharded tensor "
            "use 'tensorflow', an int or explicit edges"
        )
    part, merged = _merged_v1(local, reduce, num_threads)
    if merged.num + merged.nan + merged.posinf + merged.neginf == 0 and int(np.prod(shape)) == 0:
        raise ValueError("the input has no element: an empty tensor has no histogram (PyTorch raises ValueError too)")
    h1 = merged.finish(nonfinite=mode)
    totals = _tl.Totals(h1.min, h1.max, h1.num, h1.sum, h1.sum_squares)

    def count(rule: Any) -> np.ndarray:
        mine = np.zeros(rule.bins, np.int64)
        if local is not None and part.num:
            engine, view = _engine.place(local, None, _options.num_threads(num_threads))
            stats = _tl.counting_stats(_engine_stats(part))
            mine = engine.numpy_counts(view.engine_view(), rule, stats).astype(np.int64)
        return reduce(mine, dist.ReduceOp.SUM)

    proto = _tl.torch_proto(spec, mb, totals, merged.counts, count)
    return proto, (h1.nan, h1.posinf, h1.neginf)


def _engine_stats(part: _hs.V1Partial) -> Any:
    from . import _cpu

    return _cpu.RangeStats(part.min, part.max, part.num, part.nan, part.posinf, part.neginf)


def _named_tensors(module: Any, gradients: bool) -> List[Tuple[str, Any]]:
    out: List[Tuple[str, Any]] = []
    for name, p in module.named_parameters():
        out.append((name, p))
        if gradients and p.grad is not None:
            out.append((f"{name}/grad", p.grad))
    return out


def log_histograms(writer: Any, module: Any, step: Optional[int], *, gradients: bool = True,
                   bins: Any = "tensorflow", rank: int = 0, max_bins: Optional[int] = None,
                   nonfinite: str = "omit", layout: str = "torch") -> int:
    """Log the histogram of every parameter of `module` (and of its ``.grad``), as global tensors.

    Call it on every rank, at the same point (it runs collectives for sharded parameters).
    Parameters that are ``DTensor`` s (``fully_shard`` / FSDP2, tensor parallelism,
    ``distribute_tensor``) are histogrammed whole, through O(k) int64 collectives; plain
    parameters are each rank's own full copy and need none. Only rank `rank` writes.

    Parameters
    ----------
    writer : histgpu.SummaryWriter or torch.utils.tensorboard.SummaryWriter or None
        The writer of rank `rank` (other ranks may pass None). With PyTorch's writer the
        protos go through its ``add_histogram_raw`` (no non-finite companion scalars).
    module : torch.nn.Module
    step : int
        The global step of the events.
    gradients : bool
        Also log ``<name>/grad`` for parameters whose ``.grad`` is set (it must be set on
        every rank alike, as after a backward pass).
    bins, max_bins, layout, nonfinite
        As in :meth:`histgpu.SummaryWriter.add_histogram` (numpy's estimators are refused for
        sharded parameters; ``layout="v2"`` needs histgpu's writer).
    rank : int
        The rank that writes (default 0).

    Returns
    -------
    int
        The number of histograms logged (on every rank).
    """
    me = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    writes = me == rank
    if writes and writer is None:
        raise ValueError(f"rank {rank} writes, so it needs a writer (got None)")
    if layout not in ("torch", "v2"):
        raise ValueError(f"layout must be 'torch' or 'v2', not {layout!r}")
    ours = hasattr(writer, "_add_value")
    if writes and layout == "v2" and not ours:
        raise TypeError("layout='v2' needs histgpu.SummaryWriter (PyTorch's writer has no v2 histograms)")
    if layout == "v2":
        if max_bins is not None:
            raise ValueError("max_bins applies to layout='torch' only")
        k = _options.DEFAULT_BUCKETS if bins == "tensorflow" else _options.bucket_count(bins)
    else:
        _tl.parse_bins(bins)  # refuse bad bins before any collective
        _tl.check_max_bins(max_bins)
    from . import proto as _proto

    tensors = _named_tensors(module, gradients)
    for tag, t in tensors:
        if layout == "v2":
            h = histogram(t, k, nonfinite=nonfinite)
            if writes:
                writer._add_value(tag, _proto.histogram_v2_value(tag, h.to_tensor()), step,
                                  nonfinite=(h.nan, h.posinf, h.neginf))
            continue
        proto, bad = histogram_proto(t, bins, max_bins, nonfinite=nonfinite)
        if not writes:
            continue
        if ours:
            writer._add_value(tag, summary_pb2.Summary.Value(tag=tag, histo=proto), step, nonfinite=bad)
        else:
            writer.add_histogram_raw(tag, proto.min, proto.max, proto.num, proto.sum, proto.sum_squares,
                                     list(proto.bucket_limit), list(proto.bucket), global_step=step)
    return len(tensors)
