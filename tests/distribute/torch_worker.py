"""Subprocess body of tests/distribute/test_torch_recipe.py: the torch.distributed recipe of
docs/sharded.md, run for real (Gloo backend, one process per rank).

    python distribute_torch_worker.py RANK WORLD PORT

Prints one JSON line with the failed checks (rank 0 compares with the whole tensor).
"""
from __future__ import annotations

import json
import sys
import warnings

import numpy as np


def shard(rank: int) -> np.ndarray:
    """Uneven shards: rank 1 is empty, rank 2 holds NaN and a run of one value."""
    rng = np.random.default_rng(rank)
    if rank == 1:
        return np.zeros(0, np.float32)
    x = rng.standard_normal(1000 + 333 * rank).astype(np.float32) * (rank + 1)
    if rank == 2:
        x[::50] = np.nan
        x[:100] = 0.5
    return x


def main() -> int:
    rank, world, port = (int(a) for a in sys.argv[1:4])
    import torch
    import torch.distributed as dist

    import histgpu
    import histgpu.sharded as hs

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)

    def all_reduce(a: np.ndarray, op) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(a))
        dist.all_reduce(t, op=op)
        return t.numpy()

    x = shard(rank)
    # v2, two phases
    lo, n = hs.local_range(x).to_collective()
    g = hs.RangeInfo.from_collective(all_reduce(lo, dist.ReduceOp.MIN), all_reduce(n, dist.ReduceOp.SUM))
    c = hs.local_counts(x, g, buckets=23)
    h = hs.histogram_from_counts(g, all_reduce(c, dist.ReduceOp.SUM))
    # v1, one phase
    mins, sums = hs.local_v1(x).to_collective()
    v1 = hs.V1Partial.from_collective(all_reduce(mins, dist.ReduceOp.MIN), all_reduce(sums, dist.ReduceOp.SUM)).finish()
    # Histogram merging after an all_gather_object
    parts = [None] * world
    dist.all_gather_object(parts, hs.local_histogram(x, g, 23))
    merged = hs.merge(parts)
    dist.destroy_process_group()

    failures = []
    whole = np.concatenate([shard(r) for r in range(world)])
    want = histgpu.compute(whole, 23)
    for what, got in (("two-phase", h), ("merge", merged)):
        if not np.array_equal(got.to_tensor().view(np.int64), want.to_tensor().view(np.int64)):
            failures.append(f"{what}: tensor differs")
        if (got.min, got.max, got.num, got.nan) != (want.min, want.max, want.num, want.nan):
            failures.append(f"{what}: stats differ")
    want_v1 = histgpu.compute_v1(whole)
    if not (np.array_equal(v1.counts, want_v1.counts) and (v1.sum, v1.sum_squares, v1.min, v1.max, v1.num)
            == (want_v1.sum, want_v1.sum_squares, want_v1.min, want_v1.max, want_v1.num)):
        failures.append("v1 differs")
    print(json.dumps({"rank": rank, "failures": failures}), flush=True)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
