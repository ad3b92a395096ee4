"""Subprocess body of tests/torch/test_distributed.py: one rank of a Gloo group on 127.0.0.1.

    python dist_worker.py RANK WORLD PORT SCENARIO LOGDIR

SCENARIO is ``dtensor`` (DTensor on a 1-D mesh of WORLD ranks and, with 4 ranks, on a 2x2 mesh
with every pair of Shard(0)/Shard(1)/Replicate() placements; plain tensors with group=),
``fsdp`` (FSDP2 fully_shard, 1-D and, with 4 ranks, HSDP on a 2x2 mesh), or ``tp`` (tensor
parallelism). Every check compares histgpu.torch's result for the sharded tensor with
histgpu's result for the whole tensor, with ==; the module scenarios also compare the events
log_histograms writes with the events torch.utils.tensorboard.SummaryWriter writes for the
whole tensors. Prints one JSON line: the failed checks, and what was skipped and why.
"""
from __future__ import annotations

import faulthandler
import glob
import json
import os
import sys
import traceback
import warnings

import numpy as np


def main() -> int:
    rank, world, port = (int(a) for a in sys.argv[1:4])
    scenario, logdir = sys.argv[4], sys.argv[5]
    import torch
    import torch.distributed as dist

    faulthandler.enable(all_threads=True)  # a crash at teardown names the threads still running
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    failures: list = []
    notes: list = []
    try:
        {"dtensor": run_dtensor, "fsdp": run_fsdp, "tp": run_tp}[scenario](rank, world, logdir, failures, notes)
    except Exception:  # noqa: BLE001 - reported, not hidden
        failures.append(traceback.format_exc())
    finally:
        # Every rank reaches here before any tears its groups down: a rank that left early
        # closes sockets its peers' Gloo threads may still read (an abort at exit, now and then).
        try:
            dist.barrier()
        except Exception:  # noqa: BLE001 - reported, not hidden
            failures.append(traceback.format_exc())
        dist.destroy_process_group()
    print(json.dumps({"rank": rank, "failures": failures, "notes": notes}))
    return 0


# ------------------------------------------------------------------------------------------ checks


def same_hist(a, b) -> bool:
    return (np.array_equal(a.edges, b.edges) and np.array_equal(a.counts, b.counts) and a.edges.dtype == b.edges.dtype
            and (a.min, a.max, a.num, a.nan, a.posinf, a.neginf) == (b.min, b.max, b.num, b.nan, b.posinf, b.neginf)
            and np.signbit(a.min) == np.signbit(b.min) and np.signbit(a.max) == np.signbit(b.max))


def same_v1(a, b) -> bool:
    return (np.array_equal(a.counts, b.counts)
            and (a.min, a.max, a.num, a.sum, a.sum_squares, a.nan, a.posinf, a.neginf)
            == (b.min, b.max, b.num, b.sum, b.sum_squares, b.nan, b.posinf, b.neginf))


def check_tensor(what: str, dt, full, failures: list, group=None) -> None:
    """histgpu.torch of the sharded tensor == histgpu of the whole one, for v2, v1 and PyTorch's proto."""
    import histgpu
    import histgpu.torch as ht
    from histgpu import _torch_layout as tl

    for k in (30, 7, 1):
        if not same_hist(ht.histogram(dt, k, group=group), histgpu.compute(full, k)):
            failures.append(f"{what}: v2 k={k}")
    if not same_v1(ht.histogram_v1(dt, group=group), histgpu.compute_v1(full)):
        failures.append(f"{what}: v1")
    for bins, max_bins in (("tensorflow", None), ("tensorflow", 40), (10, None), (64, 5), ([-1.0, -0.1, 0.0, 0.3, 2.0], None)):
        try:
            want = tl.local_proto(full, tl.parse_bins(bins), max_bins, "omit")
        except ValueError as e:
            want = repr(e)
        try:
            got = ht.histogram_proto(dt, bins, max_bins, group=group)
        except ValueError as e:
            got = repr(e)
        if got != want:
            failures.append(f"{what}: proto bins={bins} max_bins={max_bins}: {got!r} != {want!r}")


def data(shape, seed: int, dtype, special: bool):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    if special and x.numel() > 4:
        flat = x.view(-1)
        flat[1] = float("nan")
        flat[3] = float("inf")
        flat[-1] = -0.0
    return x.to(dtype)


def run_dtensor(rank: int, world: int, logdir: str, failures: list, notes: list) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor, init_device_mesh

    cases = [((13, 5), torch.float32, False), ((3, 7), torch.float64, True), ((1, 2), torch.float32, False),
             ((6, 4), torch.bfloat16, True), ((0, 3), torch.float32, False)]
    mesh1 = init_device_mesh("cpu", (world,))
    for i, (shape, dtype, special) in enumerate(cases):
        full = data(shape, 100 + i, dtype, special)
        for placement in (Shard(0), Shard(1), Replicate()):
            dt = distribute_tensor(full, mesh1, [placement])
            check_tensor(f"1-D mesh {placement} {shape} {dtype}", dt, full, failures)
    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2))
        kinds = (Shard(0), Shard(1), Replicate())
        for i, (shape, dtype, special) in enumerate(cases):
            full = data(shape, 200 + i, dtype, special)
            for p0 in kinds:
                for p1 in kinds:
                    dt = distribute_tensor(full, mesh2, [p0, p1])
                    check_tensor(f"2x2 mesh [{p0}, {p1}] {shape} {dtype}", dt, full, failures)
    # A plain tensor per rank with group=: shards of different sizes, one of them empty.
    shards = [data((0,) if r == 1 else (50 * r + 3,), 300 + r, torch.float32, r == 2) for r in range(world)]
    check_tensor("plain tensors with group=", shards[rank], torch.cat(shards), failures, group=dist.group.WORLD)
    sub = dist.new_group([0, 1])
    if rank in (0, 1):
        check_tensor("plain tensors with a sub-group", shards[rank], torch.cat(shards[:2]), failures, group=sub)
    # What a sharded tensor cannot do.
    import histgpu.torch as ht

    dt = distribute_tensor(data((8,), 9, torch.float32, False), mesh1, [Shard(0)])
    for bad, exc in (((dt, "auto"), ValueError), ((dt, "bogus"), ValueError), ((dt, 0), ValueError)):
        try:
            ht.histogram_proto(*bad)
            failures.append(f"no {exc.__name__} for bins={bad[1]!r}")
        except exc:
            pass
    from torch.distributed.tensor import DTensor, Partial

    partial = DTensor.from_local(torch.ones(3), mesh1, [Partial()])
    for fn in (ht.histogram, ht.histogram_v1, ht.histogram_proto):
        try:
            fn(partial)
            failures.append(f"no ValueError from {fn.__name__} for a Partial() placement")
        except ValueError:
            pass
    empty = distribute_tensor(torch.zeros(0), mesh1, [Shard(0)])
    try:
        ht.histogram_proto(empty)
        failures.append("no ValueError for an empty DTensor")
    except ValueError:
        pass


# ------------------------------------------------------------------------------------ modules


def compare_logs(module, logdir: str, rank: int, failures: list, what: str, writer_rank: int = 0) -> None:
    """log_histograms(module) against torch's SummaryWriter given the full tensors."""
    import torch
    from torch.distributed.tensor import DTensor
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    import histgpu
    import histgpu.torch as ht

    ours_dir, theirs_dir = os.path.join(logdir, what, "histgpu"), os.path.join(logdir, what, "torch")
    full = []
    for name, p in module.named_parameters():
        full.append((name, p.full_tensor() if isinstance(p, DTensor) else p.detach()))
        if p.grad is not None:
            g = p.grad
            full.append((f"{name}/grad", g.full_tensor() if isinstance(g, DTensor) else g))
    for tag, t in full:  # the v2 and v1 functions, tensor by tensor (rank 0's copies of full are all equal)
        p = dict(module.named_parameters()).get(tag.split("/grad")[0])
        dt = p.grad if tag.endswith("/grad") else p
        if not same_hist(ht.histogram(dt, 20), histgpu.compute(t, 20)):
            failures.append(f"{what}: v2 of {tag}")
        if not same_v1(ht.histogram_v1(dt), histgpu.compute_v1(t)):
            failures.append(f"{what}: v1 of {tag}")
    writer = histgpu.SummaryWriter(ours_dir) if rank == writer_rank else None
    n = ht.log_histograms(writer, module, 5, rank=writer_rank)
    n += ht.log_histograms(writer, module, 6, rank=writer_rank, bins=25, max_bins=10)
    if writer is not None:
        writer.close()
    if n != 2 * len(full):
        failures.append(f"{what}: log_histograms logged {n}, expected {2 * len(full)}")
    if rank != writer_rank:
        return
    theirs = TorchWriter(theirs_dir)
    for tag, t in full:
        theirs.add_histogram(tag, t.float() if t.dtype == torch.bfloat16 else t, 5)
    for tag, t in full:
        theirs.add_histogram(tag, t.float() if t.dtype == torch.bfloat16 else t, 6, bins=25, max_bins=10)
    theirs.close()
    a, b = read_histos(ours_dir), read_histos(theirs_dir)
    if [k for k, _ in a] != [k for k, _ in b]:
        failures.append(f"{what}: tags/steps {[k for k, _ in a]} != {[k for k, _ in b]}")
    for (key, x), (_, y) in zip(a, b):
        same = (list(x.bucket_limit) == list(y.bucket_limit) and list(x.bucket) == list(y.bucket)
                and (x.min, x.max, x.num) == (y.min, y.max, y.num)
                and abs(x.sum - y.sum) <= 1e-12 * max(abs(y.sum), 1e-300) + 1e-300
                and abs(x.sum_squares - y.sum_squares) <= 1e-12 * abs(y.sum_squares))
        if not same:
            failures.append(f"{what}: event {key} differs from torch's writer")


def read_histos(path: str) -> list:
    from tensorboard.backend.event_processing import event_file_loader

    out = []
    for f in sorted(glob.glob(os.path.join(path, "events.out.tfevents.*"))):
        for e in event_file_loader.LegacyEventFileLoader(f).Load():
            for v in e.summary.value:
                if v.HasField("histo"):
                    out.append(((e.step, v.tag), v.histo))
    return out


def model(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(10, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3, bias=False),
                               torch.nn.ReLU(), torch.nn.Linear(3, 1))


def train_step(m) -> None:
    import torch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 10, generator=g)
    m(x).square().mean().backward()


def run_fsdp(rank: int, world: int, logdir: str, failures: list, notes: list) -> None:
    from torch.distributed.tensor import DTensor, init_device_mesh

    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:
        notes.append("no torch.distributed.fsdp.fully_shard in this torch")
        return
    mesh = init_device_mesh("cpu", (world,))
    m = model()
    for layer in m:
        if hasattr(layer, "weight"):
            fully_shard(layer, mesh=mesh)
    fully_shard(m, mesh=mesh)
    train_step(m)
    if not all(isinstance(p, DTensor) for p in m.parameters()):
        failures.append("fully_shard left plain parameters")
    compare_logs(m, logdir, rank, failures, "fsdp")
    if world == 4:  # HSDP: replicate over mesh dim 0, shard over dim 1
        mesh2 = init_device_mesh("cpu", (2, 2), mesh_dim_names=("replicate", "shard"))
        m2 = model(1)
        for layer in m2:
            if hasattr(layer, "weight"):
                fully_shard(layer, mesh=mesh2)
        fully_shard(m2, mesh=mesh2)
        train_step(m2)
        if not any(pl.is_replicate() for p in m2.parameters() for pl in p.placements):
            failures.append("HSDP parameters are not replicated over mesh dim 0")
        compare_logs(m2, logdir, rank, failures, "hsdp", writer_rank=3)


def run_tp(rank: int, world: int, logdir: str, failures: list, notes: list) -> None:
    import torch
    from torch.distributed.tensor import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(10, 4 * world), torch.nn.ReLU(), torch.nn.Linear(4 * world, 5))
    parallelize_module(m, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    train_step(m)
    compare_logs(m, logdir, rank, failures, "tp")


if __name__ == "__main__":
    sys.exit(main())
